//! Stock moves on quota counters, each in the caller's transaction. Taking stock is
//! planned first (which quotas each category takes from) and done last, as the command's
//! final write: a guarded update that never lets `held + sold` pass `size`.
//! Everything after (release, sale, cancellation) moves exactly those quotas: what was
//! taken is recorded with the hold item or the ticket, so a quota created later over the
//! same category is never touched by stock it did not give.

use std::collections::{BTreeMap, HashMap};

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::inventory::{demand, fits};
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
        let mut quotas_of: Taken = HashMap::new();
        for (category, quota) in store::quotas::of_categories(conn, &categories).await? {
            quotas_of.entry(category).or_default().push(quota);
        }
        if !categories.iter().all(|c| quotas_of.contains_key(c)) {
            return Ok(Err(Shortage));
        }
        let demand = demand(lines, |c| quotas_of.get(&c).cloned().unwrap_or_default());
        let ids: Vec<Uuid> = demand.keys().copied().collect();
        if !cfg!(feature = "race-hooks") && !fits(&demand, &store::quotas::peek(conn, &ids).await?) {
            return Ok(Err(Shortage));
        }
        Ok(Ok(Self { quotas_of, demand }))
    }

    /// Takes the planned stock: `held` (a hold) or straight to `sold` (a direct order).
    /// One quota: one conditional `UPDATE`. Several: locked in id order, checked, then
    /// written in one statement, so two orders sharing quotas never wait in a cycle.
    pub async fn take(&self, conn: &mut PgConnection, sell: bool) -> Result<Result<(), Shortage>, sqlx::Error> {
        let per_quota = |n: i64| if sell { (0, n) } else { (n, 0) };
        if let (false, Some((&quota, &n))) = (cfg!(feature = "race-hooks"), self.single()) {
            let (held, sold) = per_quota(n);
            return Ok(if store::quotas::take_one(conn, quota, held, sold).await? { Ok(()) } else { Err(Shortage) });
        }
        let ids: Vec<Uuid> = self.demand.keys().copied().collect();
        let counters = store::quotas::lock(conn, &ids).await?;
        if !fits(&self.demand, &counters) {
            return Ok(Err(Shortage));
        }
        let deltas = self.demand.iter().map(|(q, n)| (*q, per_quota(*n))).collect();
        store::quotas::adjust(conn, &deltas).await?;
        Ok(Ok(()))
    }

    fn single(&self) -> Option<(&Uuid, &i64)> {
        if self.demand.len() == 1 { self.demand.iter().next() } else { None }
    }
}

/// Moves the counters of recorded allocations (`(quotas, tickets)`) by `(held, sold)` per
/// ticket: `(-1, 0)` gives a hold back, `(-1, 1)` sells it, `(0, -1)` frees sold tickets.
/// Never refused: it only gives back or converts what was taken.
pub async fn shift(
    conn: &mut PgConnection,
    taken: &[(&[Uuid], i64)],
    per_ticket: (i64, i64),
) -> Result<(), sqlx::Error> {
    let mut per_quota: BTreeMap<Uuid, i64> = BTreeMap::new();
    for (quotas, n) in taken {
        for quota in *quotas {
            *per_quota.entry(*quota).or_insert(0) += n;
        }
    }
    if per_quota.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = per_quota.keys().copied().collect();
    store::quotas::lock(conn, &ids).await?;
    let deltas = per_quota.iter().map(|(q, n)| (*q, (per_ticket.0 * n, per_ticket.1 * n))).collect();
    store::quotas::adjust(conn, &deltas).await
}
