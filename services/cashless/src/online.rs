//! Top-ups paid online, as payments reports them: `payment.completed` for a
//! WALLET_TOP_UP credits the wallet it names once, however often or late the event comes;
//! `payment.refunded` and `payment.disputed` take back what the wallet still holds (the
//! rest is booked as a chargeback loss) and block the wallet's bands. A reversal heard
//! before the completion leaves a REVERSED record, so the late completion credits
//! nothing. The checkout is started by `StartTopUp` (`api::checkout`). A refund that is
//! one of the close-out's own refunds to the card (`api::card_refunds`) only confirms it:
//! the wallet paid it when it was booked. A refund heard while one of the close-out's is
//! still waiting for payments' answer (its id unknown) is parked; the run decides whose
//! it is.

use chrono::{DateTime, SubsecRound, Utc};
use festival_platform::events::outbox::Queued;
use festival_proto::payments::v1 as pay;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::api::recorded_event;
use crate::domain::ledger::{AccountKind, Posting};
use crate::store::card_refunds::CardRefundStatus;
use crate::store::{self, ledger::Meta, online::Heard, online::TopUpStatus, wallets::WalletStatus};

/// How a refund's id is written among reversals (a dispute's starts with `dispute:`).
pub const REFUND: &str = "refund:";

/// What a completion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    Credited,
    /// Heard of before: a duplicate, or reversed first.
    AlreadyKnown,
    /// No such wallet of this festival, another holder, another currency or a closed
    /// wallet: recorded as REFUSED for the organisers (payments' refund of it is to come).
    Refused,
}

pub async fn completed(
    conn: &mut PgConnection,
    e: &pay::PaymentCompleted,
    now: DateTime<Utc>,
) -> anyhow::Result<Completed> {
    let now = now.trunc_subsecs(6);
    let (Ok(payment), Ok(festival)) = (Uuid::parse_str(&e.payment_id), Uuid::parse_str(&e.festival_id)) else {
        return Ok(Completed::Refused);
    };
    let wallet = match Uuid::parse_str(&e.reference) {
        Ok(id) => store::wallets::lock(conn, id).await?,
        Err(_) => None,
    };
    let payer = Uuid::parse_str(&e.payer_user_id).ok();
    let fits = wallet.as_ref().filter(|w| {
        w.festival_id == festival
            && w.currency == e.currency
            && w.status == WalletStatus::Active
            && w.user_id.is_some()
            && w.user_id == payer
            && e.amount_minor > 0
    });
    let Some(wallet) = fits else {
        let heard = Heard {
            payment,
            festival,
            wallet: None,
            status: TopUpStatus::Refused,
            amount: e.amount_minor,
            reversed: 0,
            at: now,
        };
        store::online::claim(conn, &heard).await?;
        tracing::warn!(%payment, reference = %e.reference, "online top-up for no wallet of its payer; refused");
        return Ok(Completed::Refused);
    };
    let heard = Heard {
        payment,
        festival,
        wallet: Some(wallet.id),
        status: TopUpStatus::Credited,
        amount: e.amount_minor,
        reversed: 0,
        at: now,
    };
    if !store::online::claim(conn, &heard).await? {
        return Ok(Completed::AlreadyKnown);
    }
    let clearing = store::accounts::ensure(conn, festival, AccountKind::OnlineClearing, None, &wallet.currency).await?;
    let posting = Posting::top_up(wallet.id, clearing, e.amount_minor);
    let after = store::wallets::apply_change(conn, wallet.id, posting.wallet_change).await?;
    store::wallets::add_online(conn, wallet.id, e.amount_minor).await?;
    book(conn, &posting, festival, &wallet.currency, payer.unwrap_or(wallet.id), &e.payment_id, after, now).await?;
    Ok(Completed::Credited)
}

/// A refund (`reversal` = the refund's id, `amount` this refund) or a dispute
/// (`reversal` = the dispute's id, `amount` the whole payment) of an online top-up.
pub async fn reversed(
    conn: &mut PgConnection,
    payment_id: &str,
    festival_id: &str,
    reversal: &str,
    amount: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let now = now.trunc_subsecs(6);
    let (Ok(payment), Ok(festival)) = (Uuid::parse_str(payment_id), Uuid::parse_str(festival_id)) else {
        return Ok(());
    };
    if amount <= 0 {
        return Ok(());
    }
    // Not while the festival's close-out run books, sends or settles refunds to cards.
    store::card_refunds::serialise(conn, festival).await?;
    if !store::online::claim_reversal(conn, reversal, payment, amount, now).await? {
        return Ok(());
    }
    if reversal.starts_with(REFUND) {
        // One of the close-out's refunds to the card: the wallet paid it when it was booked.
        if let Some(ours) = store::card_refunds::by_refund_id(conn, payment, reversal).await? {
            confirm_card_refund(conn, &ours, reversal, now).await?;
            return Ok(());
        }
        // Perhaps one whose id the close-out run has not learned yet: the run decides.
        if store::card_refunds::unanswered(conn, payment).await? {
            store::card_refunds::park(conn, reversal, payment, festival, amount, now).await?;
            tracing::info!(%payment, reversal, "refund parked until the close-out run knows its refunds");
            return Ok(());
        }
    }
    apply_reversal(conn, payment, festival, reversal, amount, now).await
}

