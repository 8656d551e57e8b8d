//! Domain events over NATS JetStream with a transactional outbox and an inbox.
//!
//! - An event type knows its subject ([`festival_proto::Event`], declared next to the
//!   generated code); [`outbox::publish`] writes one in the caller's transaction.
//! - [`relay::OutboxRelay`] publishes pending rows (`FOR UPDATE SKIP LOCKED`) with
//!   `Nats-Msg-Id` = event id, so JetStream drops duplicates, backing off while NATS is down.
//! - [`consumer::follow`] subscribes a typed handler; each delivered event is applied once
//!   (its id goes into the inbox in the same transaction as the effect), and one that
//!   cannot be applied is dead-lettered instead of blocking the ones behind it.
//!
//! Subjects are `festival.<service>.<entity>.<verb>`; every service owns one stream,
//! `FESTIVAL_<SERVICE>` over `festival.<service>.>`. A deployment prefix (tests use one
//! per test) is prepended to subjects and stream names alike.

pub mod consumer;
pub mod outbox;
pub mod relay;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;

use crate::config::NatsConfig;

/// NATS header carrying the event id (also sent as `Nats-Msg-Id`).
pub const EVENT_ID_HEADER: &str = "Festival-Event-Id";
/// NATS header carrying the protobuf full name of the payload.
pub const EVENT_TYPE_HEADER: &str = "Festival-Event-Type";

/// Subject and stream naming under an optional deployment prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Naming {
    prefix: String,
}

impl Naming {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.trim_matches('.').to_owned() }
    }

    /// `festival.example.thing.happened` → `<prefix>.festival.example.thing.happened`.
    pub fn subject(&self, subject: &str) -> String {
        if self.prefix.is_empty() { subject.to_owned() } else { format!("{}.{subject}", self.prefix) }
    }

    /// The stream a service publishes into: `FESTIVAL_IDENTITY` (prefixed: `T1A2_FESTIVAL_IDENTITY`).
    pub fn stream(&self, service: &str) -> String {
        let base = format!("FESTIVAL_{}", service.to_uppercase());
        if self.prefix.is_empty() {
            base
        } else {
            format!("{}_{base}", self.prefix.to_uppercase().replace(['.', '-'], "_"))
        }
    }

    /// All subjects of a service's stream.
    pub fn stream_subjects(&self, service: &str) -> String {
        self.subject(&format!("festival.{service}.>"))
    }
}

/// Creates (or finds) a service's stream.
pub async fn ensure_stream(
    js: &jetstream::Context,
    naming: &Naming,
    service: &str,
    replicas: usize,
) -> anyhow::Result<jetstream::stream::Stream> {
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: naming.stream(service),
            subjects: vec![naming.stream_subjects(service)],
            num_replicas: replicas.max(1),
            // Duplicates (same Nats-Msg-Id) are dropped within this window.
            duplicate_window: Duration::from_secs(120),
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    Ok(stream)
}

/// Connects to NATS without credentials (development and tests) and keeps retrying in
/// the background when it is unreachable at start, so a process boots (and reports
/// NOT_SERVING) instead of crashing. Services connect with [`connect_service`].
pub async fn connect(url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    Ok(options(name).connect(url).await?)
}

/// Connects a service as itself: its NATS user and password when configured, TLS when
/// the URL is `tls://` or `require_tls` is set (with `ca_file` added to the trusted
/// roots), and replies on inboxes under `_INBOX.<service>.` so the server can confine
/// each service's subscriptions to its own ([`inbox_prefix`]). Retries in the
/// background like [`connect`]; a missing CA file fails at once.
pub async fn connect_service(config: &NatsConfig, service: &str) -> anyhow::Result<async_nats::Client> {
    let mut options = options(&format!("festival-{service}")).custom_inbox_prefix(inbox_prefix(service));
    if !config.user.is_empty() {
        options = options.user_and_password(config.user.clone(), config.password.expose().to_owned());
    }
    if config.tls() {
        options = options.require_tls(true);
    }
    if let Some(ca_file) = config.ca_file.as_deref().filter(|f| !f.is_empty()) {
        anyhow::ensure!(Path::new(ca_file).is_file(), "NATS CA file {ca_file:?} (nats.ca_file) is not a readable file");
        options = options.add_root_certificates(PathBuf::from(ca_file));
    }
    Ok(options.connect(config.url.as_str()).await?)
}

/// The inbox prefix of a service's connection: `_INBOX.<service>` (NATS permissions:
/// subscribe `_INBOX.<service>.>`).
pub fn inbox_prefix(service: &str) -> String {
    format!("_INBOX.{service}")
}

fn options(name: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .max_reconnects(None)
}

/// True when the NATS connection is up.
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_apply_to_subjects_and_streams() {
        let plain = Naming::new("");
        assert_eq!(plain.subject("festival.example.thing.happened"), "festival.example.thing.happened");
        assert_eq!(plain.stream("identity"), "FESTIVAL_IDENTITY");
        let t = Naming::new("t-ab12.");
        assert_eq!(t.subject("festival.example.thing.happened"), "t-ab12.festival.example.thing.happened");
        assert_eq!(t.stream("identity"), "T_AB12_FESTIVAL_IDENTITY");
        assert_eq!(t.stream_subjects("identity"), "t-ab12.festival.identity.>");
    }
}
