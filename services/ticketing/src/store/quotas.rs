//! Quota counter rows. Every change to stock locks the quotas it touches **in id order**
//! (`lock`), checks them with the domain's rules, and writes the new counters in one
//! statement (`adjust`), all in the command's transaction: no oversell, and no deadlock
//! between two orders touching the same quotas in a different order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::inventory::Counters;

pub const NAME_UNIQUE: &str = "quotas_name_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuotaRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub name: String,
    pub size: i64,
    pub held: i64,
    pub sold: i64,
    pub category_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl QuotaRow {
    pub fn counters(&self) -> Counters {
        Counters { size: self.size, held: self.held, sold: self.sold }
    }
}

pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    festival_id: Uuid,
    name: &str,
    size: i64,
    category_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into quotas (id, festival_id, name, size) values ($1, $2, $3, $4)")
        .bind(id)
        .bind(festival_id)
        .bind(name)
        .bind(size)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "insert into quota_categories (quota_id, category_id, festival_id) select $1, c, $2 from unnest($3::uuid[]) c",
    )
    .bind(id)
    .bind(festival_id)
    .bind(category_ids)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<QuotaRow>, sqlx::Error> {
    sqlx::query_as(
        "select q.id, q.festival_id, q.name, q.size, q.held, q.sold, q.created_at,
                coalesce(array_agg(qc.category_id order by qc.category_id) filter (where qc.category_id is not null), '{}') as category_ids
         from quotas q left join quota_categories qc on qc.quota_id = q.id
         where q.festival_id = $1 group by q.id order by q.created_at, q.id",
    )
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

pub async fn count(conn: &mut PgConnection, festival_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from quotas where festival_id = $1").bind(festival_id).fetch_one(conn).await
}

/// `(category, quota)` pairs of these categories.
pub async fn of_categories(conn: &mut PgConnection, category_ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as("select category_id, quota_id from quota_categories where category_id = any($1)")
        .bind(category_ids)
        .fetch_all(conn)
        .await
}

/// Reads the counters without locking (an early, advisory check).
pub async fn peek(conn: &mut PgConnection, ids: &[Uuid]) -> Result<BTreeMap<Uuid, Counters>, sqlx::Error> {
    let rows: Vec<(Uuid, i64, i64, i64)> =
        sqlx::query_as("select id, size, held, sold from quotas where id = any($1)").bind(ids).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(id, size, held, sold)| (id, Counters { size, held, sold })).collect())
}

/// Takes `held` and `sold` from one quota if it has them: the check and the write are one
/// statement under the row lock it takes. Returns whether it did.
pub async fn take_one(conn: &mut PgConnection, id: Uuid, held: i64, sold: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update quotas set held = held + $2, sold = sold + $3, updated_at = now()
         where id = $1 and size - held - sold >= $2 + $3",
    )
    .bind(id)
    .bind(held)
    .bind(sold)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Locks the quotas, in id order, and reads their counters.
pub async fn lock(conn: &mut PgConnection, ids: &[Uuid]) -> Result<BTreeMap<Uuid, Counters>, sqlx::Error> {
    // Test-only race-hooks build: no lock, and a pause after reading, so the race test's
    // negative control sees concurrent buyers all read the same free stock.
    let sql = if cfg!(feature = "race-hooks") {
        "select id, size, held, sold from quotas where id = any($1) order by id"
    } else {
        "select id, size, held, sold from quotas where id = any($1) order by id for update"
    };
    let rows: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(sql).bind(ids).fetch_all(&mut *conn).await?;
    #[cfg(feature = "race-hooks")]
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    Ok(rows.into_iter().map(|(id, size, held, sold)| (id, Counters { size, held, sold })).collect())
}

/// Moves the counters of locked quotas by `(held, sold)` deltas, in one statement.
pub async fn adjust(conn: &mut PgConnection, deltas: &BTreeMap<Uuid, (i64, i64)>) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = deltas.keys().copied().collect();
    let held: Vec<i64> = deltas.values().map(|d| d.0).collect();
    let sold: Vec<i64> = deltas.values().map(|d| d.1).collect();
    sqlx::query(
        "update quotas q set held = q.held + d.held, sold = q.sold + d.sold, updated_at = now()
         from unnest($1::uuid[], $2::bigint[], $3::bigint[]) as d(id, held, sold) where q.id = d.id",
    )
    .bind(&ids)
    .bind(&held)
    .bind(&sold)
    .execute(conn)
    .await?;
    Ok(())
}
