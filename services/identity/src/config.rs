//! Identity's configuration: the common part plus token lifetimes, password hashing
//! cost and the key that seals signing keys at rest.

use festival_platform::config::{CommonConfig, ConfigError, Secret, ServiceConfig, require_strong_secret};
use festival_platform::throttle::Policy;
use serde::{Deserialize, Serialize};

/// Development value of `IDENTITY__KEYS__SEALING_KEY`; refused in production.
pub const DEV_SEALING_KEY: &str = "ZmVzdGl2YWwtZGV2LWtleS1kby1ub3QtdXNlLTAwMDE=";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub tokens: TokenConfig,
    pub keys: KeyConfig,
    pub password: PasswordConfig,
    pub login_throttle: LoginThrottleConfig,
    pub mfa: MfaConfig,
    pub mail: MailConfig,
    pub oauth: OAuthConfig,
}

/// Signing in with Google (OpenID Connect) and GitHub (OAuth 2). A provider is on once
/// its `client_id` is set; its endpoints default to the real ones and are configurable
/// (tests point them at a local fake provider).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthConfig {
    /// How long a sign-in may stay at the provider's consent page, in seconds (10 minutes).
    pub flow_ttl_secs: i64,
    /// How long a provider may take to answer one request, in seconds.
    pub request_timeout_secs: u64,
    pub google: ProviderConfig,
    pub github: ProviderConfig,
}

/// One provider's client registration and endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// The client id registered with the provider; empty: the provider is off.
    pub client_id: String,
    pub client_secret: Secret,
    /// The web app's page the provider sends the browser back to (registered with the
    /// provider; never taken from a request). It posts `code` and `state` to
    /// CompleteOAuthLogin or CompleteOAuthLink.
    pub redirect_uri: String,
    pub authorize_url: String,
    pub token_url: String,
    /// OpenID Connect (Google): the ID token's issuer and the keys it is signed with.
    pub issuer: String,
    pub jwks_url: String,
    /// GitHub: the account and its addresses.
    pub user_url: String,
    pub emails_url: String,
    pub scopes: String,
}

impl ProviderConfig {
    pub fn enabled(&self) -> bool {
        !self.client_id.is_empty()
    }
}

/// Outgoing mail: password-reset and verification links.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailConfig {
    /// The SMTP relay, `smtp://host:port` (plain SMTP on the platform's network); empty:
    /// no mail is sent (development).
    pub smtp_url: String,
    /// The sender, e.g. `Festival <no-reply@festival.example>`.
    pub from: String,
    /// The web app's page a reset link opens (the token is added as `?token=`).
    pub reset_link: String,
    /// The web app's page a verification link opens.
    pub verification_link: String,
    /// How long a reset link works, in seconds (30 minutes).
    pub reset_ttl_secs: i64,
    /// How long a verification link works, in seconds (7 days).
    pub verification_ttl_secs: i64,
}

/// The second factor (TOTP).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MfaConfig {
    /// The name an authenticator app shows beside the account (the festival platform's).
    pub issuer: String,
    /// How long a sign-in waits for its second factor, in seconds (5 minutes).
    pub challenge_ttl_secs: i64,
}

