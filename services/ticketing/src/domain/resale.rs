//! Face-value resale: what the next buyer pays, what goes back to the seller, and while
//! a listed ticket may be sold.

use chrono::{DateTime, Utc};

use super::status::{FestivalStatus, TicketStatus, gates_may_be_open};

/// A festival's resale fee: a fixed part plus a share of what the seller gets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fee {
    pub fixed_minor: i64,
    /// Hundredths of a percent, 0 to 10,000.
    pub basis_points: i32,
}

/// A listing's money, fixed when it is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// What the buyer pays: the category's price (face value).
    pub price_minor: i64,
    /// What the festival keeps of what the seller paid.
    pub fee_minor: i64,
    /// What goes back to the seller once sold.
    pub payout_minor: i64,
}

/// The terms of reselling a ticket whose buyer paid `paid_minor` (its share of the
/// order, after promo codes) in a category priced `face_minor` now. The seller never
/// gets more than they paid nor more than the buyer pays (no profit from a price rise or
/// a discount), and the fee (rounded down) never exceeds that: `payout + fee` is the
/// smaller of the two, exactly.
pub fn terms(face_minor: i64, paid_minor: i64, fee: Fee) -> Terms {
    let base = face_minor.min(paid_minor).max(0);
    let share = i128::from(base) * i128::from(fee.basis_points.clamp(0, 10_000)) / 10_000;
    let fee_minor = (i128::from(fee.fixed_minor.max(0)) + share).min(i128::from(base));
    let fee_minor = i64::try_from(fee_minor).unwrap_or(base);
    Terms { price_minor: face_minor.max(0), fee_minor, payout_minor: base - fee_minor }
}

/// Why a listed ticket is no longer for sale, if it is not: a listing is offered only
/// while its ticket is unused and valid, the festival sells and its gates cannot be open
/// yet (offline scanners may hold the old credential after), and its category is still
/// on sale and may still change hands.
pub fn still_for_sale(
    ticket: TicketStatus,
    festival: Option<(FestivalStatus, Option<DateTime<Utc>>)>,
    sale_end: Option<DateTime<Utc>>,
    transfer_cutoff: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), &'static str> {
    if ticket != TicketStatus::Sold {
        return Err("The ticket is no longer valid or was used");
    }
    let Some((status, start)) = festival else { return Err("The festival no longer sells tickets") };
    if gates_may_be_open(status, start, now) {
        return Err("The festival has started: tickets no longer change hands");
    }
    if status != FestivalStatus::Published {
        return Err("The festival no longer sells tickets");
    }
    if sale_end.is_some_and(|end| end <= now) {
        return Err("The sale of this category has ended");
    }
    if transfer_cutoff.is_some_and(|cutoff| cutoff <= now) {
        return Err("The transfer deadline of this category has passed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_listing_is_for_sale_only_while_its_ticket_festival_and_category_allow() {
        let now = Utc::now();
        let later = Some(now + Duration::days(1));
        let published = Some((FestivalStatus::Published, later));
        assert_eq!(still_for_sale(TicketStatus::Sold, published, later, later, now), Ok(()));
        assert_eq!(still_for_sale(TicketStatus::Sold, published, None, None, now), Ok(()));
        for status in [TicketStatus::Used, TicketStatus::Cancelled, TicketStatus::Refunded] {
            assert!(still_for_sale(status, published, later, later, now).is_err(), "{status:?}");
        }
        for festival in [
            None,
            Some((FestivalStatus::Cancelled, later)),
            Some((FestivalStatus::Ongoing, later)),
            Some((FestivalStatus::Published, Some(now))),
        ] {
            assert!(still_for_sale(TicketStatus::Sold, festival, later, later, now).is_err(), "{festival:?}");
        }
        assert!(still_for_sale(TicketStatus::Sold, published, Some(now), later, now).is_err(), "sale ended");
        assert!(still_for_sale(TicketStatus::Sold, published, later, Some(now), now).is_err(), "cut-off passed");
    }

    const NONE: Fee = Fee { fixed_minor: 0, basis_points: 0 };

    #[test]
    fn the_seller_gets_what_they_paid_up_to_the_face_value_minus_the_fee() {
        assert_eq!(terms(5_000, 5_000, NONE), Terms { price_minor: 5_000, fee_minor: 0, payout_minor: 5_000 });
        let fee = Fee { fixed_minor: 200, basis_points: 500 };
        assert_eq!(terms(5_000, 5_000, fee), Terms { price_minor: 5_000, fee_minor: 450, payout_minor: 4_550 });
        // Bought with a 20 % code: back what was paid, not the face value.
        assert_eq!(terms(5_000, 4_000, NONE).payout_minor, 4_000);
        // The price fell since: never more than the next buyer pays.
        assert_eq!(terms(3_000, 5_000, NONE), Terms { price_minor: 3_000, fee_minor: 0, payout_minor: 3_000 });
        // A fee larger than the ticket takes it all, never more.
        assert_eq!(terms(100, 100, Fee { fixed_minor: 500, basis_points: 0 }).payout_minor, 0);
        assert_eq!(terms(0, 0, fee), Terms { price_minor: 0, fee_minor: 0, payout_minor: 0 });
        // Rounded down: 1 % of 199 is 1.
        assert_eq!(terms(199, 199, Fee { fixed_minor: 0, basis_points: 100 }).fee_minor, 1);
    }

    proptest::proptest! {
        #[test]
        fn payout_and_fee_add_up_to_what_is_refundable_and_stay_within_it(
            face in 0i64..10_000_000_000,
            paid in 0i64..10_000_000_000,
            fixed in 0i64..100_000_000,
            bp in 0i32..=10_000,
        ) {
            let t = terms(face, paid, Fee { fixed_minor: fixed, basis_points: bp });
            proptest::prop_assert_eq!(t.price_minor, face);
            proptest::prop_assert_eq!(t.payout_minor + t.fee_minor, face.min(paid));
            proptest::prop_assert!(t.payout_minor >= 0 && t.fee_minor >= 0);
            proptest::prop_assert!(t.payout_minor <= paid && t.payout_minor <= face);
        }
    }
}
