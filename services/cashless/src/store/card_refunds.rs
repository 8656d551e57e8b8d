//! Close-out refunds to cards: booked here, then asked of payments (see the migration).

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use crate::domain::card_refunds::Refundable;

festival_platform::text_enum! {
    /// BOOKED: out of the wallet, not yet accepted by payments; SENT: payments took it;
    /// CONFIRMED: payments reported it refunded; FAILED: payments refused it, booked back.
    CardRefundStatus { Booked = "BOOKED", Sent = "SENT", Confirmed = "CONFIRMED", Failed = "FAILED" }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CardRefundRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub wallet_id: Uuid,
    pub payment_id: Uuid,
    pub transaction_id: Uuid,
    pub amount_minor: i64,
    #[sqlx(try_from = "String")]
    pub status: CardRefundStatus,
    pub refund_id: Option<String>,
    pub booked_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, festival_id, wallet_id, payment_id, transaction_id, amount_minor, status, refund_id, booked_at";

/// The wallet's credited online top-ups, newest first, with what is left of each to go
/// back to its card (less reversals and card refunds under way). Read under the
/// wallet's lock.
pub async fn refundable(conn: &mut PgConnection, wallet: Uuid) -> Result<Vec<Refundable>, sqlx::Error> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "select t.payment_id, t.amount_minor - t.reversed_minor - coalesce((
                 select sum(r.amount_minor) from card_refunds r
                 where r.payment_id = t.payment_id and r.status in ('BOOKED', 'SENT')), 0)::bigint
         from online_top_ups t
         where t.wallet_id = $1 and t.status = 'CREDITED'
         order by t.heard_at desc, t.payment_id desc",
    )
    .bind(wallet)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(payment, left)| Refundable { payment, left }).collect())
}

/// Wallets of the festival that may hold money their holder's own cards loaded (more
/// loaded online than received from other wallets), by id after `after`, up to `limit`.
pub async fn wallets_holding_online(
    conn: &mut PgConnection,
    festival: Uuid,
    after: Uuid,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select id from wallets
         where festival_id = $1 and status = 'ACTIVE' and balance_minor > 0
           and online_minor > online_received_minor and id > $2
         order by id limit $3",
    )
    .bind(festival)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn insert(conn: &mut PgConnection, r: &CardRefundRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into card_refunds (id, festival_id, wallet_id, payment_id, transaction_id, amount_minor, status,
             booked_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(r.id)
    .bind(r.festival_id)
    .bind(r.wallet_id)
    .bind(r.payment_id)
    .bind(r.transaction_id)
    .bind(r.amount_minor)
    .bind(r.status.as_str())
    .bind(r.booked_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The festival's refunds payments has not taken yet, oldest first.
pub async fn booked(conn: &mut PgConnection, festival: Uuid, limit: i64) -> Result<Vec<CardRefundRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from card_refunds where festival_id = $1 and status = 'BOOKED' order by booked_at, id limit $2"
    )))
    .bind(festival)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<CardRefundRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!("select {COLUMNS} from card_refunds where id = $1 for update")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Payments took it: its refund id, unless its event already confirmed it.
pub async fn sent(conn: &mut PgConnection, id: Uuid, refund_id: &str, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update card_refunds set status = 'SENT', refund_id = $2, updated_at = $3
         where id = $1 and status = 'BOOKED' and refund_id is null",
    )
    .bind(id)
    .bind(refund_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ours and still under way, by payments' refund id. Locked.
pub async fn by_refund_id(
    conn: &mut PgConnection,
    payment: Uuid,
    refund_id: &str,
) -> Result<Option<CardRefundRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from card_refunds
         where refund_id = $1 and payment_id = $2 and status in ('BOOKED', 'SENT') for update"
    )))
    .bind(refund_id)
    .bind(payment)
    .fetch_optional(conn)
    .await
}

