//! The gateway against the real identity service and a test upstream that implements
//! `festival.testing.v1.TranscodingTestService`.

mod grpc;
mod helpers;
mod rest_identity;
mod streams;
mod transcoding;
