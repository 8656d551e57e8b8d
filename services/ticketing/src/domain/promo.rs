//! Promo codes: what a code takes off a basket. Limits count tickets, not orders: each
//! discounted ticket uses the code once, so a one-use 100 % code buys one ticket.

use uuid::Uuid;

/// Letters and digits that cannot be mistaken for one another when read aloud or typed.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A new code: 10 random characters of [`ALPHABET`] (50 bits), after `prefix-` if any.
pub fn random_code(prefix: &str) -> String {
    use rand::Rng as _;
    let mut rng = rand::rngs::OsRng;
    let random: String = (0..10).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    if prefix.is_empty() { random } else { format!("{prefix}-{random}") }
}

/// How a code discounts each ticket it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// 1 to 100 percent of the ticket's price, rounded down to the minor unit.
    Percent(i64),
    /// A fixed amount in minor units, at most the ticket's price.
    Fixed(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promo {
    pub id: Uuid,
    pub discount: Discount,
    /// Categories it applies to; empty: all.
    pub categories: Vec<Uuid>,
    /// Gross basket (before any discount) it needs, in minor units.
    pub min_basket_minor: i64,
    pub stackable: bool,
}

/// A basket line: `quantity` tickets of `category` at `unit_price`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub category: Uuid,
    pub unit_price: i64,
    pub quantity: i32,
}

/// What one code does to a basket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub promo: Uuid,
    /// Tickets it discounts: the uses it takes.
    pub tickets: i32,
    pub discount_minor: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromoError {
    /// Two codes and one of them does not stack.
    NotStackable,
    /// The basket is below the code's minimum.
    BelowMinimum(Uuid),
    /// The code applies to none of the basket's tickets.
    NotApplicable(Uuid),
}

/// What codes did to a basket: each code's part, and what each line's tickets cost after
/// them (what a refund of one of those tickets gives back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub applied: Vec<Applied>,
    /// Per line, in the basket's order.
    pub net_unit_prices: Vec<i64>,
}

