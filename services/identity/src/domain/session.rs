//! Sessions and refresh tokens. A session is a family of refresh tokens: each refresh
//! spends one token and issues the next; presenting a spent token again means it leaked,
//! so the whole family is revoked.

use chrono::{DateTime, Duration, Utc};

/// Prefix of refresh tokens, so scanners and humans can tell them from access tokens.
pub const REFRESH_PREFIX: &str = "rt_";

/// What to do with a presented refresh token, decided from its stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Spend it and issue the next one.
    Rotate,
    /// Already spent: revoke the family, refuse.
    ReuseDetected,
    /// Expired or its session ended: refuse.
    Refuse,
    /// The session reached its absolute lifetime: refuse; sign in again.
    SessionOver,
}

/// The stored state of a presented refresh token.
#[derive(Debug, Clone, Copy)]
pub struct RefreshState {
    pub expires_at: DateTime<Utc>,
    pub used: bool,
    pub session_revoked: bool,
    /// The session's start plus its absolute lifetime.
    pub session_ends_at: DateTime<Utc>,
}

pub fn decide(state: RefreshState, now: DateTime<Utc>) -> RefreshDecision {
    if state.session_revoked {
        RefreshDecision::Refuse
    } else if state.session_ends_at <= now {
        RefreshDecision::SessionOver
    } else if state.used {
        RefreshDecision::ReuseDetected
    } else if state.expires_at <= now {
        RefreshDecision::Refuse
    } else {
        RefreshDecision::Rotate
    }
}

/// When a refresh token issued `now` expires: after its own lifetime, but never after
/// the session's absolute end, so refreshing cannot keep a session alive forever.
pub fn refresh_token_expiry(now: DateTime<Utc>, ttl: Duration, session_ends_at: DateTime<Utc>) -> DateTime<Utc> {
    (now + ttl).min(session_ends_at)
}

/// A new refresh token: 256 random bits, base64url, prefixed.
pub fn new_refresh_token() -> String {
    super::bearer::new(REFRESH_PREFIX)
}

/// Only this hash is stored (see [`super::bearer`]).
pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    super::bearer::hash(token)
}

/// Whether a signing key retired at `retired_at` must still be published: tokens it
/// signed stay valid for `access_ttl`, a replica may keep signing with it for up to
/// `signer_cache`, and verifiers allow `leeway` of clock skew.
pub fn key_still_published(
    retired_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    access_ttl: Duration,
    signer_cache: Duration,
    leeway: Duration,
) -> bool {
    match retired_at {
        None => true,
        Some(t) => now < t + access_ttl + signer_cache + leeway,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(expires_in: i64, used: bool, revoked: bool) -> RefreshState {
        RefreshState {
            expires_at: Utc::now() + Duration::seconds(expires_in),
            used,
            session_revoked: revoked,
            session_ends_at: Utc::now() + Duration::days(30),
        }
    }

    #[test]
    fn a_session_ends_at_its_absolute_lifetime_whatever_its_tokens_say() {
        let now = Utc::now();
        let over = RefreshState { session_ends_at: now, ..state(60, false, false) };
        assert_eq!(decide(over, now), RefreshDecision::SessionOver);
        let ends = now + Duration::hours(2);
        assert_eq!(refresh_token_expiry(now, Duration::days(7), ends), ends);
        assert_eq!(refresh_token_expiry(now, Duration::hours(1), ends), now + Duration::hours(1));
    }

    #[test]
    fn a_spent_token_presented_again_is_reuse() {
        assert_eq!(decide(state(60, false, false), Utc::now()), RefreshDecision::Rotate);
        assert_eq!(decide(state(60, true, false), Utc::now()), RefreshDecision::ReuseDetected);
        assert_eq!(decide(state(-1, false, false), Utc::now()), RefreshDecision::Refuse);
        assert_eq!(decide(state(60, true, true), Utc::now()), RefreshDecision::Refuse);
    }

    #[test]
    fn tokens_are_unique_and_only_their_hash_is_kept() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert!(a.starts_with(REFRESH_PREFIX) && a.len() > 40);
        assert_eq!(hash_refresh_token(&a), hash_refresh_token(&a));
        assert_ne!(hash_refresh_token(&a), hash_refresh_token(&b));
    }

    #[test]
    fn retired_keys_stay_published_while_their_tokens_can_live() {
        let now = Utc::now();
        let (ttl, cache, leeway) = (Duration::minutes(15), Duration::seconds(60), Duration::seconds(30));
        assert!(key_still_published(None, now, ttl, cache, leeway));
        assert!(key_still_published(Some(now - Duration::minutes(10)), now, ttl, cache, leeway));
        assert!(!key_still_published(Some(now - Duration::minutes(17)), now, ttl, cache, leeway));
    }
}
