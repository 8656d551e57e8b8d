use chrono::{DateTime, Utc};
use festival_platform::events::outbox::Queued;
use festival_platform::idempotency::Answered;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::status::{OrderStatus, PaymentMethod};
use crate::store::tickets::TicketRow;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub buyer_user_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub total_minor: i64,
    pub currency: String,
    #[sqlx(try_from = "String")]
    pub payment_method: PaymentMethod,
    pub hold_id: Option<Uuid>,
    pub created_by: Uuid,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Refunded so far (approved refund requests), never more than `total_minor`.
    pub refunded_minor: i64,
    /// The payments service's payment of a card order.
    pub payment_id: Option<Uuid>,
    /// Where the buyer pays, while AWAITING_PAYMENT.
    pub checkout_url: String,
}

macro_rules! columns {
    () => {
        "id, festival_id, buyer_user_id, status, total_minor, currency, payment_method, hold_id, created_by, cancelled_at, created_at, refunded_minor, payment_id, checkout_url"
    };
}

pub async fn insert(conn: &mut PgConnection, o: &OrderRow) -> Result<OrderRow, sqlx::Error> {
    sqlx::query_as(concat!("insert into orders (id, festival_id, buyer_user_id, status, total_minor, currency, payment_method, hold_id, created_by, created_at, payment_id, checkout_url)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) returning ", columns!()))
    .bind(o.id)
    .bind(o.festival_id)
    .bind(o.buyer_user_id)
    .bind(o.status.as_str())
    .bind(o.total_minor)
    .bind(&o.currency)
    .bind(o.payment_method.as_str())
    .bind(o.hold_id)
    .bind(o.created_by)
    .bind(o.created_at)
    .bind(o.payment_id)
    .bind(&o.checkout_url)
    .fetch_one(conn)
    .await
}

/// The order of a hold, if it has one.
pub async fn of_hold(conn: &mut PgConnection, hold_id: Uuid) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from orders where hold_id = $1"))
        .bind(hold_id)
        .fetch_optional(conn)
        .await
}

/// A card order's payment settled: PAID (tickets issued) or PAYMENT_FAILED.
pub async fn settle(conn: &mut PgConnection, id: Uuid, status: OrderStatus) -> Result<OrderRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "update orders set status = $2, checkout_url = '', updated_at = now() where id = $1 returning ",
        columns!()
    ))
    .bind(id)
    .bind(status.as_str())
    .fetch_one(conn)
    .await
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from orders where id = $1")).bind(id).fetch_optional(conn).await
}

/// The order, locked: two cancellations of one order serialise here.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from orders where id = $1 for update"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn cancel(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<OrderRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "update orders set status = 'CANCELLED', cancelled_at = $2, cancel_reason = $3, checkout_url = '', updated_at = now()
         where id = $1 returning ",
        columns!()
    ))
    .bind(id)
    .bind(at)
    .bind(reason)
    .fetch_one(conn)
    .await
}

/// Adds approved refunds to orders (`(order, amount)`); the table's check refuses a
/// refund past an order's total, failing the whole approval.
pub async fn add_refunds(conn: &mut PgConnection, refunds: &[(Uuid, i64)]) -> Result<(), sqlx::Error> {
    let (ids, amounts): (Vec<Uuid>, Vec<i64>) = refunds.iter().copied().unzip();
    sqlx::query(
        "update orders o set refunded_minor = o.refunded_minor + r.amount, updated_at = now()
         from unnest($1::uuid[], $2::bigint[]) as r(id, amount) where o.id = r.id",
    )
    .bind(&ids)
    .bind(&amounts)
    .execute(conn)
    .await?;
    Ok(())
}

/// (paid orders, their total, cancelled orders, their total, approved refunds) of a
/// festival; totals net of refunds, so each unit of money is counted once.
pub async fn totals(conn: &mut PgConnection, festival_id: Uuid) -> Result<(i64, i64, i64, i64, i64), sqlx::Error> {
    sqlx::query_as(
        "select count(*) filter (where status = 'PAID'),
                coalesce(sum(total_minor - refunded_minor) filter (where status = 'PAID'), 0)::bigint,
                count(*) filter (where status = 'CANCELLED'),
                coalesce(sum(total_minor - refunded_minor) filter (where status = 'CANCELLED'), 0)::bigint,
                coalesce(sum(refunded_minor), 0)::bigint
         from orders where festival_id = $1",
    )
    .bind(festival_id)
    .fetch_one(conn)
    .await
}

