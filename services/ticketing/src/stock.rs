//! Stock moves on quota counters, each in the caller's transaction. Taking stock is
//! planned first (which quotas each category takes from) and done last, as the command's
//! final write: a guarded move that never lets `held + sold` pass `size`.
//! Everything after (release, sale, cancellation) moves exactly those quotas: what was
//! taken is recorded with the hold item or the ticket, so a quota created later over the
//! same category is never touched by stock it did not give.
//!
//! **Hot rows.** Every buyer of a category writes the same quota row, and a row written
//! in a transaction stays locked until its commit. A command's last stock move is
//! therefore sent with its COMMIT in one round trip ([`commit_with`]): the row is locked
//! while the database commits, not while the answer travels to the service, waits for a
//! busy runtime to be polled, and a COMMIT travels back. On a loaded 2-core machine that
//! wait, multiplied by every buyer queued on the row, was most of an order's latency.
//! The price: a request cancelled while that query is in flight (a client gone, a
//! deadline) still commits, as any command whose COMMIT was sent does; the command's
//! idempotency key answers the retry with what was done.

use std::collections::{BTreeMap, HashMap};

use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::inventory::{Counters, demand, fits};
use crate::store;

/// Not enough stock in at least one quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortage;

/// The quotas each category takes from.
pub type Taken = HashMap<Uuid, Vec<Uuid>>;

/// What taking stock for some lines will do: which quotas each category takes from, and
/// how many tickets each quota gives. Made early in a command, without locks; the stock
/// is taken by [`Plan::take`] as the command's last write, so the quota rows stay locked
/// only for that statement and the commit.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quotas_of: Taken,
    demand: BTreeMap<Uuid, i64>,
}

impl Plan {
    /// Plans `lines` (`(category, quantity)`). A category in no quota has no stock; a
    /// demand the current counters cannot meet is refused early (the authoritative check
    /// is [`Plan::take`]'s, under the lock), so a sold-out rush costs little.
    pub async fn new(conn: &mut PgConnection, lines: &[(Uuid, i32)]) -> Result<Result<Self, Shortage>, sqlx::Error> {
        let categories: Vec<Uuid> = lines.iter().map(|l| l.0).collect();
        let counters = store::quotas::of_categories(conn, &categories).await?;
        // Test-only: the race tests' negative controls check late, in `take_unguarded`.
        Ok(Self::of_counters(lines, counters, !cfg!(feature = "race-hooks")))
    }

    /// Plans `lines` on counters already read (`(category, quota, counters)`), refusing a
    /// demand they cannot meet if `check`.
    pub fn of_counters(
        lines: &[(Uuid, i32)],
        counters: impl IntoIterator<Item = (Uuid, Uuid, Counters)>,
        check: bool,
    ) -> Result<Self, Shortage> {
        let mut quotas_of: Taken = HashMap::new();
        let mut now = BTreeMap::new();
        for (category, quota, counters) in counters {
            quotas_of.entry(category).or_default().push(quota);
            now.insert(quota, counters);
        }
        if !lines.iter().all(|(c, _)| quotas_of.contains_key(c)) {
            return Err(Shortage);
        }
        let demand = demand(lines, |c| quotas_of.get(&c).cloned().unwrap_or_default());
        if check && !fits(&demand, &now) {
            return Err(Shortage);
        }
        Ok(Self { quotas_of, demand })
    }

    /// Takes the planned stock (`held` for a hold, straight to `sold` for a direct order)
    /// and commits `tx`, or leaves it uncommitted and answers [`Shortage`].
    pub async fn take_and_commit(
        &self,
        tx: Transaction<'_, Postgres>,
        sell: bool,
    ) -> Result<Result<(), Shortage>, sqlx::Error> {
        let per_quota = |n: i64| if sell { (0, n) } else { (n, 0) };
        let deltas: BTreeMap<Uuid, (i64, i64)> = self.demand.iter().map(|(q, n)| (*q, per_quota(*n))).collect();
        take_with_commit(tx, &self.demand, &deltas).await
    }
}

#[cfg(not(feature = "race-hooks"))]
async fn take_with_commit(
    tx: Transaction<'_, Postgres>,
    _demand: &BTreeMap<Uuid, i64>,
    deltas: &BTreeMap<Uuid, (i64, i64)>,
) -> Result<Result<(), Shortage>, sqlx::Error> {
    commit_with(tx, deltas, true).await
}

