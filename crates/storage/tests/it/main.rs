//! The storage layer's integration tests, one binary: one contract for every
//! backend, and what the Redis store and the S3 client's bounds add.

mod contract;
mod redis;
mod unresponsive;
