//! What a checkout may ask for: its lines and total, its return URLs, how long it stays
//! open (Stripe allows 30 minutes to 24 hours).

use chrono::{DateTime, Duration, Utc};

/// One line of a checkout, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub name: String,
    pub quantity: i64,
    pub unit_amount_minor: i64,
}

/// The total of `lines`, or `None` when it overflows or passes `max`.
pub fn total(lines: &[Line], max: i64) -> Option<i64> {
    lines
        .iter()
        .try_fold(0i64, |sum, l| l.unit_amount_minor.checked_mul(l.quantity).and_then(|t| sum.checked_add(t)))
        .filter(|t| *t <= max)
}

/// When the checkout closes: as asked, kept within what Stripe accepts (30 minutes to
/// 24 hours from now). `now` may be rounded down to the minute by the caller, so the
/// earliest keeps two minutes of margin; unset: that earliest.
pub fn expiry(asked: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    let earliest = now + Duration::minutes(32);
    let latest = now + Duration::hours(24) - Duration::minutes(1);
    asked.unwrap_or(earliest).clamp(earliest, latest)
}

/// An absolute http(s) URL without spaces or control characters (where the provider
/// sends the buyer; Stripe refuses anything else).
pub fn is_return_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && url.split_once("://").is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// ISO 4217 as Stripe takes it: three ASCII letters (sent lowercase).
pub fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(q: i64, unit: i64) -> Line {
        Line { name: "Weekend".into(), quantity: q, unit_amount_minor: unit }
    }

    #[test]
    fn totals_add_up_and_refuse_overflow() {
        assert_eq!(total(&[line(2, 4500), line(1, 1000)], 1_000_000), Some(10_000));
        assert_eq!(total(&[line(2, i64::MAX)], i64::MAX), None);
        assert_eq!(total(&[line(1, 2_000_000)], 1_000_000), None);
    }

    #[test]
    fn expiry_stays_within_stripe_s_window() {
        let now = Utc::now();
        assert_eq!(expiry(None, now), now + Duration::minutes(32));
        assert_eq!(expiry(Some(now + Duration::minutes(5)), now), now + Duration::minutes(32));
        assert_eq!(expiry(Some(now + Duration::hours(2)), now), now + Duration::hours(2));
        assert_eq!(expiry(Some(now + Duration::days(3)), now), now + Duration::hours(24) - Duration::minutes(1));
    }

    #[test]
    fn return_urls_and_currencies() {
        assert!(is_return_url("https://shop.example/thanks?order=1"));
        assert!(is_return_url("http://localhost:3000/paid"));
        for bad in ["", "javascript:alert(1)", "https://", "https:///x", "ftp://x", "https://a b", "/relative"] {
            assert!(!is_return_url(bad), "{bad}");
        }
        assert!(is_currency("EUR") && is_currency("eur"));
        assert!(!is_currency("EURO") && !is_currency("E1R"));
    }
}
