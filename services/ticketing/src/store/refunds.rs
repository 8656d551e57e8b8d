//! Refund requests and the tickets each covers (one open request per ticket).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

festival_platform::text_enum! {
    RefundStatus { Pending = "PENDING", Approved = "APPROVED", Rejected = "REJECTED", Withdrawn = "WITHDRAWN" }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefundRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub order_id: Uuid,
    pub requested_by: Uuid,
    #[sqlx(try_from = "String")]
    pub status: RefundStatus,
    pub reason: String,
    pub currency: String,
    pub amount_minor: i64,
    pub decision_note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub ticket_ids: Vec<Uuid>,
}

/// A request's columns with its tickets, from `refund_requests r`.
macro_rules! columns {
    () => {
        "r.id, r.festival_id, r.order_id, r.requested_by, r.status, r.reason, r.currency, r.amount_minor,
         r.decision_note, r.created_at, r.decided_at,
         array(select t.ticket_id from refund_request_tickets t where t.request_id = r.id order by t.ticket_id) as ticket_ids"
    };
}

/// One open request per ticket.
pub const OPEN_UNIQUE: &str = "refund_request_tickets_open_key";

pub async fn insert(conn: &mut PgConnection, r: &RefundRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into refund_requests (id, festival_id, order_id, requested_by, status, reason, currency, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(r.id)
    .bind(r.festival_id)
    .bind(r.order_id)
    .bind(r.requested_by)
    .bind(r.status.as_str())
    .bind(&r.reason)
    .bind(&r.currency)
    .bind(r.created_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("insert into refund_request_tickets (request_id, ticket_id) select $1, t from unnest($2::uuid[]) t")
        .bind(r.id)
        .bind(&r.ticket_ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// The request, locked: two decisions on one request serialise here.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query("select 1 from refund_requests where id = $1 for update").bind(id).execute(&mut *conn).await?;
    find(conn, id).await
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from refund_requests r where r.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Closes a pending request: its tickets may be asked for again (if still refundable).
pub async fn close(
    conn: &mut PgConnection,
    id: Uuid,
    status: RefundStatus,
    decided_by: Option<Uuid>,
    note: Option<&str>,
    amount_minor: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update refund_requests set status = $2, decided_by = $3, decision_note = $4, amount_minor = $5, decided_at = $6
         where id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(decided_by)
    .bind(note)
    .bind(amount_minor)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("update refund_request_tickets set open = false where request_id = $1").bind(id).execute(conn).await?;
    Ok(())
}

/// Rejects an order's pending requests (the order was cancelled), with a note.
pub async fn reject_pending_of_order(
    conn: &mut PgConnection,
    order_id: Uuid,
    by: Uuid,
    note: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("select id from refund_requests where order_id = $1 and status = 'PENDING' for update")
            .bind(order_id)
            .fetch_all(&mut *conn)
            .await?;
    for id in ids {
        close(conn, id, RefundStatus::Rejected, Some(by), Some(note), 0, at).await?;
    }
    Ok(())
}

/// Pending requests of an account at a festival.
pub async fn pending_of_account(conn: &mut PgConnection, festival_id: Uuid, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from refund_requests where festival_id = $1 and requested_by = $2 and status = 'PENDING'",
    )
    .bind(festival_id)
    .bind(user)
    .fetch_one(conn)
    .await
}

/// Whether a refund of the ticket is requested and not decided yet.
pub async fn open_for(conn: &mut PgConnection, ticket_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from refund_request_tickets where ticket_id = $1 and open)")
        .bind(ticket_id)
        .fetch_one(conn)
        .await
}

/// A festival's requests, newest first: all, or one requester's; of one status or all.
pub async fn list(
    conn: &mut PgConnection,
    festival_id: Uuid,
    requester: Option<Uuid>,
    status: Option<RefundStatus>,
    limit: i64,
) -> Result<Vec<RefundRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from refund_requests r
         where r.festival_id = $1 and ($2::uuid is null or r.requested_by = $2) and ($3::text is null or r.status = $3)
         order by r.created_at desc, r.id desc limit $4"
    ))
    .bind(festival_id)
    .bind(requester)
    .bind(status.map(|s| s.as_str()))
    .bind(limit)
    .fetch_all(conn)
    .await
}
