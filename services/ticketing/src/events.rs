//! Events: ticketing publishes `festival.ticketing.*` (`OrderPaid`, `OrderCancelled`,
//! `TicketAdmitted`, `TicketExited`, `OrderPaymentRefused`, …) through [`publish`], in the
//! transaction of the change; it keeps a projection of program's festival facts (status,
//! currency, time zone, dates) and the devices identity revoked, and settles card orders
//! on payments' `payment.completed` and `payment.failed`.

use std::sync::Arc;

use festival_platform::clock::Clock;
use festival_platform::events::consumer::{self, EventHandler, Meta, Subscription};
use festival_platform::festival_facts::{self, Facts};
use festival_proto::identity::v1 as identity;
use festival_proto::payments::v1 as pay;
use festival_proto::program::v1 as program;
use futures::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;

pub use festival_platform::events::outbox::publish;

use crate::domain::status::FestivalStatus;
use crate::signing::FestivalKeys;
use crate::store;
use crate::{cancellation, card_orders};

/// The events ticketing follows.
pub fn consumers(keys: Arc<FestivalKeys>, clock: Clock) -> Vec<Subscription> {
    vec![
        consumer::follow("ticketing-payment-completed", PaymentCompleted { keys, clock }).until_applied(),
        consumer::follow("ticketing-payment-failed", payment_failed).until_applied(),
        consumer::follow("ticketing-payment-refunded", payment_refunded).until_applied(),
        // A cancellation opens the refund of every order: never dead-lettered.
        consumer::follow("ticketing-festival-created", festival_created).until_applied(),
        consumer::follow("ticketing-festival-updated", festival_updated).until_applied(),
        consumer::follow("ticketing-festival-status-changed", festival_status_changed).until_applied(),
        consumer::follow("ticketing-festival-deleted", festival_deleted).until_applied(),
        consumer::follow("ticketing-device-revoked", device_revoked),
    ]
}

/// Payments captured a card order's money: deliver its tickets, or refuse (and so
/// refund) what cannot be honoured. Holds the festival keys the tickets are signed with.
struct PaymentCompleted {
    keys: Arc<FestivalKeys>,
    clock: Clock,
}

impl<'a> EventHandler<'a, pay::PaymentCompleted> for PaymentCompleted {
    type Future = BoxFuture<'a, anyhow::Result<()>>;

    fn call(&self, conn: &'a mut PgConnection, e: pay::PaymentCompleted, meta: &'a Meta) -> Self::Future {
        let (keys, clock) = (self.keys.clone(), self.clock.clone());
        Box::pin(async move {
            if e.purpose != pay::PaymentPurpose::TicketOrder as i32 {
                return Ok(());
            }
            // The signing key before any lock (the first sale of a festival makes it).
            let festival = match Uuid::parse_str(&e.festival_id) {
                Ok(id) => store::festivals::find(conn, id).await?.map(|_| id),
                Err(_) => None,
            };
            let issuer = match festival {
                Some(id) => Some(keys.issuer(id).await?),
                None => None,
            };
            let settled = card_orders::payment_completed(conn, issuer.as_ref(), clock.now(), &e).await?;
            tracing::info!(event = %meta.id, payment = %e.payment_id, order = %e.reference, ?settled, "card payment settled");
            Ok(())
        })
    }
}

/// A card order's payment failed or its checkout expired: the order fails, its hold
/// gives the tickets back.
async fn payment_failed(conn: &mut PgConnection, e: pay::PaymentFailed, _meta: &Meta) -> anyhow::Result<()> {
    if e.purpose == pay::PaymentPurpose::TicketOrder as i32 {
        card_orders::payment_failed(conn, &e).await?;
    }
    Ok(())
}

/// A card order's payment was refunded: in full from outside ticketing, its tickets go.
async fn payment_refunded(conn: &mut PgConnection, e: pay::PaymentRefunded, _meta: &Meta) -> anyhow::Result<()> {
    if e.purpose == pay::PaymentPurpose::TicketOrder as i32 {
        card_orders::payment_refunded(conn, &e, chrono::Utc::now()).await?;
        if let (Ok(order_id), Ok(payment_id)) = (Uuid::parse_str(&e.reference), Uuid::parse_str(&e.payment_id)) {
            cancellation::confirm_refund(conn, order_id, payment_id, e.refunded_minor, chrono::Utc::now()).await?;
            cancellation::void_credit(conn, order_id, chrono::Utc::now()).await?;
        }
    }
    Ok(())
}

/// Identity revoked a device: its tokens (valid up to 10 more minutes) are refused from
/// now on.
async fn device_revoked(tx: &mut PgConnection, e: identity::DeviceRevoked, meta: &Meta) -> anyhow::Result<()> {
    let (Ok(device_id), Ok(festival_id)) = (Uuid::parse_str(&e.device_id), Uuid::parse_str(&e.festival_id)) else {
        return Err(consumer::permanent(format!("device.revoked {} with malformed ids", meta.id)));
    };
    store::gates::revoke_device(tx, device_id, festival_id, chrono::Utc::now()).await?;
    Ok(())
}

async fn festival_created(tx: &mut PgConnection, e: program::FestivalCreated, meta: &Meta) -> anyhow::Result<()> {
    apply_facts(tx, &e.festival_id, e.facts, meta).await
}

async fn festival_updated(tx: &mut PgConnection, e: program::FestivalUpdated, meta: &Meta) -> anyhow::Result<()> {
    apply_facts(tx, &e.festival_id, e.facts, meta).await
}

async fn festival_status_changed(
    tx: &mut PgConnection,
    e: program::FestivalStatusChanged,
    meta: &Meta,
) -> anyhow::Result<()> {
    apply_facts(tx, &e.festival_id, e.facts, meta).await
}

async fn festival_deleted(tx: &mut PgConnection, e: program::FestivalDeleted, meta: &Meta) -> anyhow::Result<()> {
    let Ok(id) = Uuid::parse_str(&e.festival_id) else {
        return Err(consumer::permanent(format!("festival.deleted {} with a malformed id", meta.id)));
    };
    festival_facts::mark_deleted(tx, id).await?;
    // Program deletes only drafts and cancelled festivals; this event may be handled
    // before the cancellation's, which then changes nothing: the run opens here.
    cancellation::open(tx, id, chrono::Utc::now()).await?;
    Ok(())
}

/// Keeps the newest facts of a festival (by their version), whatever the order events
/// arrive in.
async fn apply_facts(
    tx: &mut PgConnection,
    festival_id: &str,
    facts: Option<program::FestivalFacts>,
    meta: &Meta,
) -> anyhow::Result<()> {
    let Some(facts) = Facts::from_event(festival_id, facts, meta)? else { return Ok(()) };
    let applied = festival_facts::apply(tx, &facts).await?;
    // Cancelled is final in program: the festival's orders are refunded from now on.
    if applied && FestivalStatus::parse(&facts.status) == Some(FestivalStatus::Cancelled) {
        cancellation::open(tx, facts.id, chrono::Utc::now()).await?;
    }
    Ok(())
}
