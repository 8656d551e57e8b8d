//! The journal's hash chain, its queue of transactions not chained yet, and closures.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::journal::{Closure, Hash, Link, Record, genesis};
use crate::store::ledger::JOURNAL_COLUMNS as COLUMNS;

/// Festivals with transactions waiting to be chained.
pub async fn waiting_festivals(conn: &mut PgConnection) -> Result<Vec<Uuid>, sqlx::Error> {
    // A skip scan of the queue's index: one probe per festival, however long the queue.
    sqlx::query_scalar(
        "with recursive f as (
             (select festival_id as id from journal_queue order by festival_id limit 1)
             union all
             select (select q.festival_id from journal_queue q where q.festival_id > f.id order by q.festival_id limit 1)
             from f where f.id is not null)
         select id from f where id is not null",
    )
    .fetch_all(conn)
    .await
}

/// The festival's chain head, locked for the caller's transaction (made at genesis).
pub async fn lock_head(conn: &mut PgConnection, festival: Uuid) -> Result<(i64, Hash), sqlx::Error> {
    sqlx::query("insert into journal_heads (festival_id, seq, hash) values ($1, 0, $2) on conflict do nothing")
        .bind(festival)
        .bind(genesis(festival).as_slice())
        .execute(&mut *conn)
        .await?;
    let (seq, hash): (i64, Vec<u8>) =
        sqlx::query_as("select seq, hash from journal_heads where festival_id = $1 for update")
            .bind(festival)
            .fetch_one(conn)
            .await?;
    Ok((seq, hash.as_slice().try_into().unwrap_or([0; 32])))
}

/// Attaches each record's entries (ordered by account).
async fn with_entries(conn: &mut PgConnection, mut records: Vec<Record>) -> Result<Vec<Record>, sqlx::Error> {
    let ids: Vec<Uuid> = records.iter().map(|r| r.id).collect();
    let rows: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "select transaction_id, account_id, amount_minor from entries where transaction_id = any($1)
         order by transaction_id, account_id",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    let mut by_tx: std::collections::HashMap<Uuid, Vec<(Uuid, i64)>> = Default::default();
    for (tx, account, amount) in rows {
        by_tx.entry(tx).or_default().push((account, amount));
    }
    for r in &mut records {
        r.entries = by_tx.remove(&r.id).unwrap_or_default();
    }
    Ok(records)
}

/// Up to `limit` queued transactions of the festival, in the order they are chained.
pub async fn queued(conn: &mut PgConnection, festival: Uuid, limit: i64) -> Result<Vec<Record>, sqlx::Error> {
    let records: Vec<Record> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select t.* from (select transaction_id, created_at from journal_queue where festival_id = $1
                           order by created_at, transaction_id limit $2) q
         cross join lateral (select {COLUMNS} from transactions where id = q.transaction_id) t
         order by q.created_at, q.transaction_id"
    )))
    .bind(festival)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    with_entries(conn, records).await
}

/// Appends links, takes their transactions off the queue and moves the head.
pub async fn append(conn: &mut PgConnection, festival: Uuid, links: &[Link]) -> Result<(), sqlx::Error> {
    let Some(last) = links.last() else { return Ok(()) };
    let seqs: Vec<i64> = links.iter().map(|l| l.seq).collect();
    let ids: Vec<Uuid> = links.iter().map(|l| l.transaction_id).collect();
    let prevs: Vec<Vec<u8>> = links.iter().map(|l| l.prev_hash.clone()).collect();
    let hashes: Vec<Vec<u8>> = links.iter().map(|l| l.hash.clone()).collect();
    sqlx::query(
        "insert into journal (festival_id, seq, transaction_id, prev_hash, hash)
         select $1, x.seq, x.id, x.prev, x.hash from unnest($2::bigint[], $3::uuid[], $4::bytea[], $5::bytea[])
             as x(seq, id, prev, hash)",
    )
    .bind(festival)
    .bind(&seqs)
    .bind(&ids)
    .bind(&prevs)
    .bind(&hashes)
    .execute(&mut *conn)
    .await?;
    sqlx::query("delete from journal_queue where transaction_id = any($1)").bind(&ids).execute(&mut *conn).await?;
    sqlx::query("update journal_heads set seq = $2, hash = $3 where festival_id = $1")
        .bind(festival)
        .bind(last.seq)
        .bind(&last.hash)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn insert_closure(
    conn: &mut PgConnection,
    festival: Uuid,
    seq: i64,
    head: &[u8],
    at: DateTime<Utc>,
    signature: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into journal_closures (festival_id, seq, head_hash, closed_at, signature) values ($1, $2, $3, $4, $5)
         on conflict do nothing",
    )
    .bind(festival)
    .bind(seq)
    .bind(head)
    .bind(at)
    .bind(signature)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn closure(conn: &mut PgConnection, festival: Uuid, seq: i64) -> Result<Option<Closure>, sqlx::Error> {
    sqlx::query_as(
        "select seq, head_hash, closed_at, signature from journal_closures where festival_id = $1 and seq = $2",
    )
    .bind(festival)
    .bind(seq)
    .fetch_optional(conn)
    .await
}

/// Festivals whose chain holds links chained before the start of their current day (in
/// their time zone, at `now`) that no closure covers yet: their day is to be closed.
pub async fn days_to_close(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select h.festival_id from journal_heads h join festivals f on f.id = h.festival_id
         where exists (
             select 1 from journal j
             where j.festival_id = h.festival_id
               and j.seq > coalesce((select max(c.seq) from journal_closures c where c.festival_id = h.festival_id), 0)
               and j.chained_at < (date_trunc('day', $1 at time zone f.time_zone) at time zone f.time_zone))",
    )
    .bind(now)
    .fetch_all(conn)
    .await
}

pub async fn closures(conn: &mut PgConnection, festival: Uuid) -> Result<Vec<Closure>, sqlx::Error> {
    sqlx::query_as(
        "select seq, head_hash, closed_at, signature from journal_closures where festival_id = $1 order by seq",
    )
    .bind(festival)
    .fetch_all(conn)
    .await
}

/// Walks the festival's chain in order, handing each link and the transaction it names
/// (None: gone) to `visit`, a page at a time.
pub async fn walk(
    conn: &mut PgConnection,
    festival: Uuid,
    mut visit: impl FnMut(&Link, Option<&Record>),
) -> Result<(), sqlx::Error> {
    const PAGE: i64 = 5_000;
    let mut after = 0_i64;
    loop {
        let links: Vec<Link> = sqlx::query_as(
            "select seq, transaction_id, prev_hash, hash from journal where festival_id = $1 and seq > $2
             order by seq limit $3",
        )
        .bind(festival)
        .bind(after)
        .bind(PAGE)
        .fetch(&mut *conn)
        .try_collect()
        .await?;
        let Some(last) = links.last() else { return Ok(()) };
        after = last.seq;
        let ids: Vec<Uuid> = links.iter().map(|l| l.transaction_id).collect();
        let records: Vec<Record> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("select {COLUMNS} from transactions where id = any($1)")))
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await?;
        let records = with_entries(conn, records).await?;
        let by_id: std::collections::HashMap<Uuid, &Record> = records.iter().map(|r| (r.id, r)).collect();
        for l in &links {
            visit(l, by_id.get(&l.transaction_id).copied());
        }
        if (links.len() as i64) < PAGE {
            return Ok(());
        }
    }
}
