//! Typed consumers that apply each event once and never wedge on a bad one.
//!
//! [`follow`] subscribes a plain `async fn(&mut PgConnection, E, &Meta) -> anyhow::Result<()>`
//! to the event type `E` (on [`Event::SUBJECT`], in the publisher's stream). JetStream
//! delivers at least once; the inbox row (consumer, event id) is inserted in the same
//! transaction as the handler's writes, so a redelivery finds the row and changes nothing.
//!
//! An event is dispatched on its event-type header, never on its subject. One that cannot
//! be applied — no event id, another type than the subscription's, an undecodable payload,
//! or a handler that still fails after [`DeliveryConfig::max_deliveries`] (retried with
//! doubling delays) — is copied to `festival.deadletter.<consumer>` with the reason, counted
//! in `festival_events_dead_lettered_total`, and acknowledged, so the next event is applied.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use festival_proto::Event;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::{EVENT_ID_HEADER, EVENT_TYPE_HEADER, Naming, ensure_stream};
use crate::config::DeliveryConfig;

/// Stream (service name) holding every consumer's dead letters.
pub const DEAD_LETTER_SERVICE: &str = "deadletter";
/// Header of a dead letter: why it was given up.
pub const DEAD_LETTER_REASON_HEADER: &str = "Festival-Dead-Letter-Reason";
/// Header of a dead letter: the subject it was delivered on.
pub const DEAD_LETTER_SUBJECT_HEADER: &str = "Festival-Dead-Letter-Subject";
/// Header of a dead letter: how many times it was delivered.
pub const DEAD_LETTER_DELIVERIES_HEADER: &str = "Festival-Dead-Letter-Deliveries";

/// The dead-letter subject of a consumer (unprefixed).
pub fn dead_letter_subject(consumer: &str) -> String {
    format!("festival.{DEAD_LETTER_SERVICE}.{consumer}")
}

/// What a handler knows about the delivery besides the payload.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The event id (a UUIDv7: later events have larger ids).
    pub id: Uuid,
    /// Full subject as delivered (with any deployment prefix).
    pub subject: String,
    /// 1 on the first delivery.
    pub delivered: u64,
}

/// A handler of events of type `E`: any `async fn(&mut PgConnection, E, &Meta) -> anyhow::Result<()>`.
///
/// (The lifetime parameter lets a plain `async fn` borrowing its arguments satisfy the
/// bound; see [`follow`].)
pub trait EventHandler<'a, E>: Send + Sync + 'static {
    type Future: Future<Output = anyhow::Result<()>> + Send + 'a;
    fn call(&self, conn: &'a mut PgConnection, event: E, meta: &'a Meta) -> Self::Future;
}

impl<'a, E, F, Fut> EventHandler<'a, E> for F
where
    F: Fn(&'a mut PgConnection, E, &'a Meta) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'a,
{
    type Future = Fut;
    fn call(&self, conn: &'a mut PgConnection, event: E, meta: &'a Meta) -> Fut {
        self(conn, event, meta)
    }
}

/// Why an event could not be applied.
#[derive(Debug)]
pub enum Failure {
    /// Will never succeed (bad payload, wrong type, a handler's [`permanent`] verdict):
    /// dead-letter at once.
    Permanent(anyhow::Error),
    /// The handler failed; it may succeed on a redelivery, up to `max_deliveries`.
    Transient(anyhow::Error),
    /// The database is unreachable: not the event's fault, so it is retried (with
    /// back-off) for as long as the outage lasts and never dead-lettered for it.
    Unavailable(anyhow::Error),
}

/// A handler's verdict that its event can never be applied (malformed ids, a value this
/// build does not know): the event is dead-lettered at once instead of being retried, and
/// instead of being acknowledged as if it had been applied.
pub fn permanent(reason: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Unappliable(reason.to_string()))
}

#[derive(Debug)]
struct Unappliable(String);

impl std::fmt::Display for Unappliable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unappliable {}

/// True when an error (anywhere in its chain) is the database being unreachable rather
/// than anything about the event.
fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed)
        )
    })
}

