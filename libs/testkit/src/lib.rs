//! Test harness for festival services: boots the real service on port 0 against its own
//! freshly created PostgreSQL database, its own NATS subject prefix and Redis key prefix,
//! and hands back a connected channel.
//!
//! Infrastructure comes from the environment (what `scripts/test` starts):
//! `FESTIVAL_TEST_DATABASE_URL` (default `postgres://festival:festival@127.0.0.1:5432/postgres?sslmode=disable`),
//! `FESTIVAL_TEST_NATS_URL` (`nats://127.0.0.1:4222`), `FESTIVAL_TEST_REDIS_URL`
//! (`redis://127.0.0.1:6379`).

pub mod fake_oauth;
pub mod fake_stripe;
pub mod http1;
mod nats;
mod proxy;
pub mod raw;
pub mod smtp_sink;
pub mod tokens;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use festival_platform::config::{CommonConfig, Environment, Secret, ServiceConfig};
use festival_platform::events::Naming;
use festival_platform::server::{self, Roles, RunningService, Service};
use festival_proto::Event;
use sqlx::PgPool;
use tonic::transport::Channel;

pub use nats::NatsServer;
pub use proxy::TcpProxy;
pub use tokens::TestIssuer;

/// A request carrying `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    request
}

/// The `ERR_…` code of a call that must have failed.
pub fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> String {
    let status = result.expect_err("the call must fail");
    festival_platform::error::reason(&status).unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"))
}

/// `"OK"` for a success, else the refusal's catalogued code (to tally concurrent calls).
pub fn outcome<T>(result: Result<T, tonic::Status>) -> String {
    match result {
        Ok(_) => "OK".into(),
        Err(status) => {
            festival_platform::error::reason(&status).unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"))
        }
    }
}

/// A JetStream context on the test NATS server.
pub async fn jetstream() -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(nats_url()).await.expect("nats"))
}

/// Publishes `event` as its service's outbox relay would (event id, type and `Nats-Msg-Id`
/// headers), under `naming`: for tests of a consumer without running the publisher.
pub async fn publish_event<E: Event>(naming: &Naming, event: &E) -> uuid::Uuid {
    let js = jetstream().await;
    festival_platform::events::ensure_stream(&js, naming, E::service(), 1).await.expect("stream");
    let id = uuid::Uuid::now_v7();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id.to_string().as_str());
    headers.insert(festival_platform::events::EVENT_ID_HEADER, id.to_string().as_str());
    headers.insert(festival_platform::events::EVENT_TYPE_HEADER, E::full_name().as_str());
    js.publish_with_headers(naming.subject(E::SUBJECT), headers, event.encode_to_vec().into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    id
}

/// Announces a festival as program does (`festival.status_changed` with its facts: EUR,
/// Europe/Paris, version 1) on `naming`'s subjects.
pub async fn announce_festival(
    naming: &Naming,
    id: uuid::Uuid,
    name: &str,
    status: festival_proto::program::v1::FestivalStatus,
) {
    announce_festival_version(naming, id, name, status, 1).await;
}

/// [`announce_festival`] as its `version`th change (a later status: version 2, 3…).
pub async fn announce_festival_version(
    naming: &Naming,
    id: uuid::Uuid,
    name: &str,
    status: festival_proto::program::v1::FestivalStatus,
    version: i64,
) {
    use festival_proto::program::v1 as program;
    let facts = program::FestivalFacts {
        name: name.into(),
        time_zone: "Europe/Paris".into(),
        currency: "EUR".into(),
        status: status as i32,
        version,
        ..Default::default()
    };
    let event = program::FestivalStatusChanged {
        festival_id: id.to_string(),
        to: status as i32,
        facts: Some(facts),
        ..Default::default()
    };
    publish_event(naming, &event).await;
}

/// The test server's URL. Loopback without TLS by default: the tests and benchmarks share
/// two cores with PostgreSQL, and TLS on a loopback link only burns them (a deployment
/// must ask for TLS; the production configuration check refuses a URL without it).
pub fn database_base_url() -> String {
    std::env::var("FESTIVAL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://festival:festival@127.0.0.1:5432/postgres?sslmode=disable".into())
}

