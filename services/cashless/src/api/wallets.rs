//! Wallets and the wristbands bound to them.

use chrono::Datelike;
use festival_platform::auth::{Principal, Role};
use festival_platform::idempotency::{self, Claim};
use festival_platform::nfc;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::cashless::v1 as pb;
use sqlx::PgConnection;

use super::money::{book, locked_active};
use super::{BAND_BINDERS, BAND_BLOCKERS, CashlessApi, WALLET_READERS, convert, proof, uid};

/// Who may record a holder's date of birth from an identity document.
const AGE_CHECKERS: &[Role] = &[Role::Organizer, Role::Cashier, Role::Staff, Role::Security];
use crate::domain::ledger::{AccountKind, Posting};
use crate::domain::limits::{festival_day, spent_on};
use crate::domain::{age, claims};
use crate::store::{self, ledger::Meta, wallets::BandStatus, wallets::WalletRow, wallets::WalletStatus};

impl CashlessApi {
    /// The wallet as its holder sees it: balance, today's spending, bands.
    async fn wallet_message(&self, conn: &mut PgConnection, w: &WalletRow) -> ApiResult<pb::Wallet> {
        let bands = store::wallets::bands(conn, w.id).await?;
        let time_zone = store::festivals::find(conn, w.festival_id).await?.map(|f| f.time_zone).unwrap_or_default();
        let today = festival_day(self.clock.now(), &time_zone);
        Ok(convert::wallet(w, &bands, spent_on(today, w.spent_day, w.spent_today_minor), today))
    }

