//! The festival's limits on top-ups and charges, and the day a daily cap counts in: the
//! festival's calendar day in its own time zone (so a DST change makes one day 23 or 25
//! hours long, never shifts midnight).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use festival_platform::{ApiError, ApiResult, codes};

/// A festival's cashless rules, in minor units of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Limits {
    pub min_top_up_minor: i64,
    pub max_top_up_minor: i64,
    pub max_balance_minor: i64,
    pub max_charge_minor: i64,
    /// 0: no cap.
    pub daily_cap_minor: i64,
    pub offline_limit_minor: i64,
    /// 0: never warn.
    pub low_balance_minor: i64,
    /// How long after a sale a supervisor may void it; 0: never.
    pub void_window_seconds: i64,
    /// Charged for a replacement wristband; 0: free.
    pub replacement_fee_minor: i64,
}

/// The longest void window: a day (a void is a till's correction, not a refund policy).
pub const MAX_VOID_WINDOW_SECONDS: i64 = 86_400;

/// The largest amount any rule may name (a million in major units of a two-decimal
/// currency): far above any festival's, far below an overflow.
pub const MAX_RULE_MINOR: i64 = 100_000_000;

impl Limits {
    /// Rules an organiser may set: positive where a zero would block everything, ordered
    /// where two bound one range.
    pub fn check(&self) -> ApiResult<()> {
        let field = |name: &str, why: &str| Err(ApiError::field(codes::VALIDATION_FAILED, name, why));
        let all = [
            ("min_top_up_minor", self.min_top_up_minor),
            ("max_top_up_minor", self.max_top_up_minor),
            ("max_balance_minor", self.max_balance_minor),
            ("max_charge_minor", self.max_charge_minor),
            ("daily_cap_minor", self.daily_cap_minor),
            ("offline_limit_minor", self.offline_limit_minor),
            ("low_balance_minor", self.low_balance_minor),
            ("replacement_fee_minor", self.replacement_fee_minor),
        ];
        for (name, value) in all {
            if !(0..=MAX_RULE_MINOR).contains(&value) {
                return field(name, "must be between 0 and 100000000");
            }
        }
        if !(0..=MAX_VOID_WINDOW_SECONDS).contains(&self.void_window_seconds) {
            return field("void_window_seconds", "must be between 0 and 86400");
        }
        if self.min_top_up_minor == 0 {
            return field("min_top_up_minor", "must be positive");
        }
        if self.max_top_up_minor < self.min_top_up_minor {
            return field("max_top_up_minor", "must be at least min_top_up_minor");
        }
        if self.max_balance_minor == 0 {
            return field("max_balance_minor", "must be positive");
        }
        if self.max_charge_minor == 0 {
            return field("max_charge_minor", "must be positive");
        }
        Ok(())
    }

    /// A top-up of `amount` on a wallet holding `balance`.
    pub fn top_up(&self, amount: i64, balance: i64) -> ApiResult<()> {
        if amount < self.min_top_up_minor || amount > self.max_top_up_minor {
            return Err(ApiError::new(codes::TOP_UP_LIMIT_EXCEEDED).with_message(format!(
                "A top-up is between {} and {} (minor units)",
                self.min_top_up_minor, self.max_top_up_minor
            )));
        }
        if balance.saturating_add(amount) > self.max_balance_minor {
            return Err(ApiError::new(codes::BALANCE_LIMIT_EXCEEDED)
                .with_message(format!("A wallet holds at most {} (minor units)", self.max_balance_minor)));
        }
        Ok(())
    }

    /// Why a charge of `amount` is refused to a wallet holding `balance` that spent
    /// `spent_today` today, if it is.
    pub fn charge(&self, amount: i64, balance: i64, spent_today: i64) -> ApiResult<()> {
        if amount > self.max_charge_minor {
            return Err(ApiError::new(codes::CHARGE_LIMIT_EXCEEDED));
        }
        if amount > balance {
            return Err(ApiError::new(codes::INSUFFICIENT_BALANCE));
        }
        if self.daily_cap_minor > 0 && spent_today.saturating_add(amount) > self.daily_cap_minor {
            return Err(ApiError::new(codes::DAILY_CAP_EXCEEDED));
        }
        Ok(())
    }
}

/// The festival's calendar day at `now`.
pub fn festival_day(now: DateTime<Utc>, time_zone: &str) -> NaiveDate {
    // Program checks the zone when a festival is written; an unknown one (never seen)
    // counts in UTC rather than refusing to charge.
    let tz: Tz = time_zone.parse().unwrap_or(Tz::UTC);
    now.with_timezone(&tz).date_naive()
}

