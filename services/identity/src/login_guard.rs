//! Sign-in throttling in identity itself (the gateway is not the only way in), with the
//! platform's [`Throttle`]: every attempt is counted before its password is checked,
//! against the account, the client's address, and the (account, address) pair.
//!
//! Which locks hold an attempt back: from an address the account signed in from before,
//! the pair's only, so a guesser elsewhere (or on the same festival Wi-Fi) cannot lock
//! the owner out; from any other address, the account's and the address's. A right
//! password forgets the count of the locks that held the attempt back and gives the
//! others their attempt back, so signing in never uses up anyone's budget.
//!
//! Redis keys carry no personal data in clear: the account is a keyed hash of the email
//! (the key derived from the sealing key), pairs name the account's id, addresses are
//! kept to their /64 for IPv6.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use festival_platform::throttle::{Policy, Subject, Throttle, Verdict};
use festival_platform::{ApiError, ApiResult, client_addr, codes};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::LoginThrottleConfig;

/// The throttle subjects of one sign-in attempt.
pub struct Attempt {
    account: Subject,
    address: Subject,
    /// Only for an email that names an account.
    pair: Option<Subject>,
    /// The account signed in from this address before (found by [`LoginGuard::admit`]).
    known: bool,
}

/// Checks and records sign-in attempts.
#[derive(Clone)]
pub struct LoginGuard {
    throttle: Throttle,
    config: LoginThrottleConfig,
    hash_key: [u8; 32],
}

impl LoginGuard {
    /// `secret` keys the hash of emails (so a list of addresses cannot be matched
    /// against the keys in Redis).
    pub fn new(throttle: Throttle, config: &LoginThrottleConfig, secret: &[u8]) -> Self {
        let hash_key = Sha256::new().chain_update(b"festival.identity.login-throttle").chain_update(secret).finalize();
        Self { throttle, config: config.clone(), hash_key: hash_key.into() }
    }

    /// The subjects of an attempt at `email` (which names `user`, if any) from `client`.
    pub fn attempt(&self, email: &str, user: Option<Uuid>, client: Option<IpAddr>) -> Attempt {
        let keyed = Sha256::new().chain_update(self.hash_key).chain_update(email.as_bytes()).finalize();
        let address = client.map_or_else(|| "unknown".to_owned(), client_addr::bucket);
        Attempt {
            account: Subject::new("account", URL_SAFE_NO_PAD.encode(&keyed[..16]), self.config.account),
            pair: user.map(|id| Subject::new("pair", format!("{id}/{address}"), self.config.known_address)),
            address: Subject::new("address", address, self.config.address),
            known: false,
        }
    }

    /// Counts the attempt, or refuses it with `ERR_2008` and when to retry, before any
    /// hashing.
    pub async fn admit(&self, attempt: &mut Attempt) -> ApiResult<()> {
        attempt.known = match &attempt.pair {
            Some(pair) => self.throttle.remembers(pair).await,
            None => false,
        };
        let (gated, counted): (Vec<Subject>, Vec<Subject>) = match (&attempt.pair, attempt.known) {
            (Some(pair), true) => (vec![pair.clone()], vec![attempt.account.clone(), attempt.address.clone()]),
            (pair, _) => (vec![attempt.account.clone(), attempt.address.clone()], pair.iter().cloned().collect()),
        };
        match self.throttle.attempt(&gated, &counted).await {
            Verdict::Open => Ok(()),
            Verdict::Locked { retry_after_secs } => Err(locked("Too many failed sign-ins", retry_after_secs)),
        }
    }

    /// Second-factor codes tried on `user`'s account, from anywhere: only a right code
    /// gives these back, never a right password (a guesser holding the password would
    /// otherwise win fresh guesses with every sign-in). Counted before the code is
    /// checked; ERR_2008 with when to retry once locked.
    pub async fn admit_code(&self, user: Uuid) -> ApiResult<Subject> {
        let subject = Subject::new("mfa", user.to_string(), self.config.account);
        match self.throttle.attempt(std::slice::from_ref(&subject), &[]).await {
            Verdict::Open => Ok(subject),
            Verdict::Locked { retry_after_secs } => Err(locked("Too many wrong codes", retry_after_secs)),
        }
    }

