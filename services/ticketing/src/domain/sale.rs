//! What may be bought, when, and what it costs.

use chrono::{DateTime, Utc};

/// Within a category's sale window (either end open).
pub fn in_window(now: DateTime<Utc>, start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> bool {
    start.is_none_or(|s| s <= now) && end.is_none_or(|e| now < e)
}

/// Why a quantity is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityError {
    NotPositive,
    BelowMinimum(i32),
    AboveMaximum(i32),
}

/// A quantity for one order of a category.
pub fn check_quantity(quantity: i32, min: i32, max: i32) -> Result<(), QuantityError> {
    if quantity <= 0 {
        Err(QuantityError::NotPositive)
    } else if quantity < min {
        Err(QuantityError::BelowMinimum(min))
    } else if quantity > max {
        Err(QuantityError::AboveMaximum(max))
    } else {
        Ok(())
    }
}

/// The total of `(unit price, quantity)` lines in minor units; `None` on overflow.
pub fn total(lines: impl IntoIterator<Item = (i64, i32)>) -> Option<i64> {
    lines.into_iter().try_fold(0i64, |sum, (price, quantity)| sum.checked_add(price.checked_mul(i64::from(quantity))?))
}

/// What each ticket of an order cost: the order's `paid` total spread over tickets of
/// `units` list prices in proportion to them (largest remainder), so a discount is shared
/// fairly and the prices add up to `paid` exactly: refunding every ticket refunds the
/// order, never a cent more. Free tickets stay free; a paid total over free tickets only
/// is spread evenly.
pub fn ticket_prices(paid: i64, units: &[i64]) -> Vec<i64> {
    let paid = paid.max(0);
    if units.is_empty() {
        return Vec::new();
    }
    let list: i128 = units.iter().map(|&u| i128::from(u.max(0))).sum();
    let weights: Vec<i128> =
        if list == 0 { vec![1; units.len()] } else { units.iter().map(|&u| i128::from(u.max(0))).collect() };
    let weight: i128 = weights.iter().sum();
    let exact: Vec<(i128, i128)> =
        weights.iter().map(|w| (i128::from(paid) * w / weight, i128::from(paid) * w % weight)).collect();
    let mut prices: Vec<i64> = exact.iter().map(|(q, _)| i64::try_from(*q).unwrap_or(i64::MAX)).collect();
    let short = paid - prices.iter().sum::<i64>();
    // The cents lost to rounding go to the largest remainders (first ticket first on ties).
    let mut by_remainder: Vec<usize> = (0..units.len()).filter(|&i| weights[i] > 0).collect();
    by_remainder.sort_by(|&a, &b| exact[b].1.cmp(&exact[a].1).then(a.cmp(&b)));
    for &i in by_remainder.iter().cycle().take(usize::try_from(short).unwrap_or(0)) {
        prices[i] += 1;
    }
    prices
}

/// Whether an account may take `wanted` more tickets of a category of which it already
/// holds or owns `already` (a limit of 0: none).
pub fn within_account_limit(already: i64, wanted: i32, limit: i32) -> bool {
    limit <= 0 || already + i64::from(wanted) <= i64::from(limit)
}

/// Why a hold's add-ons are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddonProblem {
    /// More of an add-on than the hold has admission tickets.
    NoAdmission,
    /// Add-ons for an existing ticket: only add-ons, one of each.
    ForATicketOnlyAddonsOneEach,
}

/// Whether a hold's add-ons have their admission tickets. `lines`: `(is add-on,
/// quantity)` per category. Bought together, each add-on category at most as many as the
/// hold's admission tickets (each add-on ticket belongs to one of them); bought for an
/// existing ticket, only add-ons, one of each.
pub fn addons_covered(lines: &[(bool, i32)], for_a_ticket: bool) -> Result<(), AddonProblem> {
    if for_a_ticket {
        return if lines.iter().all(|&(addon, quantity)| addon && quantity == 1) {
            Ok(())
        } else {
            Err(AddonProblem::ForATicketOnlyAddonsOneEach)
        };
    }
    let admissions: i64 = lines.iter().filter(|l| !l.0).map(|l| i64::from(l.1)).sum();
    if lines.iter().any(|&(addon, quantity)| addon && i64::from(quantity) > admissions) {
        Err(AddonProblem::NoAdmission)
    } else {
        Ok(())
    }
}

