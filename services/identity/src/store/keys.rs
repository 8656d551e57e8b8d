use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, sqlx::FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub sealed_private: Vec<u8>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// Serialises key creation and rotation across replicas (transaction-scoped lock).
pub async fn lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock(hashtext('identity.signing_keys'))").execute(conn).await?;
    Ok(())
}

pub async fn active(conn: &mut PgConnection) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as("select kid, public_key, sealed_private, retired_at from signing_keys where retired_at is null")
        .fetch_optional(conn)
        .await
}

/// The active key and every key retired after `retired_after`, newest first.
pub async fn published(conn: &mut PgConnection, retired_after: DateTime<Utc>) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "select kid, public_key, sealed_private, retired_at from signing_keys
         where revoked_at is null and (retired_at is null or retired_at > $1) order by created_at desc",
    )
    .bind(retired_after)
    .fetch_all(conn)
    .await
}

pub async fn retire_active(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("update signing_keys set retired_at = now(), updated_at = now() where retired_at is null")
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes a key that is not revoked yet, retiring it if it was active. Returns whether
/// it was the active key, or `None` when there is no such unrevoked key.
pub async fn revoke(conn: &mut PgConnection, kid: &str, reason: &str) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar(
        "update signing_keys k set revoked_at = now(), revoked_reason = $2,
                retired_at = coalesce(k.retired_at, now()), updated_at = now()
         from signing_keys prior
         where k.kid = $1 and prior.kid = k.kid and k.revoked_at is null
         returning prior.retired_at is null",
    )
    .bind(kid)
    .bind(reason)
    .fetch_optional(conn)
    .await
}

pub async fn insert(
    conn: &mut PgConnection,
    kid: &str,
    public_key: &[u8],
    sealed_private: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into signing_keys (kid, public_key, sealed_private) values ($1, $2, $3)")
        .bind(kid)
        .bind(public_key)
        .bind(sealed_private)
        .execute(conn)
        .await?;
    Ok(())
}
