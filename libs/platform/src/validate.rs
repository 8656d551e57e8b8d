//! Edge validation helpers: every RPC checks its input with these before touching any
//! state, so bad input gets a catalogued code naming the field and writes nothing.

use uuid::Uuid;

use crate::codes;
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

/// Refuses strings longer than `max` characters (counted as Unicode scalar values).
pub fn max_len<'a>(field: &str, value: &'a str, max: usize) -> ApiResult<&'a str> {
    // Byte length bounds the character count from above: skip counting for short strings.
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

#[cfg(test)]
mod tests {
    use super::*;
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
