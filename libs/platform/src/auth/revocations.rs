//! Emergency key revocations reach every process at once. Identity publishes
//! `SigningKeyRevoked` through its outbox; every replica of every service subscribes with
//! plain NATS (each subscriber hears each message, unlike a durable consumer that replicas
//! share) and refetches the key set from identity.
//!
//! The message is only a hint to ask identity again, never trusted itself: a forged one
//! costs a refetch, and a flood is coalesced into one refetch per
//! [`Verifier::MIN_REFRESH_INTERVAL`].

use std::future::Future;

use festival_proto::identity::v1::SigningKeyRevoked;
use futures::{FutureExt as _, StreamExt as _};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

/// Subscribes to `subject`, then runs `react` once for each burst of messages on it (with
/// the key ids the burst announced, from the payloads that decode), until
/// `shutdown`. Does not wait for NATS: a service starts while NATS is down, and the
/// subscription is made when it connects (`nats.flush()` waits for that, in tests).
pub async fn watch<F, Fut>(
    nats: async_nats::Client,
    subject: String,
    shutdown: CancellationToken,
    react: F,
) -> anyhow::Result<()>
where
    F: Fn(Vec<String>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut messages = nats.subscribe(subject.clone()).await?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                message = messages.next() => {
                    let Some(first) = message else { return };
                    // Whatever else already arrived is covered by the same refetch.
                    let mut kids = Vec::new();
                    let mut next = Some(first);
                    while let Some(message) = next {
                        if let Ok(revoked) = SigningKeyRevoked::decode(message.payload.as_ref()) {
                            kids.push(revoked.kid);
                        }
                        next = messages.next().now_or_never().flatten();
                    }
                    tracing::warn!(%subject, ?kids, "signing-key revocation announced; refetching the key set");
                    react(kids).await;
                }
            }
        }
    });
    Ok(())
}
