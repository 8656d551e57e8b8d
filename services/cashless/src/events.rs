//! Events: cashless publishes `festival.cashless.*` (`TransactionRecorded`, `WalletLow`)
//! through [`publish`] in the transaction of the change; it keeps a projection of
//! program's festival facts (with a row of default rules per festival), the devices
//! identity revoked, opens a wallet for whoever buys a ticket, and applies top-ups paid
//! online (payments' `payment.completed`, `payment.refunded`, `payment.disputed`).

use festival_platform::events::consumer::{self, Meta, Subscription};
use festival_platform::festival_facts::{self, Facts};
use festival_proto::identity::v1 as identity;
use festival_proto::payments::v1 as pay;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as ticketing;
use sqlx::PgConnection;
use uuid::Uuid;

pub use festival_platform::events::outbox::publish;

use crate::{online, store};

pub fn consumers() -> Vec<Subscription> {
    vec![
        consumer::follow("cashless-festival-created", festival_created).until_applied(),
        consumer::follow("cashless-festival-updated", festival_updated).until_applied(),
        consumer::follow("cashless-festival-status-changed", festival_status_changed).until_applied(),
        consumer::follow("cashless-festival-deleted", festival_deleted).until_applied(),
        consumer::follow("cashless-device-revoked", device_revoked),
        consumer::follow("cashless-order-paid", order_paid),
        // Money: retried until applied, never dead-lettered.
        consumer::follow("cashless-payment-completed", payment_completed).until_applied(),
        consumer::follow("cashless-payment-refunded", payment_refunded).until_applied(),
        consumer::follow("cashless-payment-disputed", payment_disputed).until_applied(),
    ]
}

/// A top-up paid online: its wallet is credited once.
async fn payment_completed(tx: &mut PgConnection, e: pay::PaymentCompleted, meta: &Meta) -> anyhow::Result<()> {
    if e.purpose == pay::PaymentPurpose::WalletTopUp as i32 {
        let done = online::completed(tx, &e, chrono::Utc::now()).await?;
        tracing::info!(event = %meta.id, payment = %e.payment_id, ?done, "online top-up");
    }
    Ok(())
}

/// A refund of an online top-up: what the wallet holds of it goes back, its bands stop.
async fn payment_refunded(tx: &mut PgConnection, e: pay::PaymentRefunded, _meta: &Meta) -> anyhow::Result<()> {
    if e.purpose == pay::PaymentPurpose::WalletTopUp as i32 {
        let reversal = format!("{}{}", online::REFUND, e.refund_id);
        online::reversed(tx, &e.payment_id, &e.festival_id, &reversal, e.amount_minor, chrono::Utc::now()).await?;
    }
    Ok(())
}

/// A dispute (chargeback) of an online top-up: the whole payment is taken back.
async fn payment_disputed(tx: &mut PgConnection, e: pay::PaymentDisputed, _meta: &Meta) -> anyhow::Result<()> {
    if e.purpose == pay::PaymentPurpose::WalletTopUp as i32 {
        let reversal = format!("dispute:{}", e.dispute_id);
        online::reversed(tx, &e.payment_id, &e.festival_id, &reversal, e.amount_minor, chrono::Utc::now()).await?;
    }
    Ok(())
}

async fn apply(tx: &mut PgConnection, facts: Option<Facts>) -> anyhow::Result<()> {
    if let Some(f) = facts {
        festival_facts::apply(tx, &f).await?;
        store::settings::ensure(tx, f.id).await?;
        store::festivals::mark_over(tx, f.id, chrono::Utc::now()).await?;
    }
    Ok(())
}

async fn festival_created(tx: &mut PgConnection, e: program::FestivalCreated, meta: &Meta) -> anyhow::Result<()> {
    apply(tx, Facts::from_event(&e.festival_id, e.facts, meta)?).await
}

async fn festival_updated(tx: &mut PgConnection, e: program::FestivalUpdated, meta: &Meta) -> anyhow::Result<()> {
    apply(tx, Facts::from_event(&e.festival_id, e.facts, meta)?).await
}

async fn festival_status_changed(
    tx: &mut PgConnection,
    e: program::FestivalStatusChanged,
    meta: &Meta,
) -> anyhow::Result<()> {
    apply(tx, Facts::from_event(&e.festival_id, e.facts, meta)?).await
}

async fn festival_deleted(tx: &mut PgConnection, e: program::FestivalDeleted, meta: &Meta) -> anyhow::Result<()> {
    let Ok(id) = Uuid::parse_str(&e.festival_id) else {
        return Err(consumer::permanent(format!("festival.deleted {} with a malformed id", meta.id)));
    };
    festival_facts::mark_deleted(tx, id).await?;
    Ok(())
}

/// Identity revoked a device: a terminal's charges are refused from now on.
async fn device_revoked(tx: &mut PgConnection, e: identity::DeviceRevoked, meta: &Meta) -> anyhow::Result<()> {
    let (Ok(device_id), Ok(festival_id)) = (Uuid::parse_str(&e.device_id), Uuid::parse_str(&e.festival_id)) else {
        return Err(consumer::permanent(format!("device.revoked {} with malformed ids", meta.id)));
    };
    store::terminals::revoke(tx, device_id, festival_id, chrono::Utc::now()).await?;
    Ok(())
}

/// A buyer gets a wallet with their ticket, so money can be loaded before the festival.
async fn order_paid(tx: &mut PgConnection, e: ticketing::OrderPaid, meta: &Meta) -> anyhow::Result<()> {
    let (Ok(festival_id), Ok(buyer)) = (Uuid::parse_str(&e.festival_id), Uuid::parse_str(&e.buyer_user_id)) else {
        // An anonymous box-office sale: its wallet comes with a wristband at a cashier.
        return Ok(());
    };
    let Some(festival) = store::festivals::find(tx, festival_id).await? else {
        tracing::warn!(event = %meta.id, %festival_id, "order of a festival cashless has not heard of; no wallet");
        return Ok(());
    };
    if store::wallets::of_holder(tx, festival_id, buyer).await?.is_none() {
        store::wallets::open(tx, festival_id, Some(buyer), &festival.currency, chrono::Utc::now()).await?;
    }
    Ok(())
}
