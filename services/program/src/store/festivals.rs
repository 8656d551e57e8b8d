use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::status::Status;

/// Slugs of festivals the public can see (not drafts).
pub const SLUG_UNIQUE: &str = "festivals_slug_key";
/// Slugs of one creator's drafts.
pub const DRAFT_SLUG_UNIQUE: &str = "festivals_draft_slug_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FestivalRow {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub time_zone: String,
    pub currency: String,
    pub venue: String,
    pub address: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub capacity: i32,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub travel_minutes: i32,
    pub languages: Vec<String>,
    pub descriptions: Json<BTreeMap<String, String>>,
    pub image_urls: Vec<String>,
    /// Bumped by every change to the festival's stages, artists and performances.
    pub schedule_version: i64,
}

macro_rules! columns {
    () => {
        "id, name, slug, time_zone, currency, venue, address, start_time, end_time, capacity, status, created_by, created_at, updated_at, travel_minutes, languages, descriptions, image_urls, schedule_version"
    };
}

pub struct NewFestival<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub slug: &'a str,
    pub time_zone: &'a str,
    pub currency: &'a str,
    pub venue: &'a str,
    pub address: &'a str,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub capacity: i32,
    pub travel_minutes: i32,
    pub created_by: Uuid,
    pub languages: &'a [String],
    pub descriptions: &'a BTreeMap<String, String>,
    pub image_urls: &'a [String],
}

pub async fn insert(conn: &mut PgConnection, f: &NewFestival<'_>) -> Result<FestivalRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "insert into festivals (id, name, slug, time_zone, currency, venue, address, start_time, end_time, capacity, created_by, travel_minutes,
           languages, descriptions, image_urls)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) returning ",
        columns!()
    ))
    .bind(f.id)
    .bind(f.name)
    .bind(f.slug)
    .bind(f.time_zone)
    .bind(f.currency)
    .bind(f.venue)
    .bind(f.address)
    .bind(f.start_time)
    .bind(f.end_time)
    .bind(f.capacity)
    .bind(f.created_by)
    .bind(f.travel_minutes)
    .bind(f.languages)
    .bind(Json(f.descriptions))
    .bind(f.image_urls)
    .fetch_one(conn)
    .await
}

/// A live festival by id, locked for update when `lock` is set.
pub async fn find(conn: &mut PgConnection, id: Uuid, lock: bool) -> Result<Option<FestivalRow>, sqlx::Error> {
    let sql = if lock {
        concat!("select ", columns!(), " from festivals where id = $1 and deleted_at is null for update")
    } else {
        concat!("select ", columns!(), " from festivals where id = $1 and deleted_at is null")
    };
    sqlx::query_as(sql).bind(id).fetch_optional(conn).await
}

/// Festivals with this slug: the visible one first, then drafts (several creators may
/// have a draft with the same slug), oldest first.
pub async fn find_by_slug(conn: &mut PgConnection, slug: &str) -> Result<Vec<FestivalRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from festivals where slug = $1 and deleted_at is null order by status = 'DRAFT', created_at limit 50"
    ))
    .bind(slug)
    .fetch_all(conn)
    .await
}

/// Whether a festival the public can see uses this slug.
pub async fn slug_is_public(conn: &mut PgConnection, slug: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from festivals where slug = $1 and deleted_at is null and status <> 'DRAFT')",
    )
    .bind(slug)
    .fetch_one(conn)
    .await
}

/// Festivals visible to a caller: public ones, plus those it manages (or all, for admins).
pub async fn list_visible(
    conn: &mut PgConnection,
    admin: bool,
    user: Option<Uuid>,
    organizer_of: &[Uuid],
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<FestivalRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from festivals where deleted_at is null
           and (status <> 'DRAFT' or $1 or created_by = $2 or id = any($3))
           and ($4::uuid is null or id > $4)
         order by id limit $5"
    ))
    .bind(admin)
    .bind(user)
    .bind(organizer_of)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub struct Changes<'a> {
    pub name: Option<&'a str>,
    pub venue: Option<&'a str>,
    pub address: Option<&'a str>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub capacity: Option<i32>,
    pub travel_minutes: Option<i32>,
    pub languages: Option<&'a [String]>,
    pub descriptions: Option<&'a BTreeMap<String, String>>,
    pub image_urls: Option<&'a [String]>,
}

pub async fn update(conn: &mut PgConnection, id: Uuid, c: &Changes<'_>) -> Result<FestivalRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "update festivals set name = coalesce($2, name), venue = coalesce($3, venue), address = coalesce($4, address),
           start_time = coalesce($5, start_time), end_time = coalesce($6, end_time), capacity = coalesce($7, capacity),
           travel_minutes = coalesce($8, travel_minutes), languages = coalesce($9, languages),
           descriptions = coalesce($10, descriptions), image_urls = coalesce($11, image_urls), updated_at = now()
         where id = $1 returning ",
        columns!()
    ))
    .bind(id)
    .bind(c.name)
    .bind(c.venue)
    .bind(c.address)
    .bind(c.start_time)
    .bind(c.end_time)
    .bind(c.capacity)
    .bind(c.travel_minutes)
    .bind(c.languages)
    .bind(c.descriptions.map(Json))
    .bind(c.image_urls)
    .fetch_one(conn)
    .await
}

pub async fn set_status(conn: &mut PgConnection, id: Uuid, status: Status) -> Result<FestivalRow, sqlx::Error> {
    sqlx::query_as(concat!("update festivals set status = $2, updated_at = now() where id = $1 returning ", columns!()))
        .bind(id)
        .bind(status.as_str())
        .fetch_one(conn)
        .await
}

pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("update festivals set deleted_at = now(), updated_at = now() where id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// What a festival holds, for its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    Stages,
    Artists,
    Performances,
    Shifts,
}

impl Holding {
    pub fn name(self) -> &'static str {
        match self {
            Holding::Stages => "stages",
            Holding::Artists => "artists",
            Holding::Performances => "performances",
            Holding::Shifts => "shifts",
        }
    }
}

/// How many `what` the festival holds.
pub async fn count_of(conn: &mut PgConnection, festival_id: Uuid, what: Holding) -> Result<i64, sqlx::Error> {
    let sql = match what {
        Holding::Stages => "select count(*) from stages where festival_id = $1",
        Holding::Artists => "select count(*) from artists where festival_id = $1",
        Holding::Performances => "select count(*) from performances where festival_id = $1",
        Holding::Shifts => "select count(*) from shifts where festival_id = $1",
    };
    sqlx::query_scalar(sql).bind(festival_id).fetch_one(conn).await
}
