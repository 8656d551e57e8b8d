//! Applying what the provider reports: a verified webhook event, a refund's answer, or
//! what the reconciliation sweep read. Every change goes through the status table, and
//! its event is written to the outbox in the same transaction, so the owner hears of it
//! exactly once, however often Stripe repeats itself.

use chrono::{DateTime, Utc};
use festival_platform::events::outbox::publish;
use festival_proto::payments::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::event::{Change, ProviderEvent, ProviderRefundStatus, RefundChange};
use crate::domain::status::{PaymentEvent, PaymentStatus, Purpose, RefundStatus, transition};
use crate::store::payments::PaymentRow;
use crate::store::refunds::RefundRow;
use crate::store::{self, webhooks::Outcome};

/// Applies a verified event (already recorded by id). `Parked`: it names a payment
/// intent we do not know yet; the caller keeps it for later.
pub async fn apply(conn: &mut PgConnection, event: &ProviderEvent, now: DateTime<Utc>) -> Result<Outcome, sqlx::Error> {
    let Some(effect) = event.change.effect_key(&event.kind) else { return Ok(Outcome::Ignored) };
    let payment = match &event.change {
        Change::CheckoutCompleted { session_id, .. }
        | Change::AsyncSucceeded { session_id, .. }
        | Change::AsyncFailed { session_id }
        | Change::CheckoutExpired { session_id } => store::payments::lock_by_session(conn, session_id).await?,
        Change::Refund(RefundChange { intent_id, .. }) | Change::DisputeOpened { intent_id, .. } => {
            match store::payments::lock_by_intent(conn, intent_id).await? {
                Some(p) => Some(p),
                None => return Ok(Outcome::Parked),
            }
        }
        Change::Other => None,
    };
    let Some(payment) = payment else {
        // A session made outside this platform (another integration on the account).
        tracing::info!(event = %event.id, kind = %event.kind, "provider event about no payment of ours; ignored");
        return Ok(Outcome::Ignored);
    };
    if !store::webhooks::claim_effect(conn, &effect, &event.id).await? {
        return Ok(Outcome::Ignored);
    }
    let applied = match &event.change {
        Change::CheckoutCompleted { intent_id, paid, amount_total, .. } => {
            if *paid && amount_total.is_some_and(|a| a != payment.amount_minor) {
                tracing::error!(payment = %payment.id, ?amount_total, expected = payment.amount_minor,
                    "the provider captured another amount than the checkout asked");
            }
            let step = if *paid { PaymentEvent::Captured } else { PaymentEvent::Submitted };
            advance(conn, &payment, step, intent_id.as_deref(), "", now).await?
        }
        Change::AsyncSucceeded { intent_id, .. } => {
            advance(conn, &payment, PaymentEvent::Captured, intent_id.as_deref(), "", now).await?
        }
        Change::AsyncFailed { .. } => {
            advance(conn, &payment, PaymentEvent::Failed, None, "the delayed payment failed", now).await?
        }
        Change::CheckoutExpired { .. } => {
            advance(conn, &payment, PaymentEvent::Failed, None, "the checkout expired unpaid", now).await?
        }
        Change::Refund(change) => refund_changed(conn, &payment, change, now).await?,
        Change::DisputeOpened { dispute_id, amount, .. } => {
            store::payments::set_disputed(conn, payment.id, now).await?;
            publish(
                conn,
                &pb::PaymentDisputed {
                    payment_id: payment.id.to_string(),
                    festival_id: payment.festival_id.to_string(),
                    purpose: purpose_pb(payment.purpose) as i32,
                    reference: payment.reference.clone(),
                    amount_minor: *amount,
                    currency: payment.currency.clone(),
                    dispute_id: dispute_id.clone(),
                },
            )
            .await?;
            true
        }
        Change::Other => false,
    };
    Ok(if applied { Outcome::Applied } else { Outcome::Ignored })
}