/// Whether a refund of `payment` was booked and payments' answer (its id) is not known
/// yet: a refund of it heard now may be that one.
pub async fn unanswered(conn: &mut PgConnection, payment: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from card_refunds
                        where payment_id = $1 and status = 'BOOKED' and refund_id is null)",
    )
    .bind(payment)
    .fetch_one(conn)
    .await
}

/// What of `payment` is on its way back to the card (booked or sent, not confirmed).
pub async fn in_flight(conn: &mut PgConnection, payment: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select coalesce(sum(amount_minor), 0)::bigint from card_refunds
         where payment_id = $1 and status in ('BOOKED', 'SENT')",
    )
    .bind(payment)
    .fetch_one(conn)
    .await
}

/// A refund heard before the run learned whose it is.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Parked {
    pub reversal_id: String,
    pub payment_id: Uuid,
    pub amount_minor: i64,
    pub parked_at: DateTime<Utc>,
}

pub async fn park(
    conn: &mut PgConnection,
    reversal: &str,
    payment: Uuid,
    festival: Uuid,
    amount: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into parked_reversals (reversal_id, payment_id, festival_id, amount_minor, parked_at)
         values ($1, $2, $3, $4, $5) on conflict do nothing",
    )
    .bind(reversal)
    .bind(payment)
    .bind(festival)
    .bind(amount)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn parked(conn: &mut PgConnection, festival: Uuid) -> Result<Vec<Parked>, sqlx::Error> {
    sqlx::query_as(
        "select reversal_id, payment_id, amount_minor, parked_at from parked_reversals where festival_id = $1
         order by parked_at, reversal_id",
    )
    .bind(festival)
    .fetch_all(conn)
    .await
}

/// Takes a parked refund out to decide on it (false: another run did).
pub async fn unpark(conn: &mut PgConnection, reversal: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("delete from parked_reversals where reversal_id = $1").bind(reversal).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// The festival's refunds payments took (sent or confirmed), those asked about longest
/// ago first, to ask payments whether the provider failed any since.
pub async fn answered(conn: &mut PgConnection, festival: Uuid, limit: i64) -> Result<Vec<CardRefundRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from card_refunds where festival_id = $1 and status in ('SENT', 'CONFIRMED')
         order by checked_at nulls first, booked_at, id limit $2"
    )))
    .bind(festival)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: CardRefundStatus,
    refund_id: Option<&str>,
    failure: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update card_refunds set status = $2, refund_id = coalesce(refund_id, $3), failure = $4, updated_at = $5
         where id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(refund_id)
    .bind(failure)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts and sums by status, for the close-out report.
pub async fn totals(conn: &mut PgConnection, festival: Uuid) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select status, count(*), coalesce(sum(amount_minor), 0)::bigint from card_refunds
         where festival_id = $1 group by status",
    )
    .bind(festival)
    .fetch_all(conn)
    .await
}

/// Payments was asked about these refunds now.
pub async fn checked(conn: &mut PgConnection, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("update card_refunds set checked_at = $2 where id = any($1)").bind(ids).bind(at).execute(conn).await?;
    Ok(())
}

/// Ours under any status, by payments' refund id: its status and when it last changed.
pub async fn status_of(
    conn: &mut PgConnection,
    refund_id: &str,
) -> Result<Option<(String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as("select status, updated_at from card_refunds where refund_id = $1")
        .bind(refund_id)
        .fetch_optional(conn)
        .await
}

/// Parked refunds still waiting for a run.
pub async fn parked_count(conn: &mut PgConnection, festival: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from parked_reversals where festival_id = $1")
        .bind(festival)
        .fetch_one(conn)
        .await
}

/// Serialises a festival's reversals with its close-out run (which holds the same lock
/// for its whole run, taken with `pg_try_advisory_xact_lock`): a refund or dispute heard
/// meanwhile waits for the run, so the two never interleave.
pub async fn serialise(conn: &mut PgConnection, festival: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))").bind(lock_key(festival)).execute(conn).await?;
    Ok(())
}

/// The advisory lock's key for a festival's close-out refunds.
pub fn lock_key(festival: Uuid) -> String {
    format!("cashless.card-refunds:{festival}")
}
