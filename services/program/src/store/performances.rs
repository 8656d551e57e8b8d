use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PerformanceRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub artist_id: Uuid,
    pub stage_id: Uuid,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub status: String,
}

pub async fn insert(conn: &mut PgConnection, p: &PerformanceRow) -> Result<PerformanceRow, sqlx::Error> {
    sqlx::query_as(
        "insert into performances (id, festival_id, artist_id, stage_id, start_time, end_time) values ($1, $2, $3, $4, $5, $6)
         returning id, festival_id, artist_id, stage_id, start_time, end_time, status",
    )
    .bind(p.id)
    .bind(p.festival_id)
    .bind(p.artist_id)
    .bind(p.stage_id)
    .bind(p.start_time)
    .bind(p.end_time)
    .fetch_one(conn)
    .await
}

/// Scheduled (not cancelled) performances; drafts only when `with_drafts`.
pub async fn of_festival(
    conn: &mut PgConnection,
    festival_id: Uuid,
    with_drafts: bool,
) -> Result<Vec<PerformanceRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, festival_id, artist_id, stage_id, start_time, end_time, status from performances
         where festival_id = $1 and status <> 'CANCELLED' and ($2 or status = 'PUBLISHED')
         order by start_time, id",
    )
    .bind(festival_id)
    .bind(with_drafts)
    .fetch_all(conn)
    .await
}

pub async fn publish_drafts(conn: &mut PgConnection, festival_id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "update performances set status = 'PUBLISHED', updated_at = now() where festival_id = $1 and status = 'DRAFT'",
    )
    .bind(festival_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
