//! The gRPC surface: decode and validate, authorize, call the domain and the store,
//! encode. Every movement of money, its entries and its event commit together.
//!
//! One module per area ([`setup`]: rules, terminals, band keys; [`wallets`]: wallets and
//! wristbands, their replacement; [`money`]: top-ups, transfers, corrections, statements;
//! [`shifts`]: cash drawers at the desks; [`charges`]: the
//! terminals' hot path; [`voids`]: a supervisor's void of a sale; [`offline`]:
//! terminals without a network; [`ledger`]: verification and journal closures;
//! [`close_out`]: refunds at the end of the festival and their SEPA files; [`reports`]:
//! takings, also live); this one holds
//! what they share and the tonic binding, [`convert`] the proto mapping.

mod card_refunds;
mod charges;
mod checkout;
mod close_out;
mod convert;
mod credit;
mod ledger;
mod money;
mod offline;
mod reports;
mod setup;
mod shifts;
mod voids;
mod wallets;

pub use convert::recorded_event;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use festival_platform::auth::{GateCaller, Principal, Role, Verifier};
use festival_platform::clock::Clock;
use festival_platform::live::{LiveConfig, Watchers};
use festival_platform::nfc::Uid;
use festival_platform::payments::{PaymentPort, PaymentsConfig};
use festival_platform::rpc::Authenticate;
use festival_platform::{ApiError, ApiResult, codes};
use festival_proto::cashless::v1 as pb;
use sqlx::{PgConnection, PgPool};
use tonic::Request;
use uuid::Uuid;

use crate::domain::limits::MAX_RULE_MINOR;
use crate::keys::FestivalKeys;
use crate::store::{self, festivals::FestivalRow, wallets::WalletRow};

pub struct CashlessApi {
    pool: PgPool,
    verifier: Verifier,
    keys: Arc<FestivalKeys>,
    clock: Clock,
    live: LiveConfig,
    /// Live takings streams open per festival on this replica.
    watchers: Watchers,
    /// Online top-ups' checkouts.
    payments: Arc<dyn PaymentPort>,
    payments_config: PaymentsConfig,
}

/// Who may read any wallet of a festival (its holder always may).
const WALLET_READERS: &[Role] = &[Role::Organizer, Role::Cashier];
/// Who may bind a band (in their hand: the bind needs its proof) to anyone's wallet.
const BAND_BINDERS: &[Role] = &[Role::Organizer, Role::Cashier, Role::Staff];
/// Who may block any band of the festival (a lost band reported at a desk or a gate).
const BAND_BLOCKERS: &[Role] = &[Role::Organizer, Role::Cashier, Role::Staff, Role::Security];

impl CashlessApi {
    pub fn new(
        pool: PgPool,
        verifier: Verifier,
        keys: Arc<FestivalKeys>,
        clock: Clock,
        config: &crate::config::Config,
        payments: Arc<dyn PaymentPort>,
    ) -> Self {
        Self {
            pool,
            verifier,
            keys,
            clock,
            live: config.live,
            watchers: Watchers::default(),
            payments,
            payments_config: config.payments.clone(),
        }
    }

    /// Now, to the microsecond PostgreSQL keeps: an answer equals what a later read returns.
    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }

    /// A festival cashless knows of (from program's events).
    async fn festival(conn: &mut PgConnection, id: Uuid) -> ApiResult<FestivalRow> {
        store::festivals::find(conn, id).await?.ok_or_else(|| {
            ApiError::new(codes::NOT_FOUND).with_message("No such festival (or cashless has not heard of it yet)")
        })
    }

    /// A festival whose money may move.
    async fn open_festival(conn: &mut PgConnection, id: Uuid) -> ApiResult<FestivalRow> {
        let festival = Self::festival(conn, id).await?;
        if !festival.open() {
            return Err(ApiError::new(codes::FESTIVAL_NOT_ACTIVE));
        }
        Ok(festival)
    }

    /// The wallet, if the caller is its holder or holds one of `roles` at its festival
    /// (others learn nothing, not even that it exists).
    async fn visible_wallet(
        conn: &mut PgConnection,
        caller: &Principal,
        id: Uuid,
        roles: &[Role],
    ) -> ApiResult<WalletRow> {
        let wallet = store::wallets::find(conn, id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if wallet.user_id == Some(caller.user_id) || caller.require_any(wallet.festival_id, roles).is_ok() {
            Ok(wallet)
        } else {
            Err(ApiError::new(codes::NOT_FOUND))
        }
    }
}

/// A wristband's UID (field `field`).
fn uid(field: &str, raw: &str) -> ApiResult<Uid> {
    Uid::parse(raw.trim())
        .map_err(|_| ApiError::field(codes::VALIDATION_FAILED, field, "must be a 4, 7 or 10 byte UID in hex"))
}

