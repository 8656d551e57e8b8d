//! Offline charges, settled when their terminal uploads them. A terminal charged what
//! the band's proof and its offline limit allowed; the server books every charge it can
//! verify, in the order the charges were made, each paying what its wallet still holds.
//! What a wallet cannot cover is a shortfall: booked to the festival's offline-loss
//! account (the vendor is paid in full, the festival guaranteed offline sales) and an
//! exception, and its band is blocked. A band charged offline at two terminals at the
//! same time is a clone, or a band passed around: flagged and blocked too, the loss
//! bounded by the offline limit at each terminal.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

/// Two terminals' offline charges of one band closer than this are one band in two
/// places.
pub const SAME_TIME: TimeDelta = TimeDelta::minutes(10);

/// One verified offline charge to book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub seq: i64,
    pub wallet: Uuid,
    pub amount: i64,
    pub at: DateTime<Utc>,
}

/// What a charge pays from its wallet, and what it leaves short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub seq: i64,
    pub paid: i64,
    pub shortfall: i64,
    pub balance_after: i64,
}

/// Allocates each wallet's charges in the order they were made (time, then sequence),
/// from the wallets' balances (locked by the caller).
pub fn allocate(balances: &HashMap<Uuid, i64>, charges: &[Charge]) -> HashMap<i64, Allocation> {
    let mut ordered: Vec<&Charge> = charges.iter().collect();
    ordered.sort_by_key(|c| (c.at, c.seq));
    let mut left: HashMap<Uuid, i64> = balances.clone();
    let mut out = HashMap::with_capacity(charges.len());
    for c in ordered {
        let balance = left.entry(c.wallet).or_insert(0);
        let paid = c.amount.min((*balance).max(0));
        *balance -= paid;
        out.insert(c.seq, Allocation { seq: c.seq, paid, shortfall: c.amount - paid, balance_after: *balance });
    }
    out
}

/// Whether a band's charge at `at` spent more than `limit` at one terminal, counting its
/// charges there in the same upload in order (`spent_before` is what came before it).
pub fn over_limit(spent_before: i64, amount: i64, limit: i64) -> bool {
    spent_before.saturating_add(amount) > limit
}

/// Whether a charge at `at` is one band in two places: another terminal charged it
/// offline within [`SAME_TIME`].
pub fn seen_elsewhere(at: DateTime<Utc>, elsewhere: &[DateTime<Utc>]) -> bool {
    elsewhere.iter().any(|t| (*t - at).abs() < SAME_TIME)
}

/// The sequence numbers missing below the highest seen, as ranges (both ends included),
/// from the sorted, distinct numbers a terminal uploaded.
pub fn gaps(seen: &[i64]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut expected = 1;
    for &s in seen {
        if s > expected {
            out.push((expected, s - 1));
        }
        expected = expected.max(s + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + s, 0).expect("time")
    }

    #[test]
    fn charges_pay_in_the_order_they_were_made_and_the_rest_is_short() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let balances = HashMap::from([(a, 1_000), (b, 0)]);
        // Uploaded out of order: the 10:00 charge pays first.
        let charges = vec![
            Charge { seq: 2, wallet: a, amount: 700, at: at(60) },
            Charge { seq: 1, wallet: a, amount: 600, at: at(0) },
            Charge { seq: 3, wallet: b, amount: 250, at: at(30) },
        ];
        let out = allocate(&balances, &charges);
        assert_eq!(out[&1], Allocation { seq: 1, paid: 600, shortfall: 0, balance_after: 400 });
        assert_eq!(out[&2], Allocation { seq: 2, paid: 400, shortfall: 300, balance_after: 0 });
        assert_eq!(out[&3], Allocation { seq: 3, paid: 0, shortfall: 250, balance_after: 0 });
        let paid: i64 = out.values().map(|a| a.paid + a.shortfall).sum();
        assert_eq!(paid, 1_550, "every charge is booked in full");
    }

    #[test]
    fn the_offline_limit_and_a_band_in_two_places() {
        assert!(!over_limit(2_000, 1_000, 3_000));
        assert!(over_limit(2_001, 1_000, 3_000));
        assert!(seen_elsewhere(at(0), &[at(599)]));
        assert!(seen_elsewhere(at(600), &[at(1)]));
        assert!(!seen_elsewhere(at(0), &[at(600), at(-600)]));
        assert!(!seen_elsewhere(at(0), &[]));
    }

    #[test]
    fn gaps_are_what_is_missing_below_the_highest() {
        assert_eq!(gaps(&[]), vec![]);
        assert_eq!(gaps(&[1, 2, 3]), vec![]);
        assert_eq!(gaps(&[2, 3, 7, 9]), vec![(1, 1), (4, 6), (8, 8)]);
    }
}
