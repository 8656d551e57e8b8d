//! Edge validation helpers: every RPC checks its input with these before touching any
//! state, so bad input gets a catalogued code naming the field and writes nothing.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use uuid::Uuid;

use crate::codes;
use crate::convert::from_timestamp;
use crate::error::{ApiError, ApiResult};

/// A required, non-blank string no longer than `max` characters; returns it trimmed.
pub fn required<'a>(field: &str, value: &'a str, max: usize) -> ApiResult<&'a str> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::field(codes::REQUIRED_FIELD, field, "is required"));
    }
    max_len(field, trimmed, max)
}

/// An optional string no longer than `max` characters; `None` when blank.
pub fn optional<'a>(field: &str, value: &'a str, max: usize) -> ApiResult<Option<&'a str>> {
    let trimmed = value.trim();
    if trimmed.is_empty() { Ok(None) } else { max_len(field, trimmed, max).map(Some) }
}

/// Refuses strings longer than `max` characters (counted as Unicode scalar values) and
/// strings with control characters other than line breaks and tabs (a NUL would reach
/// PostgreSQL, which refuses it; escapes would reach logs and terminals).
pub fn max_len<'a>(field: &str, value: &'a str, max: usize) -> ApiResult<&'a str> {
    plain_text(field, value, true)?;
    // Byte length bounds the character count from above: skip counting for short strings.
    if value.len() > max && value.chars().count() > max {
        return Err(ApiError::field(codes::FIELD_TOO_LONG, field, format!("must be at most {max} characters")));
    }
    Ok(value)
}

/// A required secret the server only hashes or compares (a password): presence and length
/// are checked, not its characters, so whatever a user could register they can sign in with.
pub fn secret<'a>(field: &str, value: &'a str, max: usize) -> ApiResult<&'a str> {
    if value.is_empty() {
        return Err(ApiError::field(codes::REQUIRED_FIELD, field, "is required"));
    }
    if value.len() > max && value.chars().count() > max {
        return Err(ApiError::field(codes::FIELD_TOO_LONG, field, format!("must be at most {max} characters")));
    }
    Ok(value)
}

/// A required UUID in its canonical text form.
pub fn uuid(field: &str, value: &str) -> ApiResult<Uuid> {
    if value.trim().is_empty() {
        return Err(ApiError::field(codes::REQUIRED_FIELD, field, "is required"));
    }
    Uuid::try_parse(value.trim()).map_err(|_| ApiError::field(codes::MALFORMED_ID, field, "must be a UUID"))
}

/// A protobuf enum value that this build knows. `allow_unspecified` lets 0 through.
pub fn known_enum<E: TryFrom<i32>>(field: &str, value: i32, allow_unspecified: bool) -> ApiResult<Option<E>> {
    if value == 0 {
        return if allow_unspecified {
            Ok(None)
        } else {
            Err(ApiError::field(codes::REQUIRED_FIELD, field, "is required"))
        };
    }
    E::try_from(value)
        .map(Some)
        .map_err(|_| ApiError::field(codes::UNKNOWN_ENUM_VALUE, field, format!("unknown value {value}")))
}

/// Page size: 0 means the default; anything above `max` is capped; negatives refused.
pub fn page_size(field: &str, value: i32, default: u32, max: u32) -> ApiResult<u32> {
    match value {
        0 => Ok(default),
        v if v < 0 => Err(ApiError::field(codes::VALIDATION_FAILED, field, "must not be negative")),
        v => Ok((v as u32).min(max)),
    }
}

/// Earliest instant any RPC accepts (2000-01-01T00:00:00Z).
pub fn earliest_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Latest instant any RPC accepts (2100-01-01T00:00:00Z). With every stored instant in
/// this century, offsets between two of them and the instants they produce stay far
/// inside chrono's range, so date arithmetic on validated input cannot overflow.
pub fn latest_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// An optional timestamp: a valid instant within [`earliest_instant`]..[`latest_instant`].
pub fn timestamp(field: &str, value: &Option<prost_types::Timestamp>) -> ApiResult<Option<DateTime<Utc>>> {
    let Some(t) = value else { return Ok(None) };
    let instant = from_timestamp(t)
        .ok_or_else(|| ApiError::field(codes::VALIDATION_FAILED, field, "is not a valid timestamp"))?;
    if instant < earliest_instant() || instant >= latest_instant() {
        return Err(ApiError::field(codes::VALIDATION_FAILED, field, "must be between 2000 and 2100"));
    }
    Ok(Some(instant))
}

/// A required timestamp (see [`timestamp`]).
pub fn required_timestamp(field: &str, value: &Option<prost_types::Timestamp>) -> ApiResult<DateTime<Utc>> {
    timestamp(field, value)?.ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, field, "is required"))
}

/// A time range: `end` strictly after `start` (the violation names `end_field`).
pub fn range(
    start_field: &str,
    end_field: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    if end <= start {
        return Err(ApiError::field(codes::VALIDATION_FAILED, end_field, format!("must be after {start_field}")));
    }
    Ok((start, end))
}

