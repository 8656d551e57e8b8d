//! The end of the festival: its refund policy, the payouts holders asked for, and the
//! SEPA files that pay them.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::payouts::Policy;

festival_platform::text_enum! {
    PayoutStatus {
        Pending = "PENDING",
        Exported = "EXPORTED",
        Paid = "PAID",
        Returned = "RETURNED",
        Donated = "DONATED",
    }
}

const POLICY: &str = "select fee_minor, min_payout_minor, deadline, unclaimed, debtor_name, debtor_iban, debtor_bic,
    batch_max from payout_policies where festival_id = $1";

/// The festival's policy (the defaults until an organiser sets one).
pub async fn policy(conn: &mut PgConnection, festival: Uuid) -> Result<Policy, sqlx::Error> {
    let found: Option<Policy> = sqlx::query_as(POLICY).bind(festival).fetch_optional(conn).await?;
    Ok(found.unwrap_or_default())
}

/// The stored policy, its row locked until the caller's transaction ends (made with the
/// defaults if there was none).
pub async fn lock_policy(conn: &mut PgConnection, festival: Uuid) -> Result<Policy, sqlx::Error> {
    sqlx::query("insert into payout_policies (festival_id) values ($1) on conflict do nothing")
        .bind(festival)
        .execute(&mut *conn)
        .await?;
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{POLICY} for update"))).bind(festival).fetch_one(conn).await
}

pub async fn set_policy(conn: &mut PgConnection, festival: Uuid, p: &Policy) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into payout_policies (festival_id, fee_minor, min_payout_minor, deadline, unclaimed, debtor_name,
             debtor_iban, debtor_bic, batch_max)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         on conflict (festival_id) do update set fee_minor = $2, min_payout_minor = $3, deadline = $4, unclaimed = $5,
             debtor_name = $6, debtor_iban = $7, debtor_bic = $8, batch_max = $9, updated_at = now()",
    )
    .bind(festival)
    .bind(p.fee_minor)
    .bind(p.min_payout_minor)
    .bind(p.deadline)
    .bind(p.unclaimed.as_str())
    .bind(&p.debtor_name)
    .bind(&p.debtor_iban)
    .bind(&p.debtor_bic)
    .bind(p.batch_max)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PayoutRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub wallet_id: Uuid,
    pub transaction_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: PayoutStatus,
    pub balance_minor: i64,
    pub fee_minor: i64,
    pub payout_minor: i64,
    pub currency: String,
    pub iban: String,
    pub account_holder: String,
    pub requested_at: DateTime<Utc>,
    pub batch_id: Option<Uuid>,
}

const PAYOUT: &str =
    "select id, festival_id, wallet_id, transaction_id, status, balance_minor, fee_minor, payout_minor,
    currency, iban, account_holder, requested_at, batch_id from payouts";

pub async fn insert(conn: &mut PgConnection, p: &PayoutRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into payouts (id, festival_id, wallet_id, transaction_id, status, balance_minor, fee_minor, payout_minor,
             currency, iban, account_holder, requested_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(p.id)
    .bind(p.festival_id)
    .bind(p.wallet_id)
    .bind(p.transaction_id)
    .bind(p.status.as_str())
    .bind(p.balance_minor)
    .bind(p.fee_minor)
    .bind(p.payout_minor)
    .bind(&p.currency)
    .bind(&p.iban)
    .bind(&p.account_holder)
    .bind(p.requested_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The oldest payouts waiting for a file, locked; rows another export holds are
/// skipped, so two exports at once write disjoint files.
pub async fn lock_pending(conn: &mut PgConnection, festival: Uuid, limit: i32) -> Result<Vec<PayoutRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PAYOUT} where festival_id = $1 and status = 'PENDING' order by requested_at, id limit $2
         for update skip locked"
    )))
    .bind(festival)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BatchRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub payouts: i32,
    pub total_minor: i64,
    pub currency: String,
    pub xml: String,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// Stores the file and marks its payouts exported in it.
pub async fn insert_batch(
    conn: &mut PgConnection,
    b: &BatchRow,
    payouts: &[Uuid],
    by: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "with b as (
             insert into payout_batches (id, festival_id, payouts, total_minor, currency, xml, created_at, created_by)
             values ($1, $2, $3, $4, $5, $6, $7, $8) returning id)
         update payouts set status = 'EXPORTED', batch_id = (select id from b)
         where id = any($9) and status = 'PENDING'",
    )
    .bind(b.id)
    .bind(b.festival_id)
    .bind(b.payouts)
    .bind(b.total_minor)
    .bind(&b.currency)
    .bind(&b.xml)
    .bind(b.created_at)
    .bind(by)
    .bind(payouts)
    .execute(conn)
    .await?;
    Ok(())
}

