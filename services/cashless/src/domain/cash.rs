//! Cash at the desks: drawers counted by denomination, and what a count says against the
//! ledger.

use festival_platform::{ApiError, ApiResult, codes};

/// Coins and notes of the euro, in cents.
const EUR: &[i64] = &[1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000];

/// Most pieces of one denomination in a count (a bank's bag of coins is far fewer).
const MAX_PIECES: i64 = 100_000;

/// A count: (denomination, pieces), each denomination once, in ascending order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Count(pub Vec<(i64, i64)>);

impl Count {
    /// Checks a count as entered (`field` names it in errors): denominations the
    /// currency has (for EUR; other currencies any positive value up to 100,000), each
    /// once, pieces from 0 to 100,000.
    pub fn new(field: &str, currency: &str, pieces: &[(i64, i64)]) -> ApiResult<Self> {
        let bad = |why: &str| ApiError::field(codes::VALIDATION_FAILED, field, why);
        let mut out: Vec<(i64, i64)> = Vec::with_capacity(pieces.len());
        for &(denomination, count) in pieces {
            let known =
                if currency == "EUR" { EUR.contains(&denomination) } else { (1..=100_000).contains(&denomination) };
            if !known {
                return Err(bad("names a denomination the currency does not have"));
            }
            if !(0..=MAX_PIECES).contains(&count) {
                return Err(bad("counts from 0 to 100000 pieces of a denomination"));
            }
            if out.iter().any(|&(d, _)| d == denomination) {
                return Err(bad("names a denomination twice"));
            }
            out.push((denomination, count));
        }
        out.sort_unstable();
        Ok(Self(out))
    }

    /// What it adds up to (at most 15 × 50,000 × 100,000 cents: no overflow).
    pub fn total(&self) -> i64 {
        self.0.iter().map(|&(d, n)| d * n).sum()
    }

    pub fn denominations(&self) -> Vec<i64> {
        self.0.iter().map(|&(d, _)| d).collect()
    }

    pub fn pieces(&self) -> Vec<i64> {
        self.0.iter().map(|&(_, n)| n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_adds_up_its_pieces_and_refuses_what_the_currency_lacks() {
        let count = Count::new("float", "EUR", &[(2_000, 5), (200, 10), (50, 20)]).unwrap();
        assert_eq!(count.total(), 10_000 + 2_000 + 1_000);
        assert_eq!(count.denominations(), vec![50, 200, 2_000], "kept in order");
        let field =
            |pieces: &[(i64, i64)]| Count::new("float", "EUR", pieces).unwrap_err().violations()[0].field.clone();
        assert_eq!(field(&[(300, 1)]), "float", "no 3-euro note");
        assert_eq!(field(&[(200, -1)]), "float");
        assert_eq!(field(&[(200, 1), (200, 2)]), "float");
        assert_eq!(field(&[(100, 100_001)]), "float");
        assert_eq!(Count::new("float", "EUR", &[]).unwrap().total(), 0);
        assert_eq!(Count::new("float", "CHF", &[(500, 2)]).unwrap().total(), 1_000);
    }
}
