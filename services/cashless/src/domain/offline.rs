//! Offline charges, settled when their terminal uploads them. A terminal charged what
//! the band's proof and its offline limit allowed; the server books every charge it can
//! verify, in the order the charges were made, each paying what its wallet still holds.
//! What a wallet cannot cover is a shortfall: the festival's offline-loss account pays
//! it (the festival guaranteed offline sales), but only up to the band's offline limit
//! over all terminals; beyond that nobody pays and the vendor is not credited. Each
//! shortfall is an exception and blocks the band. A band charged offline at two terminals
//! at the same time is flagged for review.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

/// Two terminals' offline charges of one band closer than this are one band in two
/// places.
pub const SAME_TIME: TimeDelta = TimeDelta::minutes(10);

/// One verified offline charge of a known band, to settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub seq: i64,
    pub wallet: Uuid,
    pub uid: String,
    pub amount: i64,
    pub at: DateTime<Utc>,
    /// The band was blocked before this charge was made: its wallet pays nothing (a lost
    /// band's thief must not spend the holder's money).
    pub blocked_before: bool,
}

/// How a charge is paid: by its wallet, by the festival's offline-loss account (within
/// the band's allowance), and what nobody pays (not booked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub seq: i64,
    pub paid: i64,
    pub from_loss: i64,
    pub unfunded: i64,
    pub balance_after: i64,
}

impl Settled {
    /// What the vendor is credited: what somebody pays.
    pub fn booked(&self) -> i64 {
        self.paid + self.from_loss
    }
}

/// Settles charges in the order they were made (time, then sequence): each pays what its
/// wallet still holds, and the offline-loss account covers the rest up to the band's
/// allowance (the offline limit, less what the band's shortfalls took before), so a
/// tampered till or a clone cannot make the festival pay more than the offline limit per
/// band. `balances` are the wallets' (locked), `allowances` the bands' left.
pub fn settle(
    balances: &HashMap<Uuid, i64>,
    allowances: &HashMap<String, i64>,
    charges: &[Charge],
) -> HashMap<i64, Settled> {
    let mut ordered: Vec<&Charge> = charges.iter().collect();
    ordered.sort_by_key(|c| (c.at, c.seq));
    let mut left = balances.clone();
    let mut allowance = allowances.clone();
    let mut out = HashMap::with_capacity(charges.len());
    for c in ordered {
        let balance = left.entry(c.wallet).or_insert(0);
        let paid = if c.blocked_before { 0 } else { c.amount.min((*balance).max(0)) };
        *balance -= paid;
        let band = allowance.entry(c.uid.clone()).or_insert(0);
        let from_loss = (c.amount - paid).min((*band).max(0));
        *band -= from_loss;
        out.insert(
            c.seq,
            Settled { seq: c.seq, paid, from_loss, unfunded: c.amount - paid - from_loss, balance_after: *balance },
        );
    }
    out
}

/// Whether a charge at `at` is one band in two places: another terminal booked a charge
/// of it within [`SAME_TIME`] (`elsewhere` sorted). Flagged for review, not blocked: two
/// bars a few minutes apart, or clocks that drift, are not proof.
pub fn seen_elsewhere(at: DateTime<Utc>, elsewhere: &[DateTime<Utc>]) -> bool {
    let from = at - SAME_TIME;
    let i = elsewhere.partition_point(|t| *t <= from);
    elsewhere.get(i).is_some_and(|t| *t < at + SAME_TIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + s, 0).expect("time")
    }

    fn charge(seq: i64, wallet: Uuid, uid: &str, amount: i64, s: i64) -> Charge {
        Charge { seq, wallet, uid: uid.into(), amount, at: at(s), blocked_before: false }
    }

    #[test]
    fn charges_pay_in_the_order_they_were_made_and_the_loss_is_bounded_per_band() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let balances = HashMap::from([(a, 1_000), (b, 0)]);
        let allowances = HashMap::from([("A".to_owned(), 3_000), ("B".to_owned(), 300)]);
        // Uploaded out of order: the earliest charge pays first.
        let charges = vec![
            charge(2, a, "A", 700, 60),
            charge(1, a, "A", 600, 0),
            charge(3, b, "B", 250, 30),
            charge(4, b, "B", 250, 90),
        ];
        let out = settle(&balances, &allowances, &charges);
        assert_eq!(out[&1], Settled { seq: 1, paid: 600, from_loss: 0, unfunded: 0, balance_after: 400 });
        assert_eq!(out[&2], Settled { seq: 2, paid: 400, from_loss: 300, unfunded: 0, balance_after: 0 });
        assert_eq!(out[&3], Settled { seq: 3, paid: 0, from_loss: 250, unfunded: 0, balance_after: 0 });
        // B's allowance is spent: the rest is nobody's.
        assert_eq!(out[&4], Settled { seq: 4, paid: 0, from_loss: 50, unfunded: 200, balance_after: 0 });
        let paid: i64 = out.values().map(|s| s.paid).sum();
        assert_eq!(paid, 1_000, "the wallets paid what they held, no more");
    }

    #[test]
    fn a_band_blocked_before_the_charge_spends_nothing_of_its_wallet() {
        let a = Uuid::new_v4();
        let stolen = Charge { blocked_before: true, ..charge(1, a, "A", 500, 0) };
        let out = settle(&HashMap::from([(a, 5_000)]), &HashMap::from([("A".to_owned(), 3_000)]), &[stolen]);
        assert_eq!(out[&1], Settled { seq: 1, paid: 0, from_loss: 500, unfunded: 0, balance_after: 5_000 });
    }

    #[test]
    fn a_band_in_two_places() {
        let mut times = vec![at(599), at(-2_000)];
        times.sort();
        assert!(seen_elsewhere(at(0), &times));
        assert!(seen_elsewhere(at(1_198), &times));
        assert!(!seen_elsewhere(at(1_199), &times));
        assert!(!seen_elsewhere(at(-1_300), &[at(-700)]));
        assert!(!seen_elsewhere(at(0), &[]));
    }
}
