//! The program service: festivals (the tenant root, with their status workflow), the
//! line-up and its conflicts, the public schedule and calendars, favourites, and staff
//! shifts. Publishes `festival.program.*` events; follows identity's memberships.
//!
//! Layout: [`api`] (gRPC), [`config`], [`domain`] (rules), [`store`] (SQL), [`events`]
//! (what it publishes and follows).

pub mod api;
pub mod config;
pub mod domain;
pub mod events;
pub mod store;

use festival_platform::config::CommonConfig;
use festival_platform::server::{Context, Service};
use festival_proto::program::v1::program_service_server::ProgramServiceServer;
use sqlx::migrate::Migrator;
use tonic::service::Routes;

pub use config::Config;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub struct Program;

impl Service for Program {
    type Config = Config;
    const NAME: &'static str = "program";
    const GRPC_SERVICES: &'static [&'static str] = &["festival.program.v1.ProgramService"];

    fn default_config() -> Config {
        Config { common: CommonConfig::local_defaults("program", 50052), limits: config::Limits::default() }
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    async fn routes(config: Config, ctx: Context) -> anyhow::Result<Routes> {
        let verifier = ctx.verifier().await?;
        let max = config.common.grpc.max_message_bytes;
        let api = api::ProgramApi::new(ctx.pool.clone(), verifier, config.limits);
        Ok(Routes::new(ProgramServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max)))
    }

    fn consumers(_config: &Config, _ctx: &Context) -> Vec<festival_platform::events::consumer::Subscription> {
        events::consumers()
    }
}
