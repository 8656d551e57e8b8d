//! Stock moves on quota counters, each in the caller's transaction. Taking stock finds the
//! quotas of the categories, locks them in id order, checks with the domain's rules and
//! writes the counters in one statement, and says which quotas each category took from.
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

/// The quotas each category took from.
pub type Taken = HashMap<Uuid, Vec<Uuid>>;

/// Takes stock for `lines` (`(category, quantity)`): `held` (a hold) or straight to `sold`
/// (a direct order). A category in no quota has no stock.
pub async fn take(
    conn: &mut PgConnection,
    lines: &[(Uuid, i32)],
    sell: bool,
) -> Result<Result<Taken, Shortage>, sqlx::Error> {
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
    let counters = store::quotas::lock(conn, &ids).await?;
    if !fits(&demand, &counters) {
        return Ok(Err(Shortage));
    }
    let deltas = demand.iter().map(|(q, n)| (*q, if sell { (0, *n) } else { (*n, 0) })).collect();
    store::quotas::adjust(conn, &deltas).await?;
    Ok(Ok(quotas_of))
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