/// The stored form of a hidden category's access code: SHA-256 of the festival's id and
/// the code, trimmed and lower-cased (case is ignored), so one festival's codes say
/// nothing about another's.
pub fn access_code_hash(festival_id: uuid::Uuid, code: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(festival_id.as_bytes());
    hasher.update(code.trim().to_lowercase().as_bytes());
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn the_sale_window_is_half_open_and_either_end_may_be_open() {
        let now = Utc::now();
        let (before, after) = (now - Duration::hours(1), now + Duration::hours(1));
        assert!(in_window(now, None, None));
        assert!(in_window(now, Some(before), Some(after)));
        assert!(in_window(now, Some(now), None), "opens at its start");
        assert!(!in_window(now, None, Some(now)), "closed at its end: an early-bird price ends on time");
        assert!(!in_window(now, Some(after), None));
    }

    #[test]
    fn quantities_are_positive_and_within_the_categorys_bounds() {
        assert_eq!(check_quantity(0, 1, 10), Err(QuantityError::NotPositive));
        assert_eq!(check_quantity(-3, 1, 10), Err(QuantityError::NotPositive));
        assert_eq!(check_quantity(1, 2, 10), Err(QuantityError::BelowMinimum(2)));
        assert_eq!(check_quantity(11, 1, 10), Err(QuantityError::AboveMaximum(10)));
        assert_eq!(check_quantity(10, 1, 10), Ok(()));
    }

    #[test]
    fn totals_add_up_in_minor_units_and_overflow_is_caught() {
        assert_eq!(total([(12_900, 2), (1_500, 1)]), Some(27_300));
        assert_eq!(total([(i64::MAX, 2)]), None);
        assert!(within_account_limit(3, 1, 4));
        assert!(!within_account_limit(3, 2, 4));
        assert!(within_account_limit(1_000, 1_000, 0), "0: no limit");
    }

    #[test]
    fn ticket_prices_share_a_discount_and_add_up_to_what_was_paid() {
        assert_eq!(ticket_prices(27_300, &[12_900, 12_900, 1_500]), vec![12_900, 12_900, 1_500]);
        // 2_580 off the basket, spread in proportion to list prices; the 2 cents lost to
        // rounding go to the largest remainders.
        assert_eq!(ticket_prices(24_720, &[12_900, 12_900, 1_500]), vec![11_681, 11_681, 1_358]);
        assert_eq!(ticket_prices(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(ticket_prices(0, &[5_000, 0]), vec![0, 0]);
        assert_eq!(ticket_prices(5_000, &[5_000, 0]), vec![5_000, 0], "a free add-on stays free");
        assert_eq!(ticket_prices(10, &[0, 0]), vec![5, 5]);
        assert!(ticket_prices(10, &[]).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn ticket_prices_always_add_up(
            units in proptest::collection::vec(0i64..1_000_000, 1..60),
            share in 0u32..=100,
        ) {
            let list: i64 = units.iter().sum();
            let paid = list * i64::from(share) / 100;
            let prices = ticket_prices(paid, &units);
            proptest::prop_assert_eq!(prices.len(), units.len());
            proptest::prop_assert_eq!(prices.iter().sum::<i64>(), paid);
            for (price, unit) in prices.iter().zip(&units) {
                proptest::prop_assert!(*price >= 0 && (list == 0 || *price <= *unit), "{price} for a {unit} ticket");
            }
        }
    }

    #[test]
    fn an_add_on_needs_an_admission_ticket_each() {
        assert_eq!(addons_covered(&[(true, 1)], false), Err(AddonProblem::NoAdmission));
        assert_eq!(addons_covered(&[(false, 1), (true, 2)], false), Err(AddonProblem::NoAdmission));
        assert_eq!(addons_covered(&[(false, 2), (true, 2), (true, 1)], false), Ok(()));
        assert_eq!(addons_covered(&[(false, 3)], false), Ok(()));
        assert_eq!(addons_covered(&[(true, 1), (true, 1)], true), Ok(()));
        assert_eq!(addons_covered(&[(true, 2)], true), Err(AddonProblem::ForATicketOnlyAddonsOneEach));
        assert_eq!(addons_covered(&[(false, 1), (true, 1)], true), Err(AddonProblem::ForATicketOnlyAddonsOneEach));
    }

    #[test]
    fn access_codes_ignore_case_and_belong_to_one_festival() {
        let (a, b) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        assert_eq!(access_code_hash(a, "Press-2027"), access_code_hash(a, " press-2027 "));
        assert_ne!(access_code_hash(a, "press-2027"), access_code_hash(b, "press-2027"));
        assert_ne!(access_code_hash(a, "press-2027"), access_code_hash(a, "press-2028"));
    }
}
