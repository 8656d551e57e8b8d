use chrono::{DateTime, Utc};
use festival_platform::auth::DeviceLevel;
use sqlx::PgConnection;
use uuid::Uuid;

festival_platform::text_enum! {
    DeviceStatus { Pending = "PENDING", Active = "ACTIVE", Revoked = "REVOKED" }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub name: String,
    pub gate: String,
    #[sqlx(try_from = "String")]
    pub level: DeviceLevel,
    #[sqlx(try_from = "String")]
    pub status: DeviceStatus,
    pub pairing_expires_at: DateTime<Utc>,
    pub public_key: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub paired_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, festival_id, name, gate, level, status, pairing_expires_at, public_key, created_at, paired_at, revoked_at"
    };
}

/// A new device waiting for its pairing code.
pub struct NewDevice<'a> {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub name: &'a str,
    pub gate: &'a str,
    pub level: DeviceLevel,
    pub pairing_code_hash: &'a [u8],
    pub pairing_expires_at: DateTime<Utc>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, d: &NewDevice<'_>) -> Result<DeviceRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "insert into devices (id, festival_id, name, gate, level, status, pairing_code_hash, pairing_expires_at, created_by, created_at)
         values ($1, $2, $3, $4, $5, 'PENDING', $6, $7, $8, $9) returning ",
        columns!()
    ))
    .bind(d.id)
    .bind(d.festival_id)
    .bind(d.name)
    .bind(d.gate)
    .bind(d.level.as_str())
    .bind(d.pairing_code_hash)
    .bind(d.pairing_expires_at)
    .bind(d.created_by)
    .bind(d.created_at)
    .fetch_one(conn)
    .await
}

pub async fn of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<DeviceRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from devices where festival_id = $1 order by created_at desc, id limit 1000"
    ))
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

/// Pairs the pending device whose unexpired code hashes to `code_hash`, once: the code
/// is cleared in the same statement, so two devices racing with one code cannot both win.
pub async fn pair(
    conn: &mut PgConnection,
    code_hash: &[u8],
    public_key: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<DeviceRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "update devices set status = 'ACTIVE', public_key = $2, paired_at = $3, pairing_code_hash = null
         where pairing_code_hash = $1 and status = 'PENDING' and pairing_expires_at > $3
         returning ",
        columns!()
    ))
    .bind(code_hash)
    .bind(public_key)
    .bind(now)
    .fetch_optional(conn)
    .await
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<DeviceRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from devices where id = $1")).bind(id).fetch_optional(conn).await
}

/// Accepts a token proof signed at `signed_at` from an active device, if it is later
/// than every proof it presented before (a proof works once).
pub async fn accept_proof(
    conn: &mut PgConnection,
    id: Uuid,
    signed_at: DateTime<Utc>,
) -> Result<Option<DeviceRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "update devices set last_proof_at = $2
         where id = $1 and status = 'ACTIVE' and (last_proof_at is null or last_proof_at < $2)
         returning ",
        columns!()
    ))
    .bind(id)
    .bind(signed_at)
    .fetch_optional(conn)
    .await
}

/// Revokes a device of `festival_id`, pending or active. `None` when there is no such
/// device there; a device already revoked is returned as it is (`false`).
pub async fn revoke(
    conn: &mut PgConnection,
    festival_id: Uuid,
    id: Uuid,
    by: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<(DeviceRow, bool)>, sqlx::Error> {
    let revoked: Option<DeviceRow> = sqlx::query_as(concat!(
        "update devices set status = 'REVOKED', revoked_at = $3, revoked_by = $4, pairing_code_hash = null
         where id = $1 and festival_id = $2 and status <> 'REVOKED' returning ",
        columns!()
    ))
    .bind(id)
    .bind(festival_id)
    .bind(now)
    .bind(by)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = revoked {
        return Ok(Some((row, true)));
    }
    Ok(find(conn, id).await?.filter(|d| d.festival_id == festival_id).map(|d| (d, false)))
}

pub async fn count(conn: &mut PgConnection, festival_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from devices where festival_id = $1").bind(festival_id).fetch_one(conn).await
}
