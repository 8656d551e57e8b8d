use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::lineup::PerformanceStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PerformanceRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub artist_id: Uuid,
    pub stage_id: Uuid,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub status: PerformanceStatus,
}

macro_rules! columns {
    () => {
        "id, festival_id, artist_id, stage_id, start_time, end_time, status"
    };
}

/// A performance with what the public schedule shows of its artist and stage.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ListingRow {
    pub id: Uuid,
    pub artist_id: Uuid,
    pub artist_name: String,
    pub genres: Vec<String>,
    pub stage_id: Uuid,
    pub stage_name: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub status: PerformanceStatus,
    pub cancel_reason: String,
    pub updated_at: DateTime<Utc>,
}

macro_rules! listing {
    ($where:literal) => {
        concat!(
            "select p.id, p.artist_id, a.name as artist_name, a.genres, p.stage_id, s.name as stage_name,
                    p.start_time, p.end_time, p.status, p.cancel_reason, p.updated_at
             from performances p join artists a on a.id = p.artist_id join stages s on s.id = p.stage_id
             where ",
            $where,
            " order by p.start_time, p.id"
        )
    };
}

pub async fn insert(conn: &mut PgConnection, p: &PerformanceRow) -> Result<PerformanceRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "insert into performances (id, festival_id, artist_id, stage_id, start_time, end_time, status)
         values ($1, $2, $3, $4, $5, $6, $7) returning ",
        columns!()
    ))
    .bind(p.id)
    .bind(p.festival_id)
    .bind(p.artist_id)
    .bind(p.stage_id)
    .bind(p.start_time)
    .bind(p.end_time)
    .bind(p.status.as_str())
    .fetch_one(conn)
    .await
}

/// One performance of a festival, locked for update.
pub async fn find_locked(
    conn: &mut PgConnection,
    festival_id: Uuid,
    id: Uuid,
) -> Result<Option<PerformanceRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from performances where festival_id = $1 and id = $2 for update"))
        .bind(festival_id)
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Scheduled (not cancelled) performances; drafts only when `with_drafts`.
pub async fn of_festival(
    conn: &mut PgConnection,
    festival_id: Uuid,
    with_drafts: bool,
) -> Result<Vec<PerformanceRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from performances where festival_id = $1 and status <> 'CANCELLED' and ($2 or status = 'PUBLISHED')
         order by start_time, id"
    ))
    .bind(festival_id)
    .bind(with_drafts)
    .fetch_all(conn)
    .await
}

/// Every performance of a festival, cancelled ones included (for cloning).
pub async fn all_of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<PerformanceRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from performances where festival_id = $1 order by start_time, id"))
        .bind(festival_id)
        .fetch_all(conn)
        .await
}

/// The published schedule with artist and stage, by start time.
pub async fn published_listing(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<ListingRow>, sqlx::Error> {
    sqlx::query_as(listing!("p.festival_id = $1 and p.status = 'PUBLISHED'")).bind(festival_id).fetch_all(conn).await
}

/// A user's starred performances, cancelled ones included (calendar feeds mark them so).
pub async fn starred_listing(
    conn: &mut PgConnection,
    festival_id: Uuid,
    user_id: Uuid,
) -> Result<Vec<ListingRow>, sqlx::Error> {
    sqlx::query_as(listing!(
        "p.festival_id = $1 and p.status in ('PUBLISHED', 'CANCELLED')
         and p.id in (select performance_id from favourites where festival_id = $1 and user_id = $2)"
    ))
    .bind(festival_id)
    .bind(user_id)
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

pub async fn reschedule(
    conn: &mut PgConnection,
    id: Uuid,
    stage_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<PerformanceRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "update performances set stage_id = $2, start_time = $3, end_time = $4, updated_at = now() where id = $1 returning ",
        columns!()
    ))
    .bind(id)
    .bind(stage_id)
    .bind(start)
    .bind(end)
    .fetch_one(conn)
    .await
}

pub async fn cancel(conn: &mut PgConnection, id: Uuid, reason: &str) -> Result<PerformanceRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "update performances set status = 'CANCELLED', cancel_reason = $2, updated_at = now() where id = $1 returning ",
        columns!()
    ))
    .bind(id)
    .bind(reason)
    .fetch_one(conn)
    .await
}
