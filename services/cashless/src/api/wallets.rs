//! Wallets and the wristbands bound to them.

use festival_platform::auth::Principal;
use festival_platform::idempotency::{self, Claim};
use festival_platform::nfc;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::cashless::v1 as pb;
use sqlx::PgConnection;

use super::money::{book, locked_active};
use super::{BAND_BINDERS, BAND_BLOCKERS, CashlessApi, WALLET_READERS, convert, proof, uid};
use crate::domain::ledger::{AccountKind, Posting};
use crate::domain::limits::{festival_day, spent_on};
use crate::store::{self, ledger::Meta, wallets::BandStatus, wallets::WalletRow, wallets::WalletStatus};

impl CashlessApi {
    /// The wallet as its holder sees it: balance, today's spending, bands.
    async fn wallet_message(&self, conn: &mut PgConnection, w: &WalletRow) -> ApiResult<pb::Wallet> {
        let bands = store::wallets::bands(conn, w.id).await?;
        let time_zone = store::festivals::find(conn, w.festival_id).await?.map(|f| f.time_zone).unwrap_or_default();
        let today = festival_day(self.clock.now(), &time_zone);
        Ok(convert::wallet(w, &bands, spent_on(today, w.spent_day, w.spent_today_minor)))
    }

    pub(super) async fn open_wallet(&self, caller: Principal, req: pb::OpenWalletRequest) -> ApiResult<pb::Wallet> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let mut conn = self.pool.acquire().await?;
        let festival = Self::open_festival(&mut conn, festival_id).await?;
        let existing = store::wallets::of_holder(&mut conn, festival_id, caller.user_id).await?;
        let wallet = match existing {
            Some(w) => w,
            None => {
                let opened =
                    store::wallets::open(&mut conn, festival_id, Some(caller.user_id), &festival.currency, self.now())
                        .await;
                match opened {
                    Ok(_) => {}
                    // A twin request opened it first.
                    Err(sqlx::Error::Database(e)) if e.constraint() == Some(store::wallets::HOLDER_UNIQUE) => {}
                    Err(e) => return Err(e.into()),
                }
                store::wallets::of_holder(&mut conn, festival_id, caller.user_id)
                    .await?
                    .ok_or(ApiError::new(codes::CONCURRENT_UPDATE))?
            }
        };
        self.wallet_message(&mut conn, &wallet).await
    }

    pub(super) async fn get_wallet(&self, caller: Principal, req: pb::GetWalletRequest) -> ApiResult<pb::Wallet> {
        let wallet_id = validate::uuid("wallet_id", &req.wallet_id)?;
        let mut conn = self.pool.acquire().await?;
        let wallet = Self::visible_wallet(&mut conn, &caller, wallet_id, WALLET_READERS).await?;
        record_festival(wallet.festival_id);
        self.wallet_message(&mut conn, &wallet).await
    }

    pub(super) async fn bind_wristband(
        &self,
        caller: Principal,
        req: pb::BindWristbandRequest,
    ) -> ApiResult<pb::Wristband> {
        let wallet_id = validate::uuid("wallet_id", &req.wallet_id)?;
        let uid = uid("uid", &req.uid)?;
        let tap = proof(&req.tap_proof)?;
        let mut conn = self.pool.acquire().await?;
        let wallet = Self::visible_wallet(&mut conn, &caller, wallet_id, BAND_BINDERS).await?;
        record_festival(wallet.festival_id);
        if wallet.status != WalletStatus::Active {
            return Err(ApiError::new(codes::WALLET_CLOSED));
        }
        // The band proves it is in the binder's hand: a UID read from afar binds nothing
        // (else anyone could bind bands handed out but not bound yet, and take what a
        // cashier loads on them).
        let keys = self.keys.get(&mut conn, wallet.festival_id).await.map_err(ApiError::internal)?;
        let challenge = nfc::bind_challenge(wallet.festival_id.as_bytes(), wallet.id.as_bytes());
        if keys.master.wristband_key(&uid).verify(&challenge, &tap).is_err() {
            return Err(ApiError::new(codes::TAP_PROOF_INVALID));
        }
        let uid = uid.to_hex();
        if !store::wallets::bind(&mut conn, wallet.festival_id, &uid, wallet.id, self.now(), caller.user_id).await? {
            return Err(ApiError::new(codes::WRISTBAND_ALREADY_BOUND));
        }
        let band =
            store::wallets::band(&mut conn, wallet.festival_id, &uid).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        Ok(convert::band(&band))
    }

    /// Blocking is never undone here: a found band is replaced, not unblocked (a thief
    /// who returns it must not get it working again).
    pub(super) async fn block_wristband(
        &self,
        caller: Principal,
        req: pb::BlockWristbandRequest,
    ) -> ApiResult<pb::Wristband> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let uid = uid("uid", &req.uid)?.to_hex();
        let reason = validate::plain_text("reason", validate::max_len("reason", &req.reason, 200)?, false)?;
        let mut conn = self.pool.acquire().await?;
        let band = store::wallets::band(&mut conn, festival_id, &uid).await?;
        // Staff may block any band; a holder only their own; others learn nothing.
        let allowed = match &band {
            Some(b) if caller.require_any(festival_id, BAND_BLOCKERS).is_ok() => Some(b),
            Some(b) => {
                let wallet = store::wallets::find(&mut conn, b.wallet_id).await?;
                wallet.filter(|w| w.user_id == Some(caller.user_id)).map(|_| b)
            }
            None => None,
        };
        if allowed.is_none() {
            return Err(ApiError::new(codes::WRISTBAND_UNKNOWN));
        }
        let blocked = store::wallets::block(&mut conn, festival_id, &uid, reason, self.now(), caller.user_id)
            .await?
            .ok_or(ApiError::new(codes::WRISTBAND_UNKNOWN))?;
        Ok(convert::band(&blocked))
    }

    /// A new band for a lost or broken one, on the same wallet: the balance never moves,
    /// so it cannot move twice. The old band is blocked and the new one bound under the
    /// wallet's lock (taken before the band's, as a payout takes them). A charge on the
    /// old band racing it is booked against the same wallet, under the same lock, or
    /// refused: every cent is counted once either way.
    pub(super) async fn replace_wristband(
        &self,
        caller: Principal,
        mut req: pb::ReplaceWristbandRequest,
    ) -> ApiResult<pb::ReplaceWristbandResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let old_uid = uid("old_uid", &req.old_uid)?.to_hex();
        let new = uid("new_uid", &req.new_uid)?;
        let new_uid = new.to_hex();
        if new_uid == old_uid {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "new_uid", "must be another wristband"));
        }
        let tap = proof(&req.new_tap_proof)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?.to_owned();
        // A retry spelling the UIDs or the proof otherwise is the same request.
        req.old_uid.clone_from(&old_uid);
        req.new_uid.clone_from(&new_uid);
        req.new_tap_proof.make_ascii_lowercase();

        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::ReplaceWristbandResponse>(
            &mut tx,
            "cashless.ReplaceWristband",
            caller.user_id,
            &key,
            &req,
        )
        .await?
        {
            Claim::Replay(answer) => return Ok(answer),
            Claim::Fresh(fresh) => fresh,
        };
        let festival = Self::open_festival(&mut tx, festival_id).await?;
        let unknown = || ApiError::field(codes::WRISTBAND_UNKNOWN, "old_uid", "no such wristband");
        let seen = store::wallets::band(&mut tx, festival_id, &old_uid).await?.ok_or_else(unknown)?;
        let wallet = store::wallets::find(&mut tx, seen.wallet_id).await?.ok_or_else(unknown)?;
        // Staff replace any band; a holder their own (the new band's tap proves it is in
        // their hand); others learn nothing.
        if wallet.user_id != Some(caller.user_id) && caller.require_any(festival_id, BAND_BINDERS).is_err() {
            return Err(unknown());
        }
        let wallet = locked_active(&mut tx, wallet.id).await?;
        let old = store::wallets::lock_band(&mut tx, festival_id, &old_uid).await?.ok_or_else(unknown)?;
        if old.wallet_id != wallet.id {
            return Err(ApiError::new(codes::CONCURRENT_UPDATE));
        }
        let keys = self.keys.get(&mut tx, festival_id).await.map_err(ApiError::internal)?;
        let challenge = nfc::bind_challenge(festival_id.as_bytes(), wallet.id.as_bytes());
        if keys.master.wristband_key(&new).verify(&challenge, &tap).is_err() {
            return Err(ApiError::field(codes::TAP_PROOF_INVALID, "new_tap_proof", "is not the new band's tap"));
        }
        let now = self.now();
        if !store::wallets::bind(&mut tx, festival_id, &new_uid, wallet.id, now, caller.user_id).await? {
            return Err(ApiError::field(codes::WRISTBAND_ALREADY_BOUND, "new_uid", "is not an unused wristband"));
        }
        let reason = if old.status == BandStatus::Active { format!("replaced by {new_uid}") } else { String::new() };
        let old = store::wallets::block(&mut tx, festival_id, &old_uid, &reason, now, caller.user_id)
            .await?
            .ok_or_else(unknown)?;
        let new = store::wallets::band(&mut tx, festival_id, &new_uid).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;

        // The fee, at most what the wallet holds: a replacement is never refused for it.
        let limits = store::settings::get(&mut tx, festival_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let fee = limits.replacement_fee_minor.min(wallet.balance_minor);
        let fee = if fee > 0 {
            let fees =
                store::accounts::ensure(&mut tx, festival_id, AccountKind::PlatformFees, None, &festival.currency)
                    .await?;
            let posting = Posting::fee(wallet.id, fees, fee);
            let after = store::wallets::apply_change(&mut tx, wallet.id, posting.wallet_change).await?;
            let meta = Meta {
                id: uuid::Uuid::now_v7(),
                festival_id,
                currency: &wallet.currency,
                counterpart_id: None,
                actor_id: caller.user_id,
                reason: "wristband replacement",
                at: now,
            };
            let row = book(&mut tx, &posting, meta, after, None).await?;
            Some(convert::transaction(&row, wallet.id))
        } else {
            None
        };
        tracing::info!(festival = %festival_id, old = %old_uid, new = %new_uid, by = %caller.user_id, "wristband replaced");
        let answer = pb::ReplaceWristbandResponse {
            old_wristband: Some(convert::band(&old)),
            new_wristband: Some(convert::band(&new)),
            fee,
        };
        fresh.complete(&mut tx, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }
}