/// Payments refunded one of the close-out's refunds to the card: confirmed, and no longer
/// refundable from its top-up. The wallet paid it when it was booked.
pub async fn confirm_card_refund(
    conn: &mut PgConnection,
    refund: &store::card_refunds::CardRefundRow,
    reversal: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    store::card_refunds::set_status(conn, refund.id, CardRefundStatus::Confirmed, Some(reversal), "", now).await?;
    store::online::reversed(conn, refund.payment_id, refund.amount_minor, 0, now).await?;
    tracing::info!(payment = %refund.payment_id, amount = refund.amount_minor, "close-out refund to the card confirmed");
    Ok(())
}

/// A refund or dispute that is not the close-out's: what the wallet still holds of the
/// top-up goes back (the rest is a chargeback loss) and its bands stop. Refunds to the
/// card under way count as gone already, so the same money is not taken twice.
pub async fn apply_reversal(
    conn: &mut PgConnection,
    payment: Uuid,
    festival: Uuid,
    reversal: &str,
    amount: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    // Reversed before its completion was heard: the completion will credit nothing.
    let heard =
        Heard { payment, festival, wallet: None, status: TopUpStatus::Reversed, amount: 0, reversed: amount, at: now };
    if store::online::claim(conn, &heard).await? {
        return Ok(());
    }
    let Some(top_up) = store::online::lock(conn, payment).await? else { return Ok(()) };
    let (Some(wallet_id), TopUpStatus::Credited) = (top_up.wallet_id, top_up.status) else { return Ok(()) };
    let Some(wallet) = store::wallets::lock(conn, wallet_id).await? else { return Ok(()) };
    // What is on its way back to the card is gone already; should it be booked back,
    // the part left out here is taken then (`capped_minor`).
    let in_flight = store::card_refunds::in_flight(conn, payment).await?;
    let open = (top_up.amount_minor - top_up.reversed_minor).max(0);
    let capped = amount.min(open) - amount.min(open - in_flight).max(0);
    if capped > 0 {
        store::online::add_capped(conn, payment, capped).await?;
    }
    let amount = amount.min(open - in_flight);
    if amount <= 0 {
        return Ok(());
    }
    take_back(conn, payment, festival, &wallet, reversal, amount, now).await
}

/// A refund to the card that was under way was booked back: what reversals left out
/// because of it is taken now, from the (locked) wallet it went back into.
pub async fn take_capped(
    conn: &mut PgConnection,
    payment: Uuid,
    festival: Uuid,
    wallet: &store::wallets::WalletRow,
    upto: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some(top_up) = store::online::lock(conn, payment).await? else { return Ok(()) };
    let amount = upto.min(top_up.capped_minor);
    if amount <= 0 {
        return Ok(());
    }
    store::online::add_capped(conn, payment, -amount).await?;
    take_back(conn, payment, festival, wallet, &format!("capped:{payment}:{}", now.timestamp_micros()), amount, now)
        .await
}

/// Takes `amount` of a top-up back from its (locked) wallet: what it holds, the rest a
/// chargeback loss; its bands stop.
async fn take_back(
    conn: &mut PgConnection,
    payment: Uuid,
    festival: Uuid,
    wallet: &store::wallets::WalletRow,
    reversal: &str,
    amount: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let taken = amount.min(wallet.balance_minor);
    let clearing = store::accounts::ensure(conn, festival, AccountKind::OnlineClearing, None, &wallet.currency).await?;
    let chargebacks = store::accounts::ensure(conn, festival, AccountKind::Chargebacks, None, &wallet.currency).await?;
    let posting = Posting::reversal(wallet.id, clearing, chargebacks, amount, taken);
    let after = store::wallets::apply_change(conn, wallet.id, posting.wallet_change).await?;
    // Taken back from the card: no longer owed to it.
    store::wallets::add_online(conn, wallet.id, -amount).await?;
    book(conn, &posting, festival, &wallet.currency, wallet.id, reversal, after, now).await?;
    store::online::reversed(conn, payment, amount, amount - taken, now).await?;
    let blocked = store::online::block_bands(conn, wallet.id, "online top-up refunded or disputed", now).await?;
    tracing::info!(%payment, taken, uncollected = amount - taken, blocked, "online top-up reversed");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn book(
    conn: &mut PgConnection,
    posting: &Posting,
    festival: Uuid,
    currency: &str,
    actor: Uuid,
    reason: &str,
    after: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let meta = Meta {
        id: Uuid::now_v7(),
        festival_id: festival,
        currency,
        counterpart_id: None,
        actor_id: actor,
        reason,
        at: now,
    };
    let event = Queued::new(&recorded_event(posting, &meta));
    store::ledger::post(conn, posting, &meta, after, None, &event).await?;
    Ok(())
}
