//! Payment terminals (paired devices assigned to a vendor) and devices identity revoked.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TerminalRow {
    pub device_id: Uuid,
    pub festival_id: Uuid,
    pub vendor_id: Uuid,
    pub label: String,
    pub registered_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const SELECT: &str = "select t.device_id, t.festival_id, t.vendor_id, t.label, t.registered_at, r.revoked_at
    from terminals t left join revoked_devices r on r.device_id = t.device_id";

/// Registers `device` at `festival` for `vendor`, or moves it to `vendor`.
pub async fn register(
    conn: &mut PgConnection,
    device: Uuid,
    festival: Uuid,
    vendor: Uuid,
    label: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into terminals (device_id, festival_id, vendor_id, label, registered_at) values ($1, $2, $3, $4, $5)
         on conflict (festival_id, device_id) do update set vendor_id = excluded.vendor_id, label = excluded.label,
             registered_at = excluded.registered_at",
    )
    .bind(device)
    .bind(festival)
    .bind(vendor)
    .bind(label)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(conn: &mut PgConnection, festival: Uuid, device: Uuid) -> Result<Option<TerminalRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} where t.festival_id = $1 and t.device_id = $2")))
        .bind(festival)
        .bind(device)
        .fetch_optional(conn)
        .await
}

pub async fn list(conn: &mut PgConnection, festival: Uuid) -> Result<Vec<TerminalRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} where t.festival_id = $1 order by t.registered_at, t.device_id"
    )))
    .bind(festival)
    .fetch_all(conn)
    .await
}

pub async fn is_revoked(conn: &mut PgConnection, device: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from revoked_devices where device_id = $1)")
        .bind(device)
        .fetch_one(conn)
        .await
}

pub async fn revoke(
    conn: &mut PgConnection,
    device: Uuid,
    festival: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into revoked_devices (device_id, festival_id, revoked_at) values ($1, $2, $3) on conflict do nothing",
    )
    .bind(device)
    .bind(festival)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}