/// What a wallet spent on `today`, given what it spent on `spent_day`.
pub fn spent_on(today: NaiveDate, spent_day: Option<NaiveDate>, spent: i64) -> i64 {
    if spent_day == Some(today) { spent } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn limits() -> Limits {
        Limits {
            min_top_up_minor: 500,
            max_top_up_minor: 20_000,
            max_balance_minor: 30_000,
            max_charge_minor: 5_000,
            daily_cap_minor: 8_000,
            offline_limit_minor: 3_000,
            low_balance_minor: 500,
            void_window_seconds: 900,
            replacement_fee_minor: 0,
        }
    }

    #[test]
    fn top_ups_stay_within_the_festival_range_and_maximum_balance() {
        let l = limits();
        assert_eq!(l.top_up(499, 0).unwrap_err().code, codes::TOP_UP_LIMIT_EXCEEDED);
        assert_eq!(l.top_up(20_001, 0).unwrap_err().code, codes::TOP_UP_LIMIT_EXCEEDED);
        assert!(l.top_up(500, 0).is_ok());
        assert!(l.top_up(20_000, 10_000).is_ok());
        assert_eq!(l.top_up(20_000, 10_001).unwrap_err().code, codes::BALANCE_LIMIT_EXCEEDED);
        assert_eq!(l.top_up(500, i64::MAX).unwrap_err().code, codes::BALANCE_LIMIT_EXCEEDED);
    }

    #[test]
    fn a_charge_needs_the_balance_and_room_under_the_daily_cap() {
        let l = limits();
        assert!(l.charge(5_000, 5_000, 3_000).is_ok());
        assert_eq!(l.charge(5_001, 9_000, 0).unwrap_err().code, codes::CHARGE_LIMIT_EXCEEDED);
        assert_eq!(l.charge(4_000, 3_999, 0).unwrap_err().code, codes::INSUFFICIENT_BALANCE);
        assert_eq!(l.charge(1, 9_000, 8_000).unwrap_err().code, codes::DAILY_CAP_EXCEEDED);
        let uncapped = Limits { daily_cap_minor: 0, ..l };
        assert!(uncapped.charge(1, 9_000, 1_000_000).is_ok());
    }

    #[test]
    fn rules_are_checked_before_they_are_stored() {
        assert!(limits().check().is_ok());
        let bad = |l: Limits| l.check().unwrap_err().violations()[0].field.clone();
        assert!(bad(Limits { min_top_up_minor: 0, ..limits() }).eq("min_top_up_minor"));
        assert!(bad(Limits { max_top_up_minor: 100, ..limits() }).eq("max_top_up_minor"));
        assert!(bad(Limits { max_charge_minor: -1, ..limits() }).eq("max_charge_minor"));
        assert!(bad(Limits { daily_cap_minor: MAX_RULE_MINOR + 1, ..limits() }).eq("daily_cap_minor"));
        assert!(bad(Limits { void_window_seconds: 86_401, ..limits() }).eq("void_window_seconds"));
        assert!(bad(Limits { replacement_fee_minor: -5, ..limits() }).eq("replacement_fee_minor"));
    }

    #[test]
    fn the_festival_day_turns_at_local_midnight_across_dst() {
        let paris = "Europe/Paris";
        // 2026-10-25: clocks go back at 03:00 CEST → 02:00 CET; local midnight is 22:00Z
        // the day before (CEST) and 23:00Z that evening (CET).
        let day = |h: u32, m: u32, d: u32| festival_day(Utc.with_ymd_and_hms(2026, 10, d, h, m, 0).unwrap(), paris);
        let date = |d: u32| NaiveDate::from_ymd_opt(2026, 10, d).expect("date");
        assert_eq!(day(21, 59, 24), date(24));
        assert_eq!(day(22, 0, 24), date(25));
        assert_eq!(day(22, 59, 25), date(25), "the long day has 25 hours");
        assert_eq!(day(23, 0, 25), date(26));
        // Spring forward, 2026-03-29: midnight is 23:00Z before, 22:00Z after.
        let spring = |h: u32, d: u32| festival_day(Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap(), paris);
        assert_eq!(spring(23, 28), NaiveDate::from_ymd_opt(2026, 3, 29).expect("date"));
        assert_eq!(spring(21, 29), NaiveDate::from_ymd_opt(2026, 3, 29).expect("date"), "the short day has 23 hours");
        assert_eq!(spring(22, 29), NaiveDate::from_ymd_opt(2026, 3, 30).expect("date"));
        assert_eq!(
            festival_day(Utc.with_ymd_and_hms(2026, 7, 1, 23, 30, 0).unwrap(), "Nowhere/Atlantis"),
            NaiveDate::from_ymd_opt(2026, 7, 1).expect("date")
        );
    }

    #[test]
    fn spending_starts_over_each_day() {
        let d = NaiveDate::from_ymd_opt(2026, 7, 1).expect("date");
        assert_eq!(spent_on(d, Some(d), 700), 700);
        assert_eq!(spent_on(d, d.pred_opt(), 700), 0);
        assert_eq!(spent_on(d, None, 0), 0);
    }
}
