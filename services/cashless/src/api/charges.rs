//! The bars' hot path: a terminal charges a wristband. Two round trips when all is well:
//! one read (the band's wallet, the terminal's vendor, the festival's rules) and one
//! statement that moves the balance under the wallet's row lock, books the posting,
//! queues it for the journal, publishes its events and stores the idempotency key with
//! its answer. A refused or twin request learns why only then (the error path pays for
//! the diagnosis, not every tap).

use festival_platform::auth::GateCaller;
use festival_platform::events::outbox::Queued;
use festival_platform::idempotency::{self, Answered, Claim};
use festival_platform::nfc;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::cashless::v1 as pb;
use uuid::Uuid;

use super::{CashlessApi, amount, convert, currency, proof, uid};
use crate::domain::age;
use crate::domain::ledger::Posting;
use crate::domain::limits::{festival_day, spent_on};
use crate::store::{self, ledger::ChargeWrite, ledger::Charged, ledger::Meta, ledger::TxRow};

const COMMAND: &str = "cashless.Charge";

impl CashlessApi {
    pub(super) async fn charge(&self, caller: GateCaller, mut req: pb::ChargeRequest) -> ApiResult<pb::Transaction> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let uid = uid("uid", &req.uid)?;
        let value = amount("amount_minor", req.amount_minor)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?.to_owned();
        let key = key.as_str();
        if key.starts_with("offline:") {
            return Err(ApiError::field(
                codes::VALIDATION_FAILED,
                "idempotency_key",
                "offline: keys are the offline uploads'",
            ));
        }
        let tap = proof(&req.tap_proof)?;
        if !(0..=age::MAX_LEVEL).contains(&req.min_age) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "min_age", "must be an age level from 0 to 21"));
        }
        // Only a paired device charges: a person's token is no terminal.
        let device = match &caller {
            GateCaller::Device(d) if d.festival_id == festival_id => d.id,
            GateCaller::Device(_) => return Err(ApiError::new(codes::NOT_A_MEMBER)),
            GateCaller::Person(_) => return Err(ApiError::new(codes::TERMINAL_NOT_REGISTERED)),
        };
        let uid_hex = uid.to_hex();
        // A retry spelling the UID or the proof in another case is the same request.
        req.uid.clone_from(&uid_hex);
        req.tap_proof.make_ascii_lowercase();

        let mut conn = self.pool.acquire().await?;
        let Some(ctx) = store::ledger::charge_context(&mut conn, festival_id, &uid_hex, device).await? else {
            drop(conn);
            return self.replay_or(&req, device, key, ApiError::new(codes::WRISTBAND_UNKNOWN)).await;
        };
        currency("currency", &req.currency, &ctx.wallet_currency)?;
        let refused = if ctx.device_revoked {
            Some(ApiError::new(codes::DEVICE_REVOKED))
        } else if !ctx.festival_status.moves_money() {
            Some(ApiError::new(codes::FESTIVAL_NOT_ACTIVE))
        } else if ctx.vendor_id.is_none() || ctx.vendor_account.is_none() {
            Some(ApiError::new(codes::TERMINAL_NOT_REGISTERED))
        } else if ctx.band_status != store::wallets::BandStatus::Active {
            Some(ApiError::new(codes::WRISTBAND_BLOCKED))
        } else {
            None
        };
        if let Some(error) = refused {
            // The connection goes back first: the replay takes its own, and a pool
            // whose every connection waits for a second one waits forever.
            drop(conn);
            return self.replay_or(&req, device, key, error).await;
        }
        let (Some(vendor_id), Some(vendor_account)) = (ctx.vendor_id, ctx.vendor_account) else {
            return Err(ApiError::new(codes::TERMINAL_NOT_REGISTERED));
        };
        // The band proves itself: its MAC over this very charge, under its own key.
        let keys = self.keys.get(&mut conn, festival_id).await.map_err(ApiError::internal)?;
        let challenge = nfc::challenge(festival_id.as_bytes(), device.as_bytes(), key, value, &req.currency);
        if keys.master.wristband_key(&uid).verify(&challenge, &tap).is_err() {
            return Err(ApiError::new(codes::TAP_PROOF_INVALID));
        }

        let now = self.now();
        let day = festival_day(now, &ctx.time_zone);
        if !age::allowed(req.min_age, ctx.birth_date, day) {
            drop(conn);
            return self.replay_or(&req, device, key, ApiError::new(codes::AGE_RESTRICTED)).await;
        }
        let posting = Posting::payment(ctx.wallet_id, vendor_account, value);
        let meta = Meta {
            id: Uuid::now_v7(),
            festival_id,
            currency: &ctx.wallet_currency,
            counterpart_id: Some(vendor_id),
            actor_id: device,
            reason: "",
            at: now,
        };
        let row = TxRow {
            id: meta.id,
            festival_id,
            kind: posting.kind,
            currency: ctx.wallet_currency.clone(),
            amount_minor: value,
            wallet_id: ctx.wallet_id,
            wallet_change_minor: posting.wallet_change,
            balance_after_minor: 0,
            counterpart_id: Some(vendor_id),
            counterpart_balance_after_minor: None,
            actor_id: device,
            reason: String::new(),
            created_at: now,
            idempotency_key: Some(key.to_owned()),
            charge_day: Some(day),
            day_spent_after_minor: None,
            daily_cap_minor: None,
            credit_change_minor: 0,
        };
        let recorded = Queued::new(&convert::recorded(&row));
        let low = Queued::new(&pb::WalletLow {
            wallet_id: ctx.wallet_id.to_string(),
            festival_id: festival_id.to_string(),
            user_id: ctx.user_id.map(|u| u.to_string()).unwrap_or_default(),
            threshold_minor: ctx.low_balance_minor,
            currency: ctx.wallet_currency.clone(),
        });
        // The key's answer names the transaction; a replay reads it back as stored.
        let answer = Answered::new(
            COMMAND,
            device,
            key,
            &req,
            &pb::Transaction { id: meta.id.to_string(), ..Default::default() },
        );
        let stale_balance = if cfg!(feature = "race-hooks") {
            let balance = store::wallets::find(&mut conn, ctx.wallet_id).await?.map(|w| w.balance_minor).unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Some(balance)
        } else {
            None
        };
        let write = ChargeWrite {
            posting: &posting,
            meta,
            uid: &uid_hex,
            vendor_id,
            day,
            recorded: &recorded,
            low: &low,
            answer: &answer,
            stale_balance,
            credit_account: ctx.credit_account,
        };
        match store::ledger::charge(&mut conn, &write).await? {
            Charged::Done(booked) => {
                let row = TxRow {
                    wallet_change_minor: posting.wallet_change + booked.credit_spent,
                    credit_change_minor: -booked.credit_spent,
                    balance_after_minor: booked.balance_minor,
                    day_spent_after_minor: Some(booked.spent_today_minor),
                    daily_cap_minor: Some(booked.daily_cap_minor),
                    ..row
                };
                Ok(convert::transaction(&row, ctx.wallet_id))
            }
            Charged::KeyTaken => {
                drop(conn);
                self.replay_or(&req, device, key, ApiError::new(codes::CONCURRENT_UPDATE)).await
            }
            Charged::Refused => {
                drop(conn);
                let why = self.why_refused(&ctx, festival_id, &uid_hex, device, value, day).await?;
                self.replay_or(&req, device, key, why).await
            }
        }
    }

    /// Why the guarded write refused a charge, read after the fact.
    async fn why_refused(
        &self,
        ctx: &store::ledger::ChargeContext,
        festival_id: Uuid,
        uid: &str,
        device: Uuid,
        value: i64,
        day: chrono::NaiveDate,
    ) -> ApiResult<ApiError> {
        let wallet_id = ctx.wallet_id;
        let mut conn = self.pool.acquire().await?;
        // Revoked, or moved to another vendor, while the tap was being checked.
        if store::terminals::is_revoked(&mut conn, device).await? {
            return Ok(ApiError::new(codes::DEVICE_REVOKED));
        }
        let terminal = store::terminals::find(&mut conn, festival_id, device).await?;
        if terminal.is_none_or(|t| Some(t.vendor_id) != ctx.vendor_id) {
            return Ok(ApiError::new(codes::TERMINAL_NOT_REGISTERED));
        }
        // Blocked (or replaced) while the tap was being checked.
        let band = store::wallets::band(&mut conn, festival_id, uid).await?;
        if band.is_none_or(|b| b.status != store::wallets::BandStatus::Active || b.wallet_id != wallet_id) {
            return Ok(ApiError::new(codes::WRISTBAND_BLOCKED));
        }
        let wallet = store::wallets::find(&mut conn, wallet_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if wallet.status != store::wallets::WalletStatus::Active {
            return Ok(ApiError::new(codes::WALLET_CLOSED));
        }
        let limits = store::settings::get(&mut conn, festival_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        // Credit is spent first, so it counts towards what the wallet can pay.
        let spendable =
            wallet.balance_minor.saturating_add(if ctx.credit_account.is_some() { wallet.credit_minor } else { 0 });
        if let Err(e) = limits.charge(value, spendable, spent_on(day, wallet.spent_day, wallet.spent_today_minor)) {
            return Ok(e);
        }
        // The festival closed its bars in the meantime, or something changed and changed back.
        Ok(ApiError::new(codes::CONCURRENT_UPDATE).with_message("The wristband or terminal changed; tap again"))
    }

    /// A request that fails answers what its key already did, if it did something: a
    /// terminal retrying a charge whose answer it lost gets that charge, though the band
    /// was blocked or the wallet emptied since. The claim waits for a twin still being
    /// written, and is rolled back either way.
    async fn replay_or(
        &self,
        req: &pb::ChargeRequest,
        device: Uuid,
        key: &str,
        error: ApiError,
    ) -> ApiResult<pb::Transaction> {
        let mut tx = self.pool.begin().await?;
        let claimed = idempotency::claim::<pb::Transaction>(&mut tx, COMMAND, device, key, req).await?;
        tx.rollback().await?;
        let mut conn = self.pool.acquire().await?;
        let row = match claimed {
            Claim::Replay(answer) => {
                let id = Uuid::parse_str(&answer.id).map_err(ApiError::internal)?;
                store::ledger::find(&mut conn, id).await?.ok_or(ApiError::new(codes::CONCURRENT_UPDATE))?
            }
            // The kit's key table forgets keys after a while; the ledger never does.
            Claim::Fresh(_) => match store::ledger::find_charge(&mut conn, device, key).await? {
                Some(row) if row.amount_minor == req.amount_minor && row.currency == req.currency => row,
                Some(_) => {
                    return Err(ApiError::field(
                        codes::IDEMPOTENCY_KEY_REUSED,
                        "idempotency_key",
                        "was used for another request",
                    ));
                }
                None => return Err(error),
            },
        };
        Ok(convert::transaction(&row, row.wallet_id))
    }
}
