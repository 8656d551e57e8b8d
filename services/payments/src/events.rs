//! Events: payments publishes `festival.payments.payment.*` (see `settle`), and follows
//! ticketing's decisions that send money back: a completed payment it refused
//! (`order.payment_refused`), a cancelled card order, an approved refund request. Each
//! books a refund in the event's transaction (the inbox makes it once); the sweep sends
//! it to the provider.

use chrono::Utc;
use festival_platform::events::consumer::{self, Meta, Subscription};
use festival_proto::ticketing::v1 as ticketing;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::status::Purpose;
use crate::{refunding, store};

/// The events payments follows.
pub fn consumers() -> Vec<Subscription> {
    vec![
        consumer::follow("payments-order-payment-refused", payment_refused).until_applied(),
        consumer::follow("payments-order-cancelled", order_cancelled).until_applied(),
        consumer::follow("payments-refund-approved", refund_approved).until_applied(),
    ]
}

/// Ticketing could not honour a completed payment: all of it goes back.
async fn payment_refused(
    conn: &mut PgConnection,
    e: ticketing::OrderPaymentRefused,
    meta: &Meta,
) -> anyhow::Result<()> {
    let Ok(payment_id) = Uuid::parse_str(&e.payment_id) else {
        return Err(consumer::permanent(format!("order.payment_refused {} with a malformed payment id", meta.id)));
    };
    let Some(payment) = store::payments::lock(conn, payment_id).await? else {
        tracing::warn!(event = %meta.id, payment = %payment_id, "a refused payment we do not know; nothing to refund");
        return Ok(());
    };
    let reason = format!("Refused by ticketing: {}", e.reason);
    match refunding::book(conn, &payment, payment.amount_minor, &reason, "ticketing", Utc::now()).await? {
        Some(refund) => {
            tracing::info!(event = %meta.id, payment = %payment_id, amount = refund.amount_minor, "refund booked for a refused payment");
        }
        None => {
            tracing::error!(event = %meta.id, payment = %payment_id, status = %payment.status,
                refunded = payment.refunded_minor, "a refused payment has nothing left to refund here: needs an organiser");
        }
    }
    Ok(())
}

/// An organiser cancelled a paid order: what it paid and was not refunded goes back.
async fn order_cancelled(conn: &mut PgConnection, e: ticketing::OrderCancelled, _meta: &Meta) -> anyhow::Result<()> {
    if e.refundable_minor > 0 {
        refund_order(conn, &e.order_id, e.refundable_minor, "The order was cancelled").await?;
    }
    Ok(())
}

/// Organisers approved a refund request: each card order's part goes back.
async fn refund_approved(conn: &mut PgConnection, e: ticketing::RefundApproved, _meta: &Meta) -> anyhow::Result<()> {
    for order in e.orders.iter().filter(|o| o.payment_method == "CARD" && o.amount_minor > 0) {
        refund_order(conn, &order.order_id, order.amount_minor, "Refund request approved").await?;
    }
    Ok(())
}

/// Books a refund of `amount` of the completed payment of a ticket order (none: the
/// order was paid otherwise, e.g. cash, and the box office pays it back).
async fn refund_order(conn: &mut PgConnection, order_id: &str, amount: i64, reason: &str) -> anyhow::Result<()> {
    let Some(found) = store::payments::completed_for(conn, Purpose::TicketOrder, order_id).await? else {
        return Ok(());
    };
    let Some(payment) = store::payments::lock(conn, found.id).await? else { return Ok(()) };
    refunding::book(conn, &payment, amount, reason, "ticketing", Utc::now()).await?;
    Ok(())
}
