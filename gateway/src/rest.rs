//! The REST handler: route lookup, rate limit, body limit, transcoding, the upstream
//! call with deadline, auth and trace propagation, cookies, and live streams (SSE and
//! WebSocket) for server-streaming RPCs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use festival_platform::codes;
use futures::StreamExt;
use prost_reflect::DynamicMessage;

use crate::errors::HttpError;
use crate::ratelimit::Decision;
use crate::routes::{Lookup, Route};
use crate::{Shared, session, transcode};

pub async fn handle(state: Shared, request: Request) -> Response {
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (route, bindings) = match state.routes.lookup(request.method(), request.uri().path()) {
        Lookup::Found(route, bindings) => (route.clone(), bindings),
        Lookup::MethodNotAllowed(allowed) => {
            let allow = allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
            return HttpError::new(codes::NOT_FOUND, &request_id)
                .with_message(format!("Method not allowed here; use {allow}"))
                .with_header(http::header::ALLOW, allow)
                .into_response_with_status(http::StatusCode::METHOD_NOT_ALLOWED);
        }
        Lookup::NotFound => {
            return HttpError::new(codes::NOT_FOUND, &request_id).with_message("No such route").into_response();
        }
    };

    if let Some((field, _)) = bindings.iter().find(|(_, value)| value.is_empty()) {
        return HttpError::field(codes::VALIDATION_FAILED, &request_id, field, "path variable is missing")
            .with_message(format!("Invalid request: path variable {field} is missing"))
            .into_response();
    }

    let if_none_match = request.headers().get(http::header::IF_NONE_MATCH).cloned();
    let (mut parts, body) = request.into_parts();
    let authorization = session::authorization(&parts.headers, &state.config.cookies);
    let browser = session::is_browser(&parts.headers);
    if browser
        && session::SessionCall::of(route.method.full_name()).touches_session()
        && session::cross_site_session_call(&parts.headers, &state.config.cors.allowed_origins)
    {
        return HttpError::new(codes::INSUFFICIENT_PERMISSIONS, &request_id)
            .with_message("Sign-ins and sign-outs from another site's pages are refused")
            .into_response();
    }
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let ip = festival_platform::client_addr::of_http(&parts.headers, peer, state.config.rate_limit.trusted_proxy_hops);
    let limit_key = format!("{} {}", route.http_method, route.template.as_str());
    if let Decision::Deny { retry_after } =
        state.limiter.check(&state.limiter.client(authorization.as_deref(), ip).await, &limit_key).await
    {
        return HttpError::new(codes::RATE_LIMITED, &request_id)
            .with_header(http::header::RETRY_AFTER, retry_after.to_string())
            .into_response();
    }

    let body = match axum::body::to_bytes(body, state.config.limits.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            return HttpError::new(codes::PAYLOAD_TOO_LARGE, &request_id)
                .with_message(format!("Request body larger than {} bytes", state.config.limits.max_body_bytes))
                .into_response();
        }
    };
    let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let raw = transcode::raw_body_message(&route, content_type, &body);
    let mut message =
        match raw.map(Ok).unwrap_or_else(|| transcode::request_message(&route, &bindings, parts.uri.query(), &body)) {
            Ok(m) => m,
            Err(bad) => {
                return HttpError::field(codes::VALIDATION_FAILED, &request_id, &bad.field, &bad.description)
                    .with_message(format!("Invalid request: {}", bad.description))
                    .into_response();
            }
        };
    if browser {
        session::fill_refresh_token(&mut message, &parts.headers, &state.config.cookies);
    }
    let grpc_request = upstream_request(message, &parts.headers, authorization.as_deref(), ip, &request_id);

    if route.is_server_streaming() {
        let ws = WebSocketUpgrade::from_request_parts(&mut parts, &()).await.ok();
        return live_stream(state, route, grpc_request, ws, &request_id).await;
    }

    let mut grpc_request = grpc_request;
    grpc_request.set_timeout(Duration::from_millis(state.config.limits.request_timeout_ms));
    match state.upstreams.unary(&route, grpc_request).await {
        Ok(response) => {
            let cache = cache_headers(response.metadata());
            if let (Some(etag), Some(wanted)) = (cache.get(http::header::ETAG), &if_none_match)
                && etag_matches(wanted, etag)
            {
                // The client's copy is current: no body, the headers that describe it.
                let mut not_modified = http::StatusCode::NOT_MODIFIED.into_response();
                not_modified.headers_mut().extend(cache);
                return not_modified;
            }
            let mut message = response.into_inner();
            if let Some(mut raw) = transcode::http_body(&message) {
                raw.headers_mut().extend(cache);
                return raw;
            }
            let cookies =
                session::on_rest_response(route.method.full_name(), &mut message, browser, &state.config.cookies);
            let json = match transcode::response_bytes(&route, &message) {
                Ok(json) => json,
                Err(e) => {
                    tracing::error!(error = %e, "could not encode a response as JSON");
                    return HttpError::new(codes::INTERNAL, &request_id).into_response();
                }
            };
            let mut response =
                ([(http::header::CONTENT_TYPE, "application/json")], axum::body::Body::from(json)).into_response();
            response.headers_mut().extend(cache);
            for cookie in cookies {
                if let Ok(v) = http::HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(http::header::SET_COOKIE, v);
                }
            }
            response
        }
        Err(status) => HttpError::from_status(&status, &request_id).into_response(),
    }
}

