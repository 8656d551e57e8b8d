//! The waiting list: one line per category, in order of joining.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

festival_platform::text_enum! {
    WaitingStatus { Waiting = "WAITING", Offered = "OFFERED", Bought = "BOUGHT", Expired = "EXPIRED", Left = "LEFT" }
}

pub const ACTIVE_UNIQUE: &str = "waitlist_entries_active_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub category_id: Uuid,
    pub user_id: Uuid,
    pub quantity: i32,
    #[sqlx(try_from = "String")]
    pub status: WaitingStatus,
    pub hold_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// While waiting: entries ahead in the line.
    pub ahead: i64,
    /// The offer's hold expiry.
    pub offer_expires_at: Option<DateTime<Utc>>,
}

/// The row with its place in line and its offer's expiry.
macro_rules! select {
    () => {
        "select e.id, e.festival_id, e.category_id, e.user_id, e.quantity, e.status, e.hold_id, e.created_at,
                case when e.status = 'WAITING' then
                    (select count(*) from waitlist_entries a where a.category_id = e.category_id and a.status = 'WAITING'
                        and (a.created_at, a.id) < (e.created_at, e.id))
                else 0 end as ahead,
                h.expires_at as offer_expires_at
         from waitlist_entries e left join holds h on h.id = e.hold_id"
    };
}

pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    festival_id: Uuid,
    category_id: Uuid,
    user_id: Uuid,
    quantity: i32,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into waitlist_entries (id, festival_id, category_id, user_id, quantity, status, created_at)
         values ($1, $2, $3, $4, $5, 'WAITING', $6)",
    )
    .bind(id)
    .bind(festival_id)
    .bind(category_id)
    .bind(user_id)
    .bind(quantity)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<EntryRow>, sqlx::Error> {
    sqlx::query_as(concat!(select!(), " where e.id = $1")).bind(id).fetch_optional(conn).await
}

pub async fn of_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    festival_id: Option<Uuid>,
) -> Result<Vec<EntryRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        select!(),
        " where e.user_id = $1 and ($2::uuid is null or e.festival_id = $2) order by e.created_at desc, e.id limit 200"
    ))
    .bind(user_id)
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

pub async fn lock(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(WaitingStatus, Option<Uuid>, Uuid)>, sqlx::Error> {
    let row: Option<(String, Option<Uuid>, Uuid)> =
        sqlx::query_as("select status, hold_id, user_id from waitlist_entries where id = $1 for update")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.and_then(|(status, hold, user)| WaitingStatus::parse(&status).map(|s| (s, hold, user))))
}

pub async fn set_status(conn: &mut PgConnection, id: Uuid, status: WaitingStatus) -> Result<(), sqlx::Error> {
    sqlx::query("update waitlist_entries set status = $2, updated_at = now() where id = $1")
        .bind(id)
        .bind(status.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Settles offers whose hold ended: bought if it was checked out, expired otherwise. An
/// offer of fewer tickets than asked for (a resold ticket is one) keeps the entry's place
/// in line: for the rest once bought, for all of them if it was not (wanting four
/// tickets, one alone may be no use).
pub async fn settle_offers(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "update waitlist_entries e
         set status = case when e.quantity > got.n then 'WAITING'
                           when h.status = 'CHECKED_OUT' then 'BOUGHT' else 'EXPIRED' end,
             quantity = case when h.status = 'CHECKED_OUT' and e.quantity > got.n then e.quantity - got.n
                             else e.quantity end,
             hold_id = case when e.quantity > got.n then null else e.hold_id end,
             updated_at = now()
         from holds h, lateral (select coalesce(sum(i.quantity), 0)::int as n from hold_items i where i.hold_id = h.id) got
         where h.id = e.hold_id and e.status = 'OFFERED' and h.status <> 'ACTIVE'",
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Ends the waiting of lines that can no longer be served: the category's sale ended,
/// or its festival no longer sells.
pub async fn expire_closed(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "update waitlist_entries e set status = 'EXPIRED', updated_at = now()
         from categories c, festivals f
         where c.id = e.category_id and f.id = e.festival_id and e.status = 'WAITING'
           and ((c.sale_end is not null and c.sale_end <= $1) or f.deleted or f.status in ('CANCELLED', 'COMPLETED'))",
    )
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Categories with people waiting, at most `limit`.
pub async fn waiting_categories(conn: &mut PgConnection, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select distinct category_id from waitlist_entries where status = 'WAITING' limit $1")
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// The first in a category's line (other than `except`, a reseller not offered their
/// own ticket), locked. A head another transaction holds is waited for (the caller
/// bounds the wait with `lock_timeout`), never skipped: skipping passed the first in
/// line over for the second while another worker's transaction was still ending, so
/// first come was not first served.
pub async fn lock_head(
    conn: &mut PgConnection,
    category_id: Uuid,
    except: Option<Uuid>,
) -> Result<Option<(Uuid, Uuid, i32)>, sqlx::Error> {
    sqlx::query_as(
        "select id, user_id, quantity from waitlist_entries
         where category_id = $1 and status = 'WAITING' and user_id is distinct from $2
         order by created_at, id limit 1 for update",
    )
    .bind(category_id)
    .bind(except)
    .fetch_optional(conn)
    .await
}

pub async fn offer(conn: &mut PgConnection, id: Uuid, hold_id: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update waitlist_entries set status = 'OFFERED', hold_id = $2, offered_at = $3, updated_at = now() where id = $1",
    )
    .bind(id)
    .bind(hold_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts an offer's entry back in line at its place (the offer was withdrawn through no
/// doing of theirs: the resold ticket stopped being for sale).
pub async fn requeue_offer(conn: &mut PgConnection, hold_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update waitlist_entries set status = 'WAITING', hold_id = null, updated_at = now()
         where hold_id = $1 and status = 'OFFERED'",
    )
    .bind(hold_id)
    .execute(conn)
    .await?;
    Ok(())
}
