//! Cookie-mode sessions over gRPC and gRPC-web (see [`session`](crate::session)): for a
//! browser, Refresh and Logout get their refresh token from the cookie, and a token
//! pair's tokens leave the response body for `Set-Cookie`. The messages are small and
//! unary, so the one frame is read whole, changed and framed again.

use bytes::{BufMut, Bytes, BytesMut};
use festival_platform::{ApiError, codes};
use festival_proto::identity::v1 as pb;
use http_body_util::{BodyExt, Full, Limited};
use prost::Message;
use tonic::body::Body;

use crate::config::CookieConfig;
use crate::session::{self, SessionCall};

/// Session messages are a few hundred bytes; anything larger is not one.
const MAX_SESSION_BODY: usize = 64 * 1024;

/// Puts the refresh cookie into a Refresh or Logout request whose token is empty.
pub async fn fill_refresh_token(
    request: http::Request<Body>,
    refresh_cookie: Option<String>,
) -> Result<http::Request<Body>, tonic::Status> {
    let (parts, body) = request.into_parts();
    let bytes = Limited::new(body, MAX_SESSION_BODY)
        .collect()
        .await
        .map_err(|_| refused("The session request is too large or broken"))?
        .to_bytes();
    // Same layout for RefreshRequest and LogoutRequest: `string refresh_token = 1`.
    let mut message = single_message(&bytes)
        .and_then(|m| pb::RefreshRequest::decode(m).ok())
        .ok_or_else(|| refused("The request is not one uncompressed session message"))?;
    if message.refresh_token.is_empty() {
        message.refresh_token = refresh_cookie.unwrap_or_default();
    }
    Ok(http::Request::from_parts(parts, Body::new(Full::new(frame(&message.encode_to_vec())))))
}

/// A session call's response on its way to a browser: tokens into cookies, out of the body.
pub async fn finish_response(
    call: SessionCall,
    response: http::Response<Body>,
    cookies: &CookieConfig,
) -> http::Response<Body> {
    let mut set = if call.ends_session() { session::clearing_cookies(cookies) } else { Vec::new() };
    // A trailers-only response is a refusal: no tokens in it.
    if !call.mints_tokens() || response.headers().contains_key("grpc-status") {
        let mut response = response;
        append_cookies(response.headers_mut(), &set);
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = Limited::new(body, MAX_SESSION_BODY).collect().await else {
        return broken_upstream();
    };
    let trailers = collected.trailers().cloned();
    let bytes = collected.to_bytes();
    let body = if bytes.is_empty() {
        bytes
    } else {
        // Never pass a pair through unread: a body that is not one pair is refused.
        let Some(mut pair) = single_message(&bytes).and_then(|m| pb::TokenPair::decode(m).ok()) else {
            return broken_upstream();
        };
        set.extend(session::session_cookies(&pair, cookies));
        session::strip_tokens(&mut pair);
        frame(&pair.encode_to_vec())
    };
    append_cookies(&mut parts.headers, &set);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let body = Full::new(body).with_trailers(async move { trailers.map(Ok) });
    http::Response::from_parts(parts, Body::new(body))
}

fn refused(message: &str) -> tonic::Status {
    ApiError::new(codes::VALIDATION_FAILED).with_message(message).into()
}

fn broken_upstream() -> http::Response<Body> {
    tonic::Status::from(ApiError::new(codes::UNAVAILABLE)).into_http()
}

fn append_cookies(headers: &mut http::HeaderMap, cookies: &[String]) {
    for cookie in cookies {
        if let Ok(value) = http::HeaderValue::from_str(cookie) {
            headers.append(http::header::SET_COOKIE, value);
        }
    }
}

/// The message of a body holding exactly one uncompressed frame.
fn single_message(body: &[u8]) -> Option<&[u8]> {
    let (&flag, rest) = body.split_first()?;
    let (len, message) = rest.split_at_checked(4)?;
    let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
    (flag == 0 && message.len() == len).then_some(message)
}

fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 5);
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_uncompressed_frame_is_read_and_anything_else_is_not() {
        let framed = frame(b"abc");
        assert_eq!(single_message(&framed), Some(&b"abc"[..]));
        assert_eq!(single_message(&[1, 0, 0, 0, 3, b'a', b'b', b'c']), None, "compressed");
        assert_eq!(single_message(&[0, 0, 0, 0, 9, b'a']), None, "truncated");
        assert_eq!(single_message(&[[0, 0, 0, 0, 1, b'a'], [0, 0, 0, 0, 1, b'b']].concat()), None, "two frames");
        assert_eq!(single_message(&[]), None);
    }
}