/// Response metadata a service may set for HTTP caches and downloads; nothing else of
/// its metadata reaches the client.
const CACHE_HEADERS: [http::HeaderName; 4] =
    [http::header::ETAG, http::header::CACHE_CONTROL, http::header::LAST_MODIFIED, http::header::CONTENT_DISPOSITION];

fn cache_headers(metadata: &tonic::metadata::MetadataMap) -> http::HeaderMap {
    let mut out = http::HeaderMap::new();
    for name in CACHE_HEADERS {
        if let Some(value) = metadata.get(name.as_str()).and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            out.insert(name, value);
        }
    }
    out
}

/// `If-None-Match` against an ETag: `*`, or any listed tag equal to it, ignoring the
/// weak prefix (RFC 9110 weak comparison).
fn etag_matches(if_none_match: &http::HeaderValue, etag: &http::HeaderValue) -> bool {
    let (Ok(wanted), Ok(etag)) = (if_none_match.to_str(), etag.to_str()) else { return false };
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    wanted.trim() == "*" || wanted.split(',').any(|t| bare(t) == bare(etag))
}

/// Metadata for the upstream: the caller's token, request id and trace context.
fn upstream_request(
    message: DynamicMessage,
    headers: &http::HeaderMap,
    authorization: Option<&str>,
    client: Option<std::net::IpAddr>,
    request_id: &str,
) -> tonic::Request<DynamicMessage> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    if let Some(value) = authorization.and_then(|a| a.parse().ok()) {
        metadata.insert("authorization", value);
    }
    // The client as resolved here, and nothing the client wrote: services behind the
    // gateway count it as their one trusted hop (see `client_addr`).
    if let Some(value) = client.and_then(|ip| ip.to_string().parse().ok()) {
        metadata.insert(festival_platform::client_addr::FORWARDED_FOR, value);
    }
    if let Ok(value) = request_id.parse() {
        metadata.insert("x-request-id", value);
    }
    // Trace context, and the signature a provider's webhook carries (checked by the
    // service that owns the webhook, over the raw body).
    for name in ["traceparent", "tracestate", "stripe-signature"] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
            metadata.insert(name, value);
        }
    }
    if !metadata.contains_key("traceparent") {
        festival_platform::telemetry::inject_trace_context(metadata);
    }
    request
}

/// A server-streaming RPC as Server-Sent Events (default) or, on an upgrade request, a
/// WebSocket. When the client goes away the upstream stream is dropped, which cancels it.
async fn live_stream(
    state: Shared,
    route: Route,
    request: tonic::Request<DynamicMessage>,
    ws: Option<WebSocketUpgrade>,
    request_id: &str,
) -> Response {
    let stream = match state.upstreams.server_streaming(&route, request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return HttpError::from_status(&status, request_id).into_response(),
    };
    let heartbeat = Duration::from_millis(state.config.limits.stream_heartbeat_ms.max(100));
    let request_id = request_id.to_owned();
    let items = stream.map(move |item| match item {
        Ok(message) => Ok(transcode::response_json(&route, &message).unwrap_or(serde_json::Value::Null)),
        Err(status) => Err(error_json(&status, &request_id)),
    });
    match ws {
        Some(ws) => ws.on_upgrade(move |socket| pump_websocket(socket, items, heartbeat)),
        None => {
            let events = items.map(|item| {
                Ok::<_, Infallible>(match item {
                    Ok(json) => Event::default().event("message").data(json.to_string()),
                    Err(error) => Event::default().event("error").data(error.to_string()),
                })
            });
            Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")).into_response()
        }
    }
}

fn error_json(status: &tonic::Status, request_id: &str) -> serde_json::Value {
    let e = HttpError::from_status(status, request_id);
    serde_json::json!({"code": e.code.code, "message": e.message, "details": e.details, "request_id": e.request_id})
}

async fn pump_websocket(
    mut socket: WebSocket,
    items: impl futures::Stream<Item = Result<serde_json::Value, serde_json::Value>> + Send + Unpin,
    heartbeat: Duration,
) {
    let mut items = items;
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.tick().await;
    loop {
        tokio::select! {
            item = items.next() => match item {
                Some(Ok(json)) => {
                    if socket.send(Message::Text(json.to_string().into())).await.is_err() { return; }
                }
                Some(Err(error)) => {
                    let _ = socket.send(Message::Text(error.to_string().into())).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                // The client left: returning drops the upstream stream, cancelling it.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            _ = ticker.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() { return; }
            }
        }
    }
}

impl HttpError {
    fn into_response_with_status(self, status: http::StatusCode) -> Response {
        let mut response = self.into_response();
        *response.status_mut() = status;
        response
    }
}
