//! Writing events: in the same transaction as the change they describe.

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

/// Queues `event` for publication on `subject`, inside the caller's transaction.
/// Returns the event id (a UUIDv7, so ids sort by creation time).
pub async fn enqueue<M>(conn: &mut PgConnection, subject: &str, event: &M) -> Result<Uuid, sqlx::Error>
where
    M: prost::Message + prost::Name,
{
    let id = Uuid::now_v7();
    let headers: HashMap<String, String> = crate::telemetry::current_trace_headers();
    sqlx::query("insert into outbox (id, subject, event_type, payload, headers) values ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(subject)
        .bind(M::full_name())
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
