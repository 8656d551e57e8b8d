//! Organisers' reports: money in and takings over a period, read in one snapshot.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// Top-ups per till kind (CASH_DRAWER, CARD_CLEARING, ONLINE_CLEARING): count, total.
pub async fn top_ups(
    conn: &mut PgConnection,
    festival: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select a.kind, count(*)::bigint, sum(e.amount_minor)::bigint
         from transactions t
         join entries e on e.transaction_id = t.id
         join accounts a on a.id = e.account_id and a.kind in ('CASH_DRAWER', 'CARD_CLEARING', 'ONLINE_CLEARING')
         where t.festival_id = $1 and t.kind = 'TOPUP' and t.created_at >= $2 and t.created_at < $3
         group by a.kind order by a.kind",
    )
    .bind(festival)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

/// Sales per vendor in the period, less the voids of them: vendor, sales, net total,
/// voided; highest net first.
pub async fn vendors(
    conn: &mut PgConnection,
    festival: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(Uuid, i64, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select t.counterpart_id, count(*)::bigint,
             (sum(t.amount_minor) - coalesce(sum(vt.amount_minor), 0))::bigint,
             coalesce(sum(vt.amount_minor), 0)::bigint
         from transactions t
         left join voids v on v.charge_id = t.id
         left join transactions vt on vt.id = v.void_id
         where t.festival_id = $1 and t.kind = 'PAYMENT' and t.counterpart_id is not null
           and t.created_at >= $2 and t.created_at < $3
         group by t.counterpart_id
         order by 3 desc, 1",
    )
    .bind(festival)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

/// Sales per hour of the festival's clock (`time_zone`), voids deducted: the hour's
/// start, sales, net total.
pub async fn hours(
    conn: &mut PgConnection,
    festival: Uuid,
    time_zone: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select date_trunc('hour', t.created_at at time zone $4) at time zone $4 as hour, count(*)::bigint,
             (sum(t.amount_minor) - coalesce(sum(vt.amount_minor), 0))::bigint
         from transactions t
         left join voids v on v.charge_id = t.id
         left join transactions vt on vt.id = v.void_id
         where t.festival_id = $1 and t.kind = 'PAYMENT' and t.counterpart_id is not null
           and t.created_at >= $2 and t.created_at < $3
         group by 1 order by 1",
    )
    .bind(festival)
    .bind(from)
    .bind(to)
    .bind(time_zone)
    .fetch_all(conn)
    .await
}

/// What the festival's wallets hold now, and how many hold something.
pub async fn outstanding(conn: &mut PgConnection, festival: Uuid) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "select coalesce(sum(balance_minor), 0)::bigint, count(*) filter (where balance_minor > 0)
         from wallets where festival_id = $1",
    )
    .bind(festival)
    .fetch_one(conn)
    .await
}
