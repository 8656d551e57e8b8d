//! Native gRPC and gRPC-web (binary and text) pass through to the owning service:
//! tonic-web turns gRPC-web into gRPC, then the call is forwarded on the upstream's
//! channel untouched. A browser's access cookie becomes `authorization` metadata.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service, ServiceExt};

use crate::ratelimit::Decision;
use crate::{Shared, session};

/// `application/grpc…` (gRPC, gRPC-web, gRPC-web-text).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

pub async fn proxy(state: Shared, request: Request) -> Response {
    let service = tonic_web::GrpcWebLayer::new().layer(Forward { state });
    match service.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

#[derive(Clone)]
struct Forward {
    state: Shared,
}

impl Service<http::Request<tonic::body::Body>> for Forward {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let service = path.trim_start_matches('/').split('/').next().unwrap_or("").to_owned();
            let Some(channel) = state.upstreams.channel_for(&service) else {
                return Ok(tonic::Status::unimplemented(format!("no upstream serves {service}")).into_http());
            };
            if !state.grpc_methods.contains(&path) {
                let refusal: tonic::Status = festival_platform::ApiError::new(festival_platform::codes::NOT_FOUND)
                    .with_message("No such method")
                    .into();
                return Ok(refusal.into_http());
            }
            let authorization = session::authorization(request.headers(), &state.config.cookies);
            let call = session::SessionCall::of(&path);
            let browser = session::is_browser(request.headers());
            if browser
                && call.touches_session()
                && session::cross_site_session_call(request.headers(), &state.config.cors.allowed_origins)
            {
                let refusal: tonic::Status =
                    festival_platform::ApiError::new(festival_platform::codes::INSUFFICIENT_PERMISSIONS)
                        .with_message("Sign-ins and sign-outs from another site's pages are refused")
                        .into();
                return Ok(refusal.into_http());
            }
            let refresh_cookie =
                session::cookie(request.headers(), &state.config.cookies.refresh_name).map(str::to_owned);
            let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
            let peer = festival_platform::client_addr::of_http(
                request.headers(),
                peer,
                state.config.rate_limit.trusted_proxy_hops,
            );
            if let Decision::Deny { retry_after } =
                state.limiter.check(&state.limiter.client(authorization.as_deref(), peer).await, &path).await
            {
                let mut response = tonic::Status::resource_exhausted("Too many requests").into_http();
                if let Ok(v) = http::HeaderValue::from_str(&retry_after.to_string()) {
                    response.headers_mut().insert(http::header::RETRY_AFTER, v);
                }
                return Ok(response);
            }
            let headers = request.headers_mut();
            if let Some(auth) = authorization.and_then(|a| http::HeaderValue::from_str(&a).ok()) {
                headers.insert(http::header::AUTHORIZATION, auth);
            }
            // Connection-specific headers are illegal on the HTTP/2 hop upstream.
            // content-length too: gRPC-web-text bodies shrink when decoded.
            for name in [
                "connection",
                "keep-alive",
                "proxy-connection",
                "transfer-encoding",
                "upgrade",
                "host",
                "content-length",
            ] {
                headers.remove(name);
            }
            headers.remove(http::header::COOKIE);
            // The client as resolved here, and nothing the client wrote (see `client_addr`).
            headers.remove(festival_platform::client_addr::FORWARDED_FOR);
            if let Some(value) = peer.and_then(|ip| http::HeaderValue::from_str(&ip.to_string()).ok()) {
                headers.insert(festival_platform::client_addr::FORWARDED_FOR, value);
            }
            let mut request = request.map(|body| tonic::body::Body::new(UnknownLength(body)));
            if browser && call.spends_refresh_token() {
                request = match crate::grpc_session::fill_refresh_token(request, refresh_cookie).await {
                    Ok(request) => request,
                    Err(status) => return Ok(status.into_http()),
                };
            }
            match channel.oneshot(request).await {
                Ok(response) if browser && call != session::SessionCall::Other => {
                    Ok(crate::grpc_session::finish_response(call, response, &state.config.cookies).await)
                }
                Ok(response) => Ok(response),
                Err(e) => {
                    tracing::warn!(error = ?e, %service, "upstream call failed");
                    Ok(tonic::Status::unavailable("upstream unavailable").into_http())
                }
            }
        })
    }
}

/// Hides the body's size hint: gRPC-web-text bodies shrink when tonic-web decodes them,
/// and an exact hint of the encoded length would go upstream as a wrong content-length.
struct UnknownLength(tonic::body::Body);

impl http_body::Body for UnknownLength {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}
