//! Card orders settle when payments says so: `payment.completed` delivers the tickets,
//! `payment.failed` gives the hold back. A completed payment ticketing cannot honour (the
//! places went while the buyer paid after the hold expired, the order was cancelled or
//! paid already, the amount, currency or payer is not the order's) is refused with
//! `order.payment_refused`, and payments refunds it in full: never "paid without a
//! ticket", never "a ticket without a payment".

use chrono::{DateTime, Utc};
use festival_platform::credential::Issuer;
use festival_proto::payments::v1 as pay;
use festival_proto::ticketing::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use festival_platform::codes;

use crate::domain::sale::in_window;
use crate::domain::status::{HoldStatus, OrderStatus, TicketStatus, festival_on_sale};
use crate::store::{self, holds::HoldRow, holds::ItemRow, orders::OrderRow};
use crate::{events, fulfil, lifecycle, stock};

/// What became of a completed payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Tickets issued.
    Delivered,
    /// Seen before: nothing to do.
    AlreadyDelivered,
    /// Refused, and payments told to refund it.
    Refused(&'static str),
}

/// Applies `payment.completed` for a ticket order, in the consumer's transaction.
/// `issuer` is the event's festival's (fetched before, outside any lock; `None` for a
/// festival ticketing does not know).
pub async fn payment_completed(
    conn: &mut PgConnection,
    issuer: Option<&Issuer>,
    now: DateTime<Utc>,
    e: &pay::PaymentCompleted,
) -> anyhow::Result<Settled> {
    let payment_id = Uuid::parse_str(&e.payment_id).ok();
    let order = match Uuid::parse_str(&e.reference) {
        Ok(id) => store::orders::lock(conn, id).await?,
        Err(_) => None,
    };
    let Some(order) = order else {
        return refuse(conn, now, e, None, "the payment names no order of ours").await;
    };
    if order.payment_id.is_none() || order.payment_id != payment_id || order.festival_id.to_string() != e.festival_id {
        // Not this order's payment: refunded, and the order keeps waiting for its own.
        return refuse(conn, now, e, None, "the order waits for another payment").await;
    }
    match order.status {
        OrderStatus::AwaitingPayment => {}
        OrderStatus::Paid => return Ok(Settled::AlreadyDelivered),
        OrderStatus::Cancelled => return refuse(conn, now, e, Some(&order), "the order was cancelled").await,
        OrderStatus::PaymentFailed => {
            return refuse(conn, now, e, Some(&order), "the order's payment had failed").await;
        }
    }
    let paid_as_owed = e.amount_minor == order.total_minor
        && e.currency.eq_ignore_ascii_case(&order.currency)
        && order.buyer_user_id.is_some_and(|b| b.to_string() == e.payer_user_id);
    let Some(hold_id) = order.hold_id else {
        return refuse(conn, now, e, Some(&order), "the order has no reservation").await;
    };
    let Some(hold) = store::holds::lock(conn, hold_id).await? else {
        return refuse(conn, now, e, Some(&order), "the order has no reservation").await;
    };
    let on_sale = issuer.is_some()
        && store::festivals::find(conn, order.festival_id).await?.is_some_and(|f| festival_on_sale(f.status));
    if !paid_as_owed || !on_sale {
        if hold.status == HoldStatus::Active {
            lifecycle::end_hold(conn, &hold, HoldStatus::Released).await?;
        }
        let why = if paid_as_owed { "the festival no longer sells" } else { "the payment is not what the order owes" };
        return refuse(conn, now, e, Some(&order), why).await;
    }
    let items = store::holds::items(conn, hold.id).await?;
    let late = hold.status != HoldStatus::Active;
    if late {
        // The hold ended and its places went back: honoured while they are still there
        // and the sale's rules still allow it (its window, the account's limit). A
        // voucher's or a promo code's terms ended with the hold, so those are refunded.
        if hold.voucher_id.is_some() || hold.discount_minor > 0 {
            return refuse(conn, now, e, Some(&order), "the reservation ended, and its voucher or promo code with it")
                .await;
        }
        if let Some(why) = late_sale_refused(conn, &hold, &items, now).await? {
            return refuse(conn, now, e, Some(&order), why).await;
        }
    }
    let Some(issuer) = issuer else { return refuse(conn, now, e, Some(&order), "the festival is unknown").await };
    let taken: Vec<(&[Uuid], i64)> = items.iter().map(|i| (i.quota_ids.as_slice(), i64::from(i.quantity))).collect();
    // Delivery, then the stock, last: under a savepoint, so a delivery the rules refuse
    // now (an add-on's ticket changed hands meanwhile) or a place gone is undone whole
    // and refunded instead of retried forever.
    let mut savepoint = sqlx::Connection::begin(&mut *conn).await?;
    let paid = store::orders::settle(&mut savepoint, order.id, OrderStatus::Paid).await?;
    let refusal = match fulfil::deliver_hold(&mut savepoint, issuer, now, &hold, &paid, &items).await {
        Ok(_) => {
            let moved = if late {
                stock::take_again(&mut savepoint, &taken, (0, 1)).await?
            } else {
                // Still held (even past its time, before the sweep): held → sold.
                stock::shift(&mut savepoint, &taken, (-1, 1)).await.map(Ok)?
            };
            match moved {
                Ok(()) => None,
                Err(stock::Shortage) => Some("sold out after the reservation ended"),
            }
        }
        Err(error) if DELIVERY_REFUSALS.contains(&error.code.code) => {
            tracing::warn!(order = %order.id, %error, "a paid order cannot be delivered; refunding");
            Some("the tickets could not be delivered")
        }
        // Anything else (a deadlock, the database): retried.
        Err(error) => return Err(anyhow::anyhow!("delivering order {}: {error}", order.id)),
    };
    match refusal {
        None => {
            savepoint.commit().await?;
            Ok(Settled::Delivered)
        }
        Some(why) => {
            savepoint.rollback().await?;
            if hold.status == HoldStatus::Active {
                lifecycle::end_hold(conn, &hold, HoldStatus::Released).await?;
            }
            refuse(conn, now, e, Some(&order), why).await
        }
    }
}