/// A band's answer to a challenge: 32 hex digits (field `tap_proof`; ERR_8008).
fn proof(raw: &str) -> ApiResult<[u8; festival_platform::nfc::PROOF_LEN]> {
    let bad = || ApiError::field(codes::TAP_PROOF_INVALID, "tap_proof", "must be the band's 16-byte MAC in hex");
    if raw.len() != 2 * festival_platform::nfc::PROOF_LEN || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0_u8; festival_platform::nfc::PROOF_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&raw[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// A positive amount of minor units, at most the largest any rule may name.
fn amount(field: &str, value: i64) -> ApiResult<i64> {
    if value <= 0 || value > MAX_RULE_MINOR {
        return Err(ApiError::field(codes::VALIDATION_FAILED, field, "must be a positive amount of minor units"));
    }
    Ok(value)
}

/// The request's currency must be the festival's (ISO 4217, upper case).
fn currency(field: &str, raw: &str, festival: &str) -> ApiResult<()> {
    if raw.len() != 3 || !raw.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::field(codes::VALIDATION_FAILED, field, "must be an ISO 4217 code such as EUR"));
    }
    if raw != festival {
        return Err(
            ApiError::new(codes::CURRENCY_MISMATCH).with_message(format!("This festival's wallets hold {festival}"))
        );
    }
    Ok(())
}

impl Authenticate for CashlessApi {
    async fn caller<T: Send + Sync>(&self, request: &Request<T>) -> ApiResult<Principal> {
        self.verifier.authenticate(request).await
    }

    async fn gate_caller<T: Send + Sync>(&self, request: &Request<T>) -> ApiResult<GateCaller> {
        self.verifier.authenticate_gate(request).await
    }
}

festival_platform::bind_rpcs! {
    CashlessApi => pb::cashless_service_server::CashlessService {
        auth get_settings(pb::GetSettingsRequest) -> pb::Settings;
        auth update_settings(pb::UpdateSettingsRequest) -> pb::Settings;
        auth register_terminal(pb::RegisterTerminalRequest) -> pb::Terminal;
        auth list_terminals(pb::ListTerminalsRequest) -> pb::ListTerminalsResponse;
        auth provision_wristband(pb::ProvisionWristbandRequest) -> pb::WristbandKey;
        auth open_wallet(pb::OpenWalletRequest) -> pb::Wallet;
        auth open_anonymous_wallet(pb::OpenAnonymousWalletRequest) -> pb::AnonymousWallet;
        auth claim_wallet(pb::ClaimWalletRequest) -> pb::Wallet;
        auth reissue_claim_code(pb::ReissueClaimCodeRequest) -> pb::AnonymousWallet;
        auth get_wallet(pb::GetWalletRequest) -> pb::Wallet;
        auth bind_wristband(pb::BindWristbandRequest) -> pb::Wristband;
        auth block_wristband(pb::BlockWristbandRequest) -> pb::Wristband;
        auth verify_age(pb::VerifyAgeRequest) -> pb::AgeCheck;
        auth top_up(pb::TopUpRequest) -> pb::Transaction;
        auth_bearer start_top_up(pb::StartTopUpRequest) -> pb::TopUpCheckout;
        auth open_shift(pb::OpenShiftRequest) -> pb::CashShift;
        auth move_cash(pb::MoveCashRequest) -> pb::CashShift;
        auth close_shift(pb::CloseShiftRequest) -> pb::CashShift;
        auth list_shifts(pb::ListShiftsRequest) -> pb::ListShiftsResponse;
        gate charge(pb::ChargeRequest) -> pb::Transaction;
        gate get_terminal_snapshot(pb::GetTerminalSnapshotRequest) -> pb::TerminalSnapshot;
        gate upload_offline_charges(pb::UploadOfflineChargesRequest) -> pb::UploadOfflineChargesResponse;
        auth list_offline_exceptions(pb::ListOfflineExceptionsRequest) -> pb::ListOfflineExceptionsResponse;
        auth transfer(pb::TransferRequest) -> pb::Transaction;
        auth correct(pb::CorrectRequest) -> pb::Transaction;
        auth grant_credit(pb::GrantCreditRequest) -> pb::Transaction;
        auth list_transactions(pb::ListTransactionsRequest) -> pb::ListTransactionsResponse;
        auth verify_ledger(pb::VerifyLedgerRequest) -> pb::LedgerReport;
        auth close_journal(pb::CloseJournalRequest) -> pb::JournalClosure;
        gate void_charge(pb::VoidChargeRequest) -> pb::Transaction;
        auth replace_wristband(pb::ReplaceWristbandRequest) -> pb::ReplaceWristbandResponse;
        auth get_payout_policy(pb::GetPayoutPolicyRequest) -> pb::PayoutPolicy;
        auth set_payout_policy(pb::SetPayoutPolicyRequest) -> pb::PayoutPolicy;
        auth_bearer refund_card_top_ups(pb::RefundCardTopUpsRequest) -> pb::CardRefundRun;
        auth request_payout(pb::RequestPayoutRequest) -> pb::Payout;
        auth export_payouts(pb::ExportPayoutsRequest) -> pb::PayoutBatch;
        auth get_payout_batch(pb::GetPayoutBatchRequest) -> pb::PayoutBatch;
        auth confirm_payout_batch(pb::ConfirmPayoutBatchRequest) -> pb::PayoutBatch;
        auth return_payout(pb::ReturnPayoutRequest) -> pb::Payout;
        auth list_payout_batches(pb::ListPayoutBatchesRequest) -> pb::ListPayoutBatchesResponse;
        auth settle_unclaimed(pb::SettleUnclaimedRequest) -> pb::SettleUnclaimedResponse;
        auth get_close_out_report(pb::GetCloseOutReportRequest) -> pb::CloseOutReport;
        auth get_takings_report(pb::GetTakingsReportRequest) -> pb::TakingsReport;
    } streams {
        auth watch_takings(pb::WatchTakingsRequest) -> pb::TakingsReport as WatchTakingsStream;
    }
}
