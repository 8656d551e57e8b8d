//! The cashless service: wallets per festival, NFC wristbands whose taps are proofs
//! (each band's key diversified from the festival's master key), and a double-entry
//! ledger whose transactions are hash-chained per festival in a journal that closures
//! sign. Keeps a projection of program's festival facts and the devices identity
//! revoked; publishes `festival.cashless.*`.
//!
//! Layout: [`api`] (gRPC), [`domain`] (postings, limits, the journal's hashing),
//! [`store`] (SQL), [`keys`] (festivals' master and journal keys), [`journal`] (the
//! chaining worker and closures), [`audit`] (ledger verification), [`online`] (top-ups
//! paid through payments), [`events`].

pub mod api;
pub mod audit;
pub mod config;
pub mod domain;
pub mod events;
pub mod journal;
pub mod keys;
pub mod online;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use festival_platform::server::{Context, Service};
use festival_proto::cashless::v1::cashless_service_server::CashlessServiceServer;
use sqlx::migrate::Migrator;
use tonic::service::Routes;

pub use config::Config;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The cashless service, as the platform bootstrap sees it.
pub struct Cashless;

impl Service for Cashless {
    type Config = Config;
    const NAME: &'static str = "cashless";
    const GRPC_SERVICES: &'static [&'static str] = &["festival.cashless.v1.CashlessService"];

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
        let keys = Arc::new(keys::FestivalKeys::new(sealer));
        let max = config.common.grpc.max_message_bytes;
        let payments = Arc::new(festival_platform::payments::GrpcPayments::from_config(&config.payments)?);
        let api = api::CashlessApi::new(ctx.pool.clone(), verifier, keys, ctx.clock.clone(), &config, payments);
        Ok(Routes::new(CashlessServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max)))
    }

    fn consumers(_config: &Config, _ctx: &Context) -> Vec<festival_platform::events::consumer::Subscription> {
        events::consumers()
    }

    fn workers(config: &Config, ctx: &Context) -> Vec<futures::future::BoxFuture<'static, ()>> {
        let every = Duration::from_millis(config.journal.chain_interval_ms.max(10));
        let keys = match festival_platform::sealing::Sealer::from_config(&config.keys.sealing_key) {
            Ok(sealer) => Some(keys::FestivalKeys::new(sealer)),
            Err(e) => {
                tracing::error!(error = %e, "no sealing key: festival days are not closed");
                None
            }
        };
        vec![Box::pin(journal::run(
            ctx.pool.clone(),
            keys,
            ctx.clock.clone(),
            every,
            config.journal.chain_batch,
            ctx.shutdown.clone(),
        ))]
    }
}
