//! What a valid festival is: slug, time zone, currency, dates, languages and links.

use chrono::{DateTime, Utc};

pub const MAX_NAME: usize = 200;
pub const MAX_TEXT: usize = 500;

/// Longest changeover a stage may ask for between two sets: a day.
pub const MAX_CHANGEOVER_MINUTES: i32 = 24 * 60;
/// Genres per artist, and characters per genre.
pub const MAX_GENRES: usize = 20;
pub const MAX_GENRE_CHARS: usize = 50;

/// How long a festival's creator manages it on the strength of being its creator: the
/// access-token lifetime (identity's `tokens.access_ttl_secs`, 15 minutes). By then any
/// token the creator holds was minted after identity granted the ORGANIZER membership
/// (from `festival.created`), so the role itself decides, and revoking it takes effect.
pub const CREATOR_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Whether the creator still manages a festival created at `created_at` without the role.
pub fn creator_may_manage(created_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now < created_at + CREATOR_GRACE
}

/// Genres match case-insensitively: kept and searched lower-cased and trimmed.
pub fn normalise_genre(genre: &str) -> String {
    genre.trim().to_lowercase()
}

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

/// Most languages a festival publishes in, images it shows, links an artist has.
pub const MAX_LANGUAGES: usize = 20;
pub const MAX_URLS: usize = 20;

/// A BCP 47 tag of the common shape: a 2–3 letter lower-case language, then optional
/// subtags of 2–8 letters or digits ("en", "fr-CA", "zh-Hant-TW").
pub fn valid_language(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang = parts.next().unwrap_or("");
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// An absolute https URL with a host and no whitespace.
pub fn valid_https_url(url: &str) -> bool {
    url.strip_prefix("https://").is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control())
    })
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
    fn a_creator_manages_without_the_role_only_for_a_token_s_lifetime() {
        let created = Utc::now();
        assert!(creator_may_manage(created, created));
        assert!(creator_may_manage(created, created + CREATOR_GRACE - chrono::TimeDelta::seconds(1)));
        assert!(!creator_may_manage(created, created + CREATOR_GRACE));
        assert!(!creator_may_manage(created, created + chrono::TimeDelta::days(365)));
    }

    #[test]
    fn genres_are_compared_lower_cased_and_trimmed() {
        assert_eq!(normalise_genre("  Post-Rock "), "post-rock");
        assert_eq!(normalise_genre("ÉLECTRO"), "électro");
    }

    #[test]
    fn currencies_and_dates() {
        assert!(valid_currency("EUR") && !valid_currency("eur") && !valid_currency("EURO"));
        let t = Utc::now();
        assert!(valid_dates(Some(t), Some(t + chrono::Duration::hours(1))));
        assert!(!valid_dates(Some(t), Some(t)));
        assert!(valid_dates(None, Some(t)));
    }

    #[test]
    fn language_tags_and_urls() {
        for good in ["en", "fr-CA", "zh-Hant-TW", "nds"] {
            assert!(valid_language(good), "{good}");
        }
        for bad in ["", "EN", "e", "english", "en-", "en_GB", "fr-C"] {
            assert!(!valid_language(bad), "{bad}");
        }
        assert!(valid_https_url("https://cdn.example.org/poster.jpg"));
        for bad in ["http://x.org/a.jpg", "https://", "https:///a", "https://a.org/a b.jpg", "javascript:alert(1)"] {
            assert!(!valid_https_url(bad), "{bad}");
        }
    }
}
