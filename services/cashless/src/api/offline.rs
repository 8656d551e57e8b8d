//! Terminals that lost their network: the snapshot they charge from, and the upload of
//! what they charged (verified whole, then booked once per charge, in the order the
//! charges were made; see `domain::offline`).

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::SubsecRound;
use ed25519_dalek::{Signature, VerifyingKey};
use festival_platform::auth::{Device, GateCaller, Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::events::outbox::Queued;
use festival_platform::nfc::{self, Uid};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, page_token, validate};
use festival_proto::cashless::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{CashlessApi, amount, convert, proof};
use crate::domain::ledger::{AccountKind, Posting};
use crate::domain::offline::{self as rules, Charge};
use crate::store::{self, ledger::TxRow, offline::Booking, offline::Exception, offline::Upload};

/// Most charges in one upload.
const MAX_BATCH: usize = 20_000;

/// A verified charge of an upload.
struct Verified {
    seq: i64,
    uid: String,
    amount: i64,
    at: chrono::DateTime<chrono::Utc>,
    tap_ok: bool,
}

impl CashlessApi {
    /// The device calling, if it is a registered, unrevoked terminal of `festival_id`.
    async fn terminal(
        &self,
        conn: &mut sqlx::PgConnection,
        caller: &GateCaller,
        festival_id: Uuid,
    ) -> ApiResult<(Device, store::terminals::TerminalRow)> {
        let device = match caller {
            GateCaller::Device(d) if d.festival_id == festival_id => d.clone(),
            GateCaller::Device(_) => return Err(ApiError::new(codes::NOT_A_MEMBER)),
            GateCaller::Person(_) => return Err(ApiError::new(codes::TERMINAL_NOT_REGISTERED)),
        };
        let terminal = store::terminals::find(conn, festival_id, device.id)
            .await?
            .ok_or(ApiError::new(codes::TERMINAL_NOT_REGISTERED))?;
        if terminal.revoked_at.is_some() {
            return Err(ApiError::new(codes::DEVICE_REVOKED));
        }
        Ok((device, terminal))
    }

    pub(super) async fn get_terminal_snapshot(
        &self,
        caller: GateCaller,
        req: pb::GetTerminalSnapshotRequest,
    ) -> ApiResult<pb::TerminalSnapshot> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let mut conn = self.pool.acquire().await?;
        let (device, terminal) = self.terminal(&mut conn, &caller, festival_id).await?;
        let festival = Self::open_festival(&mut conn, festival_id).await?;
        let limits = store::settings::get(&mut conn, festival_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let keys = self.keys.get(&mut conn, festival_id).await.map_err(ApiError::internal)?;
        Ok(pb::TerminalSnapshot {
            festival_id: festival_id.to_string(),
            device_id: device.id.to_string(),
            vendor_id: terminal.vendor_id.to_string(),
            currency: festival.currency,
            master_key_hex: keys.master.as_bytes().iter().map(|b| format!("{b:02X}")).collect(),
            offline_limit_minor: limits.offline_limit_minor,
            blocked_uids: store::offline::blocked_uids(&mut conn, festival_id).await?,
            next_sequence: store::offline::next_sequence(&mut conn, device.id).await?,
            taken_at: Some(timestamp(self.now())),
        })
    }

