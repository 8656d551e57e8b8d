//! `gateway`: serves REST/JSON, gRPC-web and gRPC for the mesh on one port.

use festival_gateway::{Config, start};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::load()?;
    let _telemetry = festival_platform::telemetry::init("gateway", &config.telemetry)?;
    let running = start(config).await?;
    festival_platform::server::shutdown_signal().await;
    tracing::info!("draining");
    running.shutdown.cancel();
    running.handle.await??;
    Ok(())
}