/// Applies `promos` to `lines`: each code discounts every ticket of its categories that
/// it takes something off, on what earlier codes left of its price. The caller passes
/// them in a fixed order (percentages first, then by id), so the total does not depend
/// on the order a buyer typed them in.
pub fn apply(lines: &[Line], promos: &[Promo]) -> Result<Priced, PromoError> {
    if promos.len() > 1 && promos.iter().any(|p| !p.stackable) {
        return Err(PromoError::NotStackable);
    }
    let gross: i64 = lines.iter().map(|l| l.unit_price.saturating_mul(i64::from(l.quantity))).sum();
    // What is left of each line's unit price after the codes applied so far.
    let mut left: Vec<i64> = lines.iter().map(|l| l.unit_price).collect();
    let mut applied = Vec::with_capacity(promos.len());
    for promo in promos {
        if gross < promo.min_basket_minor {
            return Err(PromoError::BelowMinimum(promo.id));
        }
        let (mut tickets, mut discount) = (0i32, 0i64);
        for (line, left) in lines.iter().zip(left.iter_mut()) {
            if !promo.categories.is_empty() && !promo.categories.contains(&line.category) {
                continue;
            }
            let off = match promo.discount {
                Discount::Percent(p) => *left * p.clamp(0, 100) / 100,
                Discount::Fixed(v) => v.clamp(0, *left),
            };
            // A ticket the code takes nothing off (free, or already free after an earlier
            // code) does not use it.
            if off == 0 {
                continue;
            }
            *left -= off;
            tickets += line.quantity;
            discount += off * i64::from(line.quantity);
        }
        if tickets == 0 {
            return Err(PromoError::NotApplicable(promo.id));
        }
        applied.push(Applied { promo: promo.id, tickets, discount_minor: discount });
    }
    Ok(Priced { applied, net_unit_prices: left })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promo(n: u128, discount: Discount, stackable: bool) -> Promo {
        Promo { id: Uuid::from_u128(n), discount, categories: vec![], min_basket_minor: 0, stackable }
    }

    const GA: Uuid = Uuid::from_u128(100);
    const VIP: Uuid = Uuid::from_u128(200);

    fn basket() -> Vec<Line> {
        vec![
            Line { category: GA, unit_price: 5_000, quantity: 2 },
            Line { category: VIP, unit_price: 12_999, quantity: 1 },
        ]
    }

    #[test]
    fn percentages_round_down_per_ticket_and_fixed_amounts_never_exceed_the_price() {
        let ten = apply(&basket(), &[promo(1, Discount::Percent(10), false)]).expect("applies").applied;
        assert_eq!(ten, vec![Applied { promo: Uuid::from_u128(1), tickets: 3, discount_minor: 500 * 2 + 1_299 }]);
        let fixed = apply(&basket(), &[promo(2, Discount::Fixed(6_000), false)]).expect("applies").applied;
        assert_eq!(fixed[0].discount_minor, 5_000 * 2 + 6_000, "at most each ticket's price");
        let free = apply(&basket()[..1], &[promo(3, Discount::Percent(100), false)]).expect("applies").applied;
        assert_eq!((free[0].tickets, free[0].discount_minor), (2, 10_000), "a 100 % code uses one per ticket");
    }

    #[test]
    fn each_line_keeps_what_its_tickets_cost_after_the_codes() {
        let vip_only = Promo { categories: vec![VIP], ..promo(1, Discount::Percent(100), true) };
        let priced = apply(&basket(), &[promo(2, Discount::Percent(10), true), vip_only]).expect("applies");
        assert_eq!(priced.net_unit_prices, vec![4_500, 0], "the free VIP ticket refunds nothing");
        let gross: i64 = basket().iter().map(|l| l.unit_price * i64::from(l.quantity)).sum();
        let discount: i64 = priced.applied.iter().map(|a| a.discount_minor).sum();
        let net: i64 = basket().iter().zip(&priced.net_unit_prices).map(|(l, p)| p * i64::from(l.quantity)).sum();
        assert_eq!(net, gross - discount);
    }

    #[test]
    fn codes_stack_only_when_both_say_so_and_apply_to_what_is_left() {
        assert_eq!(
            apply(&basket(), &[promo(1, Discount::Percent(10), false), promo(2, Discount::Percent(10), false)]),
            Err(PromoError::NotStackable)
        );
        assert_eq!(
            apply(&basket(), &[promo(1, Discount::Percent(10), true), promo(2, Discount::Fixed(1), false)]),
            Err(PromoError::NotStackable)
        );
        let both =
            apply(&basket()[..1], &[promo(1, Discount::Percent(50), true), promo(2, Discount::Percent(50), true)])
                .expect("stacks")
                .applied;
        assert_eq!(both.iter().map(|a| a.discount_minor).collect::<Vec<_>>(), vec![5_000, 2_500]);
    }

    #[test]
    fn a_ticket_the_code_takes_nothing_off_does_not_use_it() {
        let lines =
            [Line { category: GA, unit_price: 0, quantity: 1 }, Line { category: VIP, unit_price: 9_000, quantity: 1 }];
        let applied =
            apply(&lines, &[promo(1, Discount::Percent(100), false)]).expect("applies to the paid ticket").applied;
        assert_eq!((applied[0].tickets, applied[0].discount_minor), (1, 9_000));
        assert_eq!(
            apply(&lines[..1], &[promo(1, Discount::Fixed(500), false)]),
            Err(PromoError::NotApplicable(Uuid::from_u128(1)))
        );
    }

    #[test]
    fn categories_and_minimum_baskets_are_respected() {
        let vip_only = Promo { categories: vec![VIP], ..promo(1, Discount::Fixed(1_000), false) };
        assert_eq!(apply(&basket(), std::slice::from_ref(&vip_only)).expect("applies").applied[0].tickets, 1);
        assert_eq!(apply(&basket()[..1], &[vip_only]), Err(PromoError::NotApplicable(Uuid::from_u128(1))));
        let big_spenders = Promo { min_basket_minor: 30_000, ..promo(2, Discount::Percent(5), false) };
        assert_eq!(apply(&basket(), &[big_spenders]), Err(PromoError::BelowMinimum(Uuid::from_u128(2))));
    }
}