/// What a delivery may refuse for good: the rules, not the database.
const DELIVERY_REFUSALS: [&str; 6] = [
    codes::NOT_FOUND.code,
    codes::TICKET_REVOKED.code,
    codes::ADDON_NEEDS_ADMISSION.code,
    codes::ALREADY_EXISTS.code,
    codes::RESALE_NOT_ALLOWED.code,
    codes::RESALE_UNAVAILABLE.code,
];

/// Why an ended hold's late payment may not buy its tickets now: a category past its
/// sale window, or an account that bought up to its limit meanwhile (checked under the
/// account's purchase lock). `None`: it may.
async fn late_sale_refused(
    conn: &mut PgConnection,
    hold: &HoldRow,
    items: &[ItemRow],
    now: DateTime<Utc>,
) -> anyhow::Result<Option<&'static str>> {
    let ids: Vec<Uuid> = items.iter().map(|i| i.category_id).collect();
    let categories = store::categories::find_many(conn, hold.festival_id, &ids).await?;
    for item in items {
        let Some(category) = categories.iter().find(|c| c.id == item.category_id) else {
            return Ok(Some("a category is gone"));
        };
        if !in_window(now, category.sale_start, category.sale_end) {
            return Ok(Some("the sale closed after the reservation ended"));
        }
        if !store::categories::account_may_take(conn, category, hold.user_id, item.quantity).await? {
            return Ok(Some("the account reached its limit after the reservation ended"));
        }
    }
    Ok(None)
}

/// Applies `payment.failed` for a ticket order: the order fails and its hold, if still
/// active, gives its tickets back. Anything else (an older attempt's payment, an order
/// settled meanwhile) changes nothing.
pub async fn payment_failed(conn: &mut PgConnection, e: &pay::PaymentFailed) -> anyhow::Result<bool> {
    let (Ok(order_id), Ok(payment_id)) = (Uuid::parse_str(&e.reference), Uuid::parse_str(&e.payment_id)) else {
        return Ok(false);
    };
    let Some(order) = store::orders::lock(conn, order_id).await? else { return Ok(false) };
    if order.status != OrderStatus::AwaitingPayment || order.payment_id != Some(payment_id) {
        return Ok(false);
    }
    store::orders::settle(conn, order.id, OrderStatus::PaymentFailed).await?;
    if let Some(hold) = match order.hold_id {
        Some(id) => store::holds::lock(conn, id).await?,
        None => None,
    } && hold.status == HoldStatus::Active
    {
        lifecycle::end_hold(conn, &hold, HoldStatus::Released).await?;
    }
    Ok(true)
}

