//! Sign-in throttling in identity itself (the gateway is not the only way in): failures
//! are counted per account, per address, and per (account, address) pair, with the
//! platform's [`Throttle`].
//!
//! Which locks apply to an attempt: from an address the account signed in from before,
//! the pair's and nothing else, so a guesser elsewhere (or on the same festival Wi-Fi)
//! cannot lock the owner out; from any other address, the account's and the address's.
//! Every failure counts against all three.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use festival_platform::throttle::{Subject, Throttle, Verdict};
use festival_platform::{ApiError, ApiResult, codes};
use sha2::{Digest, Sha256};

use crate::config::LoginThrottleConfig;

/// The throttle subjects of one sign-in attempt.
pub struct Attempt {
    account: Subject,
    address: Subject,
    pair: Subject,
    /// The account signed in from this address before (found by [`LoginGuard::admit`]).
    known: bool,
}

impl Attempt {
    /// Emails are hashed: Redis keys carry no personal data in clear.
    pub fn new(config: &LoginThrottleConfig, email: &str, client: Option<IpAddr>) -> Self {
        let account = URL_SAFE_NO_PAD.encode(&Sha256::digest(email.as_bytes())[..16]);
        let address = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        Self {
            pair: Subject::new("pair", format!("{account}/{address}"), config.known_address),
            account: Subject::new("account", account, config.account),
            address: Subject::new("address", address, config.address),
            known: false,
        }
    }
}

/// Checks and records sign-in attempts.
#[derive(Clone)]
pub struct LoginGuard {
    throttle: Throttle,
    known_for: Duration,
}

impl LoginGuard {
    pub fn new(throttle: Throttle, config: &LoginThrottleConfig) -> Self {
        Self { throttle, known_for: Duration::from_secs(config.known_address_days.saturating_mul(24 * 3600)) }
    }

    /// Refuses a locked attempt with `ERR_2008` and when to retry, before any hashing.
    pub async fn admit(&self, attempt: &mut Attempt) -> ApiResult<()> {
        attempt.known = self.throttle.remembers(&attempt.pair).await;
        let applicable = if attempt.known {
            vec![attempt.pair.clone()]
        } else {
            vec![attempt.account.clone(), attempt.address.clone()]
        };
        match self.throttle.check(&applicable).await {
            Verdict::Open => Ok(()),
            Verdict::Locked { retry_after_secs } => Err(ApiError::new(codes::TOO_MANY_FAILED_ATTEMPTS)
                .with_message(format!("Too many failed sign-ins; retry in {retry_after_secs} s"))
                .with_metadata("retry_after_secs", retry_after_secs.to_string())),
        }
    }

    pub async fn failed(&self, attempt: &Attempt) {
        self.throttle.record_failure(&[attempt.account.clone(), attempt.address.clone(), attempt.pair.clone()]).await;
    }

    /// The password was right: the failures of the locks that were checked are forgotten
    /// and the address becomes known for this account. An owner signing in from a known
    /// address does not lift the account's lock on the guesser elsewhere; the address's
    /// own count stays.
    pub async fn succeeded(&self, attempt: &Attempt) {
        if !attempt.known {
            self.throttle.forget(&attempt.account).await;
        }
        self.throttle.forget(&attempt.pair).await;
        self.throttle.remember(&attempt.pair, self.known_for).await;
    }
}
