//! Which card gets how much back at the close-out. A wallet's unspent online money goes
//! back to the payments that loaded it, newest first (the last top-up is the one whose
//! money is unspent: money loaded online is spent last, so the newest is spent last of
//! all), each at most what is left of it to refund.

use uuid::Uuid;

/// A top-up paid online, and how much of it can still go back to its card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refundable {
    pub payment: Uuid,
    pub left: i64,
}

/// Splits `amount` over `payments` (newest first): each payment's refund, none empty.
/// Less than `amount` in all when the payments cannot take more (money moved in from
/// another wallet's card stays, for the holder to donate).
pub fn allocate(amount: i64, payments: &[Refundable]) -> Vec<(Uuid, i64)> {
    let mut rest = amount.max(0);
    let mut refunds = Vec::new();
    for p in payments {
        if rest == 0 {
            break;
        }
        let take = rest.min(p.left.max(0));
        if take > 0 {
            refunds.push((p.payment, take));
            rest -= take;
        }
    }
    refunds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u128, left: i64) -> Refundable {
        Refundable { payment: Uuid::from_u128(n), left }
    }

    #[test]
    fn the_newest_payment_takes_first_and_none_more_than_is_left() {
        let payments = [p(3, 2_000), p(2, 0), p(1, 5_000)];
        assert_eq!(allocate(1_500, &payments), vec![(Uuid::from_u128(3), 1_500)]);
        assert_eq!(allocate(4_000, &payments), vec![(Uuid::from_u128(3), 2_000), (Uuid::from_u128(1), 2_000)]);
        let all = allocate(9_000, &payments);
        assert_eq!(all, vec![(Uuid::from_u128(3), 2_000), (Uuid::from_u128(1), 5_000)], "at most what the cards paid");
        assert!(allocate(0, &payments).is_empty());
        assert!(allocate(-5, &payments).is_empty());
        assert!(allocate(100, &[p(1, -10)]).is_empty(), "a payment refunded beyond its amount takes nothing");
    }
}
