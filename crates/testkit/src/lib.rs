//! Support shared by the workspace's tests and benchmarks (never by the
//! product): a real S3-API server on loopback, a real `redis-server` on
//! loopback, a Zipkin collector, a TCP proxy that injects faults into a
//! link ([`fault_proxy`]), byte mutations for property tests of decoders
//! ([`mutation`]), and helpers for the function processes a test starts
//! and must stop.
//!
//! The S3 server is `s3s` (the protocol: SigV4 authentication, XML, ranges,
//! error codes) over a bucket held in memory. It replaced `s3s-fs`, whose
//! GET streams files in 4 KiB chunks, so benchmark figures measured that
//! server's downloads rather than our functions.

pub mod fault_proxy;
pub mod hold;
pub mod mutation;
pub mod process;
pub mod redis;
pub mod s3;
pub mod zipkin;