/// Sorts a handler's error into the failure it is.
fn classify(e: anyhow::Error) -> Failure {
    if e.chain().any(|cause| cause.is::<Unappliable>()) {
        Failure::Permanent(e)
    } else if is_unavailable(&e) {
        Failure::Unavailable(e)
    } else {
        Failure::Transient(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Permanent(e) | Failure::Transient(e) | Failure::Unavailable(e) => write!(f, "{e:#}"),
        }
    }
}

/// The handler with its event type erased, so subscriptions of different types sit in one list.
trait ErasedHandler: Send + Sync {
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        payload: &'a [u8],
        meta: &'a Meta,
    ) -> BoxFuture<'a, Result<(), Failure>>;
}

struct Typed<E, H> {
    handler: H,
    event: PhantomData<fn() -> E>,
}

impl<E, H> ErasedHandler for Typed<E, H>
where
    E: Event,
    H: for<'a> EventHandler<'a, E>,
{
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        payload: &'a [u8],
        meta: &'a Meta,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        match E::decode(payload) {
            Err(e) => Box::pin(std::future::ready(Err(Failure::Permanent(
                anyhow::Error::from(e).context(format!("undecodable {}", E::full_name())),
            )))),
            Ok(event) => Box::pin(async move {
                // A panicking handler is a failed attempt, not a dead consumer task.
                match AssertUnwindSafe(self.handler.call(conn, event, meta)).catch_unwind().await {
                    Ok(result) => result.map_err(classify),
                    Err(_) => Err(Failure::Transient(anyhow::anyhow!("the handler panicked"))),
                }
            }),
        }
    }
}

/// One typed subscription: which event, under which durable name, handled how.
#[derive(Clone)]
pub struct Subscription {
    /// Durable consumer name, also the inbox's `consumer` column.
    pub name: String,
    /// Protobuf full name the event-type header must carry.
    pub event_type: String,
    /// Unprefixed subject.
    pub subject: &'static str,
    /// The publishing service (whose stream is read).
    pub service: &'static str,
    /// Retried for as long as it takes, never dead-lettered for a handler's failure
    /// ([`Subscription::until_applied`]).
    pub until_applied: bool,
    handler: Arc<dyn ErasedHandler>,
}

impl Subscription {
    /// For events that move money or deliver what was paid for: a handler's transient
    /// failure (a deadlock, a timeout, a peer down) is retried with back-off for as long
    /// as it takes and logged as an error each time, instead of being dead-lettered after
    /// `max_deliveries`: dropping a paid order's completion would leave a buyer charged
    /// without a ticket. A permanent verdict ([`permanent`]) still dead-letters at once.
    pub fn until_applied(mut self) -> Self {
        self.until_applied = true;
        self
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("name", &self.name).field("event_type", &self.event_type).finish()
    }
}

/// Subscribes `handler` to events of type `E` under the durable name `name`.
pub fn follow<E, H>(name: &str, handler: H) -> Subscription
where
    E: Event,
    H: for<'a> EventHandler<'a, E>,
{
    Subscription {
        name: name.to_owned(),
        event_type: E::full_name(),
        subject: E::SUBJECT,
        service: E::service(),
        until_applied: false,
        handler: Arc::new(Typed { handler, event: PhantomData }),
    }
}

/// A delivered event.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub id: Uuid,
    /// Full subject as delivered (with any deployment prefix).
    pub subject: String,
    pub event_type: String,
    pub payload: Vec<u8>,
    /// 1 on the first delivery.
    pub delivered: u64,
}

/// Outcome of handling one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The handler ran and its writes were committed.
    Handled,
    /// The inbox already had this event: nothing was done.
    Duplicate,
}

