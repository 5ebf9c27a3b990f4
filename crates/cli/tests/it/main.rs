//! The binary's integration tests, one test binary: `stacking` run as users
//! run it, as separate processes on loopback; the shared helpers in
//! `support`.

mod cli;
mod docs;
mod elasticache;
mod fault_suite;
mod faults;
mod first_hour;
mod invoke;
mod manifests;
mod support;
mod traces;
