//! Rows and domain types → protobuf messages.

use festival_platform::convert::timestamp;
use festival_proto::cashless::v1 as pb;

use crate::domain::ledger::TxKind;
use crate::domain::limits::Limits;
use crate::store::ledger::TxRow;
use crate::store::terminals::TerminalRow;
use crate::store::wallets::{BandRow, BandStatus, WalletRow, WalletStatus};

pub fn settings(festival_id: uuid::Uuid, currency: &str, l: &Limits) -> pb::Settings {
    pb::Settings {
        festival_id: festival_id.to_string(),
        currency: currency.to_owned(),
        min_top_up_minor: l.min_top_up_minor,
        max_top_up_minor: l.max_top_up_minor,
        max_balance_minor: l.max_balance_minor,
        max_charge_minor: l.max_charge_minor,
        daily_cap_minor: l.daily_cap_minor,
        offline_limit_minor: l.offline_limit_minor,
        low_balance_minor: l.low_balance_minor,
        void_window_seconds: l.void_window_seconds,
        replacement_fee_minor: l.replacement_fee_minor,
    }
}

pub fn terminal(t: &TerminalRow) -> pb::Terminal {
    pb::Terminal {
        device_id: t.device_id.to_string(),
        festival_id: t.festival_id.to_string(),
        vendor_id: t.vendor_id.to_string(),
        label: t.label.clone(),
        registered_at: Some(timestamp(t.registered_at)),
        revoked_at: t.revoked_at.map(timestamp),
    }
}

/// A band as its wallet's readers see it, its age level on the festival's `today`.
pub fn band(b: &BandRow, today: chrono::NaiveDate) -> pb::Wristband {
    pb::Wristband {
        uid: b.uid.clone(),
        wallet_id: b.wallet_id.to_string(),
        status: match b.status {
            BandStatus::Active => pb::WristbandStatus::Active,
            BandStatus::Blocked => pb::WristbandStatus::Blocked,
        } as i32,
        bound_at: Some(timestamp(b.bound_at)),
        blocked_at: b.blocked_at.map(timestamp),
        block_reason: b.block_reason.clone(),
        bound_by: b.bound_by.to_string(),
        blocked_by: b.blocked_by.map(|u| u.to_string()).unwrap_or_default(),
        age_level: crate::domain::age::shown_level(b.birth_date, today),
    }
}

/// `spent_today` is what the wallet spent on the festival's current day.
pub fn wallet(w: &WalletRow, bands: &[BandRow], spent_today: i64, today: chrono::NaiveDate) -> pb::Wallet {
    pb::Wallet {
        id: w.id.to_string(),
        festival_id: w.festival_id.to_string(),
        user_id: w.user_id.map(|u| u.to_string()).unwrap_or_default(),
        status: match w.status {
            WalletStatus::Active => pb::WalletStatus::Active,
            WalletStatus::Closed => pb::WalletStatus::Closed,
        } as i32,
        currency: w.currency.clone(),
        balance_minor: w.balance_minor,
        credit_minor: w.credit_minor,
        spent_today_minor: spent_today,
        wristbands: bands.iter().map(|b| band(b, today)).collect(),
        created_at: Some(timestamp(w.created_at)),
    }
}

pub fn tx_kind(k: TxKind) -> pb::TransactionType {
    match k {
        TxKind::TopUp => pb::TransactionType::Topup,
        TxKind::Payment => pb::TransactionType::Payment,
        TxKind::Refund => pb::TransactionType::Refund,
        TxKind::Transfer => pb::TransactionType::Transfer,
        TxKind::Correction => pb::TransactionType::Correction,
    }
}

/// A transaction as `wallet` sees it: a transfer's receiver sees money in and its own
/// balance after.
pub fn transaction(t: &TxRow, wallet: uuid::Uuid) -> pb::Transaction {
    let received = t.kind == TxKind::Transfer && t.counterpart_id == Some(wallet) && t.wallet_id != wallet;
    let (amount, balance, counterpart, credit) = if received {
        (t.amount_minor, t.counterpart_balance_after_minor.unwrap_or_default(), Some(t.wallet_id), 0)
    } else {
        (t.wallet_change_minor, t.balance_after_minor, t.counterpart_id, t.credit_change_minor)
    };
    pb::Transaction {
        id: t.id.to_string(),
        festival_id: t.festival_id.to_string(),
        r#type: tx_kind(t.kind) as i32,
        wallet_id: wallet.to_string(),
        amount_minor: amount,
        currency: t.currency.clone(),
        balance_after_minor: balance,
        counterpart_id: counterpart.map(|c| c.to_string()).unwrap_or_default(),
        actor_id: t.actor_id.to_string(),
        reason: t.reason.clone(),
        created_at: Some(timestamp(t.created_at)),
        credit_minor: credit,
    }
}

