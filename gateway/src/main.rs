//! `gateway`: serves REST/JSON, gRPC-web and gRPC for the mesh on one port.
//! `gateway health`: exits 0 when the local gateway answers `/healthz` (container check).

use festival_gateway::{Config, start};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::load()?;
    if std::env::args().nth(1).as_deref() == Some("health") {
        return health(config.listen).await;
    }
    let _telemetry = festival_platform::telemetry::init("gateway", &config.telemetry)?;
    let running = start(config).await?;
    festival_platform::server::shutdown_signal().await;
    tracing::info!("draining");
    running.shutdown.cancel();
    running.handle.await??;
    Ok(())
}

async fn health(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ip = if listen.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { listen.ip() };
    let mut stream = tokio::net::TcpStream::connect((ip, listen.port())).await?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
    let mut response = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(3), stream.read_to_string(&mut response)).await??;
    anyhow::ensure!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "gateway not healthy"
    );
    Ok(())
}
