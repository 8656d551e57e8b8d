//! The worker's sweep: refunds the provider has not accepted yet are sent again, payments
//! still open after their checkout expired are settled by asking the provider (a webhook
//! lost for good must not leave a buyer charged without a ticket), and parked webhook
//! events whose payment is known now are applied.

use std::sync::Arc;
use std::time::Duration;

use festival_platform::clock::Clock;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::event;
use crate::domain::status::PaymentEvent;
use crate::provider::{PaymentProvider, SessionState};
use crate::settle::Captured;
use crate::store::webhooks::Outcome;
use crate::{refunding, settle, store};

/// How many items one round handles.
const BATCH: i64 = 100;

pub async fn run(
    pool: PgPool,
    provider: Arc<dyn PaymentProvider>,
    clock: Clock,
    every: Duration,
    shutdown: CancellationToken,
) {
    // Each round after a full interval (the first too): what a round would find at start
    // is at most an interval old, and tests that sweep by hand are not raced by it.
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match once(&pool, provider.as_ref(), &clock).await {
            Ok(Swept { refunds_sent: 0, payments_settled: 0, events_applied: 0 }) => {}
            Ok(swept) => tracing::info!(?swept, "payments sweep"),
            Err(e) => tracing::warn!(error = %e, "payments sweep failed; retrying"),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub refunds_sent: usize,
    pub payments_settled: usize,
    /// Parked webhook events applied.
    pub events_applied: usize,
}

/// One round (tests call it directly).
pub async fn once(pool: &PgPool, provider: &dyn PaymentProvider, clock: &Clock) -> Result<Swept, sqlx::Error> {
    let mut swept = Swept::default();
    let unsent = store::refunds::unsent(&mut *pool.acquire().await?, clock.now(), BATCH).await?;
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
            SessionState::Paid { intent_id, amount_total } => {
                let captured = Captured { amount_minor: Some(*amount_total), currency: None };
                settle::advance(&mut tx, &current, PaymentEvent::Captured, Some(intent_id), "", &captured, now).await?
            }
            SessionState::Processing { intent_id } => {
                let none = Captured::default();
                settle::advance(&mut tx, &current, PaymentEvent::Submitted, Some(intent_id), "", &none, now).await?
            }
            SessionState::Expired => {
                let why = "the checkout expired unpaid";
                settle::advance(&mut tx, &current, PaymentEvent::Failed, None, why, &Captured::default(), now).await?
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
    // Events that waited for their payment intent (or for pending refunds to settle).
    let parked = store::webhooks::parked_known(&mut *pool.acquire().await?, BATCH).await?;
    for event_id in parked {
        let mut tx = pool.begin().await?;
        let Some(raw) = store::webhooks::lock_parked(&mut tx, &event_id).await? else { continue };
        let outcome = match event::parse(&raw) {
            Ok(parked) => settle::apply(&mut tx, &parked, clock.now()).await?,
            Err(_) => Outcome::Ignored,
        };
        if outcome != Outcome::Parked {
            store::webhooks::unpark(&mut tx, &event_id, outcome).await?;
            swept.events_applied += 1;
        }
        tx.commit().await?;
    }
    Ok(swept)
}
