use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub sealed_private: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// Serialises the creation of a festival's first key across replicas.
pub async fn lock_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('ticketing.keys/' || $1::text, 0))")
        .bind(festival_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn active(conn: &mut PgConnection, festival_id: Uuid) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "select kid, public_key, sealed_private, created_at, retired_at from ticket_keys
         where festival_id = $1 and retired_at is null",
    )
    .bind(festival_id)
    .fetch_optional(conn)
    .await
}

/// Every key of a festival (retired ones still verify the tickets they signed).
pub async fn of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "select kid, public_key, sealed_private, created_at, retired_at from ticket_keys
         where festival_id = $1 order by created_at",
    )
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

pub async fn insert(
    conn: &mut PgConnection,
    kid: &str,
    festival_id: Uuid,
    public_key: &[u8],
    sealed_private: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into ticket_keys (kid, festival_id, public_key, sealed_private) values ($1, $2, $3, $4)")
        .bind(kid)
        .bind(festival_id)
        .bind(public_key)
        .bind(sealed_private)
        .execute(conn)
        .await?;
    Ok(())
}