pub fn nats_url() -> String {
    std::env::var("FESTIVAL_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

pub fn redis_url() -> String {
    std::env::var("FESTIVAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A short random name: `t3f9a0c12`. Used for the database, subject prefix and key prefix.
pub fn unique_name() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// The URL of database `name` on the test server (its options, such as `sslmode`, kept).
pub fn database_url(name: &str) -> String {
    let base = database_base_url();
    let (path, query) = match base.split_once('?') {
        Some((path, query)) => (path, format!("?{query}")),
        None => (base.as_str(), String::new()),
    };
    let server = path.rsplit_once('/').map_or(path, |(server, _)| server);
    format!("{server}/{name}{query}")
}

/// Points a service's common configuration at isolated test resources.
pub fn isolate(common: &mut CommonConfig, name: &str) {
    common.env = Environment::Test;
    common.database.url = Secret::new(database_url(&format!("festival_test_{}_{name}", common.service)));
    common.database.create_if_missing = Some(true);
    common.database.max_connections = 8;
    common.grpc.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    common.grpc.drain_grace_ms = 0;
    common.metrics.enabled = false;
    common.nats.url = nats_url();
    common.nats.subject_prefix = name.to_owned();
    common.redis.url = redis_url();
    common.redis.key_prefix = format!("{name}:");
}

/// A running service under test.
pub struct TestApp<S: Service> {
    pub addr: SocketAddr,
    /// `/metrics` address, when the test enabled metrics.
    pub metrics_addr: Option<SocketAddr>,
    pub channel: Channel,
    pub pool: PgPool,
    pub config: S::Config,
    /// The test's isolation name: database suffix, NATS subject prefix, Redis key prefix.
    pub name: String,
    /// The service's clock: the system's, or a manual one the test advances.
    pub clock: festival_platform::clock::Clock,
    running: Option<RunningService>,
}

impl<S: Service> TestApp<S> {
    /// Boots the service with default test settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Boots the service after `adjust` has changed its configuration.
    pub async fn spawn_with(adjust: impl FnOnce(&mut S::Config)) -> Self {
        let name = unique_name();
        let mut config = S::default_config();
        isolate(config.common_mut(), &name);
        adjust(&mut config);
        Self::start(config, name).await
    }

    /// Boots the service on a manual clock (`app.clock.advance(..)` moves its time).
    pub async fn spawn_on_manual_clock(adjust: impl FnOnce(&mut S::Config)) -> Self {
        let name = unique_name();
        let mut config = S::default_config();
        isolate(config.common_mut(), &name);
        adjust(&mut config);
        Self::start_with_clock(config, name, festival_platform::clock::Clock::manual()).await
    }

    /// Boots the service with exactly this configuration.
    pub async fn start(config: S::Config, name: String) -> Self {
        Self::start_with_clock(config, name, festival_platform::clock::Clock::system()).await
    }

    /// Boots the service with exactly this configuration, on a manual clock.
    pub async fn start_on_manual_clock(config: S::Config, name: String) -> Self {
        Self::start_with_clock(config, name, festival_platform::clock::Clock::manual()).await
    }

    async fn start_with_clock(config: S::Config, name: String, clock: festival_platform::clock::Clock) -> Self {
        let running =
            server::start_with_clock::<S>(config.clone(), Roles::ALL, clock.clone()).await.expect("service starts");
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connects to the service");
        Self {
            addr: running.addr,
            metrics_addr: running.metrics_addr,
            channel,
            pool: running.pool.clone(),
            config,
            name,
            clock,
            running: Some(running),
        }
    }

    pub fn naming(&self) -> Naming {
        Naming::new(&self.config.common().nats.subject_prefix)
    }

    /// Waits (up to 10 s) for the relay to publish every outbox row; panics if it does not.
    pub async fn assert_outbox_drained(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pending = festival_platform::events::outbox::pending(&self.pool).await.expect("count outbox");
            if pending == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "{pending} events still in the outbox after 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last event of type `E` this service published (after the outbox drained).
    pub async fn last_event<E: Event>(&self) -> E {
        let message = self.last_message::<E>().await;
        E::decode(message.payload.as_ref()).expect("protobuf payload")
    }

    /// The last raw message (headers and payload) of type `E` this service published.
    pub async fn last_message<E: Event>(&self) -> async_nats::jetstream::message::StreamMessage {
        self.assert_outbox_drained().await;
        let naming = self.naming();
        let stream = jetstream().await.get_stream(naming.stream(E::service())).await.expect("the publisher's stream");
        stream.get_last_raw_message_by_subject(&naming.subject(E::SUBJECT)).await.expect("event published")
    }

    /// Every event of type `E` this service published, oldest first (after the outbox
    /// drained): read by an ephemeral consumer, so nothing is taken from the service's
    /// own subscribers.
    pub async fn published<E: Event>(&self) -> Vec<E> {
        use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
        use futures::StreamExt as _;
        self.assert_outbox_drained().await;
        let naming = self.naming();
        let Ok(stream) = jetstream().await.get_stream(naming.stream(E::service())).await else { return Vec::new() };
        let config = pull::Config {
            filter_subject: naming.subject(E::SUBJECT),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..Default::default()
        };
        let consumer = stream.create_consumer(config).await.expect("ephemeral consumer");
        let pending = consumer.cached_info().num_pending as usize;
        let mut events = Vec::with_capacity(pending);
        while events.len() < pending {
            let mut batch = consumer.fetch().max_messages(1_000).messages().await.expect("fetch");
            let before = events.len();
            while let Some(message) = batch.next().await {
                events.push(E::decode(message.expect("message").payload.as_ref()).expect("protobuf payload"));
            }
            assert!(events.len() > before, "the stream held {pending} events, {} were read", events.len());
        }
        events
    }

    /// Checks that every event was published, then drains and stops the service. A test
    /// that ends with events stuck in the outbox fails here.
    pub async fn stop(mut self) {
        self.assert_outbox_drained().await;
        if let Some(running) = self.running.take() {
            running.shutdown();
            running.wait().await.expect("service stops cleanly");
        }
    }
}

impl<S: Service> Drop for TestApp<S> {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.shutdown();
        }
    }
}

/// Installs the platform's tracing (JSON logs at `warn`, W3C propagation, spans with
/// trace ids) once per test process, for tests about trace propagation.
pub fn init_tracing() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let mut common = CommonConfig::local_defaults("test", 50999);
        common.telemetry.log_level = "warn".into();
        if let Ok(guard) = festival_platform::telemetry::init("test", &common.telemetry) {
            // Kept for the life of the process: the exporter (none here) lives as long.
            std::mem::forget(guard);
        }
    });
}

/// Race tests: start `calls` together — each is spawned on the (multi-thread) runtime and
/// a barrier releases them at once — and return their results in order.
pub async fn all_at_once<T, F>(calls: Vec<F>) -> Vec<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(calls.len()));
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|call| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                call.await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    results
}

/// Waits until `check` is true, polling every 50 ms, for at most `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
