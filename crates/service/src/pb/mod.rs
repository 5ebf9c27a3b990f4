//! The protocol's messages, clients and servers, generated from `proto/` by
//! `tools/protogen` and checked in (no code generator runs at build time).
//! After editing a `.proto` file, run
//! `cargo run --manifest-path tools/protogen/Cargo.toml`; the test below
//! fails until then.

#![allow(clippy::all, missing_docs, rustdoc::invalid_html_tags)]

#[rustfmt::skip]
pub mod helloworld;

#[rustfmt::skip]
pub mod stacking;

/// Encoded `FileDescriptorSet` of both protocol files, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("descriptor.bin");

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// The code here was generated from the `.proto` files as they are now:
    /// their digests match those `tools/protogen` recorded.
    #[test]
    fn the_generated_code_is_from_the_current_proto_files() {
        let sources: [(&str, &[u8]); 2] = [
            (
                "helloworld.proto",
                include_bytes!("../../proto/helloworld.proto"),
            ),
            (
                "stacking.proto",
                include_bytes!("../../proto/stacking.proto"),
            ),
        ];
        let recorded = include_str!("sources.sha256");
        for (name, bytes) in sources {
            let hex: String = Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert!(
                recorded
                    .lines()
                    .any(|line| line == format!("{hex}  {name}")),
                "proto/{name} changed since src/pb was generated: run \
                 `cargo run --manifest-path tools/protogen/Cargo.toml`"
            );
        }
        assert_eq!(recorded.lines().count(), sources.len());
    }
}
