//! Applying what the provider reports: a verified webhook event, a refund's answer, or
//! what the reconciliation sweep read. Every change goes through the status table, and
//! its event is written to the outbox in the same transaction, so the owner hears of it
//! exactly once, however often Stripe repeats itself.

use chrono::{DateTime, Utc};
use festival_platform::events::outbox::publish;
use festival_proto::payments::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::connect;
use crate::domain::event::{Change, ProviderEvent, ProviderRefundStatus, RefundChange};
use crate::domain::status::{PaymentEvent, PaymentStatus, Purpose, RefundStatus, transition};
use crate::store::payments::PaymentRow;
use crate::store::refunds::RefundRow;
use crate::store::{self, webhooks::Outcome};

/// What the provider says it captured (Stripe's `amount_total` and currency), when it
/// says: the completion event carries these, not what we asked for, so the owner
/// compares what was really paid with what is owed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
}

/// Applies a verified event (already recorded by id). `Parked`: it cannot apply yet (it
/// names a payment intent we do not know yet, or a refund that does not fit until our
/// pending ones settle); the caller keeps it and the sweep tries again.
pub async fn apply(conn: &mut PgConnection, event: &ProviderEvent, now: DateTime<Utc>) -> Result<Outcome, sqlx::Error> {
    if let Change::AccountUpdated { account_id, charges_enabled, payouts_enabled, details_submitted, at } =
        &event.change
    {
        let state = store::vendors::State {
            charges_enabled: *charges_enabled,
            payouts_enabled: *payouts_enabled,
            details_submitted: *details_submitted,
            at: DateTime::from_timestamp(*at, 0).unwrap_or(now),
        };
        let changed = store::vendors::set_state(conn, account_id, &state).await?;
        return Ok(if changed.is_some() { Outcome::Applied } else { Outcome::Ignored });
    }
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
        Change::AccountUpdated { .. } | Change::Other => None,
    };
    let Some(payment) = payment else {
        // A session made outside this platform (another integration on the account).
        tracing::info!(event = %event.id, kind = %event.kind, "provider event about no payment of ours; ignored");
        return Ok(Outcome::Ignored);
    };
    if let Change::Refund(change) = &event.change {
        // Claims its effect itself, only once it applies.
        return refund_changed(conn, &payment, change, &effect, &event.id, now).await;
    }
    if !store::webhooks::claim_effect(conn, &effect, &event.id).await? {
        return Ok(Outcome::Ignored);
    }
    let applied = match &event.change {
        Change::CheckoutCompleted { intent_id, paid, amount_total, currency, .. } => {
            let step = if *paid { PaymentEvent::Captured } else { PaymentEvent::Submitted };
            let captured = Captured { amount_minor: *amount_total, currency: currency.clone() };
            advance(conn, &payment, step, intent_id.as_deref(), "", &captured, now).await?
        }
        Change::AsyncSucceeded { intent_id, .. } => {
            advance(conn, &payment, PaymentEvent::Captured, intent_id.as_deref(), "", &Captured::default(), now).await?
        }
        Change::AsyncFailed { .. } => {
            let why = "the delayed payment failed";
            advance(conn, &payment, PaymentEvent::Failed, None, why, &Captured::default(), now).await?
        }
        Change::CheckoutExpired { .. } => {
            let why = "the checkout expired unpaid";
            advance(conn, &payment, PaymentEvent::Failed, None, why, &Captured::default(), now).await?
        }
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
        Change::Refund(_) | Change::AccountUpdated { .. } | Change::Other => false,
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
    captured: &Captured,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let Some(next) = transition(payment.status, step) else {
        tracing::info!(payment = %payment.id, from = %payment.status, ?step, "payment change refused by the status table");
        return Ok(false);
    };
    store::payments::set_status(conn, payment.id, next, intent_id, failure_reason, now).await?;
    match (step, next) {
        (PaymentEvent::Captured, PaymentStatus::Completed) => {
            let amount = captured.amount_minor.unwrap_or(payment.amount_minor);
            let currency = captured.currency.clone().unwrap_or_else(|| payment.currency.clone());
            if amount != payment.amount_minor || !currency.eq_ignore_ascii_case(&payment.currency) {
                tracing::error!(payment = %payment.id, amount, %currency, asked = payment.amount_minor,
                    "the provider captured another amount than the checkout asked; the owner will refuse it");
            }
            publish(
                conn,
                &pb::PaymentCompleted {
                    payment_id: payment.id.to_string(),
                    festival_id: payment.festival_id.to_string(),
                    purpose: purpose_pb(payment.purpose) as i32,
                    reference: payment.reference.clone(),
                    payer_user_id: payment.payer_user_id.to_string(),
                    amount_minor: amount,
                    currency,
                },
            )
            .await?;
        }
        (_, PaymentStatus::Failed) => {
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
        _ => {}
    }
    Ok(true)
}

/// A refund changed at the provider: ours (asked through the API or an owner's event),
/// or one made in Stripe's dashboard, which is recorded so our books match the
/// provider's. One that does not fit beside our pending refunds waits (parked) until
/// they settle: Stripe never pays back more than it captured, so one of them fails.
async fn refund_changed(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    change: &RefundChange,
    effect: &str,
    event_id: &str,
    now: DateTime<Utc>,
) -> Result<Outcome, sqlx::Error> {
    let our_id = change.our_id.as_deref().and_then(|id| Uuid::parse_str(id).ok());
    let ours = store::refunds::lock_for_event(conn, payment.id, &change.refund_id, our_id).await?;
    let refund = match ours {
        Some(refund) => refund,
        None if change.status == ProviderRefundStatus::Failed => return Ok(Outcome::Ignored),
        None => {
            let fits = payment.refunded_minor.checked_add(change.amount).is_some_and(|t| t <= payment.amount_minor);
            if !fits {
                tracing::warn!(payment = %payment.id, refund = %change.refund_id,
                    "a refund made at the provider does not fit beside our pending ones yet; parked");
                return Ok(Outcome::Parked);
            }
            if !store::webhooks::claim_effect(conn, effect, event_id).await? {
                return Ok(Outcome::Ignored);
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
                // Made in the dashboard: a vendor's sale refunded without reversing its
                // transfer leaves the vendor owing its share (booked when it succeeds).
                reverse_transfer: payment.vendor_account_id.is_none() || change.transfer_reversed,
                asked_at: None,
            };
            store::refunds::insert(conn, &refund).await?;
            let refunded = store::payments::add_refunded(conn, payment.id, change.amount, now).await?;
            let payment = PaymentRow { refunded_minor: refunded, ..payment.clone() };
            let applied = refund_outcome(conn, &payment, &refund, Some(&change.refund_id), change.status, now).await?;
            return Ok(if applied { Outcome::Applied } else { Outcome::Ignored });
        }
    };
    if !store::webhooks::claim_effect(conn, effect, event_id).await? {
        return Ok(Outcome::Ignored);
    }
    // What the provider did decides whether a vendor owes its share.
    let mut refund = refund;
    if payment.vendor_account_id.is_some() && refund.reverse_transfer != change.transfer_reversed {
        store::refunds::set_reversed(conn, refund.id, change.transfer_reversed).await?;
        refund.reverse_transfer = change.transfer_reversed;
    }
    let applied = refund_outcome(conn, payment, &refund, Some(&change.refund_id), change.status, now).await?;
    Ok(if applied { Outcome::Applied } else { Outcome::Ignored })
}

/// Records what the provider says of one of our refunds. `payment` is locked and its
/// `refunded_minor` counts every refund booked and not failed.
///
/// - pending → succeeded: the owner hears of it; the payment is REFUNDED once what the
///   provider confirmed reaches what it captured (pending ones do not count).
/// - pending → failed: the amount is refundable again.
/// - failed → succeeded (the provider paid it after all): booked again.
/// - succeeded → failed (Stripe's `refund.failed` after a success): the money is held
///   again, and a REFUNDED payment is COMPLETED again.
///
/// Repeating an outcome changes nothing.
pub async fn refund_outcome(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    refund: &RefundRow,
    provider_refund_id: Option<&str>,
    status: ProviderRefundStatus,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    match (refund.status, status) {
        (RefundStatus::Pending, ProviderRefundStatus::Pending) => {
            store::refunds::set_outcome(conn, refund.id, RefundStatus::Pending, provider_refund_id, now).await?;
            Ok(false)
        }
        (RefundStatus::Pending, ProviderRefundStatus::Failed) => {
            store::refunds::set_outcome(conn, refund.id, RefundStatus::Failed, provider_refund_id, now).await?;
            store::payments::add_refunded(conn, payment.id, -refund.amount_minor, now).await?;
            tracing::warn!(payment = %payment.id, refund = %refund.id, "the provider could not pay a refund back");
            Ok(true)
        }
        (RefundStatus::Pending, ProviderRefundStatus::Succeeded) => {
            store::refunds::set_outcome(conn, refund.id, RefundStatus::Succeeded, provider_refund_id, now).await?;
            refund_succeeded(conn, payment, refund, now).await?;
            Ok(true)
        }
        (RefundStatus::Failed, ProviderRefundStatus::Succeeded) => {
            if payment.refunded_minor.checked_add(refund.amount_minor).is_none_or(|t| t > payment.amount_minor) {
                tracing::error!(payment = %payment.id, refund = %refund.id,
                    "the provider paid a refund we had marked failed, beyond what is left: needs an organiser");
                return Ok(false);
            }
            store::refunds::set_outcome(conn, refund.id, RefundStatus::Succeeded, provider_refund_id, now).await?;
            store::payments::add_refunded(conn, payment.id, refund.amount_minor, now).await?;
            refund_succeeded(conn, payment, refund, now).await?;
            Ok(true)
        }
        (RefundStatus::Succeeded, ProviderRefundStatus::Failed) => {
            store::refunds::set_outcome(conn, refund.id, RefundStatus::Failed, provider_refund_id, now).await?;
            store::payments::add_refunded(conn, payment.id, -refund.amount_minor, now).await?;
            store::vendors::drop_open_debt(conn, refund.id).await?;
            if payment.status == PaymentStatus::Refunded {
                advance(conn, payment, PaymentEvent::RefundReversed, None, "", &Captured::default(), now).await?;
            }
            tracing::warn!(payment = %payment.id, refund = %refund.id, "a refund failed after it had succeeded");
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A refund went through: REFUNDED once the confirmed total reaches the capture, and the
/// owner is told (with the confirmed total).
async fn refund_succeeded(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    refund: &RefundRow,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    // A vendor's share the provider could not take back from its balance: the platform
    // paid it, the vendor owes it.
    if let Some(vendor) = payment.vendor_account_id.filter(|_| !refund.reverse_transfer) {
        let share = connect::vendor_share(refund.amount_minor, payment.amount_minor, payment.application_fee_minor);
        if share > 0 {
            let debt = store::vendors::DebtRow {
                id: uuid::Uuid::now_v7(),
                vendor_account_id: vendor,
                refund_id: refund.id,
                amount_minor: share,
                currency: payment.currency.clone(),
                created_at: now,
                settled_at: None,
            };
            store::vendors::add_debt(conn, &debt).await?;
            tracing::warn!(payment = %payment.id, refund = %refund.id, vendor = %vendor, owed = share,
                "refund paid from the platform's balance: the vendor owes its share");
        }
    }
    let confirmed = store::refunds::succeeded_total(conn, payment.id).await?;
    if confirmed >= payment.amount_minor {
        advance(conn, payment, PaymentEvent::FullyRefunded, None, "", &Captured::default(), now).await?;
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
            refunded_minor: confirmed,
        },
    )
    .await?;
    Ok(())
}

pub fn purpose_pb(p: Purpose) -> pb::PaymentPurpose {
    match p {
        Purpose::TicketOrder => pb::PaymentPurpose::TicketOrder,
        Purpose::CampingBooking => pb::PaymentPurpose::CampingBooking,
        Purpose::WalletTopUp => pb::PaymentPurpose::WalletTopUp,
        Purpose::VendorOrder => pb::PaymentPurpose::VendorOrder,
    }
}
