//! Server bootstrap shared by every service: database (created, migrated), NATS, the
//! outbox relay, a tonic server with `grpc.health.v1`, reflection (v1 and v1alpha),
//! default deadline, message limits, tracing and metrics layers, and a graceful drain.
//!
//! A service implements [`Service`]; `main` calls [`crate::cli::main`], tests call
//! [`start`] with port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_http::classify::{GrpcErrorsAsFailures, SharedClassifier};

use crate::config::{CommonConfig, ServiceConfig};
use crate::events::consumer::{self, Subscription};
use crate::events::{self, Naming, relay::OutboxRelay};

/// What every service provides to the bootstrap.
pub trait Service: Send + Sync + 'static {
    type Config: ServiceConfig;
    /// Short name: `identity`.
    const NAME: &'static str;
    /// Fully-qualified gRPC service names this service serves (health reports each).
    const GRPC_SERVICES: &'static [&'static str];

    /// Defaults that work on a developer machine.
    fn default_config() -> Self::Config;
    /// The service's embedded migrations (`sqlx::migrate!()`).
    fn migrator() -> &'static Migrator;
    /// Builds the gRPC routes; runs after migrations, before the listener accepts calls.
    fn routes(config: Self::Config, ctx: Context) -> impl Future<Output = anyhow::Result<Routes>> + Send;

    /// The events this service follows ([`consumer::follow`]), run by the worker role.
    fn consumers(_config: &Self::Config, _ctx: &Context) -> Vec<Subscription> {
        Vec::new()
    }

    /// Other background work of the worker role besides the outbox relay and the
    /// consumers. Each future runs until `ctx.shutdown` fires.
    fn workers(_config: &Self::Config, _ctx: &Context) -> Vec<futures::future::BoxFuture<'static, ()>> {
        Vec::new()
    }
}

/// Shared handles given to a service when it builds its routes.
#[derive(Clone)]
pub struct Context {
    pub common: CommonConfig,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub naming: Naming,
    /// The time every expiry, window and lock reads: the system clock, or a test's manual one.
    pub clock: crate::clock::Clock,
    /// Fires when the process is shutting down; background tasks stop on it.
    pub shutdown: CancellationToken,
}

impl Context {
    /// Runs `react` whenever identity announces an emergency signing-key revocation (see
    /// [`auth::revocations`](crate::auth::revocations)); services refetch their key set.
    pub async fn on_signing_key_revoked<F, Fut>(&self, react: F) -> anyhow::Result<()>
    where
        F: Fn(Vec<String>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        use festival_proto::Event as _;
        let subject = self.naming.subject(festival_proto::identity::v1::SigningKeyRevoked::SUBJECT);
        crate::auth::revocations::watch(self.nats.clone(), subject, self.shutdown.clone(), react).await
    }

    /// The access-token verifier of every service but identity: keys from identity's
    /// JWKS (`auth.identity_url`), replaced on a timer and refetched at once when identity
    /// announces a revocation; ended sessions polled every
    /// `auth.session_revocations_poll_secs` (their tokens refused).
    pub async fn verifier(&self) -> anyhow::Result<crate::auth::Verifier> {
        let source = crate::auth::IdentityKeySource::new(&self.common.auth.identity_url)?;
        let verifier = crate::auth::Verifier::with_clock(&self.common.auth, source, self.clock.clone());
        self.on_signing_key_revoked({
            let verifier = verifier.clone();
            move |kids: Vec<String>| {
                let verifier = verifier.clone();
                async move { verifier.follow_revocation(&kids).await }
            }
        })
        .await?;
        if self.common.auth.session_revocations_poll_secs > 0 {
            let every = std::time::Duration::from_secs(self.common.auth.session_revocations_poll_secs);
            verifier.follow_session_revocations(every, self.shutdown.clone());
        }
        Ok(verifier)
    }

