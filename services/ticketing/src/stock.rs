//! Stock moves on quota counters, each in the caller's transaction: find the quotas of
//! the categories, lock them in id order, check with the domain's rules, write the new
//! counters in one statement.

use std::collections::{BTreeMap, HashMap};

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::inventory::{demand, fits};
use crate::store;

/// Not enough stock in at least one quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortage;

/// What the quotas of `lines` (`(category, quantity)`) must give, and whether every
/// category sits in a quota (one in none has no stock).
async fn demand_of(conn: &mut PgConnection, lines: &[(Uuid, i32)]) -> Result<(BTreeMap<Uuid, i64>, bool), sqlx::Error> {
    let categories: Vec<Uuid> = lines.iter().map(|l| l.0).collect();
    let mut quotas_of: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (category, quota) in store::quotas::of_categories(conn, &categories).await? {
        quotas_of.entry(category).or_default().push(quota);
    }
    let capped = categories.iter().all(|c| quotas_of.contains_key(c));
    Ok((demand(lines, |c| quotas_of.get(&c).cloned().unwrap_or_default()), capped))
}

/// Takes stock for `lines`: `held` (a hold) or straight to `sold` (a direct order).
/// A category in no quota has no stock.
pub async fn take(
    conn: &mut PgConnection,
    lines: &[(Uuid, i32)],
    sell: bool,
) -> Result<Result<(), Shortage>, sqlx::Error> {
    let (demand, capped) = demand_of(conn, lines).await?;
    if !capped {
        return Ok(Err(Shortage));
    }
    let ids: Vec<Uuid> = demand.keys().copied().collect();
    let counters = store::quotas::lock(conn, &ids).await?;
    if !fits(&demand, &counters) {
        return Ok(Err(Shortage));
    }
    let deltas = demand.iter().map(|(q, n)| (*q, if sell { (0, *n) } else { (*n, 0) })).collect();
    store::quotas::adjust(conn, &deltas).await?;
    Ok(Ok(()))
}

/// Moves stock of `lines` by `(held, sold)` per ticket: `(-1, 0)` releases a hold,
/// `(-1, 1)` sells it, `(0, -1)` frees sold tickets. Never refused: it only gives back or
/// converts what was taken.
pub async fn shift(conn: &mut PgConnection, lines: &[(Uuid, i32)], per_ticket: (i64, i64)) -> Result<(), sqlx::Error> {
    let (demand, _) = demand_of(conn, lines).await?;
    let ids: Vec<Uuid> = demand.keys().copied().collect();
    store::quotas::lock(conn, &ids).await?;
    let deltas = demand.iter().map(|(q, n)| (*q, (per_ticket.0 * n, per_ticket.1 * n))).collect();
    store::quotas::adjust(conn, &deltas).await
}
