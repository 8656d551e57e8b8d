//! What a staff badge may say: a festival role, a short list of zones written plainly,
//! and an end within a year.

use chrono::{DateTime, Duration, Utc};
use festival_platform::auth::Role;
use festival_platform::credential::badge::{MAX_ZONE_LEN, MAX_ZONES, ROLES};

/// Why a badge cannot be issued as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadgeRule {
    NotAFestivalRole,
    TooManyZones,
    /// Empty, too long, or with characters other than A-Z a-z 0-9 - _ .
    BadZone,
    /// Not in the future, or more than a year ahead.
    BadEnd,
}

/// Live badges one holder may have for one role at one festival (a spare, a lost one
/// being replaced).
pub const MAX_LIVE_PER_ROLE: i64 = 4;

/// The longest a badge lives.
pub fn max_validity() -> Duration {
    Duration::days(366)
}

/// The zones as they will be written: trimmed, lower-cased (gates compare exactly), each
/// once, in the order given.
pub fn zones(raw: &[String]) -> Result<Vec<String>, BadgeRule> {
    let mut zones: Vec<String> = Vec::with_capacity(raw.len());
    for zone in raw {
        let zone = zone.trim();
        let plain = zone.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if zone.is_empty() || zone.len() > MAX_ZONE_LEN || !plain {
            return Err(BadgeRule::BadZone);
        }
        let zone = zone.to_ascii_lowercase();
        if !zones.contains(&zone) {
            zones.push(zone);
        }
    }
    if zones.len() > MAX_ZONES {
        return Err(BadgeRule::TooManyZones);
    }
    Ok(zones)
}

/// A role a badge can carry.
pub fn role(role: Role) -> Result<Role, BadgeRule> {
    if ROLES.contains(&role) { Ok(role) } else { Err(BadgeRule::NotAFestivalRole) }
}

/// An end in the future and at most [`max_validity`] ahead.
pub fn valid_until(end: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>, BadgeRule> {
    if end <= now || end > now + max_validity() { Err(BadgeRule::BadEnd) } else { Ok(end) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_plain_short_few_and_each_once() {
        let given = |zs: &[&str]| zones(&zs.iter().map(|z| (*z).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            given(&[" backstage ", "North-Gate", "BackStage"]),
            Ok(vec!["backstage".into(), "north-gate".into()])
        );
        assert_eq!(given(&[]), Ok(vec![]));
        for bad in ["", "  ", "back stage", "zöne", "a\u{0}b", &"z".repeat(33)] {
            assert_eq!(given(&[bad]), Err(BadgeRule::BadZone), "{bad:?}");
        }
        let many: Vec<String> = (0..17).map(|i| format!("zone-{i}")).collect();
        assert_eq!(zones(&many), Err(BadgeRule::TooManyZones));
        assert_eq!(zones(&many[..16]).map(|z| z.len()), Ok(16));
    }

    #[test]
    fn only_festival_roles_and_ends_within_a_year() {
        assert_eq!(role(Role::Security), Ok(Role::Security));
        assert_eq!(role(Role::User), Err(BadgeRule::NotAFestivalRole));
        assert_eq!(role(Role::Admin), Err(BadgeRule::NotAFestivalRole));
        let now = Utc::now();
        assert!(valid_until(now + Duration::days(3), now).is_ok());
        assert_eq!(valid_until(now, now), Err(BadgeRule::BadEnd));
        assert_eq!(valid_until(now + Duration::days(367), now), Err(BadgeRule::BadEnd));
    }
}
