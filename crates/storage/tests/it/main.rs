//! The storage layer's integration tests, one binary: one contract for every
//! backend, what the Redis store and the S3 client's bounds add, and
//! recovery from every fault of a store's link.

mod contract;
mod recovery;
mod redis;
mod unresponsive;
