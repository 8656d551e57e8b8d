//! Mailed links' tokens (hashed), per purpose.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::email_token::Purpose;

/// Stores a new token in place of the user's earlier one of the same purpose, in one
/// statement (two requests at once leave one): the newest link is the only one that works.
pub async fn replace(
    conn: &mut PgConnection,
    hash: &[u8],
    user_id: Uuid,
    purpose: Purpose,
    email: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into email_tokens (token_hash, user_id, purpose, email, expires_at) values ($1, $2, $3, $4, $5)
         on conflict (user_id, purpose) do update set token_hash = excluded.token_hash, email = excluded.email,
             expires_at = excluded.expires_at, created_at = now()",
    )
    .bind(hash)
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(email)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct TokenRow {
    pub user_id: Uuid,
    pub email: String,
    pub expires_at: DateTime<Utc>,
}

/// Whose live token of `purpose` this is at `now` (no lock: the account is locked first).
/// A dead one costs nothing further (no password is hashed for it).
pub async fn live_owner(
    conn: &mut PgConnection,
    hash: &[u8],
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select user_id from email_tokens where token_hash = $1 and purpose = $2 and expires_at > $3")
        .bind(hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(conn)
        .await
}

pub async fn lock(conn: &mut PgConnection, hash: &[u8], purpose: Purpose) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as(
        "select user_id, email, expires_at from email_tokens
         where token_hash = $1 and purpose = $2 for update",
    )
    .bind(hash)
    .bind(purpose.as_str())
    .fetch_optional(conn)
    .await
}

/// A token followed: it goes (a replay finds nothing).
pub async fn spend(conn: &mut PgConnection, hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("delete from email_tokens where token_hash = $1").bind(hash).execute(conn).await?;
    Ok(())
}

/// Deletes every token of a user (account deletion; a reset spends the others).
pub async fn delete_of_user(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("delete from email_tokens where user_id = $1").bind(user_id).execute(conn).await?;
    Ok(())
}