/// Failed sign-ins, counted in Redis (see `festival_platform::throttle`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginThrottleConfig {
    /// Attempts at one account from addresses it has not signed in from.
    pub account: Policy,
    /// Attempts from one address (an IPv6 /64), whatever the account; right passwords
    /// give theirs back. Generous: a festival's Wi-Fi puts thousands of people behind a
    /// few addresses.
    pub address: Policy,
    /// Attempts at one account from an address it signed in from before; such an address
    /// is not held by the account's own lock, so a guesser elsewhere cannot lock the
    /// owner out.
    pub known_address: Policy,
    /// How long an address an account signed in from counts as known, in days.
    pub known_address_days: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenConfig {
    /// Access-token lifetime in seconds (15 minutes).
    pub access_ttl_secs: i64,
    /// Refresh-token lifetime in seconds (7 days).
    pub refresh_ttl_secs: i64,
    /// Absolute session lifetime in seconds (30 days): refreshing never extends a session
    /// past it; then the user signs in again.
    pub session_max_secs: i64,
    /// Device-token lifetime in seconds (10 minutes): a device asks for a new one with a
    /// fresh proof; a revoked device gets none.
    pub device_ttl_secs: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyConfig {
    /// base64 of 32 random bytes; seals (encrypts) the private signing keys stored in
    /// the database. Generate with `openssl rand -base64 32`.
    pub sealing_key: Secret,
    /// How long a replica keeps using the active signing key it loaded, in seconds.
    pub signer_cache_secs: i64,
}

/// argon2id cost. Defaults are OWASP's minimum recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once; each holds `memory_kib` of memory.
    pub max_concurrent_hashes: usize,
    /// Hashes waiting for a slot; beyond that a call is refused at once (ERR_1012), so a
    /// flood of logins cannot queue unbounded work.
    pub max_queued_hashes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            common: CommonConfig::local_defaults("identity", 50051),
            tokens: TokenConfig {
                access_ttl_secs: 15 * 60,
                refresh_ttl_secs: 7 * 24 * 3600,
                device_ttl_secs: 10 * 60,
                session_max_secs: 30 * 24 * 3600,
            },
            keys: KeyConfig { sealing_key: Secret::new(DEV_SEALING_KEY), signer_cache_secs: 60 },
            password: PasswordConfig {
                memory_kib: 19 * 1024,
                iterations: 2,
                parallelism: 1,
                max_concurrent_hashes: 8,
                max_queued_hashes: 64,
            },
            login_throttle: LoginThrottleConfig {
                account: Policy { free_attempts: 5, first_lock_secs: 2, max_lock_secs: 900, window_secs: 3600 },
                address: Policy { free_attempts: 100, first_lock_secs: 2, max_lock_secs: 900, window_secs: 3600 },
                known_address: Policy { free_attempts: 5, first_lock_secs: 2, max_lock_secs: 900, window_secs: 3600 },
                known_address_days: 30,
            },
            mfa: MfaConfig { issuer: "Festival".into(), challenge_ttl_secs: 300 },
            mail: MailConfig {
                smtp_url: String::new(),
                from: "Festival <no-reply@festival.local>".into(),
                reset_link: "http://localhost:3000/reset-password".into(),
                verification_link: "http://localhost:3000/verify-email".into(),
                reset_ttl_secs: 30 * 60,
                verification_ttl_secs: 7 * 24 * 3600,
            },
            oauth: OAuthConfig {
                flow_ttl_secs: 600,
                request_timeout_secs: 10,
                google: ProviderConfig {
                    client_id: String::new(),
                    client_secret: Secret::new(""),
                    redirect_uri: "http://localhost:3000/oauth/google".into(),
                    authorize_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
                    token_url: "https://oauth2.googleapis.com/token".into(),
                    issuer: "https://accounts.google.com".into(),
                    jwks_url: "https://www.googleapis.com/oauth2/v3/certs".into(),
                    user_url: String::new(),
                    emails_url: String::new(),
                    scopes: "openid email profile".into(),
                },
                github: ProviderConfig {
                    client_id: String::new(),
                    client_secret: Secret::new(""),
                    redirect_uri: "http://localhost:3000/oauth/github".into(),
                    authorize_url: "https://github.com/login/oauth/authorize".into(),
                    token_url: "https://github.com/login/oauth/access_token".into(),
                    issuer: String::new(),
                    jwks_url: String::new(),
                    user_url: "https://api.github.com/user".into(),
                    emails_url: "https://api.github.com/user/emails".into(),
                    scopes: "read:user user:email".into(),
                },
            },
        }
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &CommonConfig {
        &self.common
    }
    fn common_mut(&mut self) -> &mut CommonConfig {
        &mut self.common
    }
    fn validate(&self) -> Result<(), ConfigError> {
        require_strong_secret(&self.common, "keys.sealing_key", &self.keys.sealing_key, 44, DEV_SEALING_KEY)?;
        crate::signing::Sealer::from_config(&self.keys.sealing_key).map_err(|reason| ConfigError::Invalid {
            key: self.common.env_var("keys.sealing_key"),
            reason: reason.into(),
        })?;
        let invalid =
            |path: &str, reason: &str| ConfigError::Invalid { key: self.common.env_var(path), reason: reason.into() };
        if self.tokens.access_ttl_secs <= 0 || self.tokens.access_ttl_secs > 3600 {
            return Err(invalid("tokens.access_ttl_secs", "must be between 1 and 3600"));
        }
        if u64::try_from(self.tokens.access_ttl_secs).unwrap_or(u64::MAX) > self.common.auth.max_token_lifetime_secs {
            return Err(invalid(
                "tokens.access_ttl_secs",
                "must not exceed auth.max_token_lifetime_secs, or every service would refuse the tokens",
            ));
        }
        if self.tokens.device_ttl_secs <= 0
            || u64::try_from(self.tokens.device_ttl_secs).unwrap_or(u64::MAX) > self.common.auth.max_token_lifetime_secs
        {
            return Err(invalid(
                "tokens.device_ttl_secs",
                "must be positive and not exceed auth.max_token_lifetime_secs",
            ));
        }
        if self.tokens.refresh_ttl_secs <= self.tokens.access_ttl_secs {
            return Err(invalid("tokens.refresh_ttl_secs", "must be longer than the access-token lifetime"));
        }
        if self.tokens.session_max_secs < self.tokens.access_ttl_secs {
            return Err(invalid("tokens.session_max_secs", "must be at least the access-token lifetime"));
        }
        if self.mfa.issuer.trim().is_empty() || self.mfa.issuer.contains(':') || self.mfa.issuer.len() > 64 {
            return Err(invalid("mfa.issuer", "must be 1 to 64 characters, without ':'"));
        }
        if !(30..=1800).contains(&self.mfa.challenge_ttl_secs) {
            return Err(invalid("mfa.challenge_ttl_secs", "must be between 30 and 1800"));
        }
        if !self.mail.smtp_url.is_empty() {
            crate::mailer::SmtpMailer::new(&self.mail.smtp_url, &self.mail.from)
                .map_err(|e| invalid("mail.smtp_url", &format!("{e:#} (smtp://host:port, and a valid mail.from)")))?;
        }
        if !(60..=24 * 3600).contains(&self.mail.reset_ttl_secs) {
            return Err(invalid("mail.reset_ttl_secs", "must be between 60 and 86400"));
        }
        if !(600..=30 * 24 * 3600).contains(&self.mail.verification_ttl_secs) {
            return Err(invalid("mail.verification_ttl_secs", "must be between 600 and 2592000"));
        }
        if !(60..=3600).contains(&self.oauth.flow_ttl_secs) {
            return Err(invalid("oauth.flow_ttl_secs", "must be between 60 and 3600"));
        }
        if !(1..=60).contains(&self.oauth.request_timeout_secs) {
            return Err(invalid("oauth.request_timeout_secs", "must be between 1 and 60"));
        }
        for (name, provider, urls) in [
            ("google", &self.oauth.google, &["authorize_url", "token_url", "jwks_url"][..]),
            ("github", &self.oauth.github, &["authorize_url", "token_url", "user_url", "emails_url"][..]),
        ] {
            if !provider.enabled() {
                continue;
            }
            if provider.client_secret.expose().is_empty() {
                return Err(invalid(&format!("oauth.{name}.client_secret"), "must be set with the client id"));
            }
            if name == "google" && provider.issuer.is_empty() {
                return Err(invalid("oauth.google.issuer", "must be set"));
            }
            for &key in urls.iter().chain(&["redirect_uri"]) {
                let url = match key {
                    "authorize_url" => &provider.authorize_url,
                    "token_url" => &provider.token_url,
                    "jwks_url" => &provider.jwks_url,
                    "user_url" => &provider.user_url,
                    "emails_url" => &provider.emails_url,
                    _ => &provider.redirect_uri,
                };
                // Secrets travel to these: TLS in production, plain HTTP only for local runs.
                let secure = url.starts_with("https://");
                if !(secure || (!self.common.is_production() && url.starts_with("http://"))) {
                    return Err(invalid(
                        &format!("oauth.{name}.{key}"),
                        "must be an https:// URL (http:// outside production only)",
                    ));
                }
            }
        }
        if self.common.is_production() && (self.password.memory_kib < 19 * 1024 || self.password.iterations < 2) {
            return Err(invalid("password.memory_kib", "is below OWASP's argon2id minimum (19456 KiB, 2 iterations)"));
        }
        Ok(())
    }
}
