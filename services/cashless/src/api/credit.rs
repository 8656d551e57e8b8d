//! Non-refundable credit: promotional credit and staff drink tokens. Each kind is issued
//! from its own account of the festival (PROMO, STAFF_TOKENS) into the wallet's own CREDIT
//! account, beside its balance. The stated rule: a connected terminal's charge spends
//! credit first, then the holder's money (`store::ledger::charge`); credit is never paid
//! out, transferred, refunded to a card or spent offline (offline terminals charge the
//! balance only), and a voided sale gives back the credit it spent.

use festival_platform::auth::{Principal, Role};
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::cashless::v1 as pb;
use uuid::Uuid;

use super::money::{book, locked_active};
use super::{CashlessApi, amount, convert, currency};
use crate::domain::ledger::{AccountKind, Posting};
use crate::store::{self, ledger::Meta};

impl CashlessApi {
    pub(super) async fn grant_credit(
        &self,
        caller: Principal,
        req: pb::GrantCreditRequest,
    ) -> ApiResult<pb::Transaction> {
        let wallet_id = validate::uuid("wallet_id", &req.wallet_id)?;
        let value = amount("amount_minor", req.amount_minor)?;
        let issuer = match validate::known_enum::<pb::CreditKind>("kind", req.kind, false)? {
            Some(pb::CreditKind::Promotion) => AccountKind::Promo,
            Some(pb::CreditKind::StaffDrinks) => AccountKind::StaffTokens,
            _ => return Err(ApiError::field(codes::REQUIRED_FIELD, "kind", "is required")),
        };
        let reason = validate::plain_text("reason", validate::required("reason", &req.reason, 200)?, false)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;

        let mut tx = self.pool.begin().await?;
        let wallet = store::wallets::find(&mut tx, wallet_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(wallet.festival_id);
        if caller.require(wallet.festival_id, Role::Organizer).is_err() {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        let fresh =
            match idempotency::claim::<pb::Transaction>(&mut tx, "cashless.GrantCredit", caller.user_id, key, &req)
                .await?
            {
                Claim::Replay(answer) => return Ok(answer),
                Claim::Fresh(fresh) => fresh,
            };
        let festival = Self::open_festival(&mut tx, wallet.festival_id).await?;
        currency("currency", &req.currency, &festival.currency)?;
        let wallet = locked_active(&mut tx, wallet_id).await?;
        if wallet.currency != festival.currency {
            return Err(ApiError::new(codes::CURRENCY_MISMATCH));
        }
        let limits = store::settings::get(&mut tx, wallet.festival_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        // Within what one wallet may hold, money and credit together.
        if wallet.balance_minor.saturating_add(wallet.credit_minor).saturating_add(value) > limits.max_balance_minor {
            return Err(ApiError::new(codes::BALANCE_LIMIT_EXCEEDED)
                .with_message(format!("A wallet holds at most {} (minor units)", limits.max_balance_minor)));
        }
        let credit = store::accounts::ensure(
            &mut tx,
            wallet.festival_id,
            AccountKind::Credit,
            Some(wallet.id),
            &wallet.currency,
        )
        .await?;
        let issuing = store::accounts::ensure(&mut tx, wallet.festival_id, issuer, None, &wallet.currency).await?;
        let posting = Posting::grant(wallet.id, credit, issuing, value);
        store::wallets::add_credit(&mut tx, wallet.id, value).await?;
        let meta = Meta {
            id: Uuid::now_v7(),
            festival_id: wallet.festival_id,
            currency: &wallet.currency,
            counterpart_id: None,
            actor_id: caller.user_id,
            reason,
            at: self.now(),
        };
        let row = book(&mut tx, &posting, meta, wallet.balance_minor, None).await?;
        let row = store::ledger::TxRow { credit_change_minor: value, ..row };
        tracing::info!(wallet = %wallet.id, value, kind = issuer.as_str(), by = %caller.user_id, reason, "credit granted");
        let answer = convert::transaction(&row, wallet.id);
        fresh.complete(&mut tx, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }
}
