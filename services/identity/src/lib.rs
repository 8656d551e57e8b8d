//! The identity service: accounts (argon2id passwords), sessions with rotating refresh
//! tokens and reuse detection, EdDSA access tokens and their JWKS, signing-key rotation,
//! global roles and festival memberships. Publishes `festival.identity.*` events and
//! consumes program's `festival.created` (the creator becomes the festival's ORGANIZER).
//!
//! Layout: [`api`] (gRPC), [`domain`] (rules), [`store`] (SQL), [`events`] (outbox),
//! [`credentials`] (argon2id), [`login_guard`] (sign-in throttling), [`signing`] and [`keyring`] (keys and tokens),
//! [`mailer`] (outgoing mail), [`oauth`] (Google and GitHub sign-in).

pub mod api;
pub mod config;
pub mod credentials;
pub mod domain;
pub mod events;
pub mod keyring;
pub mod login_guard;
pub mod mailer;
pub mod oauth;
pub mod signing;
pub mod store;

use std::sync::Arc;

use festival_platform::auth::Verifier;
use festival_platform::server::{Context, Service};
use festival_proto::identity::v1::identity_service_server::IdentityServiceServer;
use sqlx::migrate::Migrator;
use tonic::service::Routes;

pub use config::Config;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The identity service, as the platform bootstrap sees it.
pub struct Identity;

impl Service for Identity {
    type Config = Config;
    const NAME: &'static str = "identity";
    const GRPC_SERVICES: &'static [&'static str] = &["festival.identity.v1.IdentityService"];

    fn default_config() -> Config {
        Config::default()
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    async fn routes(config: Config, ctx: Context) -> anyhow::Result<Routes> {
        let sealer = signing::Sealer::from_config(&config.keys.sealing_key).map_err(anyhow::Error::msg)?;
        let keyring = Arc::new(keyring::Keyring::new(
            ctx.pool.clone(),
            sealer,
            config.tokens.access_ttl_secs,
            config.keys.signer_cache_secs,
            config.common.auth.leeway_secs,
        ));
        keyring.ensure_active().await?;
        let verifier = Verifier::new(&config.common.auth, keyring::LocalKeys(keyring.clone()));
        // Another replica revoked a key: stop signing with it and stop trusting it, now.
        ctx.on_signing_key_revoked({
            let (keyring, verifier) = (keyring.clone(), verifier.clone());
            move |kids: Vec<String>| {
                let (keyring, verifier) = (keyring.clone(), verifier.clone());
                async move {
                    keyring.forget_signer().await;
                    verifier.follow_revocation(&kids).await;
                }
            }
        })
        .await?;
        let hasher = credentials::Hasher::new(&config.password)?;
        let redis = festival_platform::redis::Redis::connect(&config.common.redis)?;
        let throttle = festival_platform::throttle::Throttle::new(redis, ctx.clock.clone(), "login");
        let guard =
            login_guard::LoginGuard::new(throttle, &config.login_throttle, config.keys.sealing_key.expose().as_bytes());
        let max = config.common.grpc.max_message_bytes;
        let mailer: Arc<dyn mailer::Mailer> = match config.mail.smtp_url.as_str() {
            "" => {
                if config.common.is_production() {
                    tracing::error!(
                        "no mail relay (IDENTITY__MAIL__SMTP_URL): password resets and verifications are not sent"
                    );
                }
                Arc::new(mailer::NoMailer)
            }
            url => Arc::new(mailer::SmtpMailer::new(url, &config.mail.from)?),
        };
        let providers = Arc::new(oauth::Providers::new(&config.oauth, config.common.auth.leeway_secs));
        let api = api::IdentityApi::new(api::Parts {
            pool: ctx.pool.clone(),
            hasher,
            guard,
            keyring,
            verifier,
            config: Arc::new(config),
            clock: ctx.clock.clone(),
            mailer,
            providers,
        });
        let service = IdentityServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max);
        Ok(Routes::new(service))
    }

    fn consumers(_config: &Config, _ctx: &Context) -> Vec<festival_platform::events::consumer::Subscription> {
        events::consumers()
    }
}
