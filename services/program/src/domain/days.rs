//! Festival-local days. A festival day runs from 06:00 local time to 06:00 the next
//! morning, so the 01:30 headliner belongs to the evening before, as on the poster.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

/// Local hour at which one festival day ends and the next begins.
pub const DAY_STARTS_AT_HOUR: i64 = 6;

/// The festival day `at` belongs to.
pub fn festival_day(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    (at.with_timezone(&tz).naive_local() - Duration::hours(DAY_STARTS_AT_HOUR)).date()
}

/// Wall-clock minutes from the local midnight that opens `day` to `at`: 21:00 is 1260,
/// 01:30 the next morning is 1530. Grid rows stay aligned across DST changes.
pub fn minute_of_day(at: DateTime<Utc>, tz: Tz, day: NaiveDate) -> i32 {
    let minutes = (at.with_timezone(&tz).naive_local() - day.and_time(NaiveTime::MIN)).num_minutes();
    i32::try_from(minutes).unwrap_or(i32::MAX)
}

/// A day as the API writes it, "YYYY-MM-DD".
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().filter(|_| text.len() == 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn paris(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Paris.with_ymd_and_hms(y, m, d, h, min, 0).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn sets_after_midnight_belong_to_the_evening_before() {
        let tz = chrono_tz::Europe::Paris;
        let friday = NaiveDate::from_ymd_opt(2027, 6, 18).unwrap();
        assert_eq!(festival_day(paris(2027, 6, 18, 21, 0), tz), friday);
        assert_eq!(festival_day(paris(2027, 6, 19, 1, 30), tz), friday);
        assert_eq!(festival_day(paris(2027, 6, 19, 5, 59), tz), friday);
        assert_eq!(festival_day(paris(2027, 6, 19, 6, 0), tz), friday.succ_opt().unwrap());
        assert_eq!(minute_of_day(paris(2027, 6, 18, 21, 0), tz, friday), 21 * 60);
        assert_eq!(minute_of_day(paris(2027, 6, 19, 1, 30), tz, friday), 25 * 60 + 30);
    }

    #[test]
    fn the_local_day_is_not_the_utc_day() {
        // 23:30 UTC on the 18th is 01:30 on the 19th in Paris (summer): still the 18th's night.
        let at = Utc.with_ymd_and_hms(2027, 6, 18, 23, 30, 0).unwrap();
        assert_eq!(festival_day(at, chrono_tz::Europe::Paris), NaiveDate::from_ymd_opt(2027, 6, 18).unwrap());
        // 10:00 UTC on the 18th is still the 17th's night in Los Angeles (03:00 local).
        let at = Utc.with_ymd_and_hms(2027, 6, 18, 10, 0, 0).unwrap();
        assert_eq!(festival_day(at, chrono_tz::America::Los_Angeles), NaiveDate::from_ymd_opt(2027, 6, 17).unwrap());
    }

    #[test]
    fn days_parse_strictly() {
        assert_eq!(parse_day("2027-06-18"), NaiveDate::from_ymd_opt(2027, 6, 18));
        for bad in ["2027-6-18", "18/06/2027", "2027-02-30", "", "2027-06-18T00:00"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }
}