/// Tells payments to refund the payment in full; an order still waiting is cancelled.
async fn refuse(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    e: &pay::PaymentCompleted,
    order: Option<&OrderRow>,
    reason: &'static str,
) -> anyhow::Result<Settled> {
    tracing::warn!(payment = %e.payment_id, reference = %e.reference, reason, "a completed payment is refused; payments refunds it");
    if let Some(order) = order.filter(|o| o.status == OrderStatus::AwaitingPayment) {
        store::orders::cancel(conn, order.id, now, reason).await?;
    }
    events::publish(
        conn,
        &pb::OrderPaymentRefused {
            payment_id: e.payment_id.clone(),
            festival_id: e.festival_id.clone(),
            order_id: order.map(|o| o.id.to_string()).unwrap_or_default(),
            amount_minor: e.amount_minor,
            reason: reason.to_owned(),
        },
    )
    .await?;
    Ok(Settled::Refused(reason))
}

/// Applies `payment.refunded` for a ticket order: a refund made outside ticketing (in
/// Stripe's dashboard) that pays back everything leaves no ticket valid. The order's
/// tickets (and their add-ons) are revoked as REFUNDED, the unused ones' places freed,
/// and the order cancelled. Refunds ticketing asked for itself (approved requests, a
/// cancelled or refused order) find their tickets revoked already; a partial refund
/// from outside names no tickets and is left to the organisers. `true` when revoked.
pub async fn payment_refunded(
    conn: &mut PgConnection,
    e: &pay::PaymentRefunded,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let (Ok(order_id), Ok(payment_id)) = (Uuid::parse_str(&e.reference), Uuid::parse_str(&e.payment_id)) else {
        return Ok(false);
    };
    let Some(order) = store::orders::lock(conn, order_id).await? else { return Ok(false) };
    if order.status != OrderStatus::Paid || order.payment_id != Some(payment_id) || e.refunded_minor < order.total_minor
    {
        if order.status == OrderStatus::Paid && order.payment_id == Some(payment_id) {
            tracing::warn!(order = %order.id, refunded = e.refunded_minor, total = order.total_minor,
                "part of a card order was refunded at the provider; its tickets stay valid until an organiser decides");
        }
        return Ok(false);
    }
    let mut revoked = store::tickets::revoke_of_order(conn, order.id, TicketStatus::Refunded).await?;
    let parents: Vec<Uuid> = revoked.iter().map(|t| t.id).collect();
    revoked.extend(store::tickets::revoke_children(conn, &parents, TicketStatus::Refunded, false).await?);
    if revoked.is_empty() {
        return Ok(false); // revoked already (an approved refund request)
    }
    store::orders::cancel(conn, order.id, now, "refunded at the payment provider").await?;
    let nobody = Uuid::nil();
    store::refunds::reject_pending_of_order(conn, order.id, nobody, "The order was refunded", now).await?;
    events::publish(
        conn,
        &pb::OrderCancelled {
            order_id: order.id.to_string(),
            festival_id: order.festival_id.to_string(),
            ticket_ids: revoked.iter().map(|t| t.id.to_string()).collect(),
            // Paid back already, at the provider.
            refundable_minor: 0,
        },
    )
    .await?;
    let freed: Vec<(&[Uuid], i64)> =
        revoked.iter().filter(|t| t.was_unused).map(|t| (t.quota_ids.as_slice(), 1)).collect();
    stock::shift(conn, &freed, (0, -1)).await?;
    tracing::warn!(order = %order.id, tickets = revoked.len(), "a card order refunded at the provider: its tickets are revoked");
    Ok(true)
}
