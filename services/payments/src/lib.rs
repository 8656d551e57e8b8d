//! The payments service: hosted checkouts at Stripe (card data never reaches the
//! platform), Stripe's webhooks settling them, refunds that never exceed what was
//! captured, and `festival.payments.payment.*` events telling the owning service (ticketing
//! for orders). The only crate that talks to Stripe, through the [`provider`] port.
//!
//! Layout: [`api`] (gRPC), [`domain`] (rules), [`store`] (SQL), [`provider`] (the port,
//! Stripe, the breaker), [`settle`] (applying what the provider reports), [`refunding`]
//! (sending refunds), [`sweep`] (the worker's retries and reconciliation).

pub mod api;
pub mod config;
pub mod domain;
pub mod events;
pub mod provider;
pub mod refunding;
pub mod settle;
pub mod store;
pub mod sweep;

use std::sync::Arc;
use std::time::Duration;

use festival_platform::server::{Context, Service};
use festival_proto::payments::v1::payments_service_server::PaymentsServiceServer;
use sqlx::migrate::Migrator;
use tonic::service::Routes;

pub use config::Config;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The payments service, as the platform bootstrap sees it.
pub struct Payments;

/// The configured provider: Stripe behind the deadline and the circuit breaker.
pub fn provider(
    config: &Config,
    clock: festival_platform::clock::Clock,
) -> anyhow::Result<Arc<dyn provider::PaymentProvider>> {
    let timeout = Duration::from_millis(config.stripe.timeout_ms);
    let stripe = provider::stripe::Stripe::new(config.stripe.secret_key.expose(), &config.stripe.api_base, timeout)?;
    Ok(Arc::new(provider::breaker::Guarded::new(
        stripe,
        timeout,
        config.stripe.breaker_failures,
        Duration::from_millis(config.stripe.breaker_cooldown_ms),
        clock,
    )))
}

impl Service for Payments {
    type Config = Config;
    const NAME: &'static str = "payments";
    const GRPC_SERVICES: &'static [&'static str] = &["festival.payments.v1.PaymentsService"];

    fn default_config() -> Config {
        Config::default()
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    async fn routes(config: Config, ctx: Context) -> anyhow::Result<Routes> {
        let verifier = ctx.verifier().await?;
        let provider = provider(&config, ctx.clock.clone())?;
        // Reports read long lists: their own breaker, so a report Stripe throttles never
        // opens the circuit for buyers' checkouts and refunds.
        let reports = self::provider(&config, ctx.clock.clone())?;
        let max = config.common.grpc.max_message_bytes;
        let api =
            api::PaymentsApi::new(ctx.pool.clone(), verifier, provider, reports, Arc::new(config), ctx.clock.clone());
        Ok(Routes::new(PaymentsServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max)))
    }

    fn consumers(_config: &Config, _ctx: &Context) -> Vec<festival_platform::events::consumer::Subscription> {
        events::consumers()
    }

    fn workers(config: &Config, ctx: &Context) -> Vec<futures::future::BoxFuture<'static, ()>> {
        match provider(config, ctx.clock.clone()) {
            Ok(provider) => {
                let every = Duration::from_millis(config.sweep.interval_ms.max(10));
                vec![Box::pin(sweep::run(ctx.pool.clone(), provider, ctx.clock.clone(), every, ctx.shutdown.clone()))]
            }
            Err(e) => {
                tracing::error!(error = %e, "no payment provider: the sweep does not run");
                Vec::new()
            }
        }
    }
}
