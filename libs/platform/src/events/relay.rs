//! The outbox relay: publishes pending outbox rows to JetStream, oldest first.
//!
//! Each batch is taken with `FOR UPDATE SKIP LOCKED`, so several replicas can relay side
//! by side without publishing a row twice at the same time; a row is deleted only after
//! JetStream acknowledged it, and `Nats-Msg-Id` = event id makes a re-publish after a
//! crash a no-op inside the stream's duplicate window. While NATS is unreachable the relay
//! backs off (100 ms doubling to 10 s) and rows simply wait.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{EVENT_ID_HEADER, EVENT_TYPE_HEADER, Naming, ensure_stream};

const BATCH: i64 = 100;
const IDLE_POLL: Duration = Duration::from_millis(100);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    subject: String,
    event_type: String,
    payload: Vec<u8>,
    headers: sqlx::types::Json<HashMap<String, String>>,
}

pub struct OutboxRelay {
    pool: PgPool,
    js: jetstream::Context,
    naming: Naming,
    service: String,
    replicas: usize,
}

impl OutboxRelay {
    pub fn new(pool: PgPool, js: jetstream::Context, naming: Naming, service: &str, replicas: usize) -> Self {
        Self { pool, js, naming, service: service.to_owned(), replicas }
    }

    /// Relays until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        let mut stream_ready = false;
        loop {
            let outcome = async {
                if !stream_ready {
                    ensure_stream(&self.js, &self.naming, &self.service, self.replicas).await?;
                    stream_ready = true;
                }
                self.publish_batch().await
            }
            .await;
            let pause = match outcome {
                Ok(n) if n as i64 == BATCH => {
                    backoff = MIN_BACKOFF;
                    Duration::ZERO
                }
                Ok(_) => {
                    backoff = MIN_BACKOFF;
                    IDLE_POLL
                }
                Err(e) => {
                    tracing::warn!(error = %format_args!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "outbox relay cannot publish");
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    pause
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Publishes one batch; returns how many rows were published.
    pub async fn publish_batch(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<Row> = sqlx::query_as(
            "select id, subject, event_type, payload, headers from outbox
             order by seq limit $1 for update skip locked",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // Send the whole batch, then collect acks in order: one round trip, not one per row.
        let mut pending = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in &rows {
            let mut headers = HeaderMap::new();
            for (k, v) in row.headers.iter() {
                headers.insert(k.as_str(), v.as_str());
            }
            let id = row.id.to_string();
            headers.insert("Nats-Msg-Id", id.as_str());
            headers.insert(EVENT_ID_HEADER, id.as_str());
            headers.insert(EVENT_TYPE_HEADER, row.event_type.as_str());
            let subject = self.naming.subject(&row.subject);
            match self.js.publish_with_headers(subject, headers, row.payload.clone().into()).await {
                Ok(ack) => pending.push((row.id, ack)),
                Err(e) => {
                    failure = Some(anyhow::Error::from(e));
                    break;
                }
            }
        }
        let mut published = Vec::with_capacity(pending.len());
        for (id, ack) in pending {
            match ack.await {
                Ok(_) => published.push(id),
                Err(e) => {
                    failure.get_or_insert_with(|| anyhow::Error::from(e));
                    break;
                }
            }
        }
        sqlx::query("delete from outbox where id = any($1)").bind(&published).execute(&mut *tx).await?;
        if let Some(e) = &failure {
            let unpublished: Vec<Uuid> = rows.iter().map(|r| r.id).filter(|id| !published.contains(id)).collect();
            sqlx::query(
                "update outbox set attempts = attempts + 1, last_error = $2, updated_at = now() where id = any($1)",
            )
            .bind(&unpublished)
            .bind(format!("{e:#}"))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        metrics::counter!("festival_outbox_published_total").increment(published.len() as u64);
        match failure {
            Some(e) => Err(e),
            None => Ok(published.len()),
        }
    }
}