    /// The festival's calendar day now (for age levels).
    async fn today(&self, conn: &mut PgConnection, festival: uuid::Uuid) -> ApiResult<chrono::NaiveDate> {
        let time_zone = store::festivals::find(conn, festival).await?.map(|f| f.time_zone).unwrap_or_default();
        Ok(festival_day(self.clock.now(), &time_zone))
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

    /// Box office: a wallet without a holder, bound to a tapped band, and its claim code.
    pub(super) async fn open_anonymous_wallet(
        &self,
        caller: Principal,
        mut req: pb::OpenAnonymousWalletRequest,
    ) -> ApiResult<pb::AnonymousWallet> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let uid = uid("uid", &req.uid)?;
        let tap = proof(&req.tap_proof)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?.to_owned();
        req.uid = uid.to_hex();
        req.tap_proof.make_ascii_lowercase();
        caller.require_any(festival_id, &[Role::Cashier, Role::Organizer])?;

        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::AnonymousWallet>(
            &mut tx,
            "cashless.OpenAnonymousWallet",
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
        let keys = self.keys.get(&mut tx, festival_id).await.map_err(ApiError::internal)?;
        let challenge = nfc::bind_challenge(festival_id.as_bytes(), uuid::Uuid::nil().as_bytes());
        if keys.master.wristband_key(&uid).verify(&challenge, &tap).is_err() {
            return Err(ApiError::new(codes::TAP_PROOF_INVALID));
        }
        let uid = uid.to_hex();
        if store::wallets::band(&mut tx, festival_id, &uid).await?.is_some() {
            return Err(ApiError::new(codes::WRISTBAND_ALREADY_BOUND));
        }
        let (code, stored) = claims::new_code();
        let now = self.now();
        let wallet_id = store::wallets::open_anonymous(&mut tx, festival_id, &festival.currency, now, &stored).await?;
        if !store::wallets::bind(&mut tx, festival_id, &uid, wallet_id, now, caller.user_id).await? {
            return Err(ApiError::new(codes::WRISTBAND_ALREADY_BOUND));
        }
        let wallet = store::wallets::find(&mut tx, wallet_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let answer =
            pb::AnonymousWallet { wallet: Some(self.wallet_message(&mut tx, &wallet).await?), claim_code: code };
        // The code itself is not kept, not even as the key's answer: a retry answers the
        // wallet without it (ReissueClaimCode prints a new one).
        fresh.complete(&mut tx, &pb::AnonymousWallet { claim_code: String::new(), ..answer.clone() }).await?;
        tx.commit().await?;
        tracing::info!(festival = %festival_id, wallet = %wallet_id, by = %caller.user_id, "anonymous wallet opened");
        Ok(answer)
    }

    /// A new claim code for an anonymous wallet not claimed yet (the band tapped at the
    /// desk: the receipt was lost, or the opening answer was).
    pub(super) async fn reissue_claim_code(
        &self,
        caller: Principal,
        req: pb::ReissueClaimCodeRequest,
    ) -> ApiResult<pb::AnonymousWallet> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let uid = uid("uid", &req.uid)?;
        let tap = proof(&req.tap_proof)?;
        caller.require_any(festival_id, &[Role::Cashier, Role::Organizer])?;
        let mut tx = self.pool.begin().await?;
        Self::festival(&mut tx, festival_id).await?;
        let keys = self.keys.get(&mut tx, festival_id).await.map_err(ApiError::internal)?;
        let challenge = nfc::bind_challenge(festival_id.as_bytes(), uuid::Uuid::nil().as_bytes());
        if keys.master.wristband_key(&uid).verify(&challenge, &tap).is_err() {
            return Err(ApiError::new(codes::TAP_PROOF_INVALID));
        }
        let band = store::wallets::band(&mut tx, festival_id, &uid.to_hex())
            .await?
            .ok_or(ApiError::new(codes::CLAIM_INVALID))?;
        let wallet = store::wallets::lock(&mut tx, band.wallet_id).await?.ok_or(ApiError::new(codes::CLAIM_INVALID))?;
        let claimable = store::wallets::claim_hash(&mut tx, wallet.id).await?.is_some();
        if wallet.user_id.is_some() || wallet.status != WalletStatus::Active || !claimable {
            return Err(ApiError::new(codes::CLAIM_INVALID));
        }
        let (code, stored) = claims::new_code();
        store::wallets::set_claim_hash(&mut tx, wallet.id, &stored).await?;
        let answer =
            pb::AnonymousWallet { wallet: Some(self.wallet_message(&mut tx, &wallet).await?), claim_code: code };
        tx.commit().await?;
        tracing::info!(festival = %festival_id, wallet = %wallet.id, by = %caller.user_id, "claim code reissued");
        Ok(answer)
    }

    /// The bearer of a band and its claim code makes its anonymous wallet theirs.
    pub(super) async fn claim_wallet(&self, caller: Principal, req: pb::ClaimWalletRequest) -> ApiResult<pb::Wallet> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let uid = uid("uid", &req.uid)?.to_hex();
        let invalid = || ApiError::new(codes::CLAIM_INVALID);
        let code = claims::normalise(validate::max_len("claim_code", &req.claim_code, 40)?).ok_or_else(invalid)?;

        let mut tx = self.pool.begin().await?;
        Self::festival(&mut tx, festival_id).await?;
        let Some(band) = store::wallets::band(&mut tx, festival_id, &uid).await? else {
            return Err(invalid());
        };
        // Both wallets locked in id order, as transfers lock them, so a claim and a
        // transfer between the two cannot deadlock.
        let own = store::wallets::of_holder(&mut tx, festival_id, caller.user_id).await?.map(|w| w.id);
        let mut ids: Vec<uuid::Uuid> = own.into_iter().chain([band.wallet_id]).collect();
        ids.sort();
        ids.dedup();
        for id in &ids {
            store::wallets::lock(&mut tx, *id).await?;
        }
        let anonymous = store::wallets::find(&mut tx, band.wallet_id).await?.ok_or_else(invalid)?;
        let hash = store::wallets::claim_hash(&mut tx, anonymous.id).await?;
        // Whoever sold or loaded the wallet does not claim it (a cashier could otherwise
        // load a spare band without taking cash and keep it).
        if band.bound_by == caller.user_id
            || store::wallets::topped_up_by(&mut tx, anonymous.id, caller.user_id).await?
        {
            return Err(ApiError::new(codes::INSUFFICIENT_PERMISSIONS)
                .with_message("Whoever sold or loaded a box-office wallet does not claim it"));
        }
        // A claimed, closed or holder's wallet and a wrong code answer the same.
        if anonymous.user_id.is_some()
            || anonymous.status != WalletStatus::Active
            || hash.as_deref() != Some(claims::hash(&code).as_slice())
        {
            return Err(invalid());
        }
        let now = self.now();
        let claimed = match own {
            None => {
                if !store::wallets::claim(&mut tx, anonymous.id, caller.user_id, now).await? {
                    return Err(ApiError::new(codes::CONCURRENT_UPDATE));
                }
                anonymous.id
            }
            Some(own) => {
                let own = locked_active(&mut tx, own).await?;
                let value = anonymous.balance_minor;
                if value > 0 {
                    let posting = Posting::transfer(anonymous.id, own.id, value);
                    store::wallets::move_online(&mut tx, &anonymous, own.id, value).await?;
                    let left = store::wallets::apply_change(&mut tx, anonymous.id, -value).await?;
                    let after = store::wallets::apply_change(&mut tx, own.id, value).await?;
                    let meta = Meta {
                        id: uuid::Uuid::now_v7(),
                        festival_id,
                        currency: &anonymous.currency,
                        counterpart_id: Some(own.id),
                        actor_id: caller.user_id,
                        reason: "claimed",
                        at: now,
                    };
                    book(&mut tx, &posting, meta, left, Some(after)).await?;
                }
                // Its non-refundable credit goes along, as credit.
                if anonymous.credit_minor > 0 {
                    let currency = &anonymous.currency;
                    let from = store::accounts::ensure(
                        &mut tx,
                        festival_id,
                        AccountKind::Credit,
                        Some(anonymous.id),
                        currency,
                    )
                    .await?;
                    let to = store::accounts::ensure(&mut tx, festival_id, AccountKind::Credit, Some(own.id), currency)
                        .await?;
                    let posting = Posting::credit_move(anonymous.id, from, to, anonymous.credit_minor);
                    store::wallets::add_credit(&mut tx, anonymous.id, -anonymous.credit_minor).await?;
                    store::wallets::add_credit(&mut tx, own.id, anonymous.credit_minor).await?;
                    let meta = Meta {
                        id: uuid::Uuid::now_v7(),
                        festival_id,
                        currency,
                        // Not a transfer of money to it: the claimed wallet's record only.
                        counterpart_id: None,
                        actor_id: caller.user_id,
                        reason: "claimed (credit)",
                        at: now,
                    };
                    let balance = store::wallets::find(&mut tx, anonymous.id).await?.map_or(0, |w| w.balance_minor);
                    book(&mut tx, &posting, meta, balance, None).await?;
                }
                store::wallets::merge_claimed(&mut tx, anonymous.id, own.id, caller.user_id, now).await?;
                own.id
            }
        };
        let wallet = store::wallets::find(&mut tx, claimed).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let message = self.wallet_message(&mut tx, &wallet).await?;
        tx.commit().await?;
        tracing::info!(festival = %festival_id, wallet = %anonymous.id, by = %caller.user_id, "anonymous wallet claimed");
        Ok(message)
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
        Ok(convert::band(&band, self.today(&mut conn, wallet.festival_id).await?))
    }