    pub(super) async fn upload_offline_charges(
        &self,
        caller: GateCaller,
        req: pb::UploadOfflineChargesRequest,
    ) -> ApiResult<pb::UploadOfflineChargesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let invalid = |why: &str| ApiError::field(codes::OFFLINE_BATCH_INVALID, "batch", why);
        let mut conn = self.pool.acquire().await?;
        let (device, terminal) = self.terminal(&mut conn, &caller, festival_id).await?;
        // Signed by the key identity bound to this device, or refused whole.
        let signature = URL_SAFE_NO_PAD
            .decode(req.signature.as_bytes())
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| invalid("the signature is not an Ed25519 signature"))?;
        let key = VerifyingKey::from_bytes(&device.public_key).map_err(|_| invalid("the device has no usable key"))?;
        key.verify_strict(&req.batch, &signature).map_err(|_| invalid("not signed by this terminal's key"))?;
        let batch =
            pb::OfflineChargeBatch::decode(req.batch.as_slice()).map_err(|_| invalid("not an OfflineChargeBatch"))?;
        if batch.festival_id != festival_id.to_string() || batch.device_id != device.id.to_string() {
            return Err(invalid("made for another festival or terminal"));
        }
        if batch.charges.is_empty() || batch.charges.len() > MAX_BATCH {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "batch", "holds 1 to 20000 charges"));
        }
        let festival = Self::festival(&mut conn, festival_id).await?;
        let keys = self.keys.get(&mut conn, festival_id).await.map_err(ApiError::internal)?;

        // Each charge well formed (a signed batch with a malformed one is refused whole),
        // and its band's proof checked as the terminal should have.
        let mut verified = Vec::with_capacity(batch.charges.len());
        let mut seqs = HashSet::with_capacity(batch.charges.len());
        for c in &batch.charges {
            if c.sequence <= 0 || !seqs.insert(c.sequence) {
                return Err(ApiError::field(
                    codes::VALIDATION_FAILED,
                    "batch",
                    "sequence numbers are positive and distinct",
                ));
            }
            let uid = Uid::parse(&c.uid)
                .map_err(|_| ApiError::field(codes::VALIDATION_FAILED, "batch", "a UID is malformed"))?;
            let value = amount("batch", c.amount_minor)?;
            if c.currency != festival.currency {
                return Err(ApiError::new(codes::CURRENCY_MISMATCH));
            }
            let at = c
                .charged_at
                .as_ref()
                .and_then(festival_platform::convert::from_timestamp)
                .ok_or_else(|| ApiError::field(codes::VALIDATION_FAILED, "batch", "a charge has no time"))?
                .trunc_subsecs(6);
            let challenge =
                nfc::offline_challenge(festival_id.as_bytes(), device.id.as_bytes(), c.sequence, value, &c.currency);
            let tap_ok =
                proof(&c.tap_proof).is_ok_and(|p| keys.master.wristband_key(&uid).verify(&challenge, &p).is_ok());
            verified.push(Verified { seq: c.sequence, uid: uid.to_hex(), amount: value, at, tap_ok });
        }

        let now = self.now();
        let mut tx = self.pool.begin().await?;
        drop(conn);
        let uploads: Vec<Upload> =
            verified.iter().map(|v| Upload { seq: v.seq, uid: &v.uid, amount: v.amount, at: v.at }).collect();
        let fresh: HashSet<i64> =
            store::offline::record(&mut tx, device.id, festival_id, &uploads, now).await?.into_iter().collect();
        let fresh_charges: Vec<&Verified> = verified.iter().filter(|v| fresh.contains(&v.seq)).collect();
        let uids: Vec<&str> = fresh_charges.iter().map(|v| v.uid.as_str()).collect();
        let bands: HashMap<String, store::offline::BandWallet> =
            store::offline::bands(&mut tx, festival_id, &uids).await?.into_iter().map(|b| (b.uid.clone(), b)).collect();
        let (from, to) = fresh_charges.iter().fold((None, None), |(lo, hi): (Option<_>, Option<_>), v| {
            (
                Some(lo.map_or(v.at, |l: chrono::DateTime<chrono::Utc>| l.min(v.at))),
                Some(hi.map_or(v.at, |h: chrono::DateTime<chrono::Utc>| h.max(v.at))),
            )
        });
        let mut elsewhere: HashMap<String, Vec<chrono::DateTime<chrono::Utc>>> = HashMap::new();
        if let (Some(from), Some(to)) = (from, to) {
            for (uid, at) in store::offline::elsewhere(
                &mut tx,
                festival_id,
                device.id,
                &uids,
                from - rules::SAME_TIME,
                to + rules::SAME_TIME,
            )
            .await?
            {
                elsewhere.entry(uid).or_default().push(at);
            }
        }

        // What is booked, and what is flagged.
        let mut results: HashMap<i64, pb::OfflineChargeResult> = HashMap::new();
        let mut exceptions = Vec::new();
        let mut block: HashSet<&str> = HashSet::new();
        let mut to_book: Vec<(&Verified, &store::offline::BandWallet)> = Vec::new();
        for v in &fresh_charges {
            let refuse = |reason: &str| pb::OfflineChargeResult {
                sequence: v.seq,
                outcome: pb::OfflineOutcome::Refused as i32,
                reason: reason.into(),
                ..Default::default()
            };
            match bands.get(&v.uid) {
                _ if !v.tap_ok => {
                    results.insert(v.seq, refuse("BAD_TAP"));
                    exceptions.push(exception(v, None, "BAD_TAP", None, 0));
                }
                None => {
                    results.insert(v.seq, refuse("UNKNOWN_BAND"));
                    exceptions.push(exception(v, None, "UNKNOWN_BAND", None, 0));
                }
                Some(band) => to_book.push((v, band)),
            }
        }
        let mut wallet_ids: Vec<Uuid> = to_book.iter().map(|(_, b)| b.wallet_id).collect();
        wallet_ids.sort();
        wallet_ids.dedup();
        let locked: HashMap<Uuid, i64> =
            store::offline::lock_wallets(&mut tx, &wallet_ids).await?.into_iter().collect();
        let charges: Vec<Charge> = to_book
            .iter()
            .map(|(v, b)| Charge { seq: v.seq, wallet: b.wallet_id, amount: v.amount, at: v.at })
            .collect();
        let allocations = rules::allocate(&locked, &charges);
        let loss =
            store::accounts::ensure(&mut tx, festival_id, AccountKind::OfflineLoss, None, &festival.currency).await?;
        let revenue = store::accounts::ensure(
            &mut tx,
            festival_id,
            AccountKind::VendorRevenue,
            Some(terminal.vendor_id),
            &festival.currency,
        )
        .await?;
        let limits = store::settings::get(&mut tx, festival_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;

        let mut ordered = to_book.clone();
        ordered.sort_by_key(|(v, _)| (v.at, v.seq));
        let mut spent: HashMap<&str, i64> = HashMap::new();
        let mut postings = Vec::with_capacity(ordered.len());
        for (v, band) in &ordered {
            let a = allocations[&v.seq];
            let posting = Posting::offline_payment(band.wallet_id, loss, revenue, v.amount, a.paid);
            let id = Uuid::now_v7();
            let before = spent.entry(v.uid.as_str()).or_insert(0);
            let over = rules::over_limit(*before, v.amount, limits.offline_limit_minor);
            *before += v.amount;
            let kind = if a.shortfall > 0 {
                Some("OVERDRAWN")
            } else if band.blocked_at.is_some_and(|b| b <= v.at) {
                Some("BLOCKED_BAND")
            } else if rules::seen_elsewhere(v.at, elsewhere.get(&v.uid).map_or(&[][..], Vec::as_slice)) {
                Some("SEEN_ELSEWHERE")
            } else if over {
                Some("OVER_LIMIT")
            } else {
                None
            };
            if let Some(kind) = kind {
                exceptions.push(exception(v, Some(band.wallet_id), kind, Some(id), a.shortfall));
                block.insert(v.uid.as_str());
            }
            let outcome = match kind {
                None => pb::OfflineOutcome::Applied,
                Some("OVERDRAWN") => pb::OfflineOutcome::Overdrawn,
                Some(_) => pb::OfflineOutcome::Flagged,
            };
            results.insert(
                v.seq,
                pb::OfflineChargeResult {
                    sequence: v.seq,
                    outcome: outcome as i32,
                    transaction_id: id.to_string(),
                    shortfall_minor: a.shortfall,
                    reason: kind.unwrap_or_default().into(),
                },
            );
            let row = TxRow {
                id,
                festival_id,
                kind: posting.kind,
                currency: festival.currency.clone(),
                amount_minor: v.amount,
                wallet_id: band.wallet_id,
                wallet_change_minor: posting.wallet_change,
                balance_after_minor: a.balance_after,
                counterpart_id: Some(terminal.vendor_id),
                counterpart_balance_after_minor: None,
                actor_id: device.id,
                reason: String::new(),
                created_at: v.at,
                idempotency_key: Some(format!("offline:{}", v.seq)),
                charge_day: None,
                day_spent_after_minor: None,
                daily_cap_minor: None,
            };
            postings.push((id, v.seq, posting, a.balance_after, Queued::new(&convert::recorded(&row)), v.at));
        }
        let bookings: Vec<Booking> = postings
            .iter()
            .map(|(id, seq, posting, after, event, _)| Booking {
                id: *id,
                seq: *seq,
                posting,
                balance_after: *after,
                event,
            })
            .collect();
        let times: Vec<_> = postings.iter().map(|p| p.5).collect();
        let mut balances: Vec<(Uuid, i64)> = wallet_ids
            .iter()
            .map(|w| {
                let paid: i64 =
                    to_book.iter().filter(|(_, b)| b.wallet_id == *w).map(|(v, _)| allocations[&v.seq].paid).sum();
                (*w, locked.get(w).copied().unwrap_or(0) - paid)
            })
            .collect();
        balances.sort();
        let block: Vec<&str> = block.into_iter().collect();
        store::offline::write(
            &mut tx,
            festival_id,
            device.id,
            terminal.vendor_id,
            &festival.currency,
            now,
            &bookings,
            &times,
            &balances,
            &exceptions,
            &block,
        )
        .await?;
        let seen = store::offline::seen(&mut tx, device.id).await?;
        tx.commit().await?;

        let mut response = pb::UploadOfflineChargesResponse {
            gaps: rules::gaps(&seen).into_iter().map(|(first, last)| pb::SequenceGap { first, last }).collect(),
            ..Default::default()
        };
        for c in &batch.charges {
            let result = results.remove(&c.sequence).unwrap_or(pb::OfflineChargeResult {
                sequence: c.sequence,
                outcome: pb::OfflineOutcome::Duplicate as i32,
                ..Default::default()
            });
            match pb::OfflineOutcome::try_from(result.outcome) {
                Ok(pb::OfflineOutcome::Applied) => response.applied += 1,
                Ok(pb::OfflineOutcome::Duplicate) => response.duplicates += 1,
                _ => response.flagged += 1,
            }
            response.results.push(result);
        }
        Ok(response)
    }

    pub(super) async fn list_offline_exceptions(
        &self,
        caller: Principal,
        req: pb::ListOfflineExceptionsRequest,
    ) -> ApiResult<pb::ListOfflineExceptionsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let size = validate::page_size("page_size", req.page_size, 50, 500)?;
        caller.require(festival_id, Role::Organizer)?;
        let scope = format!("cashless.ListOfflineExceptions:{festival_id}");
        let after = page_token::decode(&scope, &req.page_token)?;
        let mut rows =
            store::offline::exceptions(&mut *self.pool.acquire().await?, festival_id, after, i64::from(size) + 1)
                .await?;
        let next_page_token = page_token::next_page(&mut rows, size as usize, &scope, |r| (r.recorded_at, r.id));
        Ok(pb::ListOfflineExceptionsResponse {
            exceptions: rows
                .iter()
                .map(|r| pb::OfflineException {
                    id: r.id.to_string(),
                    festival_id: r.festival_id.to_string(),
                    device_id: r.device_id.to_string(),
                    sequence: r.seq,
                    uid: r.uid.clone(),
                    wallet_id: r.wallet_id.map(|w| w.to_string()).unwrap_or_default(),
                    amount_minor: r.amount_minor,
                    shortfall_minor: r.shortfall_minor,
                    kind: r.kind.clone(),
                    transaction_id: r.transaction_id.map(|t| t.to_string()).unwrap_or_default(),
                    charged_at: Some(timestamp(r.charged_at)),
                    recorded_at: Some(timestamp(r.recorded_at)),
                })
                .collect(),
            next_page_token,
        })
    }
}

fn exception<'a>(
    v: &'a Verified,
    wallet: Option<Uuid>,
    kind: &'static str,
    tx: Option<Uuid>,
    shortfall: i64,
) -> Exception<'a> {
    Exception { seq: v.seq, uid: &v.uid, wallet, amount: v.amount, shortfall, kind, transaction: tx, at: v.at }
}
