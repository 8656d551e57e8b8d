//! Ticket transfers: who gave which ticket to whom, pending ones by the hash of their
//! claim code.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

festival_platform::text_enum! {
    TransferStatus { Pending = "PENDING", Completed = "COMPLETED", Cancelled = "CANCELLED" }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TransferRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub ticket_id: Uuid,
    pub from_user_id: Uuid,
    pub to_user_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub status: TransferStatus,
    pub new_ticket_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, festival_id, ticket_id, from_user_id, to_user_id, status, new_ticket_id, created_at, completed_at"
    };
}

pub const PENDING_UNIQUE: &str = "ticket_transfers_pending_key";

/// A new transfer: completed at once when it names its recipient, pending (claimable by
/// the code hashing to `claim_hash`) otherwise.
#[allow(clippy::too_many_arguments)]
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    festival_id: Uuid,
    ticket_id: Uuid,
    from_user_id: Uuid,
    to_user_id: Option<Uuid>,
    claim_hash: Option<&[u8]>,
    new_ticket_id: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<TransferRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "insert into ticket_transfers (id, festival_id, ticket_id, from_user_id, to_user_id, claim_hash, status,
             new_ticket_id, created_at, completed_at)
         values ($1, $2, $3, $4, $5, $6, case when $7::uuid is null then 'PENDING' else 'COMPLETED' end, $7, $8,
             case when $7::uuid is null then null else $8 end)
         returning ",
        columns!()
    ))
    .bind(id)
    .bind(festival_id)
    .bind(ticket_id)
    .bind(from_user_id)
    .bind(to_user_id)
    .bind(claim_hash)
    .bind(new_ticket_id)
    .bind(at)
    .fetch_one(conn)
    .await
}

/// The pending transfer a claim code opens, locked.
pub async fn lock_pending_by_code(
    conn: &mut PgConnection,
    claim_hash: &[u8],
) -> Result<Option<TransferRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from ticket_transfers where claim_hash = $1 and status = 'PENDING' for update"
    ))
    .bind(claim_hash)
    .fetch_optional(conn)
    .await
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<TransferRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from ticket_transfers where id = $1 for update"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Completes a pending transfer to `to_user_id`; its code stops working.
pub async fn complete(
    conn: &mut PgConnection,
    id: Uuid,
    to_user_id: Uuid,
    new_ticket_id: Uuid,
    at: DateTime<Utc>,
) -> Result<TransferRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "update ticket_transfers set status = 'COMPLETED', to_user_id = $2, new_ticket_id = $3, completed_at = $4,
             claim_hash = null
         where id = $1 returning ",
        columns!()
    ))
    .bind(id)
    .bind(to_user_id)
    .bind(new_ticket_id)
    .bind(at)
    .fetch_one(conn)
    .await
}

pub async fn cancel(conn: &mut PgConnection, id: Uuid, at: DateTime<Utc>) -> Result<TransferRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "update ticket_transfers set status = 'CANCELLED', completed_at = $2, claim_hash = null
         where id = $1 returning ",
        columns!()
    ))
    .bind(id)
    .bind(at)
    .fetch_one(conn)
    .await
}

/// Transfers `user_id` opened at a festival (withdrawn ones included).
pub async fn sent_by(conn: &mut PgConnection, festival_id: Uuid, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from ticket_transfers where festival_id = $1 and from_user_id = $2")
        .bind(festival_id)
        .bind(user_id)
        .fetch_one(conn)
        .await
}

pub async fn pending_of(conn: &mut PgConnection, ticket_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from ticket_transfers where ticket_id = $1 and status = 'PENDING')")
        .bind(ticket_id)
        .fetch_one(conn)
        .await
}
