//! Ticketing's projection of program's festival facts.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::status::FestivalStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FestivalRow {
    pub id: Uuid,
    pub name: String,
    pub time_zone: String,
    pub currency: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    #[sqlx(try_from = "String")]
    pub status: FestivalStatus,
    pub version: i64,
}

/// The facts of one festival event.
pub struct Facts<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub time_zone: &'a str,
    pub currency: &'a str,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub status: FestivalStatus,
    pub version: i64,
}

/// Keeps the newest facts: an older event arriving late changes nothing.
pub async fn apply(conn: &mut PgConnection, f: &Facts<'_>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into festivals (id, name, time_zone, currency, start_time, end_time, status, version)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (id) do update set name = excluded.name, time_zone = excluded.time_zone,
             currency = excluded.currency, start_time = excluded.start_time, end_time = excluded.end_time,
             status = excluded.status, version = excluded.version, updated_at = now()
         where festivals.version < excluded.version and not festivals.deleted",
    )
    .bind(f.id)
    .bind(f.name)
    .bind(f.time_zone)
    .bind(f.currency)
    .bind(f.start_time)
    .bind(f.end_time)
    .bind(f.status.as_str())
    .bind(f.version)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A deleted festival sells nothing more, whatever arrives after, even its creation
/// event delivered late (a tombstone row if it was not known yet).
pub async fn mark_deleted(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into festivals (id, name, time_zone, currency, status, version, deleted)
         values ($1, '', 'UTC', 'XXX', 'CANCELLED', 9223372036854775807, true)
         on conflict (id) do update set deleted = true, status = 'CANCELLED', updated_at = now()",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the festival's row: its facts' next change (a cancellation) waits for the
/// caller's commit.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("select 1 from festivals where id = $1 for update").bind(id).execute(conn).await?;
    Ok(())
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<FestivalRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, name, time_zone, currency, start_time, end_time, status, version
         from festivals where id = $1 and not deleted",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}
