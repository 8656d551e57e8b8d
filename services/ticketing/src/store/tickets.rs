use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::status::TicketStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub order_id: Uuid,
    pub category_id: Uuid,
    pub holder_user_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub status: TicketStatus,
    pub credential: String,
    /// The quotas it counts against.
    pub quota_ids: Vec<Uuid>,
    pub issued_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub used_gate: Option<String>,
    /// Transferred: the ticket that replaced it.
    pub replaced_by: Option<Uuid>,
    /// An add-on's admission ticket.
    pub parent_ticket_id: Option<Uuid>,
    /// What it cost its buyer (its share of the order's total).
    pub price_minor: i64,
}

macro_rules! columns {
    () => {
        "id, festival_id, order_id, category_id, holder_user_id, status, credential, quota_ids, issued_at, used_at, used_gate, replaced_by, parent_ticket_id, price_minor"
    };
}

pub async fn insert_many(conn: &mut PgConnection, tickets: &[TicketRow]) -> Result<(), sqlx::Error> {
    let Some(first) = tickets.first() else { return Ok(()) };
    let ids: Vec<Uuid> = tickets.iter().map(|t| t.id).collect();
    let categories: Vec<Uuid> = tickets.iter().map(|t| t.category_id).collect();
    let credentials: Vec<&str> = tickets.iter().map(|t| t.credential.as_str()).collect();
    let prices: Vec<i64> = tickets.iter().map(|t| t.price_minor).collect();
    // Tickets of one category share their quotas: a lookup by category, not a 2-D array.
    let quotas: std::collections::BTreeMap<Uuid, &[Uuid]> =
        tickets.iter().map(|t| (t.category_id, t.quota_ids.as_slice())).collect();
    let quota_categories: Vec<Uuid> = quotas.keys().copied().collect();
    let quota_lists: Vec<String> = quotas
        .values()
        .map(|q| format!("{{{}}}", q.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")))
        .collect();
    sqlx::query(
        "insert into tickets (id, festival_id, order_id, category_id, holder_user_id, status, credential, quota_ids, issued_at, price_minor)
         select t.id, $4, $5, t.category, $6, 'SOLD', t.credential, q.quota_ids::uuid[], $7, t.price
         from unnest($1::uuid[], $2::uuid[], $3::text[], $10::bigint[]) as t(id, category, credential, price)
         join unnest($8::uuid[], $9::text[]) as q(category, quota_ids) on q.category = t.category",
    )
    .bind(&ids)
    .bind(&categories)
    .bind(&credentials)
    .bind(first.festival_id)
    .bind(first.order_id)
    .bind(first.holder_user_id)
    .bind(first.issued_at)
    .bind(&quota_categories)
    .bind(&quota_lists)
    .bind(&prices)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn of_order(conn: &mut PgConnection, order_id: Uuid) -> Result<Vec<TicketRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from tickets where order_id = $1 order by id"))
        .bind(order_id)
        .fetch_all(conn)
        .await
}

pub async fn of_holder(
    conn: &mut PgConnection,
    user_id: Uuid,
    festival_id: Option<Uuid>,
) -> Result<Vec<TicketRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from tickets where holder_user_id = $1 and ($2::uuid is null or festival_id = $2)
         order by issued_at desc, id limit 500"
    ))
    .bind(user_id)
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

/// A ticket a cancellation or refund revoked, and whether it was still unused then.
#[derive(Debug, sqlx::FromRow)]
pub struct Revoked {
    pub id: Uuid,
    pub order_id: Uuid,
    pub price_minor: i64,
    pub quota_ids: Vec<Uuid>,
    pub was_unused: bool,
}

/// Revokes an order's live tickets (already revoked ones are not counted twice).
pub async fn revoke_of_order(
    conn: &mut PgConnection,
    order_id: Uuid,
    status: TicketStatus,
) -> Result<Vec<Revoked>, sqlx::Error> {
    sqlx::query_as(
        "update tickets t set status = $2, updated_at = now()
         from (select id, status = 'SOLD' as was_unused from tickets
               where order_id = $1 and status in ('SOLD', 'USED') for update) before
         where t.id = before.id
         returning t.id, t.order_id, t.price_minor, t.quota_ids, before.was_unused",
    )
    .bind(order_id)
    .bind(status.as_str())
    .fetch_all(conn)
    .await
}

