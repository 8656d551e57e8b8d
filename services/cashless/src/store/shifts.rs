//! Cashiers' shifts at the desks and their drawers.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::cash::Count;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShiftRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub cashier_id: Uuid,
    pub drawer_account: Uuid,
    pub currency: String,
    pub opened_at: DateTime<Utc>,
    pub float_minor: i64,
    pub to_safe_minor: i64,
    pub from_safe_minor: i64,
    pub closed_at: Option<DateTime<Utc>>,
    pub counted_minor: Option<i64>,
    pub expected_minor: Option<i64>,
}

const SHIFT: &str = "select id, festival_id, cashier_id, drawer_account, currency, opened_at, float_minor,
    to_safe_minor, from_safe_minor, closed_at, counted_minor, expected_minor from cash_shifts";

/// The index that keeps one open shift per cashier and festival.
pub const OPEN_UNIQUE: &str = "cash_shifts_open_idx";

pub async fn open(conn: &mut PgConnection, s: &ShiftRow, float: &Count) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into cash_shifts (id, festival_id, cashier_id, drawer_account, currency, opened_at,
             float_denominations, float_counts, float_minor)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(s.id)
    .bind(s.festival_id)
    .bind(s.cashier_id)
    .bind(s.drawer_account)
    .bind(&s.currency)
    .bind(s.opened_at)
    .bind(float.denominations())
    .bind(float.pieces())
    .bind(s.float_minor)
    .execute(conn)
    .await?;
    Ok(())
}

/// The shift, locked until the caller's transaction ends.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<ShiftRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SHIFT} where id = $1 for update"))).bind(id).fetch_optional(conn).await
}

/// The cashier's open shift at the festival, share-locked: a cash top-up into its
/// drawer and the shift's close are one after the other.
pub async fn open_of(conn: &mut PgConnection, festival: Uuid, cashier: Uuid) -> Result<Option<ShiftRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SHIFT} where festival_id = $1 and cashier_id = $2 and closed_at is null for share"
    )))
    .bind(festival)
    .bind(cashier)
    .fetch_optional(conn)
    .await
}

pub async fn list(conn: &mut PgConnection, festival: Uuid) -> Result<Vec<ShiftRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SHIFT} where festival_id = $1 order by opened_at desc, id desc limit 500"
    )))
    .bind(festival)
    .fetch_all(conn)
    .await
}

/// Counts a move to (`to_safe`) or from the safe.
pub async fn moved(conn: &mut PgConnection, id: Uuid, to_safe: bool, amount: i64) -> Result<(), sqlx::Error> {
    let sql = if to_safe {
        "update cash_shifts set to_safe_minor = to_safe_minor + $2 where id = $1"
    } else {
        "update cash_shifts set from_safe_minor = from_safe_minor + $2 where id = $1"
    };
    sqlx::query(sql).bind(id).bind(amount).execute(conn).await?;
    Ok(())
}

pub async fn close(
    conn: &mut PgConnection,
    id: Uuid,
    counted: &Count,
    expected: i64,
    at: DateTime<Utc>,
    by: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update cash_shifts set closed_at = $2, closed_by = $3, counted_denominations = $4, counted_counts = $5,
             counted_minor = $6, expected_minor = $7
         where id = $1",
    )
    .bind(id)
    .bind(at)
    .bind(by)
    .bind(counted.denominations())
    .bind(counted.pieces())
    .bind(counted.total())
    .bind(expected)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a drawer account holds (debit-normal: the sum of its entries).
pub async fn drawer_holds(conn: &mut PgConnection, account: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select coalesce(sum(amount_minor), 0)::bigint from entries where account_id = $1")
        .bind(account)
        .fetch_one(conn)
        .await
}

/// The cash top-ups booked into a drawer.
pub async fn cash_top_ups(conn: &mut PgConnection, account: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select coalesce(sum(e.amount_minor), 0)::bigint from entries e join transactions t on t.id = e.transaction_id
         where e.account_id = $1 and t.kind = 'TOPUP'",
    )
    .bind(account)
    .fetch_one(conn)
    .await
}
