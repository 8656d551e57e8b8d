//! Money in and between wallets: top-ups at a cashier's desk, transfers, organisers'
//! corrections, and a wallet's statement. Each runs in one transaction: the idempotency
//! key is claimed first, the wallets are locked (in id order), the rules checked against
//! the locked balances, then the balances, the posting and its event are written.

use festival_platform::auth::{Principal, Role};
use festival_platform::events::outbox::Queued;
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, page_token, validate};
use festival_proto::cashless::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{CashlessApi, amount, convert, currency, uid};
use crate::domain::ledger::{AccountKind, Posting};
use crate::store::{self, ledger::Meta, ledger::TxRow, wallets::WalletRow, wallets::WalletStatus};

/// A locked, active wallet.
pub(super) async fn locked_active(conn: &mut PgConnection, id: Uuid) -> ApiResult<WalletRow> {
    let wallet = store::wallets::lock(conn, id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
    if wallet.status != WalletStatus::Active {
        return Err(ApiError::new(codes::WALLET_CLOSED));
    }
    Ok(wallet)
}

/// A wallet holds its festival's currency (program does not change a festival's
/// currency; should it ever, old wallets stop moving rather than mix currencies).
fn same_currency(wallet: &WalletRow, festival: &str) -> ApiResult<()> {
    if wallet.currency != festival {
        return Err(
            ApiError::new(codes::CURRENCY_MISMATCH).with_message(format!("This wallet holds {}", wallet.currency))
        );
    }
    Ok(())
}

/// Writes the posting (balances already moved) and reads it back as stored.
pub(super) async fn book(
    conn: &mut PgConnection,
    posting: &Posting,
    meta: Meta<'_>,
    balance_after: i64,
    counterpart_after: Option<i64>,
) -> ApiResult<TxRow> {
    let row = TxRow {
        id: meta.id,
        festival_id: meta.festival_id,
        kind: posting.kind,
        currency: meta.currency.to_owned(),
        amount_minor: posting.amount,
        wallet_id: posting.wallet,
        wallet_change_minor: posting.wallet_change,
        balance_after_minor: balance_after,
        counterpart_id: meta.counterpart_id,
        counterpart_balance_after_minor: counterpart_after,
        actor_id: meta.actor_id,
        reason: meta.reason.to_owned(),
        created_at: meta.at,
        idempotency_key: None,
        charge_day: None,
        day_spent_after_minor: None,
        daily_cap_minor: None,
        credit_change_minor: 0,
    };
    let event = Queued::new(&convert::recorded(&row));
    store::ledger::post(conn, posting, &meta, balance_after, counterpart_after, &event).await?;
    Ok(row)
}

impl CashlessApi {
    pub(super) async fn top_up(&self, caller: Principal, mut req: pb::TopUpRequest) -> ApiResult<pb::Transaction> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let uid = uid("uid", &req.uid)?.to_hex();
        // A retry spelling the UID otherwise is the same request.
        req.uid.clone_from(&uid);
        let value = amount("amount_minor", req.amount_minor)?;
        let method = validate::known_enum::<pb::TopUpMethod>("method", req.method, false)?
            .ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "method", "is required"))?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let card_reference = match method {
            pb::TopUpMethod::Card => validate::plain_text(
                "card_reference",
                validate::required("card_reference", &req.card_reference, 100)?,
                false,
            )?,
            _ => {
                if !req.card_reference.is_empty() {
                    return Err(ApiError::field(codes::VALIDATION_FAILED, "card_reference", "is for card top-ups"));
                }
                ""
            }
        };
        caller.require_any(festival_id, &[Role::Cashier, Role::Organizer])?;

        let mut tx = self.pool.begin().await?;
        // The key first: a retry answers what its first call did, though the festival
        // or the band changed since (a cashier must never hand cash back for a top-up
        // that was made).
        let fresh =
            match idempotency::claim::<pb::Transaction>(&mut tx, "cashless.TopUp", caller.user_id, key, &req).await? {
                Claim::Replay(answer) => return Ok(answer),
                Claim::Fresh(fresh) => fresh,
            };
        let festival = Self::open_festival(&mut tx, festival_id).await?;
        currency("currency", &req.currency, &festival.currency)?;
        let band =
            store::wallets::band(&mut tx, festival_id, &uid).await?.ok_or(ApiError::new(codes::WRISTBAND_UNKNOWN))?;
        if band.status != store::wallets::BandStatus::Active {
            return Err(ApiError::new(codes::WRISTBAND_BLOCKED));
        }
        let wallet = locked_active(&mut tx, band.wallet_id).await?;
        if wallet.user_id == Some(caller.user_id) {
            return Err(ApiError::new(codes::INSUFFICIENT_PERMISSIONS)
                .with_message("A cashier does not load their own wallet; another cashier does"));
        }
        same_currency(&wallet, &festival.currency)?;
        let limits = store::settings::get(&mut tx, festival_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        limits.top_up(value, wallet.balance_minor)?;
        // Cash lands in the drawer of the cashier's open shift (share-locked: the shift
        // cannot close meanwhile; without one, ERR_8021: cash nobody counts is cash that
        // goes missing), card money in the cashier's card clearing account: each
        // reconciles with what that cashier took.
        let till = if method == pb::TopUpMethod::Cash {
            store::shifts::open_of(&mut tx, festival_id, caller.user_id)
                .await?
                .ok_or(ApiError::new(codes::SHIFT_NOT_OPEN))?
                .drawer_account
        } else {
            store::accounts::ensure(
                &mut tx,
                festival_id,
                AccountKind::CardClearing,
                Some(caller.user_id),
                &festival.currency,
            )
            .await?
        };
        let posting = Posting::top_up(wallet.id, till, value);
        let after = store::wallets::apply_change(&mut tx, wallet.id, posting.wallet_change).await?;
        let meta = Meta {
            id: Uuid::now_v7(),
            festival_id,
            currency: &festival.currency,
            counterpart_id: None,
            actor_id: caller.user_id,
            reason: card_reference,
            at: self.now(),
        };
        let row = book(&mut tx, &posting, meta, after, None).await?;
        let answer = convert::transaction(&row, wallet.id);
        fresh.complete(&mut tx, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    pub(super) async fn transfer(&self, caller: Principal, req: pb::TransferRequest) -> ApiResult<pb::Transaction> {
        let from_id = validate::uuid("wallet_id", &req.wallet_id)?;
        let to_id = validate::uuid("to_wallet_id", &req.to_wallet_id)?;
        if from_id == to_id {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "to_wallet_id", "must be another wallet"));
        }
        let value = amount("amount_minor", req.amount_minor)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;

        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::Transaction>(&mut tx, "cashless.Transfer", caller.user_id, key, &req)
            .await?
        {
            Claim::Replay(answer) => return Ok(answer),
            Claim::Fresh(fresh) => fresh,
        };
        let from = store::wallets::find(&mut tx, from_id).await?;
        let Some(from) = from.filter(|w| w.user_id == Some(caller.user_id)) else {
            return Err(ApiError::new(codes::NOT_FOUND));
        };
        record_festival(from.festival_id);
        let festival = Self::open_festival(&mut tx, from.festival_id).await?;
        currency("currency", &req.currency, &festival.currency)?;
        // The receiving wallet is looked at (not locked) before anything is said about
        // it: a wallet of another festival, or none, is one and the same refusal.
        let unknown = || ApiError::field(codes::NOT_FOUND, "to_wallet_id", "no such wallet at this festival");
        match store::wallets::find(&mut tx, to_id).await? {
            Some(to) if to.festival_id == from.festival_id => {}
            _ => return Err(unknown()),
        }
        // Both rows locked in id order, so two opposite transfers cannot deadlock.
        let (first, second) = if from_id < to_id { (from_id, to_id) } else { (to_id, from_id) };
        let a = store::wallets::lock(&mut tx, first).await?.ok_or_else(unknown)?;
        let b = store::wallets::lock(&mut tx, second).await?.ok_or_else(unknown)?;
        let (from, to) = if a.id == from_id { (a, b) } else { (b, a) };
        if from.status != WalletStatus::Active {
            return Err(ApiError::new(codes::WALLET_CLOSED));
        }
        same_currency(&from, &festival.currency)?;
        if from.balance_minor < value {
            return Err(ApiError::new(codes::INSUFFICIENT_BALANCE));
        }
        let limits = store::settings::get(&mut tx, from.festival_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        // Whatever keeps the receiver from taking it (closed, full), the sender hears the
        // same: the receiver's balance is not the sender's business.
        if to.status != WalletStatus::Active
            || to.currency != from.currency
            || to.balance_minor.saturating_add(value) > limits.max_balance_minor
        {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "to_wallet_id", "cannot receive this transfer"));
        }
        let posting = Posting::transfer(from.id, to.id, value);
        store::wallets::move_online(&mut tx, &from, to.id, value).await?;
        let from_after = store::wallets::apply_change(&mut tx, from.id, -value).await?;
        let to_after = store::wallets::apply_change(&mut tx, to.id, value).await?;
        let meta = Meta {
            id: Uuid::now_v7(),
            festival_id: from.festival_id,
            currency: &festival.currency,
            counterpart_id: Some(to.id),
            actor_id: caller.user_id,
            reason: "",
            at: self.now(),
        };
        let row = book(&mut tx, &posting, meta, from_after, Some(to_after)).await?;
        let answer = convert::transaction(&row, from.id);
        fresh.complete(&mut tx, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    /// An organiser's correction, with its reason, recorded against them.
    pub(super) async fn correct(&self, caller: Principal, req: pb::CorrectRequest) -> ApiResult<pb::Transaction> {
        let wallet_id = validate::uuid("wallet_id", &req.wallet_id)?;
        let change = req.amount_minor;
        if change == 0 || amount("amount_minor", change.saturating_abs()).is_err() {
            return Err(ApiError::field(
                codes::VALIDATION_FAILED,
                "amount_minor",
                "must be a non-zero amount of minor units",
            ));
        }
        let reason = validate::plain_text("reason", validate::required("reason", &req.reason, 500)?, true)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;

        let mut tx = self.pool.begin().await?;
        let wallet = store::wallets::find(&mut tx, wallet_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(wallet.festival_id);
        if caller.require(wallet.festival_id, Role::Organizer).is_err() {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        let fresh = match idempotency::claim::<pb::Transaction>(&mut tx, "cashless.Correct", caller.user_id, key, &req)
            .await?
        {
            Claim::Replay(answer) => return Ok(answer),
            Claim::Fresh(fresh) => fresh,
        };
        let festival = Self::festival(&mut tx, wallet.festival_id).await?;
        currency("currency", &req.currency, &festival.currency)?;
        let wallet = locked_active(&mut tx, wallet_id).await?;
        same_currency(&wallet, &festival.currency)?;
        if wallet.balance_minor.saturating_add(change) < 0 {
            return Err(ApiError::new(codes::INSUFFICIENT_BALANCE));
        }
        let corrections =
            store::accounts::ensure(&mut tx, wallet.festival_id, AccountKind::Corrections, None, &festival.currency)
                .await?;
        let posting = Posting::correction(wallet.id, corrections, change);
        let after = store::wallets::apply_change(&mut tx, wallet.id, change).await?;
        let meta = Meta {
            id: Uuid::now_v7(),
            festival_id: wallet.festival_id,
            currency: &festival.currency,
            counterpart_id: None,
            actor_id: caller.user_id,
            reason,
            at: self.now(),
        };
        let row = book(&mut tx, &posting, meta, after, None).await?;
        tracing::info!(wallet = %wallet.id, change, by = %caller.user_id, reason, "wallet corrected");
        let answer = convert::transaction(&row, wallet.id);
        fresh.complete(&mut tx, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    pub(super) async fn list_transactions(
        &self,
        caller: Principal,
        req: pb::ListTransactionsRequest,
    ) -> ApiResult<pb::ListTransactionsResponse> {
        let wallet_id = validate::uuid("wallet_id", &req.wallet_id)?;
        let size = validate::page_size("page_size", req.page_size, 50, 200)?;
        let scope = format!("cashless.ListTransactions:{wallet_id}");
        let after = page_token::decode(&scope, &req.page_token)?;
        let mut conn = self.pool.acquire().await?;
        let wallet = Self::visible_wallet(&mut conn, &caller, wallet_id, super::WALLET_READERS).await?;
        record_festival(wallet.festival_id);
        let mut rows = store::ledger::page(&mut conn, wallet_id, after, i64::from(size) + 1).await?;
        let next_page_token = page_token::next_page(&mut rows, size as usize, &scope, |r| (r.created_at, r.id));
        Ok(pb::ListTransactionsResponse {
            transactions: rows.iter().map(|r| convert::transaction(r, wallet_id)).collect(),
            next_page_token,
        })
    }
}
