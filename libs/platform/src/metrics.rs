//! Prometheus metrics: a process-wide recorder, a `/metrics` endpoint, and a tower layer
//! that counts and times every gRPC call by method and status code.
//!
//! Metric names used by the platform kit (services declare theirs in their own module):
//! - `festival_grpc_requests_total{method, code}` — calls served.
//! - `festival_grpc_request_duration_seconds{method}` — call latency.
//! - `festival_outbox_published_total` — events relayed to JetStream.
//! - `festival_events_dead_lettered_total{consumer}` — events a consumer gave up on (alert
//!   on any increase: each is an effect that did not happen, kept on the dead-letter subject).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once per process (later calls reuse it: tests boot many services).
pub fn recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by a test harness): keep ours local then.
            let _ = metrics::set_global_recorder(recorder);
            metrics::describe_counter!("festival_grpc_requests_total", "gRPC calls served, by method and status code");
            metrics::describe_histogram!(
                "festival_grpc_request_duration_seconds",
                metrics::Unit::Seconds,
                "gRPC call latency, by method"
            );
            metrics::describe_counter!(
                "festival_outbox_published_total",
                "Events relayed from the outbox to JetStream"
            );
            metrics::describe_counter!(
                "festival_events_dead_lettered_total",
                "Events a consumer gave up on and moved to festival.deadletter.<consumer>, by consumer"
            );
            metrics::describe_counter!(
                "festival_throttle_locks_total",
                "Subjects locked after too many failed attempts at a secret, by scope and kind"
            );
            handle
        })
        .clone()
}

/// Serves `GET /metrics` on `addr` until `cancel` fires. Returns the bound address.
pub async fn serve(addr: SocketAddr, cancel: CancellationToken) -> anyhow::Result<SocketAddr> {
    let handle = recorder();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(local)
}

/// Records `festival_grpc_*` for every call, labelled by the method when the server
/// implements it and `unknown` otherwise: made-up paths must not grow the label set.
#[derive(Debug, Clone, Default)]
pub struct GrpcMetricsLayer {
    known: Arc<HashSet<String>>,
}

impl GrpcMetricsLayer {
    /// `known`: the paths (`/pkg.Service/Method`) this server serves.
    pub fn new(known: HashSet<String>) -> Self {
        Self { known: Arc::new(known) }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner, known: self.known.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    known: Arc<HashSet<String>>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
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
        let path = request.uri().path();
        let method = if self.known.contains(path) { path.to_owned() } else { "unknown".to_owned() };
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            // Errors travel as trailers-only responses (grpc-status in the headers);
            // successful unary calls put grpc-status 0 in the trailers.
            let code = match &response {
                Ok(r) => r.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned(),
                Err(_) => "transport".to_owned(),
            };
            metrics::histogram!("festival_grpc_request_duration_seconds", "method" => method.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("festival_grpc_requests_total", "method" => method, "code" => code).increment(1);
            response
        })
    }
}
