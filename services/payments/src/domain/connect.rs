//! Connect money rules: the platform's application fee on a vendor's charge, and the
//! vendor's share of a refund (what a transfer reversal takes back, or what the vendor
//! owes when it cannot).

/// The application fee of a charge of `amount` at `commission_bps` basis points, rounded
/// down: the vendor never receives less than its share.
pub fn application_fee(amount: i64, commission_bps: i32) -> i64 {
    let bps = i128::from(commission_bps.clamp(0, 10_000));
    i64::try_from(i128::from(amount.max(0)) * bps / 10_000).unwrap_or(0)
}

/// The vendor's share of a refund of `refund` out of a charge of `amount` whose fee was
/// `fee`: the refund in proportion to what was transferred, rounded down (the rest is the
/// platform's fee, refunded with it).
pub fn vendor_share(refund: i64, amount: i64, fee: i64) -> i64 {
    if amount <= 0 || refund <= 0 {
        return 0;
    }
    let transferred = i128::from((amount - fee).clamp(0, amount));
    i64::try_from(i128::from(refund.min(amount)) * transferred / i128::from(amount)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_fee_is_the_commission_rounded_down() {
        assert_eq!(application_fee(10_000, 500), 500);
        assert_eq!(application_fee(999, 1_000), 99);
        assert_eq!(application_fee(10_000, 0), 0);
        assert_eq!(application_fee(10_000, 10_000), 10_000);
        assert_eq!(application_fee(i64::MAX, 10_000), i64::MAX);
    }

    #[test]
    fn a_refund_takes_back_the_vendor_s_part_only() {
        assert_eq!(vendor_share(10_000, 10_000, 500), 9_500);
        assert_eq!(vendor_share(5_000, 10_000, 500), 4_750);
        assert_eq!(vendor_share(3_333, 10_000, 0), 3_333);
        assert_eq!(vendor_share(0, 10_000, 500), 0);
        assert_eq!(vendor_share(20_000, 10_000, 500), 9_500, "never more than was transferred");
    }

    proptest! {
        #[test]
        fn shares_never_pass_what_was_transferred(amount in 1i64..1_000_000_000, bps in 0i32..=10_000, cut in 1i64..=100) {
            let fee = application_fee(amount, bps);
            prop_assert!(fee >= 0 && fee <= amount);
            let refund = (amount * cut / 100).max(1);
            let share = vendor_share(refund, amount, fee);
            prop_assert!(share >= 0 && share <= refund && share <= amount - fee);
            // Refunds in pieces never take back more than the whole.
            let pieces = vendor_share(amount / 2, amount, fee) + vendor_share(amount - amount / 2, amount, fee);
            prop_assert!(pieces <= amount - fee);
        }
    }
}