/// Revokes these unused tickets (refunded); the ones no longer unused are left alone
/// and missing from the answer.
pub async fn revoke_unused(
    conn: &mut PgConnection,
    ids: &[Uuid],
    status: TicketStatus,
) -> Result<Vec<Revoked>, sqlx::Error> {
    sqlx::query_as(
        "update tickets t set status = $2, updated_at = now()
         from (select id from tickets where id = any($1) and status = 'SOLD' order by id for update) before
         where t.id = before.id
         returning t.id, t.order_id, t.price_minor, t.quota_ids, true as was_unused",
    )
    .bind(ids)
    .bind(status.as_str())
    .fetch_all(conn)
    .await
}

pub async fn revoked_ids(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select id from tickets where festival_id = $1 and revoked order by id")
        .bind(festival_id)
        .fetch_all(conn)
        .await
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<TicketRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from tickets where id = $1 for update"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Revokes an unused ticket that changed hands, naming its successor (its place moves to
/// the successor: the quotas do not change). `guarded` is false only in the race tests'
/// negative control: then any ticket is replaced, whatever its state.
pub async fn replace(conn: &mut PgConnection, id: Uuid, successor: Uuid, guarded: bool) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update tickets set status = 'CANCELLED', replaced_by = $2, updated_at = now()
         where id = $1 and (status = 'SOLD' or not $3)",
    )
    .bind(id)
    .bind(successor)
    .bind(guarded)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn find_by_id(conn: &mut PgConnection, id: Uuid) -> Result<Option<TicketRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from tickets where id = $1")).bind(id).fetch_optional(conn).await
}

/// Attaches add-on tickets to their admission tickets (`(add-on, parent)` pairs).
pub async fn attach(conn: &mut PgConnection, pairs: &[(Uuid, Uuid)]) -> Result<(), sqlx::Error> {
    if pairs.is_empty() {
        return Ok(());
    }
    let (children, parents): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().copied().unzip();
    sqlx::query(
        "update tickets t set parent_ticket_id = p.parent
         from unnest($1::uuid[], $2::uuid[]) as p(child, parent) where t.id = p.child",
    )
    .bind(&children)
    .bind(&parents)
    .execute(conn)
    .await?;
    Ok(())
}

/// The live add-ons of these admission tickets, locked.
pub async fn live_children(conn: &mut PgConnection, parents: &[Uuid]) -> Result<Vec<TicketRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from tickets where parent_ticket_id = any($1) and status in ('SOLD', 'USED') order by id for update"
    ))
    .bind(parents)
    .fetch_all(conn)
    .await
}

/// Revokes the live add-ons of these admission tickets (bought with them or later, in
/// any order), like `revoke_of_order`; with `unused_only`, only those not used yet (a
/// refund pays back what was not used: the car already parked keeps its pass).
pub async fn revoke_children(
    conn: &mut PgConnection,
    parents: &[Uuid],
    status: TicketStatus,
    unused_only: bool,
) -> Result<Vec<Revoked>, sqlx::Error> {
    sqlx::query_as(
        "update tickets t set status = $2, updated_at = now()
         from (select id, status = 'SOLD' as was_unused from tickets
               where parent_ticket_id = any($1) and (status = 'SOLD' or (status = 'USED' and not $3))
               order by id for update) before
         where t.id = before.id
         returning t.id, t.order_id, t.price_minor, t.quota_ids, before.was_unused",
    )
    .bind(parents)
    .bind(status.as_str())
    .bind(unused_only)
    .fetch_all(conn)
    .await
}

/// The orders of the unused add-ons of these admission tickets (read without locks, to
/// lock the orders first).
pub async fn orders_of_unused_children(conn: &mut PgConnection, parents: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select distinct order_id from tickets where parent_ticket_id = any($1) and status = 'SOLD' order by order_id",
    )
    .bind(parents)
    .fetch_all(conn)
    .await
}

/// Whether the ticket already has a live add-on of the category.
pub async fn has_live_addon(conn: &mut PgConnection, parent: Uuid, category_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from tickets where parent_ticket_id = $1 and category_id = $2 and status in ('SOLD', 'USED'))",
    )
    .bind(parent)
    .bind(category_id)
    .fetch_one(conn)
    .await
}
