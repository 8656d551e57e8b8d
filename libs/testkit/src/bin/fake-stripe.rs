//! `fake-stripe`: the local Stripe stand-in for the dev stack and the smoke test (see
//! `festival_testkit::fake_stripe`).
//!
//! Environment: `FAKE_STRIPE_ADDR` (default `127.0.0.1:12111`), `FAKE_STRIPE_SECRET_KEY`
//! (`sk_test_festival_dev`), `FAKE_STRIPE_WEBHOOK_SECRET` (`whsec_festival_dev`),
//! `FAKE_STRIPE_WEBHOOK_URL` (`http://127.0.0.1:8080/webhooks/stripe`; empty: deliver nothing).
//! Runs until Ctrl-C or SIGTERM. The keys are never printed. `fake-stripe health` exits 0
//! when something listens on the address (compose's health check; the image has no shell).

use std::net::SocketAddr;

use anyhow::Context;
use festival_testkit::fake_stripe::{DEV_SECRET_KEY, DEV_WEBHOOK_SECRET, FakeStripe, FakeStripeConfig};

const DEFAULT_ADDR: &str = "127.0.0.1:12111";
const DEFAULT_WEBHOOK_URL: &str = "http://127.0.0.1:8080/webhooks/stripe";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = env_or("FAKE_STRIPE_ADDR", DEFAULT_ADDR)
        .parse()
        .context("FAKE_STRIPE_ADDR must be an ip:port, such as 127.0.0.1:12111")?;
    if std::env::args().nth(1).as_deref() == Some("health") {
        let connect = tokio::net::TcpStream::connect(addr);
        tokio::time::timeout(std::time::Duration::from_secs(2), connect)
            .await
            .context("no answer")?
            .with_context(|| format!("nothing listens on {addr}"))?;
        return Ok(());
    }
    let webhook_url = env_or("FAKE_STRIPE_WEBHOOK_URL", DEFAULT_WEBHOOK_URL);
    let config = FakeStripeConfig {
        secret_key: env_or("FAKE_STRIPE_SECRET_KEY", DEV_SECRET_KEY),
        webhook_secret: env_or("FAKE_STRIPE_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET),
        webhook_url: (!webhook_url.is_empty()).then_some(webhook_url),
        addr: Some(addr),
    };
    let fake = FakeStripe::start(config).await.with_context(|| format!("could not listen on {addr}"))?;
    eprintln!("fake-stripe listening on http://{}/", fake.addr());
    festival_platform::server::shutdown_signal().await;
    drop(fake);
    Ok(())
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}
