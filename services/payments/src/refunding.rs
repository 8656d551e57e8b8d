//! Sending a booked refund to the provider, from the API, the owners' events and the
//! sweep alike. The provider's idempotency key is the refund's id, so sending twice
//! (a lost answer, a sweep racing the API) makes one refund at Stripe.

use festival_platform::clock::Clock;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::status::RefundStatus;
use crate::provider::{PaymentProvider, ProviderError, RefundSpec};
use crate::settle;
use crate::store::{self, refunds::RefundRow};

/// Asks the provider for refund `id` if it is still unsent, and records the answer.
/// `Ok(None)` when the provider could not be reached (the refund stays PENDING for the
/// sweep); a refusal marks it FAILED and gives the amount back.
pub async fn send(
    pool: &PgPool,
    provider: &dyn PaymentProvider,
    clock: &Clock,
    id: Uuid,
) -> Result<Option<RefundRow>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let Some(refund) = store::refunds::of_id(&mut conn, id).await? else { return Ok(None) };
    if refund.status != RefundStatus::Pending || refund.provider_refund_id.is_some() {
        return Ok(Some(refund));
    }
    let Some(payment) = store::payments::find(&mut conn, refund.payment_id).await? else { return Ok(None) };
    let Some(intent_id) = payment.provider_intent_id.clone() else { return Ok(None) };
    drop(conn);
    let spec = RefundSpec {
        refund_id: refund.id,
        intent_id,
        amount_minor: refund.amount_minor,
        idempotency_key: format!("refund-{}", refund.id),
    };
    let answer = provider.refund(&spec).await;
    let mut tx = pool.begin().await?;
    let Some(payment) = store::payments::lock(&mut tx, refund.payment_id).await? else { return Ok(None) };
    let Some(current) = store::refunds::lock(&mut tx, refund.id).await? else { return Ok(None) };
    match answer {
        Ok(r) => {
            settle::refund_outcome(&mut tx, &payment, &current, Some(&r.id), r.status, clock.now()).await?;
        }
        Err(ProviderError::Refused(why)) => {
            tracing::warn!(refund = %refund.id, %why, "the provider refused a refund");
            settle::refund_outcome(
                &mut tx,
                &payment,
                &current,
                None,
                crate::domain::event::ProviderRefundStatus::Failed,
                clock.now(),
            )
            .await?;
        }
        Err(ProviderError::Unavailable(why)) => {
            tracing::warn!(refund = %refund.id, %why, "refund not sent yet; the sweep retries");
            return Ok(Some(current));
        }
    }
    let updated = store::refunds::of_id(&mut tx, refund.id).await?;
    tx.commit().await?;
    Ok(updated)
}
