//! The gateway: how partners (REST/JSON), browsers (gRPC-web) and scanners (gRPC) reach
//! the mesh, on one port. It is generic: REST routes, their JSON and the OpenAPI
//! document come from the `google.api.http` annotations in the descriptor set, so a new
//! annotated RPC needs no gateway code.
//!
//! Rooms: [`template`] and [`routes`] (annotations → route table), [`transcode`]
//! (JSON ⇄ protobuf), [`upstream`] (dynamic gRPC calls), [`rest`] (the REST handler and
//! live streams), [`grpc`] (gRPC and gRPC-web passthrough), [`errors`], [`session`]
//! (cookies), [`ratelimit`], [`openapi`], [`health`].

pub mod config;
pub mod errors;
pub mod grpc;
pub mod grpc_session;
pub mod health;
pub mod openapi;
pub mod ratelimit;
pub mod rest;
pub mod routes;
pub mod session;
pub mod template;
pub mod transcode;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use festival_platform::auth::{IdentityKeySource, KeySource, PublicKey, Verifier};
use festival_platform::clock::Clock;
use prost_reflect::DescriptorPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Everything a request handler needs.
pub struct State {
    pub config: Config,
    pub routes: routes::RouteTable,
    pub upstreams: upstream::Upstreams,
    pub limiter: ratelimit::RateLimiter,
    pub openapi: serde_json::Value,
    /// `/pkg.Service/Method` of every method the upstreams serve: gRPC calls to anything
    /// else are refused here, so made-up paths reach no upstream and no rate-limit key.
    pub grpc_methods: std::collections::HashSet<String>,
}

pub type Shared = Arc<State>;

impl State {
    /// The gateway for the APIs in `descriptors` (an encoded `FileDescriptorSet`:
    /// `festival_proto::FILE_DESCRIPTOR_SET` when deployed).
    pub fn new(config: Config, clock: Clock, descriptors: &[u8]) -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(descriptors)?;
        let upstreams = upstream::Upstreams::connect(&config.upstreams)?;
        let routes = routes::RouteTable::build(&pool, |service| upstreams.serves(service))?;
        let openapi = openapi::document(&routes, &config);
        let redis = festival_platform::redis::Redis::connect(&config.redis)?;
        let verifier = match config.upstreams.get("identity") {
            Some(url) => Verifier::new(&config.auth, IdentityKeySource::new(url)?),
            None => Verifier::new(&config.auth, NoKeys),
        };
        let limiter = ratelimit::RateLimiter::new(redis, config.rate_limit.clone(), clock, verifier);
        let grpc_methods = pool
            .services()
            .filter(|s| upstreams.serves(s.full_name()))
            .flat_map(|s| s.methods().map(|m| format!("/{}/{}", s.full_name(), m.name())).collect::<Vec<_>>())
            .filter(|path| !config.internal_methods.contains(path))
            .collect();
        Ok(Self { config, routes, upstreams, limiter, openapi, grpc_methods })
    }
}

/// Without an identity upstream no token verifies: every client is keyed by address.
struct NoKeys;

impl KeySource for NoKeys {
    fn fetch(&self) -> futures::future::BoxFuture<'static, anyhow::Result<Vec<PublicKey>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// The whole HTTP surface.
pub fn router(state: Shared) -> Router {
    let cors = cors_layer(&state.config);
    Router::new()
        .route("/healthz", axum::routing::get(health::healthz))
        .route("/readyz", axum::routing::get(health::readyz))
        .route("/openapi.json", axum::routing::get(openapi::serve_document))
        .route("/docs", axum::routing::get(openapi::serve_docs))
        .fallback(dispatch)
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .layer(cors)
        .with_state(state)
}

/// gRPC and gRPC-web go through untouched; everything else is REST.
async fn dispatch(axum::extract::State(state): axum::extract::State<Shared>, request: Request) -> Response {
    if grpc::is_grpc(request.headers()) {
        grpc::proxy(state, request).await
    } else {
        rest::handle(state, request).await
    }
}

/// Request id (kept from `x-request-id` or minted), `X-API-Version`, and an access log
/// line without personal data (no query string, no headers, no body).
async fn edge(axum::extract::State(state): axum::extract::State<Shared>, mut request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        request.headers_mut().insert("x-request-id", value);
    }
    let method = request.method().clone();
    // A path carrying a secret (a calendar feed's token) is logged and traced as its route.
    let path = state.routes.loggable_path(request.uri().path());
    let started = std::time::Instant::now();
    let span = festival_platform::telemetry::http_server_span(&request, &path, &request_id);
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let headers = response.headers_mut();
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    if let Ok(value) = http::HeaderValue::from_str(&state.config.api_version) {
        headers.insert("x-api-version", value);
    }
    span.in_scope(|| {
        tracing::info!(
            %method,
            path = %path,
            status = response.status().as_u16(),
            grpc_status = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or(""),
            latency_ms = started.elapsed().as_secs_f64() * 1e3,
            request_id = %request_id,
            "access"
        )
    });
    response
}

fn cors_layer(config: &Config) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<http::HeaderValue> =
        config.cors.allowed_origins.iter().filter_map(|o| http::HeaderValue::from_str(o).ok()).collect();
    let allow = |names: &[&str]| {
        names.iter().filter_map(|n| http::HeaderName::from_bytes(n.as_bytes()).ok()).collect::<Vec<_>>()
    };
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([
            http::Method::GET,
            http::Method::POST,
            http::Method::PUT,
            http::Method::PATCH,
            http::Method::DELETE,
        ])
        .allow_headers(allow(&[
            "content-type",
            "authorization",
            "x-request-id",
            "x-grpc-web",
            "x-user-agent",
            "grpc-timeout",
            "connect-protocol-version",
            "traceparent",
            "tracestate",
        ]))
        .expose_headers(allow(&[
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            "x-request-id",
            "x-api-version",
            "retry-after",
        ]))
        .max_age(std::time::Duration::from_secs(600))
}

/// A running gateway.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<std::io::Result<()>>,
}

/// Binds (port 0 in tests) and serves until `shutdown` fires.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    start_with(config, Clock::system(), festival_proto::FILE_DESCRIPTOR_SET).await
}

/// [`start`] with rate-limit windows on `clock` (tests pass a manual one) and the APIs
/// of `descriptors` (tests add the test-only `festival.testing` package).
pub async fn start_with(config: Config, clock: Clock, descriptors: &[u8]) -> anyhow::Result<Running> {
    let listen = config.listen;
    let state = Arc::new(State::new(config, clock, descriptors)?);
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let handle =
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
    tracing::info!(%addr, "gateway started");
    Ok(Running { addr, shutdown, handle })
}
