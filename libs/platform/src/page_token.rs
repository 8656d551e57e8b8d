//! Page tokens: opaque to clients, bound to the list that issued them, and refused when
//! edited, truncated or reused on another list (an integrity check, not a signature).
//!
//! A token is base64url of `cursor JSON ‖ tag`, where the tag is the first 12 bytes of
//! SHA-256 over a domain separator, the list's scope (e.g. `program.schedule:<festival>`)
//! and the cursor. An edited, truncated or foreign token (another list's, another
//! festival's) fails the tag and is refused with `ERR_1005` on `page_token`. The tag is
//! not keyed, so anyone who reads this code can mint a valid token for any scope: that is
//! acceptable because a token is only a position in a list the caller may read anyway,
//! bound as a query parameter, never a grant. What it prevents is silent misuse (a
//! mangled or foreign token paging from a wrong place), not forgery.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::codes;
use crate::error::{ApiError, ApiResult};

const TAG_LEN: usize = 12;
/// Tokens longer than this are refused before decoding.
pub const MAX_TOKEN_LEN: usize = 1024;

fn tag(scope: &str, cursor: &[u8]) -> [u8; TAG_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(b"festival-page-token/v1\0");
    hasher.update((scope.len() as u64).to_be_bytes());
    hasher.update(scope.as_bytes());
    hasher.update(cursor);
    let digest = hasher.finalize();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&digest[..TAG_LEN]);
    out
}

/// The token for `cursor` (the last item's sort key) in the list named by `scope`.
pub fn encode<C: Serialize>(scope: &str, cursor: &C) -> String {
    // A cursor is plain data (ids, instants, strings): serialising it cannot fail.
    let mut bytes = serde_json::to_vec(cursor).unwrap_or_default();
    let tag = tag(scope, &bytes);
    bytes.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The cursor in `token`; `None` for the empty token (first page). Anything this scope
/// did not issue is `ERR_1005`.
pub fn decode<C: DeserializeOwned>(scope: &str, token: &str) -> ApiResult<Option<C>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ApiError::field(codes::INVALID_PAGE_TOKEN, "page_token", "is not a token this API issued");
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let split = bytes.len().checked_sub(TAG_LEN).ok_or_else(bad)?;
    let (cursor, given) = bytes.split_at(split);
    // Not secret (see the module doc), so a plain comparison is enough.
    if given != tag(scope, cursor) {
        return Err(bad());
    }
    serde_json::from_slice(cursor).map(Some).map_err(|_| bad())
}

/// One page of `rows` fetched with `limit = page_size + 1`: truncates to `page_size` and
/// returns the next page's token (empty on the last page).
pub fn next_page<R, C: Serialize>(
    rows: &mut Vec<R>,
    page_size: usize,
    scope: &str,
    cursor_of: impl Fn(&R) -> C,
) -> String {
    if rows.len() <= page_size {
        return String::new();
    }
    rows.truncate(page_size);
    rows.last().map(|r| encode(scope, &cursor_of(r))).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;

    type Cursor = (DateTime<Utc>, Uuid);

    #[test]
    fn a_token_round_trips_in_its_own_scope() {
        let cursor: Cursor = (Utc::now(), Uuid::now_v7());
        let token = encode("schedule:a", &cursor);
        assert_eq!(decode::<Cursor>("schedule:a", &token).expect("valid"), Some(cursor));
        assert_eq!(decode::<Cursor>("schedule:a", "").expect("first page"), None);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "URL-safe: {token}");
    }

    #[test]
    fn edited_truncated_foreign_or_garbage_tokens_are_refused() {
        let cursor: Cursor = (Utc::now(), Uuid::now_v7());
        let token = encode("schedule:a", &cursor);
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        bytes[2] ^= 1;
        let edited = URL_SAFE_NO_PAD.encode(&bytes);
        let long = "A".repeat(MAX_TOKEN_LEN + 1);
        for bad in [edited.as_str(), &token[..token.len() - 2], "!!!", "AAAA", long.as_str()] {
            let err = decode::<Cursor>("schedule:a", bad).unwrap_err();
            assert_eq!(
                (err.code, err.violations()[0].field.as_str()),
                (codes::INVALID_PAGE_TOKEN, "page_token"),
                "{bad}"
            );
        }
        assert_eq!(decode::<Cursor>("schedule:b", &token).unwrap_err().code, codes::INVALID_PAGE_TOKEN, "other list");
        // A valid tag over a cursor of another shape is refused too, not a panic.
        let other_shape = encode("schedule:a", &"just a string");
        assert_eq!(decode::<Cursor>("schedule:a", &other_shape).unwrap_err().code, codes::INVALID_PAGE_TOKEN);
    }

    #[test]
    fn next_page_truncates_and_points_after_the_last_row() {
        let mut rows: Vec<u32> = (1..=4).collect();
        let token = next_page(&mut rows, 3, "s", |r| *r);
        assert_eq!(rows, [1, 2, 3]);
        assert_eq!(decode::<u32>("s", &token).expect("valid"), Some(3));
        let mut last: Vec<u32> = vec![1, 2];
        assert_eq!(next_page(&mut last, 3, "s", |r| *r), "");
        assert_eq!(last, [1, 2]);
    }
}
