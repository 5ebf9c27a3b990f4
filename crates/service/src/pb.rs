//! Generated protocol types (see `proto/`).

#![allow(clippy::all, missing_docs, rustdoc::invalid_html_tags)]

pub mod helloworld {
    tonic::include_proto!("helloworld");
}

pub mod stacking {
    tonic::include_proto!("stacking");
}

/// Encoded `FileDescriptorSet` of both protocol files, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
