//! Emergency key revocations reach every process at once. Identity publishes
//! `SigningKeyRevoked` through its outbox; every replica of every service subscribes with
//! plain NATS (each subscriber hears each message, unlike a durable consumer that replicas
//! share) and refetches the key set from identity.
//!
//! The message is only a hint to ask identity again, never trusted itself: a forged one
//! costs a refetch, and a flood is coalesced into one refetch per
//! [`Verifier::MIN_REFRESH_INTERVAL`].

use std::future::Future;

use futures::{FutureExt as _, StreamExt as _};
use tokio_util::sync::CancellationToken;

/// Subscribes to `subject`, then runs `react` once for each burst of messages on it, until
/// `shutdown`. Does not wait for NATS: a service starts while NATS is down, and the
/// subscription is made when it connects (`nats.flush()` waits for that, in tests).
pub async fn watch<F, Fut>(
    nats: async_nats::Client,
    subject: String,
    shutdown: CancellationToken,
    react: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut messages = nats.subscribe(subject.clone()).await?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                message = messages.next() => {
                    if message.is_none() {
                        return;
                    }
                    // Whatever else already arrived is covered by the same refetch.
                    while let Some(Some(_)) = messages.next().now_or_never() {}
                    tracing::warn!(%subject, "signing-key revocation announced; refetching the key set");
                    react().await;
                }
            }
        }
    });
    Ok(())
}
