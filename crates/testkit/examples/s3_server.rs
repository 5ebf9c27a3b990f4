//! The testkit's S3-API server on its own, for runs outside the tests: the
//! functions started by hand against the same server the services bench
//! uses (`cargo run --release -p stacking-testkit --example s3_server`).
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
