//! Generated protobuf and gRPC code for every festival API (`proto/festival/**`), plus
//! the encoded descriptor set used by gRPC reflection and the gateway's transcoder.
//!
//! This is the only crate that runs codegen; services depend on it instead of
//! compiling `.proto` files themselves.

/// Encoded `FileDescriptorSet` of every festival proto and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/festival_descriptor.bin"));

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// The module tree mirrors the proto packages, so generated cross-package paths
/// (`super::super::google::api::HttpBody`) resolve.
pub mod festival {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("festival.common.v1");
        }
    }

    pub mod identity {
        pub mod v1 {
            tonic::include_proto!("festival.identity.v1");
        }
    }

    /// Test-only API for the gateway's transcoding tests (never routed in a deployment).
    pub mod testing {
        pub mod v1 {
            tonic::include_proto!("festival.testing.v1");
        }
    }

    pub mod program {
        pub mod v1 {
            tonic::include_proto!("festival.program.v1");
        }
    }
}

pub use festival::{common, identity, program, testing};
