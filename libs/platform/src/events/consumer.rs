//! Consuming events exactly once in effect: JetStream delivers at least once; the inbox
//! row (consumer, event id) is inserted in the same transaction as the handler's writes,
//! so a redelivery finds the row and changes nothing.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::{EVENT_ID_HEADER, EVENT_TYPE_HEADER};

/// A delivered event.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub id: Uuid,
    /// Full subject as delivered (with any deployment prefix).
    pub subject: String,
    pub event_type: String,
    pub payload: Vec<u8>,
}

impl IncomingEvent {
    /// Decodes the payload as `M`.
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.payload.as_slice())
    }
}

/// What a consumer does with an event, inside the inbox transaction.
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(&'a self, tx: &'a mut PgConnection, event: &'a IncomingEvent) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// A durable pull consumer on one stream.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Durable name, also the inbox's `consumer` column.
    pub name: String,
    /// Stream to read (see [`super::Naming::stream`]).
    pub stream: String,
    /// Subject filter (full, prefixed; wildcards allowed). One filter: NATS 2.9 has no
    /// multi-filter consumers.
    pub filter_subject: String,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
}

/// Outcome of handling one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The handler ran and its writes were committed.
    Handled,
    /// The inbox already had this event: nothing was done.
    Duplicate,
}

/// Applies one event once: inbox row + handler in one transaction.
pub async fn apply(
    pool: &PgPool,
    consumer: &str,
    event: &IncomingEvent,
    handler: &dyn Handler,
) -> anyhow::Result<Applied> {
    let mut tx = pool.begin().await?;
    let inserted =
        sqlx::query("insert into inbox (consumer, event_id, subject) values ($1, $2, $3) on conflict do nothing")
            .bind(consumer)
            .bind(event.id)
            .bind(&event.subject)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if inserted == 0 {
        tx.commit().await?;
        return Ok(Applied::Duplicate);
    }
    handler.handle(&mut tx, event).await?;
    tx.commit().await?;
    Ok(Applied::Handled)
}

/// Runs a consumer until `cancel` fires, retrying (with backoff) while NATS is unreachable.
pub async fn run(
    pool: PgPool,
    js: jetstream::Context,
    config: ConsumerConfig,
    handler: impl Handler,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = consume(&pool, &js, &config, &handler) => r,
        };
        if let Err(e) = result {
            tracing::warn!(consumer = %config.name, error = %format_args!("{e:#}"), "consumer interrupted");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        // Capped low: the usual cause is the publisher's stream not existing yet (it
        // starts later), and the consumer should pick up soon after it does.
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn consume(
    pool: &PgPool,
    js: &jetstream::Context,
    config: &ConsumerConfig,
    handler: &dyn Handler,
) -> anyhow::Result<()> {
    let stream = js.get_stream(&config.stream).await?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            &config.name,
            pull::Config {
                durable_name: Some(config.name.clone()),
                filter_subject: config.filter_subject.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let Some(event) = to_event(&message) else {
            tracing::warn!(subject = %message.subject, "dropping message without a valid event id");
            message.ack_with(AckKind::Term).await.map_err(anyhow::Error::msg)?;
            continue;
        };
        let span = crate::telemetry::consumer_span(&message, &config.name);
        match apply(pool, &config.name, &event, handler).instrument(span).await {
            Ok(_) => message.ack().await.map_err(anyhow::Error::msg)?,
            Err(e) => {
                tracing::error!(consumer = %config.name, event_id = %event.id, error = %format_args!("{e:#}"), "event handler failed; will retry");
                message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await.map_err(anyhow::Error::msg)?;
            }
        }
    }
    Ok(())
}

fn to_event(message: &jetstream::Message) -> Option<IncomingEvent> {
    let headers = message.headers.as_ref()?;
    let id = Uuid::parse_str(headers.get(EVENT_ID_HEADER)?.as_str()).ok()?;
    let event_type = headers.get(EVENT_TYPE_HEADER).map(|v| v.as_str().to_owned()).unwrap_or_default();
    Some(IncomingEvent { id, subject: message.subject.to_string(), event_type, payload: message.payload.to_vec() })
}
