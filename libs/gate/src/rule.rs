//! The gate's rule: what a scan does to a ticket. One pure function, [`decide`], that
//! ticketing's online `Redeem`, its reconciliation of offline uploads and an offline
//! scanner (from its snapshot, [`crate::offline`]) all call, so the three give the same
//! answer to the same case.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

/// The festival-local day of `at` in the IANA `time_zone` (program checked it; an
/// unknown one, which cannot happen, counts as UTC).
pub fn local_day(time_zone: &str, at: DateTime<Utc>) -> NaiveDate {
    match time_zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => at.with_timezone(&tz).date_naive(),
        Err(_) => at.date_naive(),
    }
}

/// What an entrance admits: a check-in list, or the festival grounds (every category,
/// no zone) when no list is named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entrance {
    /// Empty: every category.
    pub categories: Vec<Uuid>,
    /// The zone the entrance opens; `None`: the grounds.
    pub zone: Option<String>,
}

/// When and where a category's tickets are valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validity {
    /// Festival-local days; empty: every day.
    pub days: Vec<NaiveDate>,
    /// Empty: every zone.
    pub zones: Vec<String>,
    pub reentry: bool,
}

/// Where a ticket stands, at one entrance: each check-in list (and the grounds) admits a
/// ticket once, so a VIP ticket enters the grounds and then the VIP area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presence {
    /// Cancelled, refunded or replaced: it never enters again (but may leave).
    pub revoked: bool,
    /// Admitted through this entrance before.
    pub entered: bool,
    /// Inside after an entry here, until an exit here.
    pub inside: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Entry,
    Exit,
}

/// What an accepted scan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// First entry through this entrance (SOLD → USED on the ticket's first anywhere).
    Enter,
    /// Back in after an exit (re-entry categories).
    Reenter,
    /// Out through the gate.
    Leave,
}

impl Move {
    /// Where the ticket stands at the entrance after the move.
    pub fn after(self) -> Presence {
        Presence { revoked: false, entered: true, inside: !matches!(self, Move::Leave) }
    }
}

/// Why a scan is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Revoked,
    /// Already admitted (and, for a re-entry ticket, still inside).
    AlreadyUsed,
    /// An exit of a ticket that is not inside.
    NotInside,
    /// Not a category of the list, or not valid in its zone.
    WrongList,
    /// Not valid on this festival day.
    WrongDay,
}

impl Refusal {
    /// A supervisor may admit anyway, with a reason: the ticket is genuine and unused,
    /// only this entrance or day is wrong. A revoked or used ticket never is.
    pub fn overridable(self) -> bool {
        matches!(self, Refusal::WrongList | Refusal::WrongDay)
    }
}

