//! The testkit's S3-API server on its own, for tools outside the tests:
//! `crates/cli/startup/trace.py` traces start-ups against it, because the
//! services bench measures them against it, and a function's start-up check
//! of the bucket runs other parsing code for this server's replies than for
//! moto's.
//!
//! Prints `ENDPOINT BUCKET ACCESS_KEY SECRET_KEY` on one line, then serves
//! (objects in memory) until it is killed.

use std::io::Write;

use stacking_testkit::s3::{S3Server, ACCESS, BUCKET, SECRET};

fn main() -> std::io::Result<()> {
    let server = S3Server::start()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {BUCKET} {ACCESS} {SECRET}", server.endpoint())?;
    out.flush()?;
    drop(out);
    // The server runs on its own thread until `server` is dropped.
    loop {
        std::thread::park();
    }
}
