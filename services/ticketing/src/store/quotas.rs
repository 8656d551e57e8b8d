//! Quota counter rows. Their counters move only through the database function
//! `move_stock` (see `stock`), which locks the quotas it touches **in id order** and
//! guards the move in one statement: no oversell, and no deadlock between two orders
//! touching the same quotas in a different order.

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

/// `(category, quota, its counters)` for the quotas of these categories, read without a
/// lock (the counters only for an early, advisory check).
pub async fn of_categories(
    conn: &mut PgConnection,
    category_ids: &[Uuid],
) -> Result<Vec<(Uuid, Uuid, Counters)>, sqlx::Error> {
    let rows: Vec<(Uuid, Uuid, i64, i64, i64)> = sqlx::query_as(
        "select qc.category_id, q.id, q.size, q.held, q.sold
         from quota_categories qc join quotas q on q.id = qc.quota_id where qc.category_id = any($1)",
    )
    .bind(category_ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(c, q, size, held, sold)| (c, q, Counters { size, held, sold })).collect())
}

/// Test-only (`race-hooks`): a take with the guard removed. It reads the counters without
/// a lock, pauses so that concurrent buyers all read the same free stock, checks, and
/// writes: the race tests' negative controls must observe the oversell this allows.
#[cfg(feature = "race-hooks")]
pub async fn take_unguarded(
    conn: &mut PgConnection,
    demand: &std::collections::BTreeMap<Uuid, i64>,
    deltas: &std::collections::BTreeMap<Uuid, (i64, i64)>,
) -> Result<bool, sqlx::Error> {
    let ids: Vec<Uuid> = demand.keys().copied().collect();
    let rows: Vec<(Uuid, i64, i64, i64)> =
        sqlx::query_as("select id, size, held, sold from quotas where id = any($1) order by id")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let counters = rows.into_iter().map(|(id, size, held, sold)| (id, Counters { size, held, sold })).collect();
    if !crate::domain::inventory::fits(demand, &counters) {
        return Ok(false);
    }
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
    Ok(true)
}
