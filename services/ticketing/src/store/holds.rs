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
    pub total_minor: i64,
    pub currency: String,
    pub expires_at: DateTime<Utc>,
    pub extended: bool,
    pub order_id: Option<Uuid>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    pub category_id: Uuid,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

macro_rules! columns {
    () => {
        "id, festival_id, user_id, status, total_minor, currency, expires_at, extended, order_id"
    };
}

pub async fn insert(conn: &mut PgConnection, h: &HoldRow, items: &[ItemRow]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into holds (id, festival_id, user_id, status, total_minor, currency, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(h.id)
    .bind(h.festival_id)
    .bind(h.user_id)
    .bind(h.status.as_str())
    .bind(h.total_minor)
    .bind(&h.currency)
    .bind(h.expires_at)
    .execute(&mut *conn)
    .await?;
    let categories: Vec<Uuid> = items.iter().map(|i| i.category_id).collect();
    let quantities: Vec<i32> = items.iter().map(|i| i.quantity).collect();
    let prices: Vec<i64> = items.iter().map(|i| i.unit_price_minor).collect();
    sqlx::query(
        "insert into hold_items (hold_id, category_id, quantity, unit_price_minor)
         select $1, c, q, p from unnest($2::uuid[], $3::int[], $4::bigint[]) as i(c, q, p)",
    )
    .bind(h.id)
    .bind(&categories)
    .bind(&quantities)
    .bind(&prices)
    .execute(conn)
    .await?;
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
        "select category_id, quantity, unit_price_minor from hold_items where hold_id = $1 order by category_id",
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

/// Active holds past their expiry, oldest first, locked; holds another sweeper or a
/// checkout has locked are skipped.
pub async fn lock_expired(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<HoldRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from holds where status = 'ACTIVE' and expires_at <= $1
         order by expires_at limit $2 for update skip locked"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}
