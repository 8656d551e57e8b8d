//! The ticketing service: ticket categories and the quotas that cap them, holds that
//! reserve stock for 15 minutes, orders (free, or paid at a box office or by a partner
//! until the payments service is wired), tickets whose QR credential is signed with the
//! festival's Ed25519 key, transfers, the waiting list, and the gates (check-in lists,
//! devices, offline scanners). Keeps a projection of program's festival facts and the
//! devices identity revoked; publishes `festival.ticketing.*`.
//!
//! Layout: [`api`] (gRPC), [`domain`] (rules), [`store`] (SQL), [`stock`] (quota moves),
//! [`lifecycle`] (hold expiry, waiting-list offers), [`cancellation`] (cancelled orders
//! and festivals), [`signing`] (festival keys),
//! [`document`] (QR codes and PDF tickets), [`wallet`] (wallet passes), [`events`].

pub mod api;
pub mod cancellation;
pub mod card_orders;
pub mod config;
pub mod document;
pub mod domain;
pub mod events;
pub mod fulfil;
pub mod lifecycle;
pub mod resale;
pub mod signing;
pub mod stock;
pub mod store;
pub mod wallet;

use std::sync::Arc;

use festival_platform::payments::{GrpcPayments, PaymentPort};
use std::time::Duration;

use festival_platform::server::{Context, Service};
use festival_proto::ticketing::v1::ticketing_service_server::TicketingServiceServer;
use sqlx::migrate::Migrator;
use tonic::service::Routes;

pub use config::Config;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The ticketing service, as the platform bootstrap sees it.
pub struct Ticketing;

impl Service for Ticketing {
    type Config = Config;
    const NAME: &'static str = "ticketing";
    const GRPC_SERVICES: &'static [&'static str] = &["festival.ticketing.v1.TicketingService"];

    fn default_config() -> Config {
        Config::default()
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    async fn routes(config: Config, ctx: Context) -> anyhow::Result<Routes> {
        let verifier = ctx.verifier().await?;
        let sealer =
            festival_platform::sealing::Sealer::from_config(&config.keys.sealing_key).map_err(anyhow::Error::msg)?;
        let keys = Arc::new(signing::FestivalKeys::new(ctx.pool.clone(), sealer));
        let max = config.common.grpc.max_message_bytes;
        let wallets = Arc::new(wallet::Wallets::from_config(&config.wallet).map_err(anyhow::Error::msg)?);
        let payments: Arc<dyn PaymentPort> = Arc::new(GrpcPayments::from_config(&config.payments)?);
        let api = api::TicketingApi::new(
            ctx.pool.clone(),
            verifier,
            keys,
            Arc::new(config),
            ctx.clock.clone(),
            wallets,
            payments,
        );
        Ok(Routes::new(TicketingServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max)))
    }

    fn consumers(config: &Config, ctx: &Context) -> Vec<festival_platform::events::consumer::Subscription> {
        match festival_platform::sealing::Sealer::from_config(&config.keys.sealing_key) {
            Ok(sealer) => {
                let keys = Arc::new(signing::FestivalKeys::new(ctx.pool.clone(), sealer));
                events::consumers(keys, ctx.clock.clone())
            }
            Err(e) => {
                tracing::error!(error = %e, "no sealing key: ticketing follows no events");
                Vec::new()
            }
        }
    }

    fn workers(config: &Config, ctx: &Context) -> Vec<futures::future::BoxFuture<'static, ()>> {
        let every = Duration::from_millis(config.holds.sweep_interval_ms.max(10));
        let offer_ttl = chrono::Duration::seconds(config.waitlist.offer_ttl_secs);
        vec![Box::pin(lifecycle::run(ctx.pool.clone(), ctx.clock.clone(), every, offer_ttl, ctx.shutdown.clone()))]
    }
}
