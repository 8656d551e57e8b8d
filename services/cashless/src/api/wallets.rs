//! Wallets and the wristbands bound to them.

use festival_platform::auth::Principal;
use festival_platform::nfc;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::cashless::v1 as pb;
use sqlx::PgConnection;

use super::{BAND_BINDERS, BAND_BLOCKERS, CashlessApi, WALLET_READERS, convert, proof, uid};
use crate::domain::limits::{festival_day, spent_on};
use crate::store::{self, wallets::WalletRow, wallets::WalletStatus};

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
}
