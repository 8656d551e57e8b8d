//! Writing events: in the same transaction as the change they describe.

use std::collections::HashMap;

use festival_proto::Event;
use sqlx::PgConnection;
use uuid::Uuid;

/// Queues `event` for publication on its subject, inside the caller's transaction.
/// Returns the event id (a UUIDv7, so ids sort by creation time).
pub async fn publish<E: Event>(conn: &mut PgConnection, event: &E) -> Result<Uuid, sqlx::Error> {
    let row = Queued::new(event);
    sqlx::query("insert into outbox (id, subject, event_type, payload, headers) values ($1, $2, $3, $4, $5)")
        .bind(row.id)
        .bind(row.subject)
        .bind(row.event_type)
        .bind(row.payload)
        .bind(row.headers)
        .execute(conn)
        .await?;
    Ok(row.id)
}

/// An event as an outbox row, for a hot path that writes it in the same statement as the
/// change it describes (`insert into outbox (id, subject, event_type, payload, headers)
/// select … from <the change's returning rows>`): the change and its event commit
/// together, or neither, in one round trip and without a transaction around them.
pub struct Queued {
    pub id: Uuid,
    pub subject: &'static str,
    pub event_type: String,
    pub payload: Vec<u8>,
    pub headers: sqlx::types::Json<HashMap<String, String>>,
}

impl Queued {
    pub fn new<E: Event>(event: &E) -> Self {
        Self {
            id: Uuid::now_v7(),
            subject: E::SUBJECT,
            event_type: E::full_name(),
            payload: event.encode_to_vec(),
            headers: sqlx::types::Json(crate::telemetry::current_trace_headers()),
        }
    }
}

/// Number of events not yet published (tests assert it drains to zero).
pub async fn pending(pool: &sqlx::PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from outbox").fetch_one(pool).await
}