/// Applies one event once: inbox row + handler in one transaction. The event's type must
/// be the subscription's.
pub async fn apply(pool: &PgPool, sub: &Subscription, event: &IncomingEvent) -> Result<Applied, Failure> {
    if event.event_type != sub.event_type {
        return Err(Failure::Permanent(anyhow::anyhow!(
            "event type {:?} on a subscription to {}",
            event.event_type,
            sub.event_type
        )));
    }
    let transient = |e: sqlx::Error| classify(e.into());
    let mut tx = pool.begin().await.map_err(transient)?;
    let inserted =
        sqlx::query("insert into inbox (consumer, event_id, subject) values ($1, $2, $3) on conflict do nothing")
            .bind(&sub.name)
            .bind(event.id)
            .bind(&event.subject)
            .execute(&mut *tx)
            .await
            .map_err(transient)?
            .rows_affected();
    if inserted == 0 {
        tx.commit().await.map_err(transient)?;
        return Ok(Applied::Duplicate);
    }
    let meta = Meta { id: event.id, subject: event.subject.clone(), delivered: event.delivered };
    sub.handler.handle(&mut tx, &event.payload, &meta).await?;
    tx.commit().await.map_err(transient)?;
    Ok(Applied::Handled)
}

/// Where a subscription runs: its pool, JetStream, naming and delivery policy.
#[derive(Clone)]
pub struct Runtime {
    pub pool: PgPool,
    pub js: jetstream::Context,
    pub naming: Naming,
    pub delivery: DeliveryConfig,
    pub stream_replicas: usize,
}

/// Runs a subscription until `cancel` fires, retrying (with backoff) while NATS is
/// unreachable or the publisher's stream does not exist yet.
pub async fn run(rt: Runtime, sub: Subscription, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = consume(&rt, &sub) => r,
        };
        if let Err(e) = result {
            tracing::warn!(consumer = %sub.name, error = %format_args!("{e:#}"), "consumer interrupted");
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

/// How long one attempt may take: most of the ack wait, so JetStream does not redeliver
/// an event while its first attempt is still running.
fn handler_deadline(delivery: &DeliveryConfig) -> Duration {
    Duration::from_secs(delivery.ack_wait_secs.max(1)) * 4 / 5
}

/// Delay before delivery `delivered + 1`: the base doubling per delivery, capped.
pub fn retry_delay(delivery: &DeliveryConfig, delivered: u64) -> Duration {
    let doublings = delivered.saturating_sub(1).min(20) as u32;
    let ms = delivery.retry_backoff_ms.saturating_mul(1u64 << doublings).min(delivery.max_backoff_ms);
    Duration::from_millis(ms)
}

async fn consume(rt: &Runtime, sub: &Subscription) -> anyhow::Result<()> {
    let stream = rt.js.get_stream(rt.naming.stream(sub.service)).await?;
    ensure_stream(&rt.js, &rt.naming, DEAD_LETTER_SERVICE, rt.stream_replicas).await?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            &sub.name,
            pull::Config {
                durable_name: Some(sub.name.clone()),
                filter_subject: rt.naming.subject(sub.subject),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(rt.delivery.ack_wait_secs.max(1)),
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let delivered = message.info().map(|i| i.delivered.max(1) as u64).unwrap_or(1);
        let span = crate::telemetry::consumer_span(&message, &sub.name);
        let outcome = match to_event(&message, delivered) {
            None => Err(Failure::Permanent(anyhow::anyhow!("no valid {EVENT_ID_HEADER} header"))),
            // Bounded below the ack wait, so a hung handler cannot hold the subscription.
            Some(event) => match tokio::time::timeout(handler_deadline(&rt.delivery), apply(&rt.pool, sub, &event))
                .instrument(span.clone())
                .await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(Failure::Transient(anyhow::anyhow!("the handler did not finish in time"))),
            },
        };
        match outcome {
            Ok(_) => message.ack().await.map_err(anyhow::Error::msg)?,
            Err(Failure::Unavailable(e)) => {
                let delay = retry_delay(&rt.delivery, delivered);
                span.in_scope(|| {
                    tracing::warn!(consumer = %sub.name, delivered, retry_in_ms = delay.as_millis() as u64,
                        error = %format_args!("{e:#}"), "database unavailable; event will be retried");
                });
                message.ack_with(AckKind::Nak(Some(delay))).await.map_err(anyhow::Error::msg)?;
            }
            Err(Failure::Transient(e)) if sub.until_applied || delivered < rt.delivery.max_deliveries => {
                let delay = retry_delay(&rt.delivery, delivered);
                span.in_scope(|| {
                    tracing::error!(consumer = %sub.name, delivered, retry_in_ms = delay.as_millis() as u64,
                        error = %format_args!("{e:#}"), "event handler failed; will retry");
                });
                message.ack_with(AckKind::Nak(Some(delay))).await.map_err(anyhow::Error::msg)?;
            }
            Err(failure) => {
                let reason = failure.to_string();
                span.in_scope(|| {
                    tracing::error!(consumer = %sub.name, delivered, error = %reason, "giving up on event: dead-lettered");
                });
                dead_letter(rt, sub, &message, delivered, &reason).await?;
                message.ack_with(AckKind::Term).await.map_err(anyhow::Error::msg)?;
            }
        }
    }
    Ok(())
}