/// Test-only: the guard removed, for the race tests' negative controls.
#[cfg(feature = "race-hooks")]
async fn take_with_commit(
    mut tx: Transaction<'_, Postgres>,
    demand: &BTreeMap<Uuid, i64>,
    deltas: &BTreeMap<Uuid, (i64, i64)>,
) -> Result<Result<(), Shortage>, sqlx::Error> {
    if !store::quotas::take_unguarded(&mut tx, demand, deltas).await? {
        return Ok(Err(Shortage));
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// Moves the counters of recorded allocations (`(quotas, tickets)`) by `(held, sold)` per
/// ticket: `(-1, 0)` gives a hold back, `(-1, 1)` sells it, `(0, -1)` frees sold tickets.
/// Never refused: it only gives back or converts what was taken.
pub async fn shift(
    conn: &mut PgConnection,
    taken: &[(&[Uuid], i64)],
    per_ticket: (i64, i64),
) -> Result<(), sqlx::Error> {
    let deltas = shift_deltas(taken, per_ticket);
    if !deltas.is_empty() {
        let (ids, held, sold) = columns(&deltas);
        sqlx::query("select move_stock($1, $2, $3, false)").bind(ids).bind(held).bind(sold).execute(conn).await?;
    }
    Ok(())
}

/// A guarded move of recorded allocations inside the caller's transaction (a savepoint
/// keeps the transaction usable when a quota is short): a card payment that completes
/// after its hold ended takes its places again, straight to sold, if they are still there.
pub async fn take_again(
    conn: &mut PgConnection,
    taken: &[(&[Uuid], i64)],
    per_ticket: (i64, i64),
) -> Result<Result<(), Shortage>, sqlx::Error> {
    let deltas = shift_deltas(taken, per_ticket);
    if deltas.is_empty() {
        return Ok(Ok(()));
    }
    let (ids, held, sold) = columns(&deltas);
    let mut savepoint = sqlx::Connection::begin(&mut *conn).await?;
    let moved = sqlx::query("select move_stock($1, $2, $3, true)")
        .bind(ids)
        .bind(held)
        .bind(sold)
        .execute(&mut *savepoint)
        .await;
    match moved {
        Ok(_) => {
            savepoint.commit().await?;
            Ok(Ok(()))
        }
        Err(e) if is_shortage(&e) => {
            savepoint.rollback().await?;
            Ok(Err(Shortage))
        }
        Err(e) => Err(e),
    }
}

/// [`shift`] as the command's last write, committing `tx` in the same round trip.
pub async fn shift_and_commit(
    tx: Transaction<'_, Postgres>,
    taken: &[(&[Uuid], i64)],
    per_ticket: (i64, i64),
) -> Result<(), sqlx::Error> {
    let deltas = shift_deltas(taken, per_ticket);
    match commit_with(tx, &deltas, false).await? {
        Ok(()) => Ok(()),
        // An unguarded move is never refused; if the database ever did, fail the command.
        Err(Shortage) => Err(sqlx::Error::Protocol("an unguarded stock move was refused".into())),
    }
}

fn shift_deltas(taken: &[(&[Uuid], i64)], per_ticket: (i64, i64)) -> BTreeMap<Uuid, (i64, i64)> {
    let mut per_quota: BTreeMap<Uuid, i64> = BTreeMap::new();
    for (quotas, n) in taken {
        for quota in *quotas {
            *per_quota.entry(*quota).or_insert(0) += n;
        }
    }
    per_quota.into_iter().map(|(q, n)| (q, (per_ticket.0 * n, per_ticket.1 * n))).collect()
}

fn columns(deltas: &BTreeMap<Uuid, (i64, i64)>) -> (Vec<Uuid>, Vec<i64>, Vec<i64>) {
    (deltas.keys().copied().collect(), deltas.values().map(|d| d.0).collect(), deltas.values().map(|d| d.1).collect())
}

/// What `move_stock` raises when a guarded move finds a quota short.
const SHORTAGE_STATE: &str = "FT001";

/// Whether a statement failed because its guarded stock move found a quota short.
pub fn is_shortage(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some(SHORTAGE_STATE))
}

/// Moves `deltas` (`quota → (held, sold)`) and commits `tx`, in one round trip: the move,
/// `COMMIT` and a fresh `BEGIN` go as one simple query, so `tx`'s own commit then ends an
/// empty transaction after the rows are already free. The query text is built from ids
/// and integers only (their `Display`), never from client text. A guarded move that finds
/// a quota short fails the statement; the rest of the query is skipped, nothing is
/// committed and `tx` rolls back when dropped.
async fn commit_with(
    mut tx: Transaction<'_, Postgres>,
    deltas: &BTreeMap<Uuid, (i64, i64)>,
    guard: bool,
) -> Result<Result<(), Shortage>, sqlx::Error> {
    if deltas.is_empty() {
        tx.commit().await?;
        return Ok(Ok(()));
    }
    let list =
        |f: &dyn Fn(&Uuid, &(i64, i64)) -> String| deltas.iter().map(|(q, d)| f(q, d)).collect::<Vec<_>>().join(",");
    let sql = format!(
        "select move_stock('{{{}}}'::uuid[], '{{{}}}'::bigint[], '{{{}}}'::bigint[], {guard}); commit; begin",
        list(&|q, _| q.to_string()),
        list(&|_, d| d.0.to_string()),
        list(&|_, d| d.1.to_string()),
    );
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await {
        Ok(_) => {}
        Err(e) if is_shortage(&e) => return Ok(Err(Shortage)),
        Err(e) => return Err(e),
    }
    // Committed already: a failure now (the connection lost) ends only the empty one.
    if let Err(e) = tx.commit().await {
        tracing::warn!(error = %e, "could not end the empty transaction after a committed stock move");
    }
    Ok(Ok(()))
}