    /// Staff read a band's wearer's date of birth from an identity document. Correcting
    /// a recorded one is an organiser's (a bar's staff must not make a minor an adult),
    /// and nobody verifies a band of their own wallet. The answer is the level only.
    pub(super) async fn verify_age(&self, caller: Principal, req: pb::VerifyAgeRequest) -> ApiResult<pb::AgeCheck> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let uid = uid("uid", &req.uid)?.to_hex();
        let birth = chrono::NaiveDate::parse_from_str(req.birth_date.trim(), "%Y-%m-%d")
            .map_err(|_| ApiError::field(codes::VALIDATION_FAILED, "birth_date", "must be YYYY-MM-DD"))?;
        if birth > self.now().date_naive() || birth.year() < 1900 {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "birth_date", "must be a date of birth"));
        }
        caller.require_any(festival_id, AGE_CHECKERS)?;
        let mut tx = self.pool.begin().await?;
        let band =
            store::wallets::band(&mut tx, festival_id, &uid).await?.ok_or(ApiError::new(codes::WRISTBAND_UNKNOWN))?;
        let wallet = store::wallets::find(&mut tx, band.wallet_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if wallet.user_id == Some(caller.user_id) {
            return Err(ApiError::new(codes::INSUFFICIENT_PERMISSIONS)
                .with_message("Someone else checks the identity of your wallet's wearers"));
        }
        // Whatever the date given: no answer tells a recorded date apart.
        if band.birth_date.is_some() && caller.require(festival_id, Role::Organizer).is_err() {
            return Err(ApiError::new(codes::INSUFFICIENT_PERMISSIONS)
                .with_message("A recorded date of birth is corrected by an organiser"));
        }
        store::wallets::verify_age(&mut tx, festival_id, &uid, birth, self.now(), caller.user_id).await?;
        let today = self.today(&mut tx, festival_id).await?;
        tx.commit().await?;
        tracing::info!(festival = %festival_id, uid = %uid, by = %caller.user_id, "age verified");
        Ok(pb::AgeCheck { uid, age_level: age::shown_level(Some(birth), today) })
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
        Ok(convert::band(&blocked, self.today(&mut conn, festival_id).await?))
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
        // The same wearer: the new band keeps the date of birth checked for the old one.
        store::wallets::copy_age(&mut tx, festival_id, &old_uid, &new_uid).await?;
        let old = store::wallets::block(&mut tx, festival_id, &old_uid, &reason, now, caller.user_id)
            .await?
            .ok_or_else(unknown)?;
        let new = store::wallets::band(&mut tx, festival_id, &new_uid).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let today = self.today(&mut tx, festival_id).await?;

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
            old_wristband: Some(convert::band(&old, today)),
            new_wristband: Some(convert::band(&new, today)),
            fee,
        };
        fresh.complete(&mut tx, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }
}