/// Copies a message to the consumer's dead-letter subject with the reason. Returns only
/// once JetStream has stored it, so giving up never loses the event.
async fn dead_letter(
    rt: &Runtime,
    sub: &Subscription,
    message: &jetstream::Message,
    delivered: u64,
    reason: &str,
) -> anyhow::Result<()> {
    // The original headers, less NATS's own (`Nats-Expected-Stream`, `Nats-TTL`… would make
    // the dead-letter stream refuse the copy, and a forged message would then cycle forever).
    let mut headers = HeaderMap::new();
    if let Some(original) = &message.headers {
        for (name, values) in original.iter() {
            let name = name.to_string();
            if name.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("nats-")) {
                continue;
            }
            for value in values {
                headers.append(name.as_str(), value.as_str());
            }
        }
    }
    // Redeliveries of one stream message share its position, so a retried dead-lettering
    // is deduplicated; a replay of the same event (a new position) is not.
    let msg_id = match message.info() {
        Ok(info) => format!("{}-{}-{}", sub.name, info.stream, info.stream_sequence),
        Err(_) => format!("{}-{}", sub.name, Uuid::now_v7()),
    };
    headers.insert("Nats-Msg-Id", msg_id.as_str());
    // Reasons come from our own errors; keep them one short header line.
    let reason: String = reason.chars().filter(|c| !c.is_control()).take(1000).collect();
    headers.insert(DEAD_LETTER_REASON_HEADER, reason.as_str());
    headers.insert(DEAD_LETTER_SUBJECT_HEADER, message.subject.as_str());
    headers.insert(DEAD_LETTER_DELIVERIES_HEADER, delivered.to_string().as_str());
    let subject = rt.naming.subject(&dead_letter_subject(&sub.name));
    rt.js.publish_with_headers(subject, headers, message.payload.clone()).await?.await?;
    metrics::counter!("festival_events_dead_lettered_total", "consumer" => sub.name.clone()).increment(1);
    Ok(())
}

fn to_event(message: &jetstream::Message, delivered: u64) -> Option<IncomingEvent> {
    let headers = message.headers.as_ref()?;
    let id = Uuid::parse_str(headers.get(EVENT_ID_HEADER)?.as_str()).ok()?;
    let event_type = headers.get(EVENT_TYPE_HEADER).map(|v| v.as_str().to_owned()).unwrap_or_default();
    Some(IncomingEvent {
        id,
        subject: message.subject.to_string(),
        event_type,
        payload: message.payload.to_vec(),
        delivered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_sorted_by_what_a_retry_can_change() {
        assert!(matches!(classify(permanent("bad id").context("while applying")), Failure::Permanent(_)));
        assert!(matches!(classify(sqlx::Error::PoolTimedOut.into()), Failure::Unavailable(_)));
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(classify(anyhow::Error::from(io).context("insert")), Failure::Unavailable(_)));
        assert!(matches!(classify(sqlx::Error::RowNotFound.into()), Failure::Transient(_)));
        assert!(matches!(classify(anyhow::anyhow!("handler bug")), Failure::Transient(_)));
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let d = DeliveryConfig { max_deliveries: 5, retry_backoff_ms: 500, max_backoff_ms: 3_000, ack_wait_secs: 30 };
        let delays: Vec<u64> = (1..=5).map(|n| retry_delay(&d, n).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1_000, 2_000, 3_000, 3_000]);
        assert_eq!(retry_delay(&d, u64::MAX), Duration::from_millis(3_000), "no overflow");
    }
}