/// The festival's files, newest first, after the cursor (created_at, id), without XML.
pub async fn batches(
    conn: &mut PgConnection,
    festival: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<BatchRow>, sqlx::Error> {
    let (at, id) = after.unzip();
    sqlx::query_as(
        "select id, festival_id, payouts, total_minor, currency, '' as xml, created_at, confirmed_at from payout_batches
         where festival_id = $1 and ($2::timestamptz is null or (created_at, id) < ($2, $3))
         order by created_at desc, id desc limit $4",
    )
    .bind(festival)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn batch(conn: &mut PgConnection, festival: Uuid, id: Uuid) -> Result<Option<BatchRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, festival_id, payouts, total_minor, currency, xml, created_at, confirmed_at from payout_batches
         where festival_id = $1 and id = $2 for update",
    )
    .bind(festival)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Wallets of the festival still holding money, oldest first, after `after`.
pub async fn unclaimed_wallets(
    conn: &mut PgConnection,
    festival: Uuid,
    after: Uuid,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select id from wallets where festival_id = $1 and status = 'ACTIVE' and balance_minor > 0 and id > $2
         order by id limit $3",
    )
    .bind(festival)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The close-out report's figures, in one read.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Figures {
    pub outstanding_wallets: i64,
    pub outstanding_minor: i64,
    pub pending_payouts: i64,
    pub pending_minor: i64,
    pub exported_payouts: i64,
    pub exported_minor: i64,
    pub donated_minor: i64,
    pub fees_minor: i64,
    pub unclaimed_kept_minor: i64,
}

pub async fn figures(conn: &mut PgConnection, festival: Uuid) -> Result<Figures, sqlx::Error> {
    sqlx::query_as(
        "select
             (select count(*) from wallets where festival_id = $1 and balance_minor > 0) as outstanding_wallets,
             (select coalesce(sum(balance_minor), 0)::bigint from wallets where festival_id = $1) as outstanding_minor,
             (select count(*) from payouts where festival_id = $1 and status = 'PENDING') as pending_payouts,
             (select coalesce(sum(payout_minor), 0)::bigint from payouts where festival_id = $1 and status = 'PENDING')
                 as pending_minor,
             (select count(*) from payouts where festival_id = $1 and status in ('EXPORTED', 'PAID'))
                 as exported_payouts,
             (select coalesce(sum(payout_minor), 0)::bigint from payouts
                  where festival_id = $1 and status in ('EXPORTED', 'PAID')) as exported_minor,
             (select coalesce(-sum(e.amount_minor), 0)::bigint from entries e
                  join accounts a on a.id = e.account_id and a.kind = 'DONATIONS' where a.festival_id = $1)
                 as donated_minor,
             (select coalesce(-sum(e.amount_minor), 0)::bigint from entries e
                  join accounts a on a.id = e.account_id and a.kind = 'PLATFORM_FEES' where a.festival_id = $1)
                 as fees_minor,
             (select coalesce(-sum(e.amount_minor), 0)::bigint from entries e
                  join accounts a on a.id = e.account_id and a.kind = 'UNCLAIMED' where a.festival_id = $1)
                 as unclaimed_kept_minor",
    )
    .bind(festival)
    .fetch_one(conn)
    .await
}

/// Marks a locked batch confirmed and its exported payouts paid; returns what they owe.
pub async fn confirm_batch(conn: &mut PgConnection, batch: Uuid, at: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    sqlx::query("update payout_batches set confirmed_at = $2 where id = $1")
        .bind(batch)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar(
        "with paid as (update payouts set status = 'PAID' where batch_id = $1 and status = 'EXPORTED'
                       returning payout_minor)
         select coalesce(sum(payout_minor), 0)::bigint from paid",
    )
    .bind(batch)
    .fetch_one(conn)
    .await
}

/// The payout, locked.
pub async fn lock(conn: &mut PgConnection, festival: Uuid, id: Uuid) -> Result<Option<PayoutRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{PAYOUT} where festival_id = $1 and id = $2 for update")))
        .bind(festival)
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn mark_returned(conn: &mut PgConnection, id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update payouts set status = 'RETURNED', returned_reason = $2 where id = $1")
        .bind(id)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}
