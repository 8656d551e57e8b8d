//! What the gRPC edge answers for requests that never reach a handler.
//!
//! tonic (following gRPC's status-code guide) answers INTERNAL when a request's bytes are
//! not the protobuf message the method takes. That is the client's mistake, not ours:
//! [`DecodeErrorLayer`] turns it into INVALID_ARGUMENT with `ERR_1000` and an ErrorInfo,
//! like every other bad input, so it is neither logged nor alerted on as a server error.
//! A message over the size limit keeps tonic's OUT_OF_RANGE and gains the catalogued
//! `ERR_1011` ErrorInfo every refusal carries.

use std::task::{Context, Poll};

use futures::future::BoxFuture;

use crate::codes;
use crate::error::ApiError;

/// The prefix of prost's decode errors, as tonic reports them.
const DECODE_FAILURE: &str = "failed to decode Protobuf message";
/// The prefix of tonic's refusal of a message over `max_decoding_message_size`.
const TOO_LARGE: &str = "Error, decoded message length too large";

#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeErrorLayer;

impl<S> tower::Layer<S> for DecodeErrorLayer {
    type Service = DecodeErrors<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DecodeErrors { inner }
    }
}

#[derive(Debug, Clone)]
pub struct DecodeErrors<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for DecodeErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            // A refused request is a trailers-only response: its status is in the headers.
            let replacement = if is_decode_failure(response.headers()) {
                Some(
                    ApiError::new(codes::VALIDATION_FAILED)
                        .with_message("The request is not a valid message for this method")
                        .into(),
                )
            } else if is_too_large(response.headers()) {
                let status: tonic::Status = ApiError::new(codes::PAYLOAD_TOO_LARGE).into();
                Some(tonic::Status::with_details(
                    tonic::Code::OutOfRange,
                    status.message(),
                    status.details().to_vec().into(),
                ))
            } else {
                None
            };
            if let Some(status) = replacement {
                let headers = response.headers_mut();
                headers.remove("grpc-status");
                headers.remove("grpc-message");
                headers.remove("grpc-status-details-bin");
                let _ = status.add_header(headers);
            }
            Ok(response)
        })
    }
}

fn is_decode_failure(headers: &http::HeaderMap) -> bool {
    headers.get("grpc-status").is_some_and(|v| v.as_bytes() == b"13")
        && tonic::Status::from_header_map(headers).is_some_and(|s| s.message().starts_with(DECODE_FAILURE))
}

fn is_too_large(headers: &http::HeaderMap) -> bool {
    headers.get("grpc-status").is_some_and(|v| v.as_bytes() == b"11")
        && tonic::Status::from_header_map(headers).is_some_and(|s| s.message().starts_with(TOO_LARGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tonic_s_decode_failures_are_recognised() {
        let mut headers = http::HeaderMap::new();
        tonic::Status::internal(format!("{DECODE_FAILURE}: invalid wire type")).add_header(&mut headers).expect("h");
        assert!(is_decode_failure(&headers));
        let mut ours = http::HeaderMap::new();
        tonic::Status::internal("Internal error").add_header(&mut ours).expect("h");
        assert!(!is_decode_failure(&ours), "our own INTERNAL errors stay what they are");
        let mut other = http::HeaderMap::new();
        tonic::Status::invalid_argument(DECODE_FAILURE).add_header(&mut other).expect("h");
        assert!(!is_decode_failure(&other));
    }
}
