//! Voiding a sale: a supervisor books a charge back, within the festival's void window,
//! once. The void is the charge's own entries reversed, so an offline charge's loss
//! share returns to the loss account and the vendor gives back all it was credited.

use chrono::Duration;
use festival_platform::auth::{GateCaller, Role};
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::cashless::v1 as pb;
use uuid::Uuid;

use super::money::{book, locked_active};
use super::{CashlessApi, convert};
use crate::domain::ledger::{AccountKind, Posting, TxKind};
use crate::store::{self, ledger::Meta};

impl CashlessApi {
    pub(super) async fn void_charge(
        &self,
        caller: GateCaller,
        req: pb::VoidChargeRequest,
    ) -> ApiResult<pb::Transaction> {
        let charge_id = validate::uuid("transaction_id", &req.transaction_id)?;
        let reason = validate::plain_text("reason", validate::required("reason", &req.reason, 500)?, true)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;

        let mut tx = self.pool.begin().await?;
        let fresh =
            match idempotency::claim::<pb::Transaction>(&mut tx, "cashless.VoidCharge", caller.actor_id(), key, &req)
                .await?
            {
                Claim::Replay(answer) => return Ok(answer),
                Claim::Fresh(fresh) => fresh,
            };
        // Someone who may not void at the charge's festival learns nothing of it.
        let charge = store::ledger::find(&mut tx, charge_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(charge.festival_id);
        if caller.require(charge.festival_id, &[Role::Organizer, Role::Cashier, Role::Staff]).is_err() {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        if !caller.is_supervisor(charge.festival_id, Role::Organizer) {
            return Err(ApiError::new(codes::INSUFFICIENT_PERMISSIONS).with_message("Only a supervisor voids a sale"));
        }
        // A bar's supervisor terminal voids its own vendor's sales.
        if let Some(device) = caller.device() {
            let terminal = store::terminals::find(&mut tx, charge.festival_id, device.id).await?;
            let Some(terminal) = terminal.filter(|t| Some(t.vendor_id) == charge.counterpart_id) else {
                return Err(ApiError::new(codes::NOT_FOUND));
            };
            // A stolen or retired supervisor terminal voids nothing, whatever its token.
            if terminal.revoked_at.is_some() {
                return Err(ApiError::new(codes::DEVICE_REVOKED));
            }
        }
        if charge.kind != TxKind::Payment {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "transaction_id", "only a sale can be voided"));
        }
        let limits = store::settings::get(&mut tx, charge.festival_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let now = self.now();
        if now >= charge.created_at + Duration::seconds(limits.void_window_seconds) {
            return Err(ApiError::new(codes::VOID_WINDOW_CLOSED)
                .with_message(format!("A sale is voided within {} seconds", limits.void_window_seconds)));
        }
        // Under the wallet's lock: two voids of one sale are one after the other.
        let wallet = locked_active(&mut tx, charge.wallet_id).await?;
        if store::ledger::void_of(&mut tx, charge.id).await?.is_some() {
            return Err(ApiError::new(codes::ALREADY_VOIDED));
        }
        let entries = store::ledger::entries(&mut tx, charge.id).await?;
        let original = Posting {
            kind: charge.kind,
            amount: charge.amount_minor,
            wallet: charge.wallet_id,
            wallet_change: charge.wallet_change_minor,
            entries,
        };
        let posting = Posting::void(&original);
        let after = store::wallets::apply_change(&mut tx, wallet.id, posting.wallet_change).await?;
        // The credit the sale spent goes back to the wallet's credit, not to its money.
        let credit = store::accounts::ensure(
            &mut tx,
            charge.festival_id,
            AccountKind::Credit,
            Some(wallet.id),
            &charge.currency,
        )
        .await?;
        let credit_back: i64 = posting.entries.iter().filter(|e| e.account == credit).map(|e| -e.amount).sum();
        if credit_back > 0 {
            store::wallets::add_credit(&mut tx, wallet.id, credit_back).await?;
        }
        let meta = Meta {
            id: Uuid::now_v7(),
            festival_id: charge.festival_id,
            currency: &charge.currency,
            counterpart_id: charge.counterpart_id,
            actor_id: caller.actor_id(),
            reason,
            at: now,
        };
        let row = book(&mut tx, &posting, meta, after, None).await?;
        let row = store::ledger::TxRow { credit_change_minor: credit_back, ..row };
        if !store::ledger::record_void(&mut tx, charge.id, row.id, charge.festival_id, reason, caller.actor_id(), now)
            .await?
        {
            return Err(ApiError::new(codes::ALREADY_VOIDED));
        }
        tracing::info!(charge = %charge.id, void = %row.id, by = %caller.actor_id(), reason, "sale voided");
        let answer = convert::transaction(&row, wallet.id);
        fresh.complete(&mut tx, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }
}