/// The event every booked transaction publishes (no balance: it is the holder's).
pub fn recorded(t: &TxRow) -> pb::TransactionRecorded {
    pb::TransactionRecorded {
        transaction_id: t.id.to_string(),
        festival_id: t.festival_id.to_string(),
        r#type: tx_kind(t.kind) as i32,
        wallet_id: t.wallet_id.to_string(),
        amount_minor: t.wallet_change_minor,
        currency: t.currency.clone(),
        counterpart_id: t.counterpart_id.map(|c| c.to_string()).unwrap_or_default(),
        actor_id: t.actor_id.to_string(),
        created_at: Some(timestamp(t.created_at)),
    }
}

/// The event of a posting about to be booked (before its row exists).
pub fn recorded_event(
    p: &crate::domain::ledger::Posting,
    m: &crate::store::ledger::Meta<'_>,
) -> pb::TransactionRecorded {
    pb::TransactionRecorded {
        transaction_id: m.id.to_string(),
        festival_id: m.festival_id.to_string(),
        r#type: tx_kind(p.kind) as i32,
        wallet_id: p.wallet.to_string(),
        amount_minor: p.wallet_change,
        currency: m.currency.to_owned(),
        counterpart_id: m.counterpart_id.map(|c| c.to_string()).unwrap_or_default(),
        actor_id: m.actor_id.to_string(),
        created_at: Some(timestamp(m.at)),
    }
}

pub fn payout_policy(festival_id: uuid::Uuid, p: &crate::domain::payouts::Policy) -> pb::PayoutPolicy {
    use crate::domain::payouts::Unclaimed;
    pb::PayoutPolicy {
        festival_id: festival_id.to_string(),
        fee_minor: p.fee_minor,
        min_payout_minor: p.min_payout_minor,
        deadline: p.deadline.map(timestamp),
        unclaimed: match p.unclaimed {
            Unclaimed::Keep => pb::UnclaimedMoney::Keep,
            Unclaimed::Donate => pb::UnclaimedMoney::Donate,
        } as i32,
        debtor_name: p.debtor_name.clone(),
        debtor_iban: p.debtor_iban.clone(),
        debtor_bic: p.debtor_bic.clone(),
        batch_max: p.batch_max,
    }
}

pub fn payout(p: &crate::store::payouts::PayoutRow, card_minor: i64) -> pb::Payout {
    use crate::store::payouts::PayoutStatus;
    pb::Payout {
        id: p.id.to_string(),
        wallet_id: p.wallet_id.to_string(),
        festival_id: p.festival_id.to_string(),
        status: match p.status {
            PayoutStatus::Pending => pb::PayoutStatus::Pending,
            PayoutStatus::Exported => pb::PayoutStatus::Exported,
            PayoutStatus::Donated => pb::PayoutStatus::Donated,
            PayoutStatus::Paid => pb::PayoutStatus::Paid,
            PayoutStatus::Returned => pb::PayoutStatus::Returned,
        } as i32,
        balance_minor: p.balance_minor,
        fee_minor: p.fee_minor,
        payout_minor: p.payout_minor,
        currency: p.currency.clone(),
        iban_masked: crate::domain::payouts::mask_iban(&p.iban),
        transaction_id: p.transaction_id.to_string(),
        requested_at: Some(timestamp(p.requested_at)),
        batch_id: p.batch_id.map(|b| b.to_string()).unwrap_or_default(),
        card_minor,
    }
}

pub fn payout_batch(b: &crate::store::payouts::BatchRow) -> pb::PayoutBatch {
    pb::PayoutBatch {
        id: b.id.to_string(),
        festival_id: b.festival_id.to_string(),
        payouts: b.payouts,
        total_minor: b.total_minor,
        currency: b.currency.clone(),
        xml: b.xml.clone(),
        created_at: Some(timestamp(b.created_at)),
        confirmed_at: b.confirmed_at.map(timestamp),
    }
}
