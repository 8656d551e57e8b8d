//! What a valid festival is: slug, time zone, currency and dates.

use chrono::{DateTime, Utc};

pub const MAX_NAME: usize = 200;
pub const MAX_TEXT: usize = 500;

/// 3 to 63 characters of a-z, 0-9 and inner hyphens.
pub fn valid_slug(slug: &str) -> bool {
    (3..=63).contains(&slug.len())
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && !slug.contains("--")
}

/// An IANA time zone name known to the tz database.
pub fn valid_time_zone(tz: &str) -> bool {
    tz.parse::<chrono_tz::Tz>().is_ok()
}

/// Three upper-case letters (ISO 4217 shape).
pub fn valid_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Start strictly before end, when both are known.
pub fn valid_dates(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> bool {
    match (start, end) {
        (Some(s), Some(e)) => s < e,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_url_safe() {
        assert!(valid_slug("hellfest-2027"));
        for bad in ["ab", "Hellfest", "hell fest", "-x-y", "x-y-", "a--b", "été-2027"] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }

    #[test]
    fn time_zones_come_from_the_tz_database() {
        assert!(valid_time_zone("Europe/Paris"));
        assert!(valid_time_zone("America/Argentina/Buenos_Aires"));
        assert!(!valid_time_zone("Mars/Olympus_Mons"));
        assert!(!valid_time_zone(""));
    }

    #[test]
    fn currencies_and_dates() {
        assert!(valid_currency("EUR") && !valid_currency("eur") && !valid_currency("EURO"));
        let t = Utc::now();
        assert!(valid_dates(Some(t), Some(t + chrono::Duration::hours(1))));
        assert!(!valid_dates(Some(t), Some(t)));
        assert!(valid_dates(None, Some(t)));
    }
}
