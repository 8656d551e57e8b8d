//! Age levels: a product's (16 for beer and wine, 18 for spirits) against the age the
//! holder was verified to have on the festival's day.

use chrono::{Datelike, NaiveDate};

/// The highest age level a product may name.
pub const MAX_LEVEL: i32 = 21;

/// Full years from `birth` to `day`. Someone born on 29 February is a year older on
/// 1 March of a common year (as German and French law count it).
pub fn age_on(birth: NaiveDate, day: NaiveDate) -> i32 {
    let years = day.year() - birth.year();
    if (day.month(), day.day()) < (birth.month(), birth.day()) { years - 1 } else { years }
}

/// Whether a holder born on `birth` (None: never verified) may buy a product of
/// `level` on `day`.
pub fn allowed(level: i32, birth: Option<NaiveDate>, day: NaiveDate) -> bool {
    level <= 0 || birth.is_some_and(|b| age_on(b, day) >= level)
}

/// The level a holder shows on `day`: 18, 16 or 0.
pub fn shown_level(birth: Option<NaiveDate>, day: NaiveDate) -> i32 {
    match birth.map(|b| age_on(b, day)) {
        Some(age) if age >= 18 => 18,
        Some(age) if age >= 16 => 16,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn an_age_turns_on_the_birthday() {
        assert_eq!(age_on(d("2008-07-04"), d("2026-07-03")), 17);
        assert_eq!(age_on(d("2008-07-04"), d("2026-07-04")), 18);
        assert_eq!(age_on(d("2008-02-29"), d("2026-02-28")), 17, "a leap-day birthday in a common year");
        assert_eq!(age_on(d("2008-02-29"), d("2026-03-01")), 18);
        assert_eq!(age_on(d("2008-02-29"), d("2024-02-29")), 16);
    }

    #[test]
    fn a_product_needs_a_verified_holder_old_enough() {
        let day = d("2026-07-04");
        assert!(allowed(0, None, day), "no level, no check");
        assert!(!allowed(16, None, day), "an unverified holder buys no beer");
        assert!(allowed(16, Some(d("2010-07-04")), day));
        assert!(!allowed(18, Some(d("2010-07-04")), day));
        assert!(!allowed(16, Some(d("2010-07-05")), day), "a day short");
        assert_eq!(shown_level(Some(d("2010-07-04")), day), 16);
        assert_eq!(shown_level(Some(d("2000-01-01")), day), 18);
        assert_eq!(shown_level(Some(d("2015-01-01")), day), 0);
        assert_eq!(shown_level(None, day), 0);
    }
}
