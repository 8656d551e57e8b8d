//! The close-out's refunds to cards: money loaded online and still unspent goes back to
//! the card it came from, not to a bank account the holder names (a stolen card's
//! top-up would become cash). Each refund is booked here first, out of its wallet, so
//! nothing can spend it meanwhile; then payments is asked for it. Payments keeps
//! idempotency keys per caller, so a booking's id also goes into the refund's reason:
//! before asking, the run looks among the payment's refunds for one naming the booking
//! (a run cut after payments took it, another organiser's run), and asks only if there
//! is none. Payments' `payment.refunded` for a booking only confirms it
//! (`crate::online`); one heard before the run learned the booking's refund id is
//! parked, and the run decides whose it is. A refusal, or a refund the provider failed
//! later, is booked back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
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
use crate::online::{self, REFUND};
use crate::store::card_refunds::{CardRefundRow, CardRefundStatus};
use crate::store::{self, ledger::Meta, wallets::WalletStatus};

/// Wallets booked per page, refunds sent and checked per run at most.
const PAGE: i64 = 500;
const MAX_PER_RUN: i64 = 10_000;
/// A run stops starting new work after this long, to answer within the RPC deadline
/// (10 s by default); `more` tells the organiser to run it again.
const BUDGET: Duration = Duration::from_secs(6);

