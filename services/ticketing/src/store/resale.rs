//! Face-value resale: each festival's terms, and the listings of tickets handed back.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

festival_platform::text_enum! {
    ResaleStatus { Listed = "LISTED", Offered = "OFFERED", Sold = "SOLD", Withdrawn = "WITHDRAWN", Ended = "ENDED" }
}

/// One live listing per ticket.
pub const LIVE_UNIQUE: &str = "resale_listings_live_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub festival_id: Uuid,
    pub enabled: bool,
    pub fee_fixed_minor: i64,
    pub fee_basis_points: i32,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ListingRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub ticket_id: Uuid,
    pub order_id: Uuid,
    pub category_id: Uuid,
    pub seller_user_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: ResaleStatus,
    pub price_minor: i64,
    pub fee_minor: i64,
    pub payout_minor: i64,
    pub currency: String,
    pub hold_id: Option<Uuid>,
    pub new_ticket_id: Option<Uuid>,
    pub end_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sold_at: Option<DateTime<Utc>>,
    /// While offered: when the buyer's hold expires.
    pub offer_expires_at: Option<DateTime<Utc>>,
}

macro_rules! select {
    () => {
        "select l.id, l.festival_id, l.ticket_id, l.order_id, l.category_id, l.seller_user_id, l.status, l.price_minor,
                l.fee_minor, l.payout_minor, l.currency, l.hold_id, l.new_ticket_id, l.end_reason, l.created_at,
                l.sold_at, case when l.status = 'OFFERED' then h.expires_at end as offer_expires_at
         from resale_listings l left join holds h on h.id = l.hold_id"
    };
}

pub async fn policy(conn: &mut PgConnection, festival_id: Uuid) -> Result<Option<PolicyRow>, sqlx::Error> {
    sqlx::query_as(
        "select festival_id, enabled, fee_fixed_minor, fee_basis_points from resale_policies where festival_id = $1",
    )
    .bind(festival_id)
    .fetch_optional(conn)
    .await
}

pub async fn set_policy(
    conn: &mut PgConnection,
    p: &PolicyRow,
    by: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into resale_policies (festival_id, enabled, fee_fixed_minor, fee_basis_points, set_by, set_at)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (festival_id) do update set enabled = excluded.enabled,
             fee_fixed_minor = excluded.fee_fixed_minor, fee_basis_points = excluded.fee_basis_points,
             set_by = excluded.set_by, set_at = excluded.set_at",
    )
    .bind(p.festival_id)
    .bind(p.enabled)
    .bind(p.fee_fixed_minor)
    .bind(p.fee_basis_points)
    .bind(by)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert(conn: &mut PgConnection, l: &ListingRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into resale_listings (id, festival_id, ticket_id, order_id, category_id, seller_user_id, status,
             price_minor, fee_minor, payout_minor, currency, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(l.id)
    .bind(l.festival_id)
    .bind(l.ticket_id)
    .bind(l.order_id)
    .bind(l.category_id)
    .bind(l.seller_user_id)
    .bind(l.status.as_str())
    .bind(l.price_minor)
    .bind(l.fee_minor)
    .bind(l.payout_minor)
    .bind(&l.currency)
    .bind(l.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<ListingRow>, sqlx::Error> {
    sqlx::query_as(concat!(select!(), " where l.id = $1")).bind(id).fetch_optional(conn).await
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<ListingRow>, sqlx::Error> {
    sqlx::query("select 1 from resale_listings where id = $1 for update").bind(id).execute(&mut *conn).await?;
    find(conn, id).await
}

/// The listing, locked, unless another transaction holds it (the worker skips it).
pub async fn lock_unless_busy(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let row: Option<i32> = sqlx::query_scalar("select 1 from resale_listings where id = $1 for update skip locked")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

pub async fn of_seller(
    conn: &mut PgConnection,
    seller: Uuid,
    festival_id: Option<Uuid>,
) -> Result<Vec<ListingRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        select!(),
        " where l.seller_user_id = $1 and ($2::uuid is null or l.festival_id = $2)
          order by l.created_at desc, l.id limit 200"
    ))
    .bind(seller)
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

/// A festival's listings, newest first, of one status or all.
pub async fn of_festival(
    conn: &mut PgConnection,
    festival_id: Uuid,
    status: Option<ResaleStatus>,
    limit: i64,
) -> Result<Vec<ListingRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        select!(),
        " where l.festival_id = $1 and ($2::text is null or l.status = $2)
          order by l.created_at desc, l.id limit $3"
    ))
    .bind(festival_id)
    .bind(status.map(|s| s.as_str()))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// `(sold, paid back, kept as fees)` over a festival's sold listings.
pub async fn sold_totals(conn: &mut PgConnection, festival_id: Uuid) -> Result<(i64, i64, i64), sqlx::Error> {
    sqlx::query_as(
        "select count(*), coalesce(sum(payout_minor), 0)::bigint, coalesce(sum(fee_minor), 0)::bigint
         from resale_listings where festival_id = $1 and status = 'SOLD'",
    )
    .bind(festival_id)
    .fetch_one(conn)
    .await
}

/// Whether the ticket is listed (or on offer) now.
pub async fn live_of_ticket(conn: &mut PgConnection, ticket_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from resale_listings where ticket_id = $1 and status in ('LISTED', 'OFFERED'))",
    )
    .bind(ticket_id)
    .fetch_one(conn)
    .await
}

/// Ends a listing without a sale (withdrawn, or no longer for sale with `reason`).
pub async fn end(
    conn: &mut PgConnection,
    id: Uuid,
    status: ResaleStatus,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update resale_listings set status = $2, end_reason = $3, hold_id = null, updated_at = $4 where id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(reason)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn offer(conn: &mut PgConnection, id: Uuid, hold_id: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("update resale_listings set status = 'OFFERED', hold_id = $2, updated_at = $3 where id = $1")
        .bind(id)
        .bind(hold_id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn sold(conn: &mut PgConnection, id: Uuid, new_ticket: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update resale_listings set status = 'SOLD', new_ticket_id = $2, sold_at = $3, updated_at = $3 where id = $1",
    )
    .bind(id)
    .bind(new_ticket)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts back on the list the offers whose hold ended unsold (expired, released): the
/// next in line gets their turn.
pub async fn relist_lapsed(conn: &mut PgConnection, at: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "update resale_listings l set status = 'LISTED', hold_id = null, updated_at = $1
         from holds h where h.id = l.hold_id and l.status = 'OFFERED' and h.status in ('EXPIRED', 'RELEASED')",
    )
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Listings the worker has something to do for, oldest first: listed ones someone other
/// than their seller waits for, and listed or offered ones that may no longer be for
/// sale (the ticket revoked or used, the festival no longer selling or its gates about
/// to open, the category's sale or transfers closed, resale turned off). The worker
/// decides under the listing's lock.
pub async fn due(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select l.id from resale_listings l
         join tickets t on t.id = l.ticket_id
         join festivals f on f.id = l.festival_id
         join categories c on c.id = l.category_id
         left join resale_policies p on p.festival_id = l.festival_id
         where l.status in ('LISTED', 'OFFERED') and (
             t.status <> 'SOLD' or f.deleted or f.status <> 'PUBLISHED' or f.start_time <= $1
             or c.sale_end <= $1 or c.transfer_cutoff <= $1 or not coalesce(p.enabled, false)
             or (l.status = 'LISTED' and exists (select 1 from waitlist_entries e
                 where e.category_id = l.category_id and e.status = 'WAITING' and e.user_id <> l.seller_user_id)))
         order by l.created_at, l.id limit $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}
