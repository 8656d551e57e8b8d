//! Partner vouchers: a reservation of places of one category, taken by holds made with
//! the voucher's code (`used`), freed when the voucher closes.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VoucherRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub category_id: Uuid,
    pub partner: String,
    pub max_uses: i32,
    pub used: i32,
    /// The price of its tickets; none: the category's.
    pub price_minor: Option<i64>,
    /// The quotas its places were taken from.
    pub quota_ids: Vec<Uuid>,
    pub valid_until: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "id, festival_id, category_id, partner, max_uses, used, price_minor, quota_ids, valid_until, closed_at, created_at"
    };
}

pub const CODE_UNIQUE: &str = "vouchers_code_key";

pub async fn insert(
    conn: &mut PgConnection,
    v: &VoucherRow,
    code_hash: &[u8],
    created_by: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into vouchers (id, festival_id, category_id, partner, code_hash, max_uses, price_minor, quota_ids,
             valid_until, created_by, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(v.id)
    .bind(v.festival_id)
    .bind(v.category_id)
    .bind(&v.partner)
    .bind(code_hash)
    .bind(v.max_uses)
    .bind(v.price_minor)
    .bind(&v.quota_ids)
    .bind(v.valid_until)
    .bind(created_by)
    .bind(v.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_by_code(
    conn: &mut PgConnection,
    festival_id: Uuid,
    code_hash: &[u8],
) -> Result<Option<VoucherRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from vouchers where festival_id = $1 and code_hash = $2"))
        .bind(festival_id)
        .bind(code_hash)
        .fetch_optional(conn)
        .await
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<VoucherRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from vouchers where id = $1")).bind(id).fetch_optional(conn).await
}

/// The voucher, locked: closing it and giving places back to it serialise here.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<VoucherRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from vouchers where id = $1 for update"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<VoucherRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from vouchers where festival_id = $1 order by created_at, id"))
        .bind(festival_id)
        .fetch_all(conn)
        .await
}

pub async fn count(conn: &mut PgConnection, festival_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from vouchers where festival_id = $1").bind(festival_id).fetch_one(conn).await
}

/// Takes `n` of an open, unexpired voucher's places in one conditional statement (the
/// last use goes to exactly one buyer). Returns whether it did.
pub async fn take(conn: &mut PgConnection, id: Uuid, n: i32, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    if cfg!(feature = "race-hooks") {
        // Test-only: read, pause, write without the condition, so the race test's
        // negative control can see the last place taken twice.
        let (used, max): (i32, i32) =
            sqlx::query_as("select used, max_uses from vouchers where id = $1").bind(id).fetch_one(&mut *conn).await?;
        if used + n > max {
            return Ok(false);
        }
        #[cfg(feature = "race-hooks")]
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        sqlx::query("update vouchers set used = used + $2 where id = $1").bind(id).bind(n).execute(conn).await?;
        return Ok(true);
    }
    let done = sqlx::query(
        "update vouchers set used = used + $2
         where id = $1 and closed_at is null and valid_until > $3 and used + $2 <= max_uses",
    )
    .bind(id)
    .bind(n)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives `n` places of an unsold hold back to its voucher. `false` when the voucher is
/// closed: the places are not its any more, the caller frees them.
pub async fn give_back(conn: &mut PgConnection, id: Uuid, n: i32) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("update vouchers set used = used - $2 where id = $1 and closed_at is null")
        .bind(id)
        .bind(n)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Closes a locked, open voucher.
pub async fn close(conn: &mut PgConnection, id: Uuid, at: DateTime<Utc>) -> Result<VoucherRow, sqlx::Error> {
    sqlx::query_as(concat!("update vouchers set closed_at = $2 where id = $1 returning ", columns!()))
        .bind(id)
        .bind(at)
        .fetch_one(conn)
        .await
}

/// Open vouchers past their end.
pub async fn expired(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select id from vouchers where closed_at is null and valid_until <= $1 order by valid_until limit $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}
