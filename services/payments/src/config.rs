//! Payments' configuration: the common part, the Stripe account (secret key, webhook
//! signing secrets, API base, how fast a checkout gives up) and the webhook tolerance.

use festival_platform::config::{CommonConfig, ConfigError, Secret, ServiceConfig};
use serde::{Deserialize, Serialize};

/// Development value of `PAYMENTS__STRIPE__SECRET_KEY` (the local fake accepts it);
/// refused in production.
pub const DEV_SECRET_KEY: &str = "sk_test_festival_dev";
/// Development value of `PAYMENTS__STRIPE__WEBHOOK_SECRETS`; refused in production.
pub const DEV_WEBHOOK_SECRET: &str = "whsec_festival_dev";
/// Where the local fake Stripe listens (`scripts/up` starts it).
pub const DEV_API_BASE: &str = "http://127.0.0.1:12111/";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub stripe: StripeConfig,
    pub webhook: WebhookConfig,
    pub limits: Limits,
    pub sweep: SweepConfig,
}

/// The worker's sweep (`PAYMENTS__SWEEP__*`): refunds not yet accepted by the provider
/// are sent again, checkouts open past their expiry are asked about.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SweepConfig {
    /// How often, in milliseconds.
    pub interval_ms: u64,
}

/// The Stripe account (`PAYMENTS__STRIPE__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StripeConfig {
    /// `sk_live_…` (or a restricted `rk_live_…` key) in production.
    pub secret_key: Secret,
    /// The endpoint's signing secrets, comma-separated: two during a rotation, so events
    /// signed with either are accepted.
    pub webhook_secrets: Secret,
    /// Stripe's API (`https://api.stripe.com/`); the local fake in development.
    pub api_base: String,
    /// One call to Stripe may take this long, in milliseconds, before the checkout
    /// answers ERR_5002.
    pub timeout_ms: u64,
    /// This many provider failures in a row open the circuit: calls fail at once...
    pub breaker_failures: u32,
    /// ...for this long, in milliseconds, before one is let through again.
    pub breaker_cooldown_ms: u64,
}

/// Webhook verification (`PAYMENTS__WEBHOOK__*`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WebhookConfig {
    /// How old (or how far in the future) a signature's timestamp may be, in seconds.
    pub tolerance_secs: i64,
}

/// Sizes a request may have (`PAYMENTS__LIMITS__*`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    /// The largest checkout total, in minor units.
    pub amount_minor: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            common: CommonConfig::local_defaults("payments", 50054),
            stripe: StripeConfig {
                secret_key: Secret::new(DEV_SECRET_KEY),
                webhook_secrets: Secret::new(DEV_WEBHOOK_SECRET),
                api_base: DEV_API_BASE.into(),
                timeout_ms: 3_000,
                breaker_failures: 5,
                breaker_cooldown_ms: 30_000,
            },
            webhook: WebhookConfig { tolerance_secs: 300 },
            limits: Limits { amount_minor: 100_000_000 },
            sweep: SweepConfig { interval_ms: 5_000 },
        }
    }
}

impl StripeConfig {
    /// The webhook signing secrets, in the order configured.
    pub fn webhook_secrets(&self) -> Vec<String> {
        self.webhook_secrets.expose().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
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
        let invalid =
            |path: &str, reason: &str| ConfigError::Invalid { key: self.common.env_var(path), reason: reason.into() };
        if self.stripe.webhook_secrets().is_empty() {
            return Err(ConfigError::Missing { key: self.common.env_var("stripe.webhook_secrets") });
        }
        if !(self.stripe.api_base.starts_with("https://") || self.stripe.api_base.starts_with("http://"))
            || !self.stripe.api_base.ends_with('/')
        {
            return Err(invalid("stripe.api_base", "must be an http(s) URL ending in '/'"));
        }
        if !(100..=30_000).contains(&self.stripe.timeout_ms) {
            return Err(invalid("stripe.timeout_ms", "must be between 100 and 30000"));
        }
        if self.stripe.breaker_failures == 0 {
            return Err(invalid("stripe.breaker_failures", "must be at least 1"));
        }
        if !(1..=3_600).contains(&self.webhook.tolerance_secs) {
            return Err(invalid("webhook.tolerance_secs", "must be between 1 and 3600"));
        }
        if self.common.is_production() {
            let key = self.stripe.secret_key.expose();
            if key.is_empty() {
                return Err(ConfigError::Missing { key: self.common.env_var("stripe.secret_key") });
            }
            if key == DEV_SECRET_KEY || !(key.starts_with("sk_") || key.starts_with("rk_")) {
                return Err(ConfigError::Weak {
                    key: self.common.env_var("stripe.secret_key"),
                    reason: "is not a Stripe secret key (sk_… or rk_…)".into(),
                });
            }
            if self.stripe.webhook_secrets().iter().any(|s| s == DEV_WEBHOOK_SECRET || !s.starts_with("whsec_")) {
                return Err(ConfigError::Weak {
                    key: self.common.env_var("stripe.webhook_secrets"),
                    reason: "every secret must be an endpoint signing secret (whsec_…), not the development one".into(),
                });
            }
            if !self.stripe.api_base.starts_with("https://") {
                return Err(invalid("stripe.api_base", "must be https in production"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use festival_platform::config::Environment;

    fn production(key: &str, secrets: &str) -> Config {
        let mut config = Config::default();
        config.common.env = Environment::Production;
        config.stripe.secret_key = Secret::new(key);
        config.stripe.webhook_secrets = Secret::new(secrets);
        config.stripe.api_base = "https://api.stripe.com/".into();
        config
    }

    #[test]
    fn production_refuses_to_start_without_real_stripe_secrets() {
        let refused = |c: Config| c.validate().expect_err("refused").to_string();
        assert!(refused(production("", "whsec_live")).contains("PAYMENTS__STRIPE__SECRET_KEY"));
        assert!(refused(production(DEV_SECRET_KEY, "whsec_live")).contains("PAYMENTS__STRIPE__SECRET_KEY"));
        assert!(refused(production("pk_live_publishable", "whsec_live")).contains("PAYMENTS__STRIPE__SECRET_KEY"));
        assert!(refused(production("sk_live_x", "")).contains("PAYMENTS__STRIPE__WEBHOOK_SECRETS"));
        assert!(refused(production("sk_live_x", DEV_WEBHOOK_SECRET)).contains("PAYMENTS__STRIPE__WEBHOOK_SECRETS"));
        assert!(
            refused(production("sk_live_x", "whsec_live,not-a-secret")).contains("PAYMENTS__STRIPE__WEBHOOK_SECRETS")
        );
        let mut plain_http = production("sk_live_x", "whsec_live");
        plain_http.stripe.api_base = "http://api.stripe.com/".into();
        assert!(refused(plain_http).contains("PAYMENTS__STRIPE__API_BASE"));
        assert!(production("sk_live_x", "whsec_new, whsec_old").validate().is_ok());
        // Outside production the development defaults work.
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn a_rotation_configures_several_webhook_secrets() {
        let config = production("sk_live_x", " whsec_new , whsec_old ,");
        assert_eq!(config.stripe.webhook_secrets(), vec!["whsec_new".to_owned(), "whsec_old".to_owned()]);
    }
}
