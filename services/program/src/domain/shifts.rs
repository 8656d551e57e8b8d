//! Staff shift rules: who may work a shift, overlap between two of one person's shifts,
//! and the coverage and worked-hours reports.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

festival_platform::text_enum! {
    /// Where a shift is worked.
    PlaceKind { Stage = "STAGE", Zone = "ZONE", Bar = "BAR", Gate = "GATE", Other = "OTHER" }
}

festival_platform::text_enum! {
    /// The festival role a shift needs (a membership role's name).
    ShiftRole { Staff = "STAFF", Cashier = "CASHIER", Security = "SECURITY" }
}

/// Two half-open [start, end) intervals share time. Back-to-back shifts do not overlap.
pub fn overlaps(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// People still missing on a shift.
pub fn missing(head_count: i32, assigned: usize) -> i32 {
    (head_count - i32::try_from(assigned).unwrap_or(i32::MAX)).max(0)
}

/// One assignment as the hours report sees it.
pub struct Worked {
    pub user: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hours {
    pub shifts: i32,
    /// Minutes of shifts that have ended.
    pub worked_minutes: i64,
    /// Minutes of shifts under way or to come.
    pub scheduled_minutes: i64,
}

/// Hours per person at `now`, by user id. A shift under way counts as scheduled until it ends.
pub fn hours(assignments: &[Worked], now: DateTime<Utc>) -> BTreeMap<Uuid, Hours> {
    let mut out: BTreeMap<Uuid, Hours> = BTreeMap::new();
    for a in assignments {
        let entry = out.entry(a.user).or_default();
        let minutes = (a.end - a.start).num_minutes();
        entry.shifts += 1;
        if a.end <= now {
            entry.worked_minutes += minutes;
        } else {
            entry.scheduled_minutes += minutes;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn back_to_back_is_not_an_overlap() {
        let t = Utc.with_ymd_and_hms(2027, 6, 18, 12, 0, 0).unwrap();
        let h = Duration::hours(1);
        assert!(!overlaps((t, t + h), (t + h, t + h * 2)));
        assert!(overlaps((t, t + h * 2), (t + h, t + h * 3)));
        assert!(overlaps((t, t + h * 3), (t + h, t + h * 2)));
    }

    #[test]
    fn hours_split_worked_and_scheduled() {
        let t = Utc.with_ymd_and_hms(2027, 6, 18, 12, 0, 0).unwrap();
        let (ana, bo) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let h = Duration::hours(1);
        let list = [
            Worked { user: ana, start: t - h * 8, end: t - h * 4 },
            Worked { user: ana, start: t - h, end: t + h },
            Worked { user: bo, start: t + h, end: t + h * 3 },
        ];
        let report = hours(&list, t);
        assert_eq!(report[&ana], Hours { shifts: 2, worked_minutes: 240, scheduled_minutes: 120 });
        assert_eq!(report[&bo], Hours { shifts: 1, worked_minutes: 0, scheduled_minutes: 120 });
        assert_eq!(missing(3, 1), 2);
        assert_eq!(missing(1, 2), 0);
    }
}
