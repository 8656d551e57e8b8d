//! Refunds.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::status::RefundStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefundRow {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub amount_minor: i64,
    #[sqlx(try_from = "String")]
    pub status: RefundStatus,
    pub reason: String,
    pub requested_by: String,
    pub provider_refund_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Of a destination charge: take the vendor's share back (false once the vendor's
    /// balance could not cover it: the platform pays, the vendor owes).
    pub reverse_transfer: bool,
    /// When the provider was first asked for it (its key is fixed from then on).
    pub asked_at: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, payment_id, amount_minor, status, reason, requested_by, provider_refund_id, created_at, reverse_transfer, \
         asked_at"
    };
}

pub async fn insert(conn: &mut PgConnection, r: &RefundRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into refunds (id, payment_id, amount_minor, status, reason, requested_by, provider_refund_id, \
         created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(r.id)
    .bind(r.payment_id)
    .bind(r.amount_minor)
    .bind(r.status.as_str())
    .bind(&r.reason)
    .bind(&r.requested_by)
    .bind(&r.provider_refund_id)
    .bind(r.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn of_payment(conn: &mut PgConnection, payment_id: Uuid) -> Result<Vec<RefundRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from refunds where payment_id = $1 order by created_at, id"))
        .bind(payment_id)
        .fetch_all(conn)
        .await
}

/// Our refund of `payment_id` a provider event is about: by the provider's id, or by
/// ours (in its metadata, before we stored the provider's id). Locked.
pub async fn lock_for_event(
    conn: &mut PgConnection,
    payment_id: Uuid,
    provider_refund_id: &str,
    our_id: Option<Uuid>,
) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from refunds where payment_id = $1 and (provider_refund_id = $2 or id = $3) limit 1 for update"
    ))
    .bind(payment_id)
    .bind(provider_refund_id)
    .bind(our_id)
    .fetch_optional(conn)
    .await
}

pub async fn set_outcome(
    conn: &mut PgConnection,
    id: Uuid,
    status: RefundStatus,
    provider_refund_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update refunds set status = $2, provider_refund_id = coalesce(provider_refund_id, $3), updated_at = $4 \
         where id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(provider_refund_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The vendor's balance cannot cover the refund's transfer reversal: it is sent without
/// one (under another provider key). Only by the lease's holder (`mine`), which it renews
/// to `until`; `false` when the caller no longer holds it or the refund is no longer
/// unsent: it sends nothing more.
pub async fn stop_reversing(
    conn: &mut PgConnection,
    id: Uuid,
    mine: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update refunds set reverse_transfer = false, sending_until = $3, updated_at = now() \
         where id = $1 and sending_until = $2 and status = 'PENDING' and provider_refund_id is null",
    )
    .bind(id)
    .bind(mine)
    .bind(until)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records, before the provider is asked, that it is (its key is fixed from now on), and
/// renews the lease from `mine` to `until`. `false` when the caller lost the lease.
pub async fn mark_asked(
    conn: &mut PgConnection,
    id: Uuid,
    mine: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update refunds set asked_at = coalesce(asked_at, now()), sending_until = $3, updated_at = now() \
         where id = $1 and sending_until = $2 and status = 'PENDING' and provider_refund_id is null",
    )
    .bind(id)
    .bind(mine)
    .bind(until)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What the provider did with a vendor's share: reversed it, or not (the vendor owes it).
pub async fn set_reversed(conn: &mut PgConnection, id: Uuid, reversed: bool) -> Result<(), sqlx::Error> {
    sqlx::query("update refunds set reverse_transfer = $2 where id = $1").bind(id).bind(reversed).execute(conn).await?;
    Ok(())
}

/// Refunds booked but not yet accepted by the provider (it was down, or an owner's event
/// booked them) and held by no sender: the sweep sends them, with the same idempotency key.
pub async fn unsent(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<RefundRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from refunds where status = 'PENDING' and provider_refund_id is null \
         and (sending_until is null or sending_until < $1) order by created_at limit $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Takes the sender's lease on an unsent refund until `until`; `None` when it is sent,
/// settled or held by another sender.
pub async fn lease(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "update refunds set sending_until = $3 where id = $1 and status = 'PENDING' and provider_refund_id is null \
         and (sending_until is null or sending_until < $2) returning ",
        columns!()
    ))
    .bind(id)
    .bind(now)
    .bind(until)
    .fetch_optional(conn)
    .await
}

/// Gives the lease back (the provider could not be reached): the next sweep tries.
/// Gives the lease back, if the caller (`mine`) still holds it.
pub async fn release(conn: &mut PgConnection, id: Uuid, mine: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("update refunds set sending_until = null where id = $1 and sending_until = $2")
        .bind(id)
        .bind(mine)
        .execute(conn)
        .await?;
    Ok(())
}

/// What the provider confirmed paying back for a payment.
pub async fn succeeded_total(conn: &mut PgConnection, payment_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select coalesce(sum(amount_minor), 0)::bigint from refunds where payment_id = $1 and status = 'SUCCEEDED'",
    )
    .bind(payment_id)
    .fetch_one(conn)
    .await
}

pub async fn of_id(conn: &mut PgConnection, id: Uuid) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from refunds where id = $1")).bind(id).fetch_optional(conn).await
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from refunds where id = $1 for update"))
        .bind(id)
        .fetch_optional(conn)
        .await
}
