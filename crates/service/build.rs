//! Compiles the protocol with `protox` (pure Rust, so no `protoc` is needed to
//! build) and keeps the descriptor set for gRPC server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["helloworld.proto", "stacking.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;
    // Our codec answers a malformed message with INVALID_ARGUMENT, not INTERNAL.
    tonic_prost_build::configure()
        .bytes(".")
        .codec_path("crate::codec::StrictCodec")
        .compile_fds(fds)?;
    Ok(())
}
