//! The festivals' sealed keys (see `crate::keys`).

use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub struct KeyRow {
    pub master_key_sealed: Vec<u8>,
    pub journal_key_sealed: Vec<u8>,
    pub journal_public_key: Vec<u8>,
}

pub async fn find(conn: &mut PgConnection, festival: Uuid) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "select master_key_sealed, journal_key_sealed, journal_public_key from festival_keys where festival_id = $1",
    )
    .bind(festival)
    .fetch_optional(conn)
    .await
}

/// Stores a festival's first keys; a twin's insert that came first wins.
pub async fn insert(
    conn: &mut PgConnection,
    festival: Uuid,
    master: &[u8],
    journal: &[u8],
    journal_public: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into festival_keys (festival_id, master_key_sealed, journal_key_sealed, journal_public_key)
         values ($1, $2, $3, $4) on conflict (festival_id) do nothing",
    )
    .bind(festival)
    .bind(master)
    .bind(journal)
    .bind(journal_public)
    .execute(conn)
    .await?;
    Ok(())
}
