//! Regenerates the protocol code in `crates/service/src/pb/` from
//! `crates/service/proto/`:
//!
//! ```text
//! cargo run --manifest-path tools/protogen/Cargo.toml
//! ```
//!
//! It writes the message and service code (tonic with prost), the encoded
//! descriptor set served by gRPC reflection, and `sources.sha256`, the
//! digests of the `.proto` files it read. A unit test of `stacking-service`
//! compares those digests with the files, so a protocol edited without
//! running this fails the tests. The generated code is checked in so that a
//! build of stacking compiles no code generator (docs/contributing.md).

use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use prost::Message;
use sha2::{Digest, Sha256};

/// The protocol files, in the order they are compiled and listed.
const PROTOS: [&str; 2] = ["helloworld.proto", "stacking.proto"];

fn main() -> Result<(), Box<dyn Error>> {
    let service = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/service");
    let proto = service.join("proto");
    let out = service.join("src/pb");
    let fds = protox::compile(PROTOS, [&proto])?;
    fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;
    // Our codec answers a malformed message with INVALID_ARGUMENT, not INTERNAL.
    tonic_prost_build::configure()
        .bytes(".")
        .codec_path("crate::codec::StrictCodec")
        .out_dir(&out)
        .compile_fds(fds)?;
    let mut sums = String::new();
    for name in PROTOS {
        let digest = Sha256::digest(fs::read(proto.join(name))?);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(sums, "{hex}  {name}")?;
    }
    fs::write(out.join("sources.sha256"), sums)?;
    println!("wrote {}", out.display());
    Ok(())
}
