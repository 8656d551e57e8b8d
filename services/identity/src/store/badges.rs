//! Staff badges and the festivals' badge-signing keys.

use chrono::{DateTime, Utc};
use festival_platform::auth::Role;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub sealed_private: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// Serialises the creation of a festival's first key across replicas.
pub async fn lock_festival_keys(conn: &mut PgConnection, festival_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('identity.badge_keys:' || $1::text, 0))")
        .bind(festival_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The festival's keys, newest (the one that signs) first.
pub async fn keys_of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "select kid, public_key, sealed_private, created_at from badge_keys where festival_id = $1
         order by created_at desc, kid",
    )
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

pub async fn insert_key(
    conn: &mut PgConnection,
    festival_id: Uuid,
    kid: &str,
    public_key: &[u8],
    sealed_private: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into badge_keys (kid, festival_id, public_key, sealed_private) values ($1, $2, $3, $4)")
        .bind(kid)
        .bind(festival_id)
        .bind(public_key)
        .bind(sealed_private)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BadgeRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub user_id: Uuid,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub zones: Vec<String>,
    pub credential: String,
    pub issued_at: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
}

macro_rules! columns {
    () => {
        "id, festival_id, user_id, role, zones, credential, issued_at, valid_until, revoked_at, revoke_reason"
    };
}

pub struct NewBadge<'a> {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub zones: &'a [String],
    pub credential: &'a str,
    pub issued_by: Uuid,
    pub issued_at: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, b: &NewBadge<'_>) -> Result<BadgeRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "insert into badges (id, festival_id, user_id, role, zones, credential, issued_by, issued_at, valid_until)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning ",
        columns!()
    ))
    .bind(b.id)
    .bind(b.festival_id)
    .bind(b.user_id)
    .bind(b.role.as_str())
    .bind(b.zones)
    .bind(b.credential)
    .bind(b.issued_by)
    .bind(b.issued_at)
    .bind(b.valid_until)
    .fetch_one(conn)
    .await
}

/// A page of the festival's badges, newest first, after `after` (issue time, id).
pub async fn page(
    conn: &mut PgConnection,
    festival_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<BadgeRow>, sqlx::Error> {
    let (at, id) = after.map_or((None, None), |(t, i)| (Some(t), Some(i)));
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from badges where festival_id = $1 and ($2::timestamptz is null or (issued_at, id) < ($2, $3))
         order by issued_at desc, id desc limit $4"
    ))
    .bind(festival_id)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// How many live badges the user holds for `role` at the festival.
pub async fn live_count(
    conn: &mut PgConnection,
    festival_id: Uuid,
    user_id: Uuid,
    role: Role,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from badges where festival_id = $1 and user_id = $2 and role = $3
           and revoked_at is null and valid_until > $4",
    )
    .bind(festival_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(now)
    .fetch_one(conn)
    .await
}

/// The user's badges not revoked and not past their end, newest first.
pub async fn live_of_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<BadgeRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from badges where user_id = $1 and revoked_at is null and valid_until > $2
         order by issued_at desc, id desc limit 200"
    ))
    .bind(user_id)
    .bind(now)
    .fetch_all(conn)
    .await
}

/// Revokes one of the festival's badges; `None` when it is not the festival's or was
/// revoked already.
pub async fn revoke(
    conn: &mut PgConnection,
    festival_id: Uuid,
    id: Uuid,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<Option<BadgeRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "update badges set revoked_at = $4, revoke_reason = $3
         where id = $2 and festival_id = $1 and revoked_at is null returning ",
        columns!()
    ))
    .bind(festival_id)
    .bind(id)
    .bind(reason)
    .bind(at)
    .fetch_optional(conn)
    .await
}

/// Revokes a user's live badges: at one festival and for one role (a role revoked), or
/// all of them (an account disabled or deleted). Returns them.
pub async fn revoke_of_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    scope: Option<(Uuid, Role)>,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<Vec<BadgeRow>, sqlx::Error> {
    let (festival, role) = scope.map_or((None, None), |(f, r)| (Some(f), Some(r.as_str())));
    sqlx::query_as(concat!(
        "update badges set revoked_at = $5, revoke_reason = $4
         where user_id = $1 and revoked_at is null
           and ($2::uuid is null or festival_id = $2) and ($3::text is null or role = $3)
         returning ",
        columns!()
    ))
    .bind(user_id)
    .bind(festival)
    .bind(role)
    .bind(reason)
    .bind(at)
    .fetch_all(conn)
    .await
}

/// Ids of the festival's revoked badges not yet a day past their end (later, every gate
/// refuses them by their end, whatever its clock says). Whole: the per-holder cap bounds it.
pub async fn revoked_ids(
    conn: &mut PgConnection,
    festival_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select id from badges where festival_id = $1 and revoked_at is not null
           and valid_until > $2 - interval '1 day'
         order by id",
    )
    .bind(festival_id)
    .bind(now)
    .fetch_all(conn)
    .await
}