/// Moves a payment by the status table and tells the owner; `false` when the table
/// refuses (a late or out-of-order event: nothing changes).
pub async fn advance(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    step: PaymentEvent,
    intent_id: Option<&str>,
    failure_reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let Some(next) = transition(payment.status, step) else {
        tracing::info!(payment = %payment.id, from = %payment.status, ?step, "payment change refused by the status table");
        return Ok(false);
    };
    store::payments::set_status(conn, payment.id, next, intent_id, failure_reason, now).await?;
    match next {
        PaymentStatus::Completed => {
            publish(
                conn,
                &pb::PaymentCompleted {
                    payment_id: payment.id.to_string(),
                    festival_id: payment.festival_id.to_string(),
                    purpose: purpose_pb(payment.purpose) as i32,
                    reference: payment.reference.clone(),
                    payer_user_id: payment.payer_user_id.to_string(),
                    amount_minor: payment.amount_minor,
                    currency: payment.currency.clone(),
                },
            )
            .await?;
        }
        PaymentStatus::Failed => {
            publish(
                conn,
                &pb::PaymentFailed {
                    payment_id: payment.id.to_string(),
                    festival_id: payment.festival_id.to_string(),
                    purpose: purpose_pb(payment.purpose) as i32,
                    reference: payment.reference.clone(),
                    reason: failure_reason.to_owned(),
                },
            )
            .await?;
        }
        PaymentStatus::Pending | PaymentStatus::Processing | PaymentStatus::Refunded => {}
    }
    Ok(true)
}

/// A refund changed at the provider: ours (asked through the API or an owner's event) or
/// one made in Stripe's dashboard, which is recorded so our books match the provider's.
async fn refund_changed(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    change: &RefundChange,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let our_id = change.our_id.as_deref().and_then(|id| Uuid::parse_str(id).ok());
    if let Some(refund) = store::refunds::lock_for_event(conn, &change.refund_id, our_id).await? {
        return refund_outcome(conn, payment, &refund, Some(&change.refund_id), change.status, now).await;
    }
    if change.status == ProviderRefundStatus::Failed {
        return Ok(false);
    }
    if payment.refunded_minor + change.amount > payment.amount_minor {
        tracing::error!(payment = %payment.id, refund = %change.refund_id,
            "the provider reports refunds beyond the captured amount; left for the reconciliation report");
        return Ok(false);
    }
    let refund = RefundRow {
        id: Uuid::now_v7(),
        payment_id: payment.id,
        amount_minor: change.amount,
        status: RefundStatus::Pending,
        reason: "made at the provider".into(),
        requested_by: "provider".into(),
        provider_refund_id: Some(change.refund_id.clone()),
        created_at: now,
    };
    store::refunds::insert(conn, &refund).await?;
    let refunded = store::payments::add_refunded(conn, payment.id, change.amount, now).await?;
    let payment = PaymentRow { refunded_minor: refunded, ..payment.clone() };
    refund_outcome(conn, &payment, &refund, Some(&change.refund_id), change.status, now).await
}

/// Records what the provider says of one of our refunds: success tells the owner (and a
/// payment refunded in full becomes REFUNDED); failure makes the amount refundable
/// again. Only a PENDING refund moves, so repeating it changes nothing.
pub async fn refund_outcome(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    refund: &RefundRow,
    provider_refund_id: Option<&str>,
    status: ProviderRefundStatus,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    if refund.status != RefundStatus::Pending {
        return Ok(false);
    }
    match status {
        ProviderRefundStatus::Pending => {
            store::refunds::set_outcome(conn, refund.id, RefundStatus::Pending, provider_refund_id, now).await?;
            Ok(false)
        }
        ProviderRefundStatus::Failed => {
            store::refunds::set_outcome(conn, refund.id, RefundStatus::Failed, provider_refund_id, now).await?;
            store::payments::add_refunded(conn, payment.id, -refund.amount_minor, now).await?;
            tracing::warn!(payment = %payment.id, refund = %refund.id, "the provider could not pay a refund back");
            Ok(true)
        }
        ProviderRefundStatus::Succeeded => {
            store::refunds::set_outcome(conn, refund.id, RefundStatus::Succeeded, provider_refund_id, now).await?;
            if payment.refunded_minor >= payment.amount_minor {
                advance(conn, payment, PaymentEvent::FullyRefunded, None, "", now).await?;
            }
            publish(
                conn,
                &pb::PaymentRefunded {
                    payment_id: payment.id.to_string(),
                    festival_id: payment.festival_id.to_string(),
                    purpose: purpose_pb(payment.purpose) as i32,
                    reference: payment.reference.clone(),
                    refund_id: refund.id.to_string(),
                    amount_minor: refund.amount_minor,
                    currency: payment.currency.clone(),
                    refunded_minor: payment.refunded_minor,
                },
            )
            .await?;
            Ok(true)
        }
    }
}

pub fn purpose_pb(p: Purpose) -> pb::PaymentPurpose {
    match p {
        Purpose::TicketOrder => pb::PaymentPurpose::TicketOrder,
        Purpose::CampingBooking => pb::PaymentPurpose::CampingBooking,
        Purpose::WalletTopUp => pb::PaymentPurpose::WalletTopUp,
    }
}