/// Decides a scan of a ticket of `category` (valid as `validity`) standing at `presence`,
/// at `entrance`, on the festival-local `day`. `override_refusal`: a supervisor admits
/// despite an [overridable](Refusal::overridable) refusal.
///
/// Checks run in a fixed order, so one case always gets one answer: an exit only asks
/// whether the ticket is inside; an entry is refused if revoked, then for the list and
/// the zone, the day, and last if it is already inside.
pub fn decide(
    entrance: &Entrance,
    category: Uuid,
    validity: &Validity,
    presence: Presence,
    direction: Direction,
    day: NaiveDate,
    override_refusal: bool,
) -> Result<Move, Refusal> {
    // Anyone inside may leave, even on a ticket revoked meanwhile (they came in on it).
    if direction == Direction::Exit {
        return if presence.inside { Ok(Move::Leave) } else { Err(Refusal::NotInside) };
    }
    if presence.revoked {
        return Err(Refusal::Revoked);
    }
    let on_list = entrance.categories.is_empty() || entrance.categories.contains(&category);
    let in_zone = match &entrance.zone {
        None => true,
        Some(zone) => validity.zones.is_empty() || validity.zones.contains(zone),
    };
    let gate_check = if !(on_list && in_zone) {
        Err(Refusal::WrongList)
    } else if !(validity.days.is_empty() || validity.days.contains(&day)) {
        Err(Refusal::WrongDay)
    } else {
        Ok(())
    };
    match gate_check {
        Err(refusal) if !(override_refusal && refusal.overridable()) => return Err(refusal),
        _ => {}
    }
    match (presence.entered, presence.inside) {
        (false, _) => Ok(Move::Enter),
        (true, false) if validity.reentry => Ok(Move::Reenter),
        _ => Err(Refusal::AlreadyUsed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOLD: Presence = Presence { revoked: false, entered: false, inside: false };
    const INSIDE: Presence = Presence { revoked: false, entered: true, inside: true };
    const LEFT: Presence = Presence { revoked: false, entered: true, inside: false };
    /// Used (admitted through another entrance), never through this one.
    const ELSEWHERE: Presence = Presence { revoked: false, entered: false, inside: false };

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 7, d).expect("date")
    }

    fn cat(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn days_are_the_festival_s_local_days() {
        let late = DateTime::parse_from_rfc3339("2027-07-01T23:30:00Z").expect("time").to_utc();
        assert_eq!(local_day("Europe/Paris", late), day(2), "01:30 the next day in Paris (CEST)");
        assert_eq!(local_day("America/New_York", late), day(1));
        assert_eq!(local_day("UTC", late), day(1));
    }

    #[test]
    fn a_ticket_enters_once_and_a_reentry_ticket_again_after_each_exit() {
        let grounds = Entrance::default();
        let once = Validity::default();
        let again = Validity { reentry: true, ..Validity::default() };
        let scan = |v: &Validity, p, d| decide(&grounds, cat(1), v, p, d, day(1), false);
        assert_eq!(scan(&once, SOLD, Direction::Entry), Ok(Move::Enter));
        assert_eq!(scan(&once, INSIDE, Direction::Entry), Err(Refusal::AlreadyUsed));
        assert_eq!(scan(&once, INSIDE, Direction::Exit), Ok(Move::Leave));
        assert_eq!(scan(&once, LEFT, Direction::Entry), Err(Refusal::AlreadyUsed), "no re-entry");
        assert_eq!(scan(&again, LEFT, Direction::Entry), Ok(Move::Reenter));
        assert_eq!(scan(&again, INSIDE, Direction::Entry), Err(Refusal::AlreadyUsed), "already inside");
        assert_eq!(scan(&once, SOLD, Direction::Exit), Err(Refusal::NotInside));
        assert_eq!(scan(&once, LEFT, Direction::Exit), Err(Refusal::NotInside));
        assert_eq!(scan(&once, ELSEWHERE, Direction::Entry), Ok(Move::Enter), "each entrance admits once");
        assert_eq!(scan(&once, ELSEWHERE, Direction::Exit), Err(Refusal::NotInside));
        assert_eq!(Move::Leave.after(), LEFT);
        assert_eq!(Move::Reenter.after(), INSIDE);
    }

    #[test]
    fn revoked_tickets_never_enter_and_are_never_overridden_but_may_leave() {
        let wrong_everything = Entrance { categories: vec![cat(2)], zone: Some("vip".into()) };
        let validity = Validity { days: vec![day(2)], zones: vec!["camping".into()], reentry: true };
        for inside in [false, true] {
            let presence = Presence { revoked: true, entered: true, inside };
            let decided = decide(&wrong_everything, cat(1), &validity, presence, Direction::Entry, day(1), true);
            assert_eq!(decided, Err(Refusal::Revoked));
        }
        let inside = Presence { revoked: true, entered: true, inside: true };
        let leaving = decide(&wrong_everything, cat(1), &validity, inside, Direction::Exit, day(1), false);
        assert_eq!(leaving, Ok(Move::Leave));
    }

    #[test]
    fn the_list_the_zone_and_the_day_are_checked_in_that_order_and_a_supervisor_overrides_them() {
        let vip_only = Entrance { categories: vec![cat(2)], zone: None };
        let vip_zone = Entrance { categories: Vec::new(), zone: Some("vip".into()) };
        let saturday = Validity { days: vec![day(3)], zones: vec!["grounds".into()], reentry: false };
        let scan = |e: &Entrance, p, over| decide(e, cat(1), &saturday, p, Direction::Entry, day(2), over);
        assert_eq!(scan(&vip_only, SOLD, false), Err(Refusal::WrongList));
        assert_eq!(scan(&vip_zone, SOLD, false), Err(Refusal::WrongList));
        assert_eq!(scan(&Entrance::default(), SOLD, false), Err(Refusal::WrongDay));
        assert_eq!(scan(&vip_only, SOLD, true), Ok(Move::Enter), "overridden");
        assert_eq!(scan(&Entrance::default(), SOLD, true), Ok(Move::Enter), "overridden");
        assert_eq!(scan(&vip_only, INSIDE, true), Err(Refusal::AlreadyUsed), "a used ticket is not overridden");
        assert_eq!(
            decide(&Entrance::default(), cat(1), &saturday, SOLD, Direction::Entry, day(3), false),
            Ok(Move::Enter)
        );
        // A zone the category does not name, but the category names no zone: valid everywhere.
        assert_eq!(
            decide(&vip_zone, cat(1), &Validity::default(), SOLD, Direction::Entry, day(2), false),
            Ok(Move::Enter)
        );
        // An exit is never refused for the list or the day.
        assert_eq!(decide(&vip_only, cat(1), &saturday, INSIDE, Direction::Exit, day(9), false), Ok(Move::Leave));
        assert!(Refusal::WrongDay.overridable() && !Refusal::AlreadyUsed.overridable());
    }
}