impl CashlessApi {
    pub(super) async fn refund_card_top_ups(
        &self,
        caller: Principal,
        bearer: String,
        req: pb::RefundCardTopUpsRequest,
    ) -> ApiResult<pb::CardRefundRun> {
        let started = Instant::now();
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
        // (dropped with it, whatever ends the run).
        let mut guard = self.pool.begin().await?;
        // Reversals heard meanwhile wait for it (`store::card_refunds::serialise`).
        let mine: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(store::card_refunds::lock_key(festival_id))
            .fetch_one(&mut *guard)
            .await?;
        if !mine {
            return Err(ApiError::new(codes::CONCURRENT_UPDATE).with_message("A run is under way for this festival"));
        }
        let out_of_time = || started.elapsed() >= BUDGET;
        let mut run = pb::CardRefundRun::default();

        // 1. Book what wallets hold, page by page.
        let mut after = Uuid::nil();
        loop {
            if out_of_time() {
                run.more = true;
                break;
            }
            let mut conn = self.pool.acquire().await?;
            let wallets = store::card_refunds::wallets_holding_online(&mut conn, festival_id, after, PAGE).await?;
            drop(conn);
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

        // 2. Ask payments for each booked refund it has not taken yet.
        let booked = store::card_refunds::booked(&mut *self.pool.acquire().await?, festival_id, MAX_PER_RUN).await?;
        for (payment, refunds) in by_payment(booked) {
            if out_of_time() {
                run.more = true;
                run.pending += i32::try_from(refunds.len()).unwrap_or(i32::MAX);
                continue;
            }
            let known = match self.payments.list_refunds(&bearer, list(payment)).await {
                Ok(known) => known.refunds,
                Err(e) if retryable(&e) => {
                    run.pending += i32::try_from(refunds.len()).unwrap_or(i32::MAX);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for refund in refunds {
                // Taken already (a run cut short, another organiser's run): not again.
                if let Some(taken) = known.iter().find(|k| k.reason.contains(&tag(refund.id))) {
                    self.record_sent(&refund, &taken.id).await?;
                    run.sent += 1;
                    continue;
                }
                match self.send_card_refund(&bearer, &refund).await? {
                    Sent::Taken => run.sent += 1,
                    Sent::Refused => run.refused += 1,
                    Sent::Later => run.pending += 1,
                }
            }
        }

        // 3. Refunds the provider failed after payments took them go back to their wallets.
        let answered =
            store::card_refunds::answered(&mut *self.pool.acquire().await?, festival_id, MAX_PER_RUN).await?;
        for (payment, refunds) in by_payment(answered) {
            if out_of_time() {
                run.more = true;
                break;
            }
            let Ok(known) = self.payments.list_refunds(&bearer, list(payment)).await else { continue };
            let ids: Vec<Uuid> = refunds.iter().map(|r| r.id).collect();
            store::card_refunds::checked(&mut *self.pool.acquire().await?, &ids, self.now()).await?;
            for refund in refunds {
                let failed = known.refunds.iter().any(|k| {
                    refund.refund_id.as_deref() == Some(refund_key(&k.id).as_str())
                        && k.status == pay::RefundStatus::Failed as i32
                });
                if failed && self.book_back(refund.id, "FAILED_AT_PROVIDER").await? {
                    run.refused += 1;
                }
            }
        }

        // 4. Refunds heard before their booking's id was known: ours, or somebody else's.
        self.settle_parked(festival_id).await?;
        let waiting = store::card_refunds::parked_count(&mut *self.pool.acquire().await?, festival_id).await?;
        run.pending += i32::try_from(waiting).unwrap_or(i32::MAX);
        guard.rollback().await?;
        tracing::info!(%festival_id, ?run, "card refunds run");
        Ok(run)
    }

    /// Books a wallet's unspent online money out of it, as refunds of its own top-ups;
    /// how many, and their sum.
    async fn book_card_refunds(&self, wallet_id: Uuid, currency: &str, actor: Uuid) -> ApiResult<(i32, i64)> {
        let mut tx = self.pool.begin().await?;
        let Some(wallet) = store::wallets::lock(&mut tx, wallet_id).await? else { return Ok((0, 0)) };
        let held = wallet.own_online_held();
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
            reason: format!("Festival close-out: unspent online top-up paid back to the card {}", tag(refund.id)),
            idempotency_key: format!("card-refund-{}", refund.id),
        };
        match self.payments.refund_payment(bearer, request).await {
            Ok(taken) => {
                self.record_sent(refund, &taken.id).await?;
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

    /// Payments took a booking as its refund `payments_id`.
    async fn record_sent(&self, refund: &CardRefundRow, payments_id: &str) -> ApiResult<()> {
        store::card_refunds::sent(&mut *self.pool.acquire().await?, refund.id, &refund_key(payments_id), self.now())
            .await?;
        Ok(())
    }

    /// A refund payments refused, or the provider failed, goes back into its wallet
    /// (reopened if it was closed meanwhile, so its holder can ask for it again), and is
    /// refundable from its top-up again. Whether it did (false: settled otherwise).
    async fn book_back(&self, id: Uuid, failure: &str) -> ApiResult<bool> {
        let mut tx = self.pool.begin().await?;
        let Some(refund) = store::card_refunds::lock(&mut tx, id).await? else { return Ok(false) };
        if !matches!(refund.status, CardRefundStatus::Booked | CardRefundStatus::Sent | CardRefundStatus::Confirmed) {
            return Ok(false);
        }
        let wallet = store::wallets::lock(&mut tx, refund.wallet_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let clearing =
            store::accounts::ensure(&mut tx, refund.festival_id, AccountKind::OnlineClearing, None, &wallet.currency)
                .await?;
        let now = self.now();
        let posting = Posting::void(&Posting::card_refund(wallet.id, clearing, refund.amount_minor));
        let after = store::wallets::apply_change(&mut tx, wallet.id, posting.wallet_change).await?;
        let meta = Meta {
            id: Uuid::now_v7(),
            festival_id: refund.festival_id,
            currency: &wallet.currency,
            counterpart_id: None,
            actor_id: wallet.id,
            reason: "refund to the card not paid",
            at: now,
        };
        book(&mut tx, &posting, meta, after, None).await?;
        store::wallets::add_online(&mut tx, wallet.id, refund.amount_minor).await?;
        if wallet.status == WalletStatus::Closed {
            store::wallets::reopen(&mut tx, wallet.id).await?;
        }
        if refund.status == CardRefundStatus::Confirmed {
            store::online::reversed(&mut tx, refund.payment_id, -refund.amount_minor, 0, now).await?;
        }
        // A dispute or refund that left this amount out (it was on its way back) takes it now.
        let restored = store::wallets::WalletRow { balance_minor: after, ..wallet };
        online::take_capped(&mut tx, refund.payment_id, refund.festival_id, &restored, refund.amount_minor, now)
            .await
            .map_err(ApiError::internal)?;
        store::card_refunds::set_status(&mut tx, id, CardRefundStatus::Failed, None, failure, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Decides on refunds parked while a booking of their payment waited for its id: one
    /// of ours is confirmed; one that is not, once no booking of its payment is waiting,
    /// is applied as any refund is; the rest wait for the next run.
    async fn settle_parked(&self, festival_id: Uuid) -> ApiResult<()> {
        let parked = store::card_refunds::parked(&mut *self.pool.acquire().await?, festival_id).await?;
        for p in parked {
            let mut tx = self.pool.begin().await?;
            if !store::card_refunds::unpark(&mut tx, &p.reversal_id).await? {
                continue;
            }
            let now: DateTime<Utc> = self.now();
            let failed_since = store::card_refunds::status_of(&mut tx, &p.reversal_id)
                .await?
                .is_some_and(|(status, at)| status == CardRefundStatus::Failed.as_str() && at >= p.parked_at);
            if failed_since {
                // Ours, and the provider failed it after this word of it: it went back
                // into its wallet, and this refund paid nobody.
            } else if let Some(ours) = store::card_refunds::by_refund_id(&mut tx, p.payment_id, &p.reversal_id).await? {
                online::confirm_card_refund(&mut tx, &ours, &p.reversal_id, now).await.map_err(ApiError::internal)?;
            } else if store::card_refunds::unanswered(&mut tx, p.payment_id).await? {
                continue; // rolled back: still parked
            } else {
                online::apply_reversal(&mut tx, p.payment_id, festival_id, &p.reversal_id, p.amount_minor, now)
                    .await
                    .map_err(ApiError::internal)?;
            }
            tx.commit().await?;
        }
        Ok(())
    }
}

/// What became of a booked refund.
enum Sent {
    Taken,
    Refused,
    /// Payments unreachable, or our own mistake: it stays booked for the next run.
    Later,
}

/// How a booking is named in its refund's reason at payments.
fn tag(id: Uuid) -> String {
    format!("[card-refund {id}]")
}

/// Payments' refund id as reversals are keyed (see `crate::online`).
fn refund_key(payments_id: &str) -> String {
    format!("{REFUND}{payments_id}")
}

fn list(payment: Uuid) -> pay::ListRefundsRequest {
    pay::ListRefundsRequest { payment_id: payment.to_string() }
}

/// Refunds grouped by their payment, in payment order.
fn by_payment(refunds: Vec<CardRefundRow>) -> BTreeMap<Uuid, Vec<CardRefundRow>> {
    let mut grouped: BTreeMap<Uuid, Vec<CardRefundRow>> = BTreeMap::new();
    for r in refunds {
        grouped.entry(r.payment_id).or_default().push(r);
    }
    grouped
}

/// Payments did not answer (or the organiser's token ran out or lost its role mid-run):
/// the next run asks again.
fn retryable(e: &ApiError) -> bool {
    e.code.code == codes::PAYMENT_PROVIDER_UNAVAILABLE.code || e.code.http >= 500 || matches!(e.code.http, 401 | 403)
}
