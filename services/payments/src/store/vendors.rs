//! Vendors' connected accounts and their debts.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VendorAccountRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub vendor_id: Uuid,
    pub display_name: String,
    pub provider_account_id: String,
    pub commission_bps: i32,
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
    pub details_submitted: bool,
    pub created_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "id, festival_id, vendor_id, display_name, provider_account_id, commission_bps, charges_enabled, \
         payouts_enabled, details_submitted, created_at"
    };
}

/// One account per vendor and festival.
pub const VENDOR_UNIQUE: &str = "vendor_accounts_vendor_key";

pub async fn insert(conn: &mut PgConnection, a: &VendorAccountRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into vendor_accounts (id, festival_id, vendor_id, display_name, provider_account_id, commission_bps, \
         charges_enabled, payouts_enabled, details_submitted, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(a.id)
    .bind(a.festival_id)
    .bind(a.vendor_id)
    .bind(&a.display_name)
    .bind(&a.provider_account_id)
    .bind(a.commission_bps)
    .bind(a.charges_enabled)
    .bind(a.payouts_enabled)
    .bind(a.details_submitted)
    .bind(a.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<VendorAccountRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from vendor_accounts where id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The vendor's account at the festival, if it has one.
pub async fn of_vendor(
    conn: &mut PgConnection,
    festival_id: Uuid,
    vendor_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select id from vendor_accounts where festival_id = $1 and vendor_id = $2")
        .bind(festival_id)
        .bind(vendor_id)
        .fetch_optional(conn)
        .await
}

pub async fn of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<VendorAccountRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from vendor_accounts where festival_id = $1 order by display_name, id"
    ))
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

/// What the provider says of an account, as of `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
    pub details_submitted: bool,
    pub at: DateTime<Utc>,
}

/// Records what the provider says of an account, unless what we hold is newer (a late
/// event never undoes a later state). `None`: not one of ours, or older.
pub async fn set_state(
    conn: &mut PgConnection,
    provider_account_id: &str,
    s: &State,
) -> Result<Option<VendorAccountRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "update vendor_accounts set charges_enabled = $2, payouts_enabled = $3, details_submitted = $4, \
         state_at = $5, updated_at = now() \
         where provider_account_id = $1 and (state_at is null or state_at <= $5) returning ",
        columns!()
    ))
    .bind(provider_account_id)
    .bind(s.charges_enabled)
    .bind(s.payouts_enabled)
    .bind(s.details_submitted)
    .bind(s.at)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DebtRow {
    pub id: Uuid,
    pub vendor_account_id: Uuid,
    pub refund_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

/// Records what a vendor owes for a refund paid from the platform's balance (once per
/// refund).
pub async fn add_debt(conn: &mut PgConnection, d: &DebtRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into vendor_debts (id, vendor_account_id, refund_id, amount_minor, currency, created_at) \
         values ($1, $2, $3, $4, $5, $6) on conflict (refund_id) do nothing",
    )
    .bind(d.id)
    .bind(d.vendor_account_id)
    .bind(d.refund_id)
    .bind(d.amount_minor)
    .bind(&d.currency)
    .bind(d.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A refund that had succeeded failed after all: the vendor owes nothing for it.
pub async fn drop_open_debt(conn: &mut PgConnection, refund_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("delete from vendor_debts where refund_id = $1 and settled_at is null")
        .bind(refund_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn debts_of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<DebtRow>, sqlx::Error> {
    sqlx::query_as(
        "select d.id, d.vendor_account_id, d.refund_id, d.amount_minor, d.currency, d.created_at, d.settled_at \
         from vendor_debts d join vendor_accounts a on a.id = d.vendor_account_id \
         where a.festival_id = $1 order by d.created_at, d.id",
    )
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

/// The debt, locked, and its account's festival.
pub async fn lock_debt(conn: &mut PgConnection, id: Uuid) -> Result<Option<(DebtRow, Uuid)>, sqlx::Error> {
    let debt: Option<DebtRow> = sqlx::query_as(
        "select id, vendor_account_id, refund_id, amount_minor, currency, created_at, settled_at \
         from vendor_debts where id = $1 for update",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(debt) = debt else { return Ok(None) };
    let festival: Uuid = sqlx::query_scalar("select festival_id from vendor_accounts where id = $1")
        .bind(debt.vendor_account_id)
        .fetch_one(conn)
        .await?;
    Ok(Some((debt, festival)))
}

pub async fn settle_debt(conn: &mut PgConnection, id: Uuid, by: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("update vendor_debts set settled_at = $2, settled_by = $3 where id = $1 and settled_at is null")
        .bind(id)
        .bind(at)
        .bind(by)
        .execute(conn)
        .await?;
    Ok(())
}

/// A vendor sale with its succeeded refunds, for the report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SaleRow {
    pub vendor_account_id: Uuid,
    pub amount_minor: i64,
    pub application_fee_minor: i64,
    /// `(amount, reversed)` of each succeeded refund.
    pub refunds: Vec<i64>,
    pub reversed: Vec<bool>,
}

/// The festival's captured vendor sales (completed or refunded since).
pub async fn sales_of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<SaleRow>, sqlx::Error> {
    sqlx::query_as(
        "select p.vendor_account_id, p.amount_minor, p.application_fee_minor,
                coalesce(array_agg(r.amount_minor order by r.id) filter (where r.status = 'SUCCEEDED'), '{}') as refunds,
                coalesce(array_agg(r.reverse_transfer order by r.id) filter (where r.status = 'SUCCEEDED'), '{}') as reversed
           from payments p left join refunds r on r.payment_id = p.id
          where p.festival_id = $1 and p.vendor_account_id is not null and p.status in ('COMPLETED', 'REFUNDED')
          group by p.id",
    )
    .bind(festival_id)
    .fetch_all(conn)
    .await
}
