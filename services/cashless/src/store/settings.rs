//! Each festival's cashless rules (one row per known festival).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::limits::Limits;

const COLUMNS: &str = "min_top_up_minor, max_top_up_minor, max_balance_minor, max_charge_minor, daily_cap_minor,
    offline_limit_minor, low_balance_minor, void_window_seconds, replacement_fee_minor";

/// The defaults for a festival heard of for the first time.
pub async fn ensure(conn: &mut PgConnection, festival: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("insert into settings (festival_id) values ($1) on conflict do nothing")
        .bind(festival)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, festival: Uuid) -> Result<Option<Limits>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("select {COLUMNS} from settings where festival_id = $1")))
        .bind(festival)
        .fetch_optional(conn)
        .await
}

pub async fn update(conn: &mut PgConnection, festival: Uuid, l: &Limits) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update settings set min_top_up_minor = $2, max_top_up_minor = $3, max_balance_minor = $4,
             max_charge_minor = $5, daily_cap_minor = $6, offline_limit_minor = $7, low_balance_minor = $8,
             void_window_seconds = $9, replacement_fee_minor = $10, updated_at = now()
         where festival_id = $1",
    )
    .bind(festival)
    .bind(l.min_top_up_minor)
    .bind(l.max_top_up_minor)
    .bind(l.max_balance_minor)
    .bind(l.max_charge_minor)
    .bind(l.daily_cap_minor)
    .bind(l.offline_limit_minor)
    .bind(l.low_balance_minor)
    .bind(l.void_window_seconds)
    .bind(l.replacement_fee_minor)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