    /// Mail asked for an address (a reset or verification link), counted per address
    /// asked for and per client network, before anything is looked up: nobody floods an
    /// inbox, and the answer is the same whether an account has that address.
    pub async fn admit_mail(&self, email: &str, client: Option<IpAddr>) -> ApiResult<()> {
        let attempt = self.attempt(email, None, client);
        let account = Subject::new("mail", attempt.account.id.clone(), self.config.account);
        let address = Subject::new("mail-address", attempt.address.id.clone(), self.config.address);
        match self.throttle.attempt(&[account, address], &[]).await {
            Verdict::Open => Ok(()),
            Verdict::Locked { retry_after_secs } => Err(locked("Too many messages asked for", retry_after_secs)),
        }
    }

    /// Provider sign-ins completed from the client's network, counted like failed
    /// sign-ins from it (forged states, refused codes and tokens are held back with
    /// ERR_2008); a completed one gives its attempt back ([`LoginGuard::oauth_succeeded`]).
    pub async fn admit_oauth(&self, client: Option<IpAddr>) -> ApiResult<Subject> {
        let subject = Subject::new("oauth-address", Self::network(client), self.config.address);
        self.admit_one(subject, "Too many failed provider sign-ins").await
    }

    /// Provider sign-ins started from the client's network (each stores a flow for
    /// minutes), under a budget ten times the failed sign-ins': a festival's Wi-Fi starts
    /// many, abandons some, and must not lock itself out.
    pub async fn admit_oauth_start(&self, client: Option<IpAddr>) -> ApiResult<()> {
        self.admit_one(self.oauth_start(Self::network(client)), "Too many provider sign-ins started").await?;
        Ok(())
    }

    /// A provider sign-in or link completed: its attempt is given back, and its start's.
    pub async fn oauth_succeeded(&self, completion: &Subject) {
        self.throttle.refund(completion).await;
        self.throttle.refund(&self.oauth_start(completion.id.clone())).await;
    }

    fn oauth_start(&self, network: String) -> Subject {
        let policy =
            Policy { free_attempts: self.config.address.free_attempts.saturating_mul(10), ..self.config.address };
        Subject::new("oauth-start", network, policy)
    }

    fn network(client: Option<IpAddr>) -> String {
        client.map_or_else(|| "unknown".to_owned(), client_addr::bucket)
    }

    async fn admit_one(&self, subject: Subject, what: &str) -> ApiResult<Subject> {
        match self.throttle.attempt(std::slice::from_ref(&subject), &[]).await {
            Verdict::Open => Ok(subject),
            Verdict::Locked { retry_after_secs } => Err(locked(what, retry_after_secs)),
        }
    }

    /// A right code: the account's code count starts again.
    pub async fn code_succeeded(&self, subject: &Subject) {
        self.throttle.forget(subject).await;
    }

    /// The password was right. An owner signing in from a known address lifts no lock
    /// on a guesser elsewhere: the account's count only gets this attempt back.
    pub async fn succeeded(&self, attempt: &Attempt) {
        self.password_right(attempt).await;
        self.remember_address(attempt).await;
    }

    /// The password was right but a second factor is still to come: the counts are
    /// settled as for a sign-in, the address is not yet known to the account.
    pub async fn password_right(&self, attempt: &Attempt) {
        if attempt.known {
            self.throttle.refund(&attempt.account).await;
        } else {
            self.throttle.forget(&attempt.account).await;
        }
        self.throttle.refund(&attempt.address).await;
        if let Some(pair) = &attempt.pair {
            self.throttle.forget(pair).await;
        }
    }

    /// The account signed in from this address: from now on it counts as known.
    pub async fn remember_address(&self, attempt: &Attempt) {
        if let Some(pair) = &attempt.pair {
            self.throttle
                .remember(pair, Duration::from_secs(self.config.known_address_days.saturating_mul(24 * 3600)))
                .await;
        }
    }
}

/// ERR_2008, saying what was held back and when to retry.
fn locked(what: &str, retry_after_secs: u64) -> ApiError {
    ApiError::new(codes::TOO_MANY_FAILED_ATTEMPTS)
        .with_message(format!("{what}; retry in {retry_after_secs} s"))
        .with_metadata("retry_after_secs", retry_after_secs.to_string())
}
