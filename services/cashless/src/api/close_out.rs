//! The end of the festival: the refund policy, holders asking for their balance (to a
//! bank account or donated), the SEPA files that pay them, and what nobody claimed.

use chrono::{Days, NaiveDate};
use festival_platform::auth::{Principal, Role};
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, page_token, validate};
use festival_proto::cashless::v1 as pb;
use uuid::Uuid;

use super::money::{book, locked_active};
use super::{CashlessApi, convert};
use crate::domain::ledger::{AccountKind, Posting};
use crate::domain::payouts::{Policy, Unclaimed, sepa_iban, sepa_text};
use crate::domain::sepa;
use crate::store::card_refunds::CardRefundStatus;
use crate::store::payouts::{BatchRow, PayoutRow, PayoutStatus};
use crate::store::{self, ledger::Meta};

/// Wallets settled per transaction when unclaimed money is swept (each wallet commits
/// on its own; a second run finds what the first left).
const SETTLE_PAGE: i64 = 500;

impl CashlessApi {
    pub(super) async fn get_payout_policy(
        &self,
        caller: Principal,
        req: pb::GetPayoutPolicyRequest,
    ) -> ApiResult<pb::PayoutPolicy> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require_any(festival_id, &[Role::Organizer, Role::Cashier])?;
        let mut conn = self.pool.acquire().await?;
        Self::festival(&mut conn, festival_id).await?;
        let policy = store::payouts::policy(&mut conn, festival_id).await?;
        Ok(convert::payout_policy(festival_id, &policy))
    }

    pub(super) async fn set_payout_policy(
        &self,
        caller: Principal,
        req: pb::SetPayoutPolicyRequest,
    ) -> ApiResult<pb::PayoutPolicy> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let p = req.policy.ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "policy", "is required"))?;
        let unclaimed = match validate::known_enum::<pb::UnclaimedMoney>("unclaimed", p.unclaimed, true)? {
            Some(pb::UnclaimedMoney::Donate) => Unclaimed::Donate,
            _ => Unclaimed::Keep,
        };
        let policy = Policy {
            fee_minor: p.fee_minor,
            min_payout_minor: p.min_payout_minor,
            deadline: validate::timestamp("deadline", &p.deadline)?,
            unclaimed,
            debtor_name: validate::plain_text(
                "debtor_name",
                validate::max_len("debtor_name", &p.debtor_name, 140)?,
                false,
            )?
            .to_owned(),
            debtor_iban: validate::max_len("debtor_iban", &p.debtor_iban, 50)?.to_owned(),
            debtor_bic: validate::max_len("debtor_bic", &p.debtor_bic, 20)?.to_owned(),
            batch_max: p.batch_max,
        }
        .check()?;
        caller.require(festival_id, Role::Organizer)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::festival(&mut tx, festival_id).await?;
        // Under the festival's policy row lock: two organisers cannot both move it.
        let before = store::payouts::lock_policy(&mut tx, festival_id).await?;
        policy.deadline_allowed(&before, self.now(), festival.end_time)?;
        if festival.status.over() {
            policy.terms_kept(&before)?;
        }
        store::payouts::set_policy(&mut tx, festival_id, &policy).await?;
        tx.commit().await?;
        tracing::info!(festival = %festival_id, by = %caller.user_id, "payout policy set");
        Ok(convert::payout_policy(festival_id, &policy))
    }

    /// The holder's whole balance leaves the wallet in one transaction: the wallet
    /// closes and its bands are blocked with it, so nothing is spent twice.
    pub(super) async fn request_payout(
        &self,
        caller: Principal,
        req: pb::RequestPayoutRequest,
    ) -> ApiResult<pb::Payout> {
        let wallet_id = validate::uuid("wallet_id", &req.wallet_id)?;
        let bank = if req.donate {
            if !req.iban.is_empty() || !req.account_holder.is_empty() {
                return Err(ApiError::field(codes::VALIDATION_FAILED, "iban", "a donation names no bank account"));
            }
            None
        } else {
            let iban = sepa_iban("iban", validate::required("iban", &req.iban, 50)?)?;
            let raw = validate::plain_text(
                "account_holder",
                validate::required("account_holder", &req.account_holder, 140)?,
                false,
            )?;
            let holder = sepa_text(raw, 70);
            if holder.is_empty() {
                return Err(ApiError::field(
                    codes::VALIDATION_FAILED,
                    "account_holder",
                    "must be written in Latin letters",
                ));
            }
            Some((iban, holder))
        };
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;

        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::Payout>(&mut tx, "cashless.RequestPayout", caller.user_id, key, &req)
            .await?
        {
            Claim::Replay(answer) => return Ok(answer),
            Claim::Fresh(fresh) => fresh,
        };
        // Only the holder: their money, their bank account.
        let wallet = store::wallets::find(&mut tx, wallet_id).await?;
        let Some(wallet) = wallet.filter(|w| w.user_id == Some(caller.user_id)) else {
            return Err(ApiError::new(codes::NOT_FOUND));
        };
        record_festival(wallet.festival_id);
        let festival = Self::festival(&mut tx, wallet.festival_id).await?;
        // Not while bars still charge, nor before terminals that were offline synced (a
        // balance paid out before their charges arrive would leave them to the loss
        // account): the organiser completes the festival once they did.
        if !festival.status.over() {
            return Err(ApiError::new(codes::PAYOUTS_CLOSED).with_message("Payouts open when the festival is over"));
        }
        let policy = store::payouts::policy(&mut tx, festival.id).await?;
        let now = self.now();
        if policy.claims_until(festival.over_at).is_some_and(|until| now >= until) {
            return Err(ApiError::new(codes::PAYOUTS_CLOSED).with_message("The festival's payout deadline has passed"));
        }
        if bank.is_some() && festival.currency != "EUR" {
            return Err(ApiError::new(codes::CURRENCY_MISMATCH)
                .with_message("Bank payouts are SEPA transfers, in EUR only; the balance can be donated"));
        }
        let wallet = locked_active(&mut tx, wallet.id).await?;
        // A card charged online can be disputed for months: what it loaded goes back to
        // it, never to a bank account the holder names (else stolen cards become cash).
        let card = wallet.online_held();
        let (balance, card) =
            if bank.is_some() { (wallet.balance_minor - card, card) } else { (wallet.balance_minor, 0) };
        if bank.is_some() && balance == 0 && card > 0 {
            return Err(ApiError::new(codes::PAID_BY_CARD_ONLINE).with_message(
                "This wallet holds only money loaded online: it goes back to its card (or can be donated)",
            ));
        }
        let (posting, status, fee, paid, reason) = match &bank {
            Some(_) => {
                let (fee, paid) = policy.split(balance)?;
                let payable = store::accounts::ensure(
                    &mut tx,
                    festival.id,
                    AccountKind::RefundsPayable,
                    None,
                    &festival.currency,
                )
                .await?;
                let fees =
                    store::accounts::ensure(&mut tx, festival.id, AccountKind::PlatformFees, None, &festival.currency)
                        .await?;
                (Posting::payout(wallet.id, payable, fees, balance, fee), PayoutStatus::Pending, fee, paid, "payout")
            }
            None => {
                if balance == 0 {
                    return Err(ApiError::new(codes::INSUFFICIENT_BALANCE).with_message("Nothing to donate"));
                }
                let donations =
                    store::accounts::ensure(&mut tx, festival.id, AccountKind::Donations, None, &festival.currency)
                        .await?;
                (Posting::release(wallet.id, donations, balance), PayoutStatus::Donated, 0, balance, "donation")
            }
        };
        let after = store::wallets::apply_change(&mut tx, wallet.id, posting.wallet_change).await?;
        let meta = Meta {
            id: Uuid::now_v7(),
            festival_id: festival.id,
            currency: &festival.currency,
            counterpart_id: None,
            actor_id: caller.user_id,
            reason,
            at: now,
        };
        let row = book(&mut tx, &posting, meta, after, None).await?;
        if after == 0 {
            store::wallets::close(&mut tx, wallet.id).await?;
        }
        store::wallets::block_all(&mut tx, wallet.id, reason, now, caller.user_id).await?;
        let (iban, account_holder) = bank.unwrap_or_default();
        let payout = PayoutRow {
            id: Uuid::now_v7(),
            festival_id: festival.id,
            wallet_id: wallet.id,
            transaction_id: row.id,
            status,
            balance_minor: balance,
            fee_minor: fee,
            payout_minor: paid,
            currency: festival.currency.clone(),
            iban,
            account_holder,
            requested_at: now,
            batch_id: None,
        };
        store::payouts::insert(&mut tx, &payout).await?;
        let answer = convert::payout(&payout, card);
        fresh.complete(&mut tx, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    pub(super) async fn export_payouts(
        &self,
        caller: Principal,
        req: pb::ExportPayoutsRequest,
    ) -> ApiResult<pb::PayoutBatch> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let today = self.now().date_naive();
        let execution = if req.execution_date.is_empty() {
            today + Days::new(1)
        } else {
            let date = NaiveDate::parse_from_str(&req.execution_date, "%Y-%m-%d")
                .map_err(|_| ApiError::field(codes::VALIDATION_FAILED, "execution_date", "must be YYYY-MM-DD"))?;
            if date < today || date > today + Days::new(365) {
                return Err(ApiError::field(
                    codes::VALIDATION_FAILED,
                    "execution_date",
                    "must be from today to a year ahead",
                ));
            }
            date
        };
        caller.require(festival_id, Role::Organizer)?;
        let mut tx = self.pool.begin().await?;
        Self::festival(&mut tx, festival_id).await?;
        let policy = store::payouts::policy(&mut tx, festival_id).await?;
        if policy.debtor_iban.is_empty() {
            return Err(ApiError::new(codes::PAYOUTS_CLOSED)
                .with_message("Set the bank account refunds are paid from (the payout policy) first"));
        }
        let pending = store::payouts::lock_pending(&mut tx, festival_id, policy.batch_max).await?;
        if pending.is_empty() {
            return Ok(pb::PayoutBatch { festival_id: festival_id.to_string(), ..Default::default() });
        }
        let id = Uuid::now_v7();
        let message_id = id.simple().to_string();
        let e2e: Vec<String> = pending.iter().map(|p| p.id.simple().to_string()).collect();
        let transfers: Vec<sepa::Transfer<'_>> = pending
            .iter()
            .zip(&e2e)
            .map(|(p, e2e)| sepa::Transfer {
                end_to_end_id: e2e,
                amount_cents: p.payout_minor,
                creditor_name: &p.account_holder,
                creditor_iban: &p.iban,
                remittance: "Festival cashless refund",
            })
            .collect();
        let debtor = sepa::Debtor { name: &policy.debtor_name, iban: &policy.debtor_iban, bic: &policy.debtor_bic };
        let created_at = self.now();
        let batch = BatchRow {
            id,
            festival_id,
            payouts: pending.len() as i32,
            total_minor: pending.iter().map(|p| p.payout_minor).sum(),
            currency: "EUR".into(),
            xml: sepa::pain_001(&message_id, created_at, execution, &debtor, &transfers),
            created_at,
            confirmed_at: None,
        };
        let ids: Vec<Uuid> = pending.iter().map(|p| p.id).collect();
        store::payouts::insert_batch(&mut tx, &batch, &ids, caller.user_id).await?;
        tx.commit().await?;
        tracing::info!(festival = %festival_id, batch = %id, payouts = batch.payouts, by = %caller.user_id, "payouts exported");
        Ok(convert::payout_batch(&batch))
    }

    pub(super) async fn get_payout_batch(
        &self,
        caller: Principal,
        req: pb::GetPayoutBatchRequest,
    ) -> ApiResult<pb::PayoutBatch> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let batch_id = validate::uuid("batch_id", &req.batch_id)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        let batch =
            store::payouts::batch(&mut conn, festival_id, batch_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        Ok(convert::payout_batch(&batch))
    }

    /// The bank executed the file: refunds payable is settled from the bank account, in
    /// one posting for the file (no wallet concerned); once.
    pub(super) async fn confirm_payout_batch(
        &self,
        caller: Principal,
        req: pb::ConfirmPayoutBatchRequest,
    ) -> ApiResult<pb::PayoutBatch> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let batch_id = validate::uuid("batch_id", &req.batch_id)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::festival(&mut tx, festival_id).await?;
        let batch =
            store::payouts::batch(&mut tx, festival_id, batch_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if batch.confirmed_at.is_some() {
            return Ok(convert::payout_batch(&batch));
        }
        let now = self.now();
        let owed = store::payouts::confirm_batch(&mut tx, batch.id, now).await?;
        if owed > 0 {
            let bank =
                store::accounts::ensure(&mut tx, festival_id, AccountKind::Bank, None, &festival.currency).await?;
            let payable =
                store::accounts::ensure(&mut tx, festival_id, AccountKind::RefundsPayable, None, &festival.currency)
                    .await?;
            let posting = Posting::cash_move(bank, payable, owed);
            let meta = Meta {
                id: Uuid::now_v7(),
                festival_id,
                currency: &festival.currency,
                counterpart_id: Some(batch.id),
                actor_id: caller.user_id,
                reason: "payout file executed",
                at: now,
            };
            book(&mut tx, &posting, meta, 0, None).await?;
        }
        let batch =
            store::payouts::batch(&mut tx, festival_id, batch_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        tx.commit().await?;
        tracing::info!(festival = %festival_id, batch = %batch_id, owed, by = %caller.user_id, "payout file confirmed");
        Ok(convert::payout_batch(&batch))
    }

    /// The bank returned a transfer: its amount goes back into the wallet, which reopens.
    pub(super) async fn return_payout(&self, caller: Principal, req: pb::ReturnPayoutRequest) -> ApiResult<pb::Payout> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let payout_id = validate::uuid("payout_id", &req.payout_id)?;
        let reason = validate::plain_text("reason", validate::required("reason", &req.reason, 200)?, false)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::festival(&mut tx, festival_id).await?;
        let seen =
            store::payouts::lock(&mut tx, festival_id, payout_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        // The wallet before the payout, as every movement of it locks them.
        let wallet = store::wallets::lock(&mut tx, seen.wallet_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let from = match seen.status {
            PayoutStatus::Exported => AccountKind::RefundsPayable,
            PayoutStatus::Paid => AccountKind::Bank,
            _ => {
                return Err(ApiError::field(
                    codes::VALIDATION_FAILED,
                    "payout_id",
                    "only an exported or paid transfer comes back",
                ));
            }
        };
        let from = store::accounts::ensure(&mut tx, festival_id, from, None, &festival.currency).await?;
        let now = self.now();
        if seen.payout_minor > 0 {
            let posting = Posting::payout_returned(wallet.id, from, seen.payout_minor);
            let after = store::wallets::apply_change(&mut tx, wallet.id, posting.wallet_change).await?;
            let meta = Meta {
                id: Uuid::now_v7(),
                festival_id,
                currency: &festival.currency,
                counterpart_id: Some(seen.id),
                actor_id: caller.user_id,
                reason,
                at: now,
            };
            book(&mut tx, &posting, meta, after, None).await?;
        }
        store::wallets::reopen(&mut tx, wallet.id).await?;
        store::payouts::mark_returned(&mut tx, seen.id, reason).await?;
        let payout =
            store::payouts::lock(&mut tx, festival_id, payout_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        tx.commit().await?;
        tracing::info!(festival = %festival_id, payout = %payout_id, by = %caller.user_id, reason, "payout returned");
        Ok(convert::payout(&payout, 0))
    }

    pub(super) async fn list_payout_batches(
        &self,
        caller: Principal,
        req: pb::ListPayoutBatchesRequest,
    ) -> ApiResult<pb::ListPayoutBatchesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let size = validate::page_size("page_size", req.page_size, 50, 200)?;
        let scope = format!("cashless.ListPayoutBatches:{festival_id}");
        let after = page_token::decode(&scope, &req.page_token)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        Self::festival(&mut conn, festival_id).await?;
        let mut rows = store::payouts::batches(&mut conn, festival_id, after, i64::from(size) + 1).await?;
        let next_page_token = page_token::next_page(&mut rows, size as usize, &scope, |b| (b.created_at, b.id));
        Ok(pb::ListPayoutBatchesResponse { batches: rows.iter().map(convert::payout_batch).collect(), next_page_token })
    }

    /// After the deadline, each wallet still holding money is emptied into the
    /// festival's unclaimed or donations account, closed and its bands blocked, one
    /// wallet per transaction (a run cut short is finished by the next).
    pub(super) async fn settle_unclaimed(
        &self,
        caller: Principal,
        req: pb::SettleUnclaimedRequest,
    ) -> ApiResult<pb::SettleUnclaimedResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        let festival = Self::festival(&mut conn, festival_id).await?;
        let policy = store::payouts::policy(&mut conn, festival_id).await?;
        // Holders had their window: the deadline passed, and at least 14 days since the
        // festival was over.
        let passed =
            policy.deadline.is_some() && policy.claims_until(festival.over_at).is_some_and(|u| self.now() >= u);
        if !festival.status.over() || !passed {
            return Err(ApiError::new(codes::PAYOUTS_CLOSED)
                .with_message("Unclaimed money is settled when the festival is over and its payout deadline passed"));
        }
        let kind = match policy.unclaimed {
            Unclaimed::Keep => AccountKind::Unclaimed,
            Unclaimed::Donate => AccountKind::Donations,
        };
        let account = store::accounts::ensure(&mut conn, festival_id, kind, None, &festival.currency).await?;
        drop(conn);
        let (mut wallets, mut total, mut after) = (0_i32, 0_i64, Uuid::nil());
        loop {
            let mut conn = self.pool.acquire().await?;
            let page = store::payouts::unclaimed_wallets(&mut conn, festival_id, after, SETTLE_PAGE).await?;
            drop(conn);
            let Some(last) = page.last() else { break };
            after = *last;
            for wallet_id in page {
                let mut tx = self.pool.begin().await?;
                let Some(wallet) = store::wallets::lock(&mut tx, wallet_id).await? else { continue };
                if wallet.status != store::wallets::WalletStatus::Active || wallet.balance_minor <= 0 {
                    continue;
                }
                let posting = Posting::release(wallet.id, account, wallet.balance_minor);
                let left = store::wallets::apply_change(&mut tx, wallet.id, posting.wallet_change).await?;
                let now = self.now();
                let meta = Meta {
                    id: Uuid::now_v7(),
                    festival_id,
                    currency: &wallet.currency,
                    counterpart_id: Some(account),
                    actor_id: caller.user_id,
                    reason: "unclaimed after the payout deadline",
                    at: now,
                };
                book(&mut tx, &posting, meta, left, None).await?;
                store::wallets::close(&mut tx, wallet.id).await?;
                store::wallets::block_all(&mut tx, wallet.id, "unclaimed", now, caller.user_id).await?;
                tx.commit().await?;
                wallets += 1;
                total += wallet.balance_minor;
            }
        }
        tracing::info!(festival = %festival_id, wallets, total, by = %caller.user_id, "unclaimed balances settled");
        let unclaimed =
            if policy.unclaimed == Unclaimed::Donate { pb::UnclaimedMoney::Donate } else { pb::UnclaimedMoney::Keep };
        Ok(pb::SettleUnclaimedResponse { wallets, total_minor: total, unclaimed: unclaimed as i32 })
    }

    pub(super) async fn get_close_out_report(
        &self,
        caller: Principal,
        req: pb::GetCloseOutReportRequest,
    ) -> ApiResult<pb::CloseOutReport> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        let festival = Self::festival(&mut conn, festival_id).await?;
        let f = store::payouts::figures(&mut conn, festival_id).await?;
        let cards = store::card_refunds::totals(&mut conn, festival_id).await?;
        let card = |status: CardRefundStatus| {
            cards.iter().find(|(s, _, _)| s == status.as_str()).map_or(0, |(_, _, sum)| *sum)
        };
        Ok(pb::CloseOutReport {
            card_refunds_booked_minor: card(CardRefundStatus::Booked),
            card_refunds_sent_minor: card(CardRefundStatus::Sent),
            card_refunds_confirmed_minor: card(CardRefundStatus::Confirmed),
            card_refunds_failed_minor: card(CardRefundStatus::Failed),
            festival_id: festival_id.to_string(),
            currency: festival.currency,
            outstanding_wallets: f.outstanding_wallets,
            outstanding_minor: f.outstanding_minor,
            pending_payouts: f.pending_payouts,
            pending_minor: f.pending_minor,
            exported_payouts: f.exported_payouts,
            exported_minor: f.exported_minor,
            donated_minor: f.donated_minor,
            fees_minor: f.fees_minor,
            unclaimed_kept_minor: f.unclaimed_kept_minor,
        })
    }
}
