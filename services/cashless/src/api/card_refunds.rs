//! The close-out's refunds to cards: money loaded online and still unspent goes back to
//! the card it came from, not to a bank account the holder names (a stolen card's
//! top-up would become cash). Each refund is booked here first, out of its wallet, so
//! nothing can spend it meanwhile; then payments is asked for it, under the booking's id
//! as idempotency key. Payments' `payment.refunded` for it only confirms it
//! (`crate::online`); a refusal books it back.

use festival_platform::auth::{Principal, Role};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::cashless::v1 as pb;
use festival_proto::payments::v1 as pay;
use uuid::Uuid;

use super::CashlessApi;
use super::money::book;
use crate::domain::card_refunds::allocate;
use crate::domain::ledger::{AccountKind, Posting};
use crate::online::REFUND;
use crate::store::card_refunds::{CardRefundRow, CardRefundStatus};
use crate::store::{self, ledger::Meta, wallets::WalletStatus};

/// Wallets booked per page, refunds sent per run (a larger festival runs it again).
const PAGE: i64 = 500;
const MAX_SENT_PER_RUN: i64 = 10_000;

impl CashlessApi {
    pub(super) async fn refund_card_top_ups(
        &self,
        caller: Principal,
        bearer: String,
        req: pb::RefundCardTopUpsRequest,
    ) -> ApiResult<pb::CardRefundRun> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let festival = Self::festival(&mut *self.pool.acquire().await?, festival_id).await?;
        if !festival.status.over() {
            return Err(
                ApiError::new(codes::PAYOUTS_CLOSED).with_message("Money goes back to cards once the festival is over")
            );
        }
        // One run per festival at a time, held by a transaction of its own for the run
        // (dropped with it, whatever ends the run): two organisers' runs would each ask
        // payments for the same booking under their own key.
        let mut guard = self.pool.begin().await?;
        let lock = format!("cashless.card-refunds:{festival_id}");
        let mine: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(lock)
            .fetch_one(&mut *guard)
            .await?;
        if !mine {
            return Err(ApiError::new(codes::CONCURRENT_UPDATE).with_message("A run is under way for this festival"));
        }
        let mut run = pb::CardRefundRun::default();
        let mut after = Uuid::nil();
        loop {
            let wallets =
                store::card_refunds::wallets_holding_online(&mut *self.pool.acquire().await?, festival_id, after, PAGE)
                    .await?;
            let Some(last) = wallets.last() else { break };
            after = *last;
            for wallet in wallets {
                let (refunds, sum) = self.book_card_refunds(wallet, &festival.currency, caller.user_id).await?;
                if refunds > 0 {
                    run.wallets += 1;
                    run.booked_refunds += refunds;
                    run.booked_minor += sum;
                }
            }
        }
        let booked =
            store::card_refunds::booked(&mut *self.pool.acquire().await?, festival_id, MAX_SENT_PER_RUN).await?;
        for refund in booked {
            match self.send_card_refund(&bearer, &refund).await? {
                Sent::Taken => run.sent += 1,
                Sent::Refused => run.refused += 1,
                Sent::Later => run.pending += 1,
            }
        }
        // A refund payments took can still fail at the provider (a closed card): it is
        // refundable again there, and goes back into its wallet here.
        let sent =
            store::card_refunds::sent_unconfirmed(&mut *self.pool.acquire().await?, festival_id, MAX_SENT_PER_RUN)
                .await?;
        let mut payments: Vec<Uuid> = sent.iter().map(|r| r.payment_id).collect();
        payments.sort_unstable();
        payments.dedup();
        for payment in payments {
            let request = pay::ListRefundsRequest { payment_id: payment.to_string() };
            let Ok(known) = self.payments.list_refunds(&bearer, request).await else { continue };
            for refund in sent.iter().filter(|r| r.payment_id == payment) {
                let failed = known.refunds.iter().any(|k| {
                    refund.refund_id.as_deref() == Some(format!("{REFUND}{}", k.id).as_str())
                        && k.status == pay::RefundStatus::Failed as i32
                });
                if failed && self.book_back(refund.id, "REFUND_FAILED_AT_PROVIDER").await? {
                    run.refused += 1;
                }
            }
        }
        guard.rollback().await?;
        tracing::info!(%festival_id, ?run, "card refunds run");
        Ok(run)
    }

    /// Books a wallet's unspent online money out of it, as refunds of its own top-ups;
    /// how many, and their sum.
    async fn book_card_refunds(&self, wallet_id: Uuid, currency: &str, actor: Uuid) -> ApiResult<(i32, i64)> {
        let mut tx = self.pool.begin().await?;
        let Some(wallet) = store::wallets::lock(&mut tx, wallet_id).await? else { return Ok((0, 0)) };
        let held = wallet.online_held();
        if wallet.status != WalletStatus::Active || held == 0 || wallet.currency != currency {
            return Ok((0, 0));
        }
        let payments = store::card_refunds::refundable(&mut tx, wallet.id).await?;
        let refunds = allocate(held, &payments);
        if refunds.is_empty() {
            return Ok((0, 0));
        }
        let clearing =
            store::accounts::ensure(&mut tx, wallet.festival_id, AccountKind::OnlineClearing, None, currency).await?;
        let now = self.now();
        let mut sum = 0;
        for &(payment, amount) in &refunds {
            let posting = Posting::card_refund(wallet.id, clearing, amount);
            let after = store::wallets::apply_change(&mut tx, wallet.id, posting.wallet_change).await?;
            let meta = Meta {
                id: Uuid::now_v7(),
                festival_id: wallet.festival_id,
                currency,
                counterpart_id: None,
                actor_id: actor,
                reason: "refund to the card",
                at: now,
            };
            let row = book(&mut tx, &posting, meta, after, None).await?;
            store::wallets::add_online(&mut tx, wallet.id, -amount).await?;
            let refund = CardRefundRow {
                id: Uuid::now_v7(),
                festival_id: wallet.festival_id,
                wallet_id: wallet.id,
                payment_id: payment,
                transaction_id: row.id,
                amount_minor: amount,
                status: CardRefundStatus::Booked,
                refund_id: None,
                booked_at: now,
            };
            store::card_refunds::insert(&mut tx, &refund).await?;
            sum += amount;
        }
        // As a payout does: nothing is charged on a wallet being paid back.
        store::wallets::block_all(&mut tx, wallet.id, "refund to the card", now, actor).await?;
        tx.commit().await?;
        Ok((i32::try_from(refunds.len()).unwrap_or(i32::MAX), sum))
    }

    /// Asks payments for one booked refund.
    async fn send_card_refund(&self, bearer: &str, refund: &CardRefundRow) -> ApiResult<Sent> {
        let request = pay::RefundPaymentRequest {
            payment_id: refund.payment_id.to_string(),
            amount_minor: refund.amount_minor,
            reason: "Festival close-out: unspent online top-up paid back to the card".into(),
            idempotency_key: format!("card-refund-{}", refund.id),
        };
        let answer = self.payments.refund_payment(bearer, request).await;
        let now = self.now();
        match answer {
            Ok(taken) => {
                let refund_id = format!("{REFUND}{}", taken.id);
                store::card_refunds::sent(&mut *self.pool.acquire().await?, refund.id, &refund_id, now).await?;
                Ok(Sent::Taken)
            }
            Err(e) if retryable(&e) => Ok(Sent::Later),
            Err(e) => {
                tracing::warn!(refund = %refund.id, payment = %refund.payment_id, code = e.code.code, "payments refused a card refund");
                self.book_back(refund.id, e.code.code).await?;
                Ok(Sent::Refused)
            }
        }
    }

    /// A refund payments refused, or the provider failed, goes back into its wallet
    /// (unless its event confirmed it meanwhile: a refund made another way, of the same
    /// amount, settled it). Whether it did.
    async fn book_back(&self, id: Uuid, failure: &str) -> ApiResult<bool> {
        let mut tx = self.pool.begin().await?;
        let Some(refund) = store::card_refunds::lock(&mut tx, id).await? else { return Ok(false) };
        if !matches!(refund.status, CardRefundStatus::Booked | CardRefundStatus::Sent) {
            return Ok(false);
        }
        let wallet = store::wallets::lock(&mut tx, refund.wallet_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let clearing =
            store::accounts::ensure(&mut tx, refund.festival_id, AccountKind::OnlineClearing, None, &wallet.currency)
                .await?;
        let posting = Posting::void(&Posting::card_refund(wallet.id, clearing, refund.amount_minor));
        let after = store::wallets::apply_change(&mut tx, wallet.id, posting.wallet_change).await?;
        let meta = Meta {
            id: Uuid::now_v7(),
            festival_id: refund.festival_id,
            currency: &wallet.currency,
            counterpart_id: None,
            actor_id: wallet.id,
            reason: "refund to the card refused by payments",
            at: self.now(),
        };
        book(&mut tx, &posting, meta, after, None).await?;
        store::wallets::add_online(&mut tx, wallet.id, refund.amount_minor).await?;
        store::card_refunds::set_status(&mut tx, id, CardRefundStatus::Failed, None, failure, self.now()).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// What became of a booked refund.
enum Sent {
    Taken,
    Refused,
    /// Payments unreachable, or our own mistake: it stays booked for the next run.
    Later,
}

/// Payments did not answer (or a token ran out mid-run): the next run asks again.
fn retryable(e: &ApiError) -> bool {
    e.code.code == codes::PAYMENT_PROVIDER_UNAVAILABLE.code || e.code.http >= 500 || e.code.http == 401
}
