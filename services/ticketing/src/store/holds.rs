use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::status::HoldStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HoldRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub user_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: HoldStatus,
    /// After its promo codes' discount.
    pub total_minor: i64,
    pub discount_minor: i64,
    pub currency: String,
    pub expires_at: DateTime<Utc>,
    pub extended: bool,
    pub order_id: Option<Uuid>,
    /// Add-ons bought for this ticket the buyer holds.
    pub for_ticket_id: Option<Uuid>,
    /// The partner voucher whose reservation it took from.
    pub voucher_id: Option<Uuid>,
    /// The resale listing it offers (it takes no stock: see `resale`).
    pub resale_id: Option<Uuid>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    pub category_id: Uuid,
    pub quantity: i32,
    pub unit_price_minor: i64,
    /// What each of its tickets costs after the hold's promo codes.
    pub net_unit_price_minor: i64,
    /// The quotas its tickets were taken from.
    pub quota_ids: Vec<Uuid>,
}

macro_rules! columns {
    () => {
        "id, festival_id, user_id, status, total_minor, discount_minor, currency, expires_at, extended, order_id, for_ticket_id, voucher_id, resale_id"
    };
}

pub async fn insert(conn: &mut PgConnection, h: &HoldRow, items: &[ItemRow]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into holds (id, festival_id, user_id, status, total_minor, discount_minor, currency, expires_at, extended,
             for_ticket_id, voucher_id, resale_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(h.id)
    .bind(h.festival_id)
    .bind(h.user_id)
    .bind(h.status.as_str())
    .bind(h.total_minor)
    .bind(h.discount_minor)
    .bind(&h.currency)
    .bind(h.expires_at)
    .bind(h.extended)
    .bind(h.for_ticket_id)
    .bind(h.voucher_id)
    .bind(h.resale_id)
    .execute(&mut *conn)
    .await?;
    for item in items {
        sqlx::query(
            "insert into hold_items (hold_id, category_id, quantity, unit_price_minor, net_unit_price_minor, quota_ids)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(h.id)
        .bind(item.category_id)
        .bind(item.quantity)
        .bind(item.unit_price_minor)
        .bind(item.net_unit_price_minor)
        .bind(&item.quota_ids)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<HoldRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from holds where id = $1")).bind(id).fetch_optional(conn).await
}

/// The hold, locked: checkout, release, extension and expiry of one hold serialise here.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<HoldRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from holds where id = $1 for update"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn items(conn: &mut PgConnection, hold_id: Uuid) -> Result<Vec<ItemRow>, sqlx::Error> {
    sqlx::query_as(
        "select category_id, quantity, unit_price_minor, coalesce(net_unit_price_minor, unit_price_minor) as net_unit_price_minor,
                quota_ids
         from hold_items where hold_id = $1 order by category_id",
    )
    .bind(hold_id)
    .fetch_all(conn)
    .await
}

pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: HoldStatus,
    order_id: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query("update holds set status = $2, order_id = $3, updated_at = now() where id = $1")
        .bind(id)
        .bind(status.as_str())
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn extend(conn: &mut PgConnection, id: Uuid, expires_at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("update holds set expires_at = $2, extended = true, updated_at = now() where id = $1")
        .bind(id)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ids of active holds past their expiry, oldest first (each is then ended in its own
/// transaction, see `lifecycle`).
pub async fn expired(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select id from holds where status = 'ACTIVE' and expires_at <= $1 order by expires_at limit $2")
        .bind(now)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// The hold, locked, unless someone else holds it (a checkout or another sweeper).
pub async fn lock_unless_busy(conn: &mut PgConnection, id: Uuid) -> Result<Option<HoldRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from holds where id = $1 for update skip locked"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Tickets in active holds, per category, of a festival (resale offers take no stock:
/// their place is counted as sold, the seller's).
pub async fn held_per_category(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select i.category_id, sum(i.quantity)::bigint from hold_items i join holds h on h.id = i.hold_id
         where h.festival_id = $1 and h.status = 'ACTIVE' and h.resale_id is null group by i.category_id",
    )
    .bind(festival_id)
    .fetch_all(conn)
    .await
}
