//! Payments.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::status::{PaymentStatus, Purpose};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    #[sqlx(try_from = "String")]
    pub purpose: Purpose,
    pub reference: String,
    pub payer_user_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: String,
    pub refunded_minor: i64,
    pub provider_session_id: String,
    pub provider_intent_id: Option<String>,
    pub checkout_url: String,
    pub failure_reason: String,
    pub disputed: bool,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A vendor's sale (a destination charge), and the platform's fee on it.
    pub vendor_account_id: Option<Uuid>,
    pub application_fee_minor: i64,
}

macro_rules! columns {
    () => {
        "id, festival_id, purpose, reference, payer_user_id, status, amount_minor, currency, \
    refunded_minor, provider_session_id, provider_intent_id, checkout_url, failure_reason, disputed, expires_at, \
    created_at, updated_at, vendor_account_id, application_fee_minor"
    };
}

pub async fn insert(conn: &mut PgConnection, p: &PaymentRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into payments (id, festival_id, purpose, reference, payer_user_id, status, amount_minor, currency, \
         provider_session_id, checkout_url, expires_at, created_at, updated_at, vendor_account_id, \
         application_fee_minor) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14)",
    )
    .bind(p.id)
    .bind(p.festival_id)
    .bind(p.purpose.as_str())
    .bind(&p.reference)
    .bind(p.payer_user_id)
    .bind(p.status.as_str())
    .bind(p.amount_minor)
    .bind(&p.currency)
    .bind(&p.provider_session_id)
    .bind(&p.checkout_url)
    .bind(p.expires_at)
    .bind(p.created_at)
    .bind(p.vendor_account_id)
    .bind(p.application_fee_minor)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<PaymentRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from payments where id = $1")).bind(id).fetch_optional(conn).await
}

/// The payment, locked for a state change or a refund.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<PaymentRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from payments where id = $1 for update"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The payment of a provider checkout session, locked.
pub async fn lock_by_session(conn: &mut PgConnection, session_id: &str) -> Result<Option<PaymentRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from payments where provider_session_id = $1 for update"))
        .bind(session_id)
        .fetch_optional(conn)
        .await
}

/// The payment of a provider payment intent, locked.
pub async fn lock_by_intent(conn: &mut PgConnection, intent_id: &str) -> Result<Option<PaymentRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from payments where provider_intent_id = $1 for update"))
        .bind(intent_id)
        .fetch_optional(conn)
        .await
}

/// The completed payment of an owner's reference (a ticket order), if any.
pub async fn completed_for(
    conn: &mut PgConnection,
    purpose: Purpose,
    reference: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from payments where purpose = $1 and reference = $2 and status = 'COMPLETED' \
         order by created_at limit 1"
    ))
    .bind(purpose.as_str())
    .bind(reference)
    .fetch_optional(conn)
    .await
}

/// Records a state change (and, once known, the payment intent).
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: PaymentStatus,
    intent_id: Option<&str>,
    failure_reason: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update payments set status = $2, provider_intent_id = coalesce(provider_intent_id, $3), \
         failure_reason = $4, updated_at = $5 where id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(intent_id)
    .bind(failure_reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds `delta` (negative: a failed refund gives back) to what is refunded; the table's
/// check refuses more than the amount.
pub async fn add_refunded(
    conn: &mut PgConnection,
    id: Uuid,
    delta: i64,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "update payments set refunded_minor = refunded_minor + $2, updated_at = $3 where id = $1 \
         returning refunded_minor",
    )
    .bind(id)
    .bind(delta)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// Test-only unguarded write (race-hooks): sets what is refunded to a value computed
/// from an earlier, unlocked read, as a careless implementation would.
#[cfg(feature = "race-hooks")]
pub async fn set_refunded(conn: &mut PgConnection, id: Uuid, refunded: i64) -> Result<(), sqlx::Error> {
    sqlx::query("update payments set refunded_minor = $2 where id = $1").bind(id).bind(refunded).execute(conn).await?;
    Ok(())
}

pub async fn set_disputed(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("update payments set disputed = true, updated_at = $2 where id = $1")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// A page of a festival's payments, newest first, after the cursor `(created_at, id)`.
pub async fn page(
    conn: &mut PgConnection,
    festival_id: Uuid,
    status: Option<PaymentStatus>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<PaymentRow>, sqlx::Error> {
    let (at, id) = after.unzip();
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from payments where festival_id = $1 and ($2::text is null or status = $2) \
         and ($3::timestamptz is null or (created_at, id) < ($3, $4)) order by created_at desc, id desc limit $5"
    ))
    .bind(festival_id)
    .bind(status.map(|s| s.as_str()))
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A festival's payments created in `[start, end)` (at most `limit`), each with the sum
/// of its SUCCEEDED refunds.
pub async fn for_reconciliation(
    conn: &mut PgConnection,
    festival_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(PaymentRow, i64)>, sqlx::Error> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "select p.id, coalesce(sum(r.amount_minor) filter (where r.status = 'SUCCEEDED'), 0)::bigint
           from payments p left join refunds r on r.payment_id = p.id
          where p.festival_id = $1 and p.created_at >= $2 and p.created_at < $3
          group by p.id order by p.id limit $4",
    )
    .bind(festival_id)
    .bind(start)
    .bind(end)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let payments: Vec<PaymentRow> =
        sqlx::query_as(concat!("select ", columns!(), " from payments where id = any($1) order by id"))
            .bind(&ids)
            .fetch_all(conn)
            .await?;
    Ok(payments.into_iter().zip(rows).map(|(p, (_, refunded))| (p, refunded)).collect())
}

/// Which of `ids` are payments we have.
pub async fn existing(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select id from payments where id = any($1)").bind(ids).fetch_all(conn).await
}

/// Payments still PENDING past their checkout's expiry (the sweep's work). PROCESSING
/// ones (a bank debit, days) settle by their own webhooks and are left out, so they never
/// crowd out a checkout whose completion was lost.
pub async fn overdue(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<PaymentRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from payments where status = 'PENDING' and expires_at < $1 \
         order by expires_at limit $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}
