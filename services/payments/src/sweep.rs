//! The worker's sweep: refunds the provider has not accepted yet are sent again, and
//! payments still open after their checkout expired are settled by asking the provider
//! (a webhook lost for good must not leave a buyer charged without a ticket).

use std::sync::Arc;
use std::time::Duration;

use festival_platform::clock::Clock;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::status::PaymentEvent;
use crate::provider::{PaymentProvider, SessionState};
use crate::{refunding, settle, store};

/// How often the sweep runs.
const EVERY: Duration = Duration::from_secs(15);
/// How many items one round handles.
const BATCH: i64 = 100;

pub async fn run(pool: PgPool, provider: Arc<dyn PaymentProvider>, clock: Clock, shutdown: CancellationToken) {
    loop {
        match once(&pool, provider.as_ref(), &clock).await {
            Ok(Swept { refunds_sent: 0, payments_settled: 0 }) => {}
            Ok(swept) => tracing::info!(?swept, "payments sweep"),
            Err(e) => tracing::warn!(error = %e, "payments sweep failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub refunds_sent: usize,
    pub payments_settled: usize,
}

/// One round (tests call it directly).
pub async fn once(pool: &PgPool, provider: &dyn PaymentProvider, clock: &Clock) -> Result<Swept, sqlx::Error> {
    let mut swept = Swept::default();
    let unsent = store::refunds::unsent(&mut *pool.acquire().await?, BATCH).await?;
    for refund in unsent {
        if let Some(r) = refunding::send(pool, provider, clock, refund.id).await?
            && r.provider_refund_id.is_some()
        {
            swept.refunds_sent += 1;
        }
    }
    let overdue = store::payments::overdue(&mut *pool.acquire().await?, clock.now(), BATCH).await?;
    for payment in overdue {
        let session = match provider.session(&payment.provider_session_id).await {
            Ok(session) => session,
            Err(e) => {
                tracing::warn!(payment = %payment.id, error = %e, "cannot read a checkout from the provider; next round");
                continue;
            }
        };
        let mut tx = pool.begin().await?;
        let Some(current) = store::payments::lock(&mut tx, payment.id).await? else { continue };
        let now = clock.now();
        let moved = match &session.state {
            SessionState::Paid { intent_id, .. } => {
                settle::advance(&mut tx, &current, PaymentEvent::Captured, Some(intent_id), "", now).await?
            }
            SessionState::Processing { intent_id } => {
                settle::advance(&mut tx, &current, PaymentEvent::Submitted, Some(intent_id), "", now).await?
            }
            SessionState::Expired => {
                settle::advance(&mut tx, &current, PaymentEvent::Failed, None, "the checkout expired unpaid", now)
                    .await?
            }
            // Stripe expires a session shortly after its time; the next round sees it.
            SessionState::Open => false,
        };
        tx.commit().await?;
        if moved {
            tracing::info!(payment = %payment.id, state = ?session.state, "payment settled by the sweep");
            swept.payments_settled += 1;
        }
    }
    Ok(swept)
}
