//! Writing events: in the same transaction as the change they describe.

use std::collections::HashMap;

use festival_proto::Event;
use sqlx::PgConnection;
use uuid::Uuid;

/// Queues `event` for publication on its subject, inside the caller's transaction.
/// Returns the event id (a UUIDv7, so ids sort by creation time).
pub async fn publish<E: Event>(conn: &mut PgConnection, event: &E) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let headers: HashMap<String, String> = crate::telemetry::current_trace_headers();
    sqlx::query("insert into outbox (id, subject, event_type, payload, headers) values ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(E::SUBJECT)
        .bind(E::full_name())
        .bind(event.encode_to_vec())
        .bind(sqlx::types::Json(headers))
        .execute(conn)
        .await?;
    Ok(id)
}

/// Number of events not yet published (tests assert it drains to zero).
pub async fn pending(pool: &sqlx::PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from outbox").fetch_one(pool).await
}