    /// Where this service's consumers run.
    pub fn consumer_runtime(&self) -> consumer::Runtime {
        consumer::Runtime {
            pool: self.pool.clone(),
            js: self.jetstream.clone(),
            naming: self.naming.clone(),
            delivery: self.common.nats.delivery,
            stream_replicas: self.common.nats.stream_replicas,
        }
    }
}

/// Which parts of the process run: the gRPC API, the background worker (outbox relay,
/// consumers), or both (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub worker: bool,
}

impl Roles {
    pub const ALL: Roles = Roles { api: true, worker: true };
}

/// A started service.
pub struct RunningService {
    /// Bound gRPC address (resolves port 0).
    pub addr: SocketAddr,
    /// Bound `/metrics` address, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    pub pool: PgPool,
    pub health: HealthReporter,
    shutdown: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
    background: Vec<JoinHandle<()>>,
}

impl RunningService {
    /// Starts the drain: health goes NOT_SERVING, then in-flight calls finish.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server and the background tasks have stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.server.await?;
        for task in self.background {
            let _ = task.await;
        }
        served
    }
}

/// Connects, migrates (if configured) and starts the service.
pub async fn start<S: Service>(config: S::Config, roles: Roles) -> anyhow::Result<RunningService> {
    start_with_clock::<S>(config, roles, crate::clock::Clock::system()).await
}

/// [`start`] with a given clock (tests pass a manual one to move time).
pub async fn start_with_clock<S: Service>(
    config: S::Config,
    roles: Roles,
    clock: crate::clock::Clock,
) -> anyhow::Result<RunningService> {
    let common = config.common().clone();
    let shutdown = CancellationToken::new();

    let pool = crate::db::connect(&common.database, common.create_database_if_missing()).await?;
    if common.database.migrate_on_start {
        crate::db::migrate(&pool, S::migrator()).await?;
    }
    let nats = events::connect_service(&common.nats, S::NAME).await?;
    let jetstream = jetstream::new(nats.clone());
    let naming = Naming::new(&common.nats.subject_prefix);

    let ctx = Context {
        common: common.clone(),
        pool: pool.clone(),
        nats: nats.clone(),
        jetstream: jetstream.clone(),
        naming: naming.clone(),
        clock,
        shutdown: shutdown.clone(),
    };
    let mut background = Vec::new();

    if roles.worker {
        let relay =
            OutboxRelay::new(pool.clone(), jetstream.clone(), naming.clone(), S::NAME, common.nats.stream_replicas);
        background.push(tokio::spawn(relay.run(shutdown.clone())));
        for subscription in S::consumers(&config, &ctx) {
            background.push(tokio::spawn(consumer::run(ctx.consumer_runtime(), subscription, shutdown.clone())));
        }
        for worker in S::workers(&config, &ctx) {
            background.push(tokio::spawn(worker));
        }
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    for name in S::GRPC_SERVICES.iter().chain(std::iter::once(&"")) {
        health.set_service_status(*name, ServingStatus::NotServing).await;
    }
    background.push(tokio::spawn(watch_readiness::<S>(health.clone(), pool.clone(), nats.clone(), shutdown.clone())));

    let metrics_addr = if common.metrics.enabled {
        Some(crate::metrics::serve(common.metrics.listen, shutdown.clone()).await?)
    } else {
        None
    };

    let listener = tokio::net::TcpListener::bind(common.grpc.listen).await?;
    let addr = listener.local_addr()?;

    let server = if roles.api {
        let routes = S::routes(config, ctx).await?;
        let reflection = if common.reflection_enabled() {
            // Only what this server answers is listed (not every service in the shared
            // descriptor set, which would advertise methods that answer UNIMPLEMENTED).
            let builder = |reflection: &str| {
                S::GRPC_SERVICES
                    .iter()
                    .chain(&["grpc.health.v1.Health", reflection])
                    .fold(tonic_reflection::server::Builder::configure(), |b, name| b.with_service_name(*name))
                    .register_encoded_file_descriptor_set(festival_proto::FILE_DESCRIPTOR_SET)
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            };
            Some((
                builder("grpc.reflection.v1.ServerReflection").build_v1()?,
                builder("grpc.reflection.v1alpha.ServerReflection").build_v1alpha()?,
            ))
        } else {
            None
        };
        let (reflection_v1, reflection_v1alpha) = reflection.unzip();

        let drain_health = health.clone();
        let grace = Duration::from_millis(common.grpc.drain_grace_ms);
        let stop = shutdown.clone();
        let drain = async move {
            stop.cancelled().await;
            for name in S::GRPC_SERVICES.iter().chain(std::iter::once(&"")) {
                drain_health.set_service_status(*name, ServingStatus::NotServing).await;
            }
            tracing::info!(grace_ms = grace.as_millis() as u64, "draining");
            tokio::time::sleep(grace).await;
        };

        let router = tonic::transport::Server::builder()
            .timeout(Duration::from_millis(common.grpc.default_timeout_ms))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .layer(
                tower_http::trace::TraceLayer::new(SharedClassifier::new(client_errors_are_not_failures()))
                    .make_span_with(crate::telemetry::grpc_server_span),
            )
            .layer(crate::metrics::GrpcMetricsLayer::new(known_methods(S::GRPC_SERVICES)))
            .layer(crate::grpc_edge::DecodeErrorLayer)
            .layer(crate::client_addr::ResolveLayer::new(common.grpc.trusted_proxy_hops))
            .add_routes(routes)
            .add_service(health_service)
            .add_optional_service(reflection_v1)
            .add_optional_service(reflection_v1alpha);
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(async move {
            router.serve_with_incoming_shutdown(incoming, drain).await?;
            Ok(())
        })
    } else {
        drop(listener);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            Ok(())
        })
    };

    tracing::info!(service = S::NAME, %addr, api = roles.api, worker = roles.worker, "started");
    Ok(RunningService { addr, metrics_addr, pool, health, shutdown, server, background })
}

