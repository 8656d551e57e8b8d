//! Sending a booked refund to the provider, from the API, the owners' events and the
//! sweep alike. The provider's idempotency key is the refund's id, so sending twice
//! (a lost answer, a sweep racing the API) makes one refund at Stripe.

use festival_platform::clock::Clock;
use sqlx::PgPool;
use uuid::Uuid;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::domain::connect;
use crate::domain::event::ProviderRefundStatus;
use crate::domain::status::{PaymentStatus, RefundStatus};
use crate::provider::{PaymentProvider, ProviderError, RefundSpec};
use crate::settle;
use crate::store::payments::PaymentRow;
use crate::store::{self, refunds::RefundRow};

/// How long a sender holds a refund before another may try it (longer than any call).
const LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Asks the provider for refund `id` if it is still unsent and no other sender holds it
/// (a lease, taken atomically, held without a database lock during the call), and records
/// the answer. `Ok(None)` when another sender has it or the provider could not be
/// reached (the refund stays PENDING for the sweep); a refusal marks it FAILED and gives
/// the amount back.
pub async fn send(
    pool: &PgPool,
    provider: &dyn PaymentProvider,
    clock: &Clock,
    id: Uuid,
) -> Result<Option<RefundRow>, sqlx::Error> {
    let now = clock.now();
    // The lease's end is this sender's token: every later write checks it still holds it.
    let mut mine = now + LEASE;
    let mut conn = pool.acquire().await?;
    let Some(mut refund) = store::refunds::lease(&mut conn, id, now, mine).await? else {
        return store::refunds::of_id(&mut conn, id).await;
    };
    let Some(payment) = store::payments::find(&mut conn, refund.payment_id).await? else {
        tracing::error!(refund = %id, "a refund of no payment we know; left unsent");
        return Ok(None);
    };
    let Some(intent_id) = payment.provider_intent_id.clone() else {
        tracing::error!(refund = %id, payment = %payment.id, "a refund of a payment without an intent; left unsent");
        return Ok(None);
    };
    // The balance is read only before the provider was ever asked: once it may have
    // been (an answer lost on the way), the key must stay what it was.
    let vendor = match payment.vendor_account_id.filter(|_| refund.reverse_transfer && refund.asked_at.is_none()) {
        Some(id) => store::vendors::find(&mut conn, id).await?,
        None => None,
    };
    drop(conn);
    // A vendor's share is taken back from its balance. Stripe would take it even from
    // an empty one (the account goes negative, the platform answering for it): when the
    // balance (available and pending) cannot cover it, the platform refunds alone and the
    // vendor owes its share, recorded here rather than left negative at Stripe.
    if let Some(vendor) = vendor {
        let share = connect::vendor_share(refund.amount_minor, payment.amount_minor, payment.application_fee_minor);
        match provider.available_balance(&vendor.provider_account_id, &payment.currency).await {
            Ok(balance) if balance < share => {
                tracing::warn!(refund = %refund.id, balance, share, "the vendor's balance cannot cover its share");
                let until = clock.now() + LEASE;
                if !store::refunds::stop_reversing(&mut *pool.acquire().await?, refund.id, mine, until).await? {
                    return store::refunds::of_id(&mut *pool.acquire().await?, refund.id).await;
                }
                (mine, refund.reverse_transfer) = (until, false);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(refund = %refund.id, error = %e, "the vendor's balance is unknown; reversing"),
        }
    }
    // From here on the provider may hold a refund under this key.
    let until = clock.now() + LEASE;
    if !store::refunds::mark_asked(&mut *pool.acquire().await?, refund.id, mine, until).await? {
        return store::refunds::of_id(&mut *pool.acquire().await?, refund.id).await;
    }
    mine = until;
    let mut spec = refund_spec(&refund, &payment, intent_id);
    let mut answer = provider.refund(&spec).await;
    if let Err(ProviderError::TransferNotReversible(why)) = &answer {
        // A definite refusal (Stripe keeps it under the key: no refund was made), so a
        // new key is safe: the buyer is refunded from the platform's balance, and the
        // vendor owes its share once the refund succeeds (`settle`). Recorded first, so
        // every later send of this refund goes the same way under the same key.
        tracing::warn!(refund = %refund.id, %why, "transfer not reversible: refunding from the platform's balance");
        let until = clock.now() + LEASE;
        if !store::refunds::stop_reversing(&mut *pool.acquire().await?, refund.id, mine, until).await? {
            return store::refunds::of_id(&mut *pool.acquire().await?, refund.id).await;
        }
        mine = until;
        spec = refund_spec(&RefundRow { reverse_transfer: false, ..refund.clone() }, &payment, spec.intent_id);
        answer = provider.refund(&spec).await;
    }
    let mut tx = pool.begin().await?;
    // Payment, then refund: the order every writer takes them in.
    let Some(payment) = store::payments::lock(&mut tx, refund.payment_id).await? else { return Ok(None) };
    let Some(mut current) = store::refunds::lock(&mut tx, refund.id).await? else { return Ok(None) };
    let now = clock.now();
    // Another sender (this one's lease ran out) or a webhook recorded the refund first:
    // that record stands. A different refund from the provider needs an organiser.
    let same = matches!((&answer, current.provider_refund_id.as_deref()), (Ok(r), Some(recorded)) if r.id == recorded);
    let recorded_first = current.provider_refund_id.is_some() && !same;
    if recorded_first || current.status != RefundStatus::Pending {
        match (&answer, current.provider_refund_id.as_deref()) {
            (Ok(r), Some(recorded)) if r.id != recorded => tracing::error!(refund = %refund.id, recorded, late = %r.id,
                "a late sender got a second refund from the provider: needs an organiser (see reconciliation)"),
            (Ok(_), _) => {}
            (Err(e), _) => tracing::warn!(refund = %refund.id, error = %e, "a late sender's answer ignored"),
        }
        tx.commit().await?;
        return Ok(Some(current));
    }
    match answer {
        Ok(r) => {
            // What the provider did decides whether the vendor owes its share.
            if payment.vendor_account_id.is_some() && current.reverse_transfer != r.transfer_reversed {
                store::refunds::set_reversed(&mut tx, current.id, r.transfer_reversed).await?;
                current.reverse_transfer = r.transfer_reversed;
            }
            settle::refund_outcome(&mut tx, &payment, &current, Some(&r.id), r.status, now).await?;
        }
        Err(ProviderError::Refused(why)) => {
            tracing::warn!(refund = %refund.id, %why, "the provider refused a refund");
            settle::refund_outcome(&mut tx, &payment, &current, None, ProviderRefundStatus::Failed, now).await?;
        }
        Err(ProviderError::Unavailable(why) | ProviderError::TransferNotReversible(why)) => {
            tracing::warn!(refund = %refund.id, %why, "refund not sent yet; the sweep retries under the same key");
            store::refunds::release(&mut tx, refund.id, mine).await?;
            tx.commit().await?;
            return Ok(Some(current));
        }
    }
    let updated = store::refunds::of_id(&mut tx, refund.id).await?;
    tx.commit().await?;
    Ok(updated)
}

/// What to ask the provider for a refund. A vendor's sale reverses the vendor's transfer
/// and gives the platform's fee back in proportion (unless the vendor's balance could
/// not cover the reversal: then neither, and the provider key changes with the
/// parameters); no fee is asked back when there was none (Stripe refuses
/// to refund a fee that does not exist).
fn refund_spec(refund: &RefundRow, payment: &PaymentRow, intent_id: String) -> RefundSpec {
    let destination = payment.vendor_account_id.is_some();
    let reverse_transfer = destination && refund.reverse_transfer;
    RefundSpec {
        refund_id: refund.id,
        intent_id,
        amount_minor: refund.amount_minor,
        idempotency_key: if destination && !reverse_transfer {
            format!("refund-{}-unreversed", refund.id)
        } else {
            format!("refund-{}", refund.id)
        },
        reverse_transfer,
        // Only with the reversal: without it the vendor keeps what was transferred and
        // owes its share, and giving the fee back too would pay the vendor twice.
        refund_application_fee: reverse_transfer && payment.application_fee_minor > 0,
    }
}

/// Books a refund of at most `amount` (what is left, if less) of a locked, completed
/// payment, for the sweep to send: what an owner's event asks (a refused or cancelled
/// order, an approved refund request). `None` when nothing is left to refund.
pub async fn book(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    amount: i64,
    reason: &str,
    requested_by: &str,
    now: DateTime<Utc>,
) -> Result<Option<RefundRow>, sqlx::Error> {
    let left = payment.amount_minor - payment.refunded_minor;
    let amount = amount.min(left);
    if payment.status != PaymentStatus::Completed || payment.provider_intent_id.is_none() || amount <= 0 {
        return Ok(None);
    }
    let refund = RefundRow {
        id: Uuid::now_v7(),
        payment_id: payment.id,
        amount_minor: amount,
        status: RefundStatus::Pending,
        reason: reason.chars().take(500).collect(),
        requested_by: requested_by.to_owned(),
        provider_refund_id: None,
        created_at: now,
        reverse_transfer: true,
        asked_at: None,
    };
    store::refunds::insert(conn, &refund).await?;
    store::payments::add_refunded(conn, payment.id, amount, now).await?;
    Ok(Some(refund))
}
