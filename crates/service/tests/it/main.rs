//! The services' integration tests, one binary: real gRPC servers on
//! loopback, a real S3-API server over HTTP and a real `redis-server`; the
//! shared set-up in `support`.

mod bad_input;
mod connections;
mod e2e;
mod elasticache;
mod framing;
mod fuzz;
mod hardening;
mod isolation;
mod messages;
mod meta_model;
mod models;
mod pending_dataset;
mod progress;
mod reflection;
mod shared_reads;
mod support;