/// Every method path this server answers: its own services' (from the descriptor set),
/// health and reflection.
fn known_methods(services: &[&str]) -> std::collections::HashSet<String> {
    use prost::Message;
    let mut known: std::collections::HashSet<String> = [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let Ok(set) = prost_types::FileDescriptorSet::decode(festival_proto::FILE_DESCRIPTOR_SET) else {
        return known;
    };
    for file in &set.file {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            if services.contains(&full.as_str()) {
                known.extend(service.method.iter().map(|m| format!("/{full}/{}", m.name())));
            }
        }
    }
    known
}

/// Calls refused for the caller's own reasons (bad input, no permission…) are answers,
/// not failures: only server-side codes are logged as failed requests.
fn client_errors_are_not_failures() -> GrpcErrorsAsFailures {
    use tower_http::classify::GrpcCode::*;
    [
        InvalidArgument,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        Unauthenticated,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        ResourceExhausted,
        Cancelled,
    ]
    .into_iter()
    .fold(GrpcErrorsAsFailures::new(), GrpcErrorsAsFailures::with_success)
}

/// Reports SERVING only while PostgreSQL answers and NATS is connected.
async fn watch_readiness<S: Service>(
    health: HealthReporter,
    pool: PgPool,
    nats: async_nats::Client,
    shutdown: CancellationToken,
) {
    let mut last = None;
    loop {
        let ready = events::is_connected(&nats) && crate::db::ping(&pool).await;
        if shutdown.is_cancelled() {
            return;
        }
        if last != Some(ready) {
            let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
            for name in S::GRPC_SERVICES.iter().chain(std::iter::once(&"")) {
                health.set_service_status(*name, status).await;
            }
            tracing::info!(ready, "readiness changed");
            last = Some(ready);
        }
        let pause = if ready { Duration::from_secs(2) } else { Duration::from_millis(200) };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
