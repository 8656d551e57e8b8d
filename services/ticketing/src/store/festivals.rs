//! Ticketing's projection of program's festival facts (written by the kit's
//! `festival_facts`).

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
