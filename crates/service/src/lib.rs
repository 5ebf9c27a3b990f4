//! # stacking-service
//!
//! The four functions of the stacking-training benchmark as gRPC services,
//! wire-compatible with the original (`proto/`).
//!
//! Public: what the binary wires together and what tests drive; private
//! (plain names below): the steps, their adapters and the server's layers.
//!
//! - `steps`: what the trainer, reducer and metatrainer do, on the
//!   protocol's messages; the gRPC services (`services`) only adapt tonic's
//!   request and status types around them.
//! - [`driver`]: the entry point (`helloworld.Greeter/SayHello`) that
//!   orchestrates one run over gRPC; [`rpc`]: its channels, deadlines and
//!   retries; [`report`]: what a run reports.
//! - [`server`]: serving a role with health, reflection, message limits and
//!   graceful shutdown; [`connections`]: the cap and timeouts on its
//!   connections; `admission`: the memory budget of buffered requests;
//!   `role_guard`: `UNIMPLEMENTED` naming the role for another role's call.
//! - [`malloc`]: allocator tuning for multi-MiB per-request buffers.
//! - [`context`], [`settings`], [`error`]: transfer (inline bytes or object
//!   store), run-scoped keys, environment settings and status codes;
//!   `route`: a transfer and its store ([`Route`]).
//! - [`pb`]: the generated protocol types; `codec`: decoding that answers
//!   malformed protobuf with `INVALID_ARGUMENT`.
//! - [`trace`]: Zipkin spans and their propagation across calls.
//! - [`local`]: all four functions in one process on loopback ports (what
//!   `stacking run` and the end-to-end tests start).

mod admission;
mod codec;
pub mod connections;
pub mod context;
pub mod driver;
pub mod error;
pub mod local;
pub mod malloc;
pub mod pb;
pub mod report;
mod role_guard;
mod route;
pub mod rpc;
pub mod server;
mod services;
pub mod settings;
mod shared_reads;
mod steps;
pub mod trace;

pub use context::Context;
pub use route::{Route, StoreKind};
pub use settings::{CommonSettings, DriverSettings, RunPlan, Transfer};