/// Two required timestamps forming a range (see [`required_timestamp`] and [`range`]).
pub fn required_range(
    start_field: &str,
    start: &Option<prost_types::Timestamp>,
    end_field: &str,
    end: &Option<prost_types::Timestamp>,
) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let start = required_timestamp(start_field, start)?;
    let end = required_timestamp(end_field, end)?;
    range(start_field, end_field, start, end)
}

/// `t + offset`, refused (not a panic) when it leaves the accepted range.
pub fn shifted(field: &str, t: DateTime<Utc>, offset: TimeDelta) -> ApiResult<DateTime<Utc>> {
    t.checked_add_signed(offset)
        .filter(|moved| *moved >= earliest_instant() && *moved < latest_instant())
        .ok_or_else(|| ApiError::field(codes::VALIDATION_FAILED, field, "moves a date outside 2000–2100"))
}

/// An email address (normalised: trimmed, lower-cased), or a catalogued refusal naming
/// `field`.
pub fn email(field: &str, raw: &str) -> ApiResult<crate::email::Email> {
    use crate::email::{Email, EmailError};
    Email::parse(raw).map_err(|e| {
        let code = match e {
            EmailError::Empty => codes::REQUIRED_FIELD,
            EmailError::TooLong => codes::FIELD_TOO_LONG,
            EmailError::Malformed => codes::INVALID_EMAIL,
        };
        ApiError::field(code, field, e.describe())
    })
}

/// Rejects control characters (NUL, escapes…) in free text; newlines and tabs pass when
/// `multiline`.
pub fn plain_text<'a>(field: &str, value: &'a str, multiline: bool) -> ApiResult<&'a str> {
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(ApiError::field(codes::VALIDATION_FAILED, field, "must not contain control characters"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos })
    }

    #[test]
    fn timestamps_outside_the_century_or_malformed_are_refused_not_panics() {
        let now = Utc::now();
        assert_eq!(timestamp("t", &ts(now.timestamp(), 0)).expect("now").map(|t| t.timestamp()), Some(now.timestamp()));
        assert_eq!(timestamp("t", &None).expect("absent"), None);
        for bad in [ts(i64::MAX, 0), ts(i64::MIN, 0), ts(0, 0), ts(now.timestamp(), -1), ts(4_102_444_800, 0)] {
            let err = timestamp("t", &bad).unwrap_err();
            assert_eq!((err.code, err.violations()[0].field.as_str()), (codes::VALIDATION_FAILED, "t"), "{bad:?}");
        }
        assert_eq!(required_timestamp("t", &None).unwrap_err().code, codes::REQUIRED_FIELD);
    }

    #[test]
    fn ranges_must_move_forward() {
        let now = Utc::now();
        assert!(range("start", "end", now, now + TimeDelta::minutes(1)).is_ok());
        let refused = range("start", "end", now, now).unwrap_err();
        assert_eq!(
            (refused.violations()[0].field.as_str(), refused.violations()[0].description.as_str()),
            ("end", "must be after start")
        );
    }

    #[test]
    fn shifting_is_checked_at_the_extremes() {
        let start = earliest_instant();
        let end = latest_instant() - TimeDelta::seconds(1);
        // The largest offset two accepted instants can have moves one into the other.
        assert_eq!(shifted("t", start, end - start).expect("in range"), end);
        assert_eq!(shifted("t", end, end - start).unwrap_err().code, codes::VALIDATION_FAILED);
        assert_eq!(shifted("t", DateTime::<Utc>::MAX_UTC, TimeDelta::MAX).unwrap_err().code, codes::VALIDATION_FAILED);
    }

    #[test]
    fn control_characters_are_refused_in_text() {
        assert_eq!(plain_text("name", "Main Stage", false).expect("plain"), "Main Stage");
        assert!(plain_text("bio", "line\nbreak", true).is_ok());
        assert_eq!(plain_text("name", "a\u{0}b", false).unwrap_err().code, codes::VALIDATION_FAILED);
        assert_eq!(plain_text("name", "line\nbreak", false).unwrap_err().code, codes::VALIDATION_FAILED);
    }
    use festival_proto::identity::v1::Role;

    #[test]
    fn blank_required_fields_are_refused_and_long_ones_named() {
        assert_eq!(required("name", "  ", 10).unwrap_err().code, codes::REQUIRED_FIELD);
        assert_eq!(required("name", "abcdefghijk", 10).unwrap_err().code, codes::FIELD_TOO_LONG);
        assert_eq!(required("name", " éé ", 2).ok(), Some("éé"));
        assert_eq!(optional("name", "", 2).ok(), Some(None));
    }

    #[test]
    fn enums_outside_the_schema_are_refused() {
        assert_eq!(known_enum::<Role>("role", 99, false).unwrap_err().code, codes::UNKNOWN_ENUM_VALUE);
        assert_eq!(known_enum::<Role>("role", 0, false).unwrap_err().code, codes::REQUIRED_FIELD);
        assert_eq!(known_enum::<Role>("role", 0, true).ok(), Some(None));
        assert_eq!(known_enum::<Role>("role", 2, false).ok(), Some(Some(Role::Organizer)));
    }

    #[test]
    fn ids_must_be_uuids() {
        assert_eq!(uuid("id", "nope").unwrap_err().code, codes::MALFORMED_ID);
        assert!(uuid("id", "0191a1b2-0000-7000-8000-000000000000").is_ok());
    }
}