/// A paid order of one category, sold in one call (a box office, a partner), to be
/// written whole by [`write_sale`].
pub struct Sale<'a> {
    pub order: &'a OrderRow,
    pub category_id: Uuid,
    /// The quotas each ticket takes from.
    pub quota_ids: &'a [Uuid],
    pub tickets: &'a [TicketRow],
    pub paid: &'a Queued,
    pub answer: &'a Answered,
}

/// What [`write_sale`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Done,
    /// The festival stopped selling since its facts were read: nothing was written.
    FestivalClosed,
    /// The idempotency key is another command's: the transaction is aborted.
    KeyTaken,
}

/// Writes a [`Sale`] in one statement, inside the caller's transaction: the order (only
/// while its festival sells), its tickets, `order.paid`, and the idempotency key with
/// its answer. The caller takes the stock last, with its commit (see `stock`): the
/// statement's foreign-key checks (shared locks on the festival's and the category's
/// rows, which every buyer takes) run before the quota rows are locked.
pub async fn write_sale(conn: &mut PgConnection, sale: &Sale<'_>) -> Result<Written, sqlx::Error> {
    let o = sale.order;
    let ids: Vec<Uuid> = sale.tickets.iter().map(|t| t.id).collect();
    let credentials: Vec<&str> = sale.tickets.iter().map(|t| t.credential.as_str()).collect();
    let prices: Vec<i64> = sale.tickets.iter().map(|t| t.price_minor).collect();
    // `festival_on_sale`'s statuses.
    let written = sqlx::query_scalar::<_, i64>(
        "with o as (
             insert into orders (id, festival_id, buyer_user_id, status, total_minor, currency, payment_method,
                 created_by, created_at, checkout_url)
             select $1, $2, $3, $4, $5, $6, $7, $8, $9, ''
             where exists (select 1 from festivals where id = $2 and status in ('PUBLISHED', 'ONGOING'))
             returning id),
         t as (
             insert into tickets (id, festival_id, order_id, category_id, holder_user_id, status, credential,
                 quota_ids, issued_at, price_minor)
             select t.id, $2, o.id, $10, $3, 'SOLD', t.credential, $14, $9, t.price
             from o cross join unnest($11::uuid[], $12::text[], $13::bigint[]) as t(id, credential, price)
             returning 1),
         e as (
             insert into outbox (id, subject, event_type, payload, headers)
             select $15, $16, $17, $18, $19 from o returning 1),
         k as (
             insert into idempotency_keys (scope, key, request_hash, response)
             select $20, $21, $22, $23 from o returning 1)
         select (select count(*) from t) + (select count(*) from e) + (select count(*) from k)",
    )
    .bind(o.id)
    .bind(o.festival_id)
    .bind(o.buyer_user_id)
    .bind(o.status.as_str())
    .bind(o.total_minor)
    .bind(&o.currency)
    .bind(o.payment_method.as_str())
    .bind(o.created_by)
    .bind(o.created_at)
    .bind(sale.category_id)
    .bind(&ids)
    .bind(&credentials)
    .bind(&prices)
    .bind(sale.quota_ids)
    .bind(sale.paid.id)
    .bind(sale.paid.subject)
    .bind(&sale.paid.event_type)
    .bind(&sale.paid.payload)
    .bind(&sale.paid.headers)
    .bind(&sale.answer.scope)
    .bind(&sale.answer.key)
    .bind(&sale.answer.request_hash)
    .bind(&sale.answer.response)
    .fetch_one(conn)
    .await;
    match written {
        Ok(0) => Ok(Written::FestivalClosed),
        Ok(_) => Ok(Written::Done),
        Err(e) if festival_platform::idempotency::taken(&e) => Ok(Written::KeyTaken),
        Err(e) => Err(e),
    }
}
