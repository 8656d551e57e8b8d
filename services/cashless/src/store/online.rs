//! Online top-ups as payments reported them, and the reversals applied to them.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

festival_platform::text_enum! {
    /// CREDITED: the wallet got it; REFUSED: no wallet of its payer; REVERSED: a refund or
    /// dispute was heard first, nothing is credited.
    TopUpStatus { Credited = "CREDITED", Refused = "REFUSED", Reversed = "REVERSED" }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OnlineTopUp {
    pub payment_id: Uuid,
    pub wallet_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub status: TopUpStatus,
    pub amount_minor: i64,
    pub reversed_minor: i64,
    /// Left out of reversals because a refund to the card was under way.
    pub capped_minor: i64,
}

/// The first word heard of a payment.
pub struct Heard {
    pub payment: Uuid,
    pub festival: Uuid,
    pub wallet: Option<Uuid>,
    pub status: TopUpStatus,
    pub amount: i64,
    pub reversed: i64,
    pub at: DateTime<Utc>,
}

/// Records a payment's first word; false if it was heard of before (a duplicate, or a
/// reversal heard first).
pub async fn claim(conn: &mut PgConnection, h: &Heard) -> Result<bool, sqlx::Error> {
    let Heard { payment, festival, wallet, status, amount, reversed, at } = *h;
    let done = sqlx::query(
        "insert into online_top_ups (payment_id, festival_id, wallet_id, status, amount_minor, reversed_minor, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing",
    )
    .bind(payment)
    .bind(festival)
    .bind(wallet)
    .bind(status.as_str())
    .bind(amount)
    .bind(reversed)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The top-up, locked until the caller's transaction ends.
pub async fn lock(conn: &mut PgConnection, payment: Uuid) -> Result<Option<OnlineTopUp>, sqlx::Error> {
    sqlx::query_as(
        "select payment_id, wallet_id, status, amount_minor, reversed_minor, capped_minor from online_top_ups
         where payment_id = $1 for update",
    )
    .bind(payment)
    .fetch_optional(conn)
    .await
}

/// Applies a reversal once (false: this refund or dispute was applied before).
pub async fn claim_reversal(
    conn: &mut PgConnection,
    reversal: &str,
    payment: Uuid,
    amount: i64,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into online_top_up_reversals (reversal_id, payment_id, amount_minor, applied_at)
         values ($1, $2, $3, $4) on conflict do nothing",
    )
    .bind(reversal)
    .bind(payment)
    .bind(amount)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn reversed(
    conn: &mut PgConnection,
    payment: Uuid,
    amount: i64,
    uncollected: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update online_top_ups set reversed_minor = reversed_minor + $2, uncollected_minor = uncollected_minor + $3,
             updated_at = $4
         where payment_id = $1",
    )
    .bind(payment)
    .bind(amount)
    .bind(uncollected)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn add_capped(conn: &mut PgConnection, payment: Uuid, change: i64) -> Result<(), sqlx::Error> {
    sqlx::query("update online_top_ups set capped_minor = greatest(capped_minor + $2, 0) where payment_id = $1")
        .bind(payment)
        .bind(change)
        .execute(conn)
        .await?;
    Ok(())
}

/// Blocks every active band of a wallet (a disputed top-up's).
pub async fn block_bands(
    conn: &mut PgConnection,
    wallet: Uuid,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "update wristbands set status = 'BLOCKED', blocked_at = $3, block_reason = $2
         where wallet_id = $1 and status = 'ACTIVE'",
    )
    .bind(wallet)
    .bind(reason)
    .bind(at)
    .execute(conn)
    .await?
    .rows_affected())
}
