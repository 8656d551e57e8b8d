use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A session about to start.
pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The service's clock: the session's absolute end follows it.
    pub started_at: DateTime<Utc>,
    /// Started with a second factor.
    pub mfa: bool,
    pub ip_prefix: &'a str,
    pub device_name: &'a str,
}

pub async fn create(conn: &mut PgConnection, s: &NewSession<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into sessions (id, user_id, created_at, last_used_at, mfa, ip_prefix, device_name)
         values ($1, $2, $3, $3, $4, $5, $6)",
    )
    .bind(s.id)
    .bind(s.user_id)
    .bind(s.started_at)
    .bind(s.mfa)
    .bind(s.ip_prefix)
    .bind(s.device_name)
    .execute(conn)
    .await?;
    Ok(())
}

/// A live session as its owner sees it.
#[derive(Debug, sqlx::FromRow)]
pub struct LiveSessionRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub ip_prefix: String,
    pub device_name: String,
    pub mfa: bool,
}

/// The user's sessions not ended and started after `started_after` (older ones are past
/// their absolute end), most recently used first.
pub async fn live_of_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    started_after: DateTime<Utc>,
) -> Result<Vec<LiveSessionRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, created_at, last_used_at, ip_prefix, device_name, mfa from sessions
         where user_id = $1 and revoked_at is null and created_at > $2
         order by coalesce(last_used_at, created_at) desc, id desc limit 1000",
    )
    .bind(user_id)
    .bind(started_after)
    .fetch_all(conn)
    .await
}

/// Notes a refresh as the session's last use.
pub async fn touch(conn: &mut PgConnection, session_id: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("update sessions set last_used_at = $2 where id = $1").bind(session_id).bind(at).execute(conn).await?;
    Ok(())
}

/// Ends one of the user's sessions; false when it is not the user's or already ended.
pub async fn revoke_own(
    conn: &mut PgConnection,
    user_id: Uuid,
    session_id: Uuid,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update sessions set revoked_at = clock_timestamp(), revoked_reason = $3, updated_at = now()
         where id = $2 and user_id = $1 and revoked_at is null",
    )
    .bind(user_id)
    .bind(session_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every live session of the user but `keep`; returns their ids.
pub async fn revoke_all_but(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Uuid,
    reason: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "update sessions set revoked_at = clock_timestamp(), revoked_reason = $3, updated_at = now()
         where user_id = $1 and id <> $2 and revoked_at is null returning id",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason)
    .fetch_all(conn)
    .await
}

/// The database's clock, which stamps every revocation: polls are answered on it so no
/// process's clock drift can hide one.
pub async fn db_now(conn: &mut PgConnection) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar("select clock_timestamp()").fetch_one(conn).await
}

/// Up to `limit` sessions ended after `since` (or, continuing a page, after the session
/// `after` that ended at `since`), oldest first (what services poll).
pub async fn revoked_since(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "select id, revoked_at from sessions
         where revoked_at is not null
           and (case when $2::uuid is null then revoked_at > $1 else (revoked_at, id) > ($1, $2) end)
         order by revoked_at, id limit $3",
    )
    .bind(since)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Deletes every refresh token of the user's sessions (account deletion): nothing that
/// could ever be exchanged again is kept.
pub async fn delete_refresh_tokens_of_user(conn: &mut PgConnection, user_id: Uuid) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query("delete from refresh_tokens where session_id in (select id from sessions where user_id = $1)")
            .bind(user_id)
            .execute(conn)
            .await?;
    Ok(done.rows_affected())
}

/// A session as its owner may see it (no token).
#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    pub last_refreshed_at: Option<DateTime<Utc>>,
    pub device_name: String,
    pub ip_prefix: String,
}

/// Blanks what a user's sessions say about them (account deletion).
pub async fn scrub_of_user(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("update sessions set device_name = '', ip_prefix = '', updated_at = now() where user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Every session of a user, newest first (capped: an export, not a log).
pub async fn of_user(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<SessionRow>, sqlx::Error> {
    sqlx::query_as(
        "select s.id, s.created_at, s.revoked_at, s.revoked_reason,
                (select max(t.used_at) from refresh_tokens t where t.session_id = s.id) as last_refreshed_at,
                s.device_name, s.ip_prefix
         from sessions s where s.user_id = $1 order by s.created_at desc limit 1000",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

pub async fn add_refresh_token(
    conn: &mut PgConnection,
    session_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into refresh_tokens (token_hash, session_id, expires_at) values ($1, $2, $3)")
        .bind(token_hash)
        .bind(session_id)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct PresentedToken {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub session_revoked_at: Option<DateTime<Utc>>,
    pub session_started_at: DateTime<Utc>,
    pub session_mfa: bool,
}

/// Whose refresh token this is (no lock: the caller locks the account first, then the
/// token, the order account deletion takes too).
pub async fn owner_of_token(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select s.user_id from refresh_tokens t join sessions s on s.id = t.session_id where t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

/// The token and its session, locked: concurrent refreshes of one token serialise here.
pub async fn lock_token(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Option<PresentedToken>, sqlx::Error> {
    // The test-only `race-hooks` build reads without the lock: the refresh race test's
    // negative control must then see one token rotated twice.
    let sql = if cfg!(feature = "race-hooks") {
        "select t.session_id, s.user_id, t.expires_at, t.used_at, s.revoked_at as session_revoked_at,
                s.created_at as session_started_at, s.mfa as session_mfa
         from refresh_tokens t join sessions s on s.id = t.session_id
         where t.token_hash = $1"
    } else {
        "select t.session_id, s.user_id, t.expires_at, t.used_at, s.revoked_at as session_revoked_at,
                s.created_at as session_started_at, s.mfa as session_mfa
         from refresh_tokens t join sessions s on s.id = t.session_id
         where t.token_hash = $1
         for update of t, s"
    };
    sqlx::query_as(sql).bind(token_hash).fetch_optional(conn).await
}

pub async fn mark_used(conn: &mut PgConnection, token_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("update refresh_tokens set used_at = now(), updated_at = now() where token_hash = $1")
        .bind(token_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends one session. Returns false when it had already ended.
pub async fn revoke(conn: &mut PgConnection, session_id: Uuid, reason: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update sessions set revoked_at = clock_timestamp(), revoked_reason = $2, updated_at = now() where id = $1 and revoked_at is null",
    )
    .bind(session_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every live session of a user; returns their ids.
pub async fn revoke_all(conn: &mut PgConnection, user_id: Uuid, reason: &str) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "update sessions set revoked_at = clock_timestamp(), revoked_reason = $2, updated_at = now()
         where user_id = $1 and revoked_at is null returning id",
    )
    .bind(user_id)
    .bind(reason)
    .fetch_all(conn)
    .await
}

/// A live session's second-factor flag; `None` when it ended (access tokens of ended
/// sessions are refused by identity).
pub async fn live_mfa(conn: &mut PgConnection, session_id: Uuid) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("select mfa from sessions where id = $1 and revoked_at is null")
        .bind(session_id)
        .fetch_optional(conn)
        .await
}

/// When a live session started; `None` when it ended.
pub async fn live_started_at(conn: &mut PgConnection, session_id: Uuid) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("select created_at from sessions where id = $1 and revoked_at is null")
        .bind(session_id)
        .fetch_optional(conn)
        .await
}

/// Marks a session as holding a second factor (the holder just proved it).
pub async fn set_mfa(conn: &mut PgConnection, session_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("update sessions set mfa = true, updated_at = now() where id = $1")
        .bind(session_id)
        .execute(conn)
        .await?;
    Ok(())
}
