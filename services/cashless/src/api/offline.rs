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
use crate::domain::age;
use crate::domain::ledger::{AccountKind, Posting};
use crate::domain::limits::festival_day;
use crate::domain::offline::{self as rules, Charge};
use crate::store::{self, ledger::TxRow, offline::Booking, offline::Exception, offline::Upload};

/// Most charges in one upload.
const MAX_BATCH: usize = 20_000;
/// The highest sequence number (far beyond any terminal's life, far below an overflow).
const MAX_SEQUENCE: i64 = 1_000_000_000_000;
/// How old an uploaded charge may be.
const MAX_AGE_DAYS: i64 = 30;

fn refused(seq: i64, reason: &str) -> pb::OfflineChargeResult {
    pb::OfflineChargeResult {
        sequence: seq,
        outcome: pb::OfflineOutcome::Refused as i32,
        reason: reason.into(),
        ..Default::default()
    }
}

/// A verified charge of an upload.
struct Verified {
    seq: i64,
    uid: String,
    amount: i64,
    at: chrono::DateTime<chrono::Utc>,
    tap_ok: bool,
    min_age: i32,
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
        let today = festival_day(self.now(), &festival.time_zone);
        let band_ages = store::offline::birth_dates(&mut conn, festival_id)
            .await?
            .into_iter()
            .map(|(uid, birth)| pb::BandAge { uid, level: age::shown_level(Some(birth), today) })
            .filter(|b| b.level > 0)
            .collect();
        Ok(pb::TerminalSnapshot {
            band_ages,
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
        let bad = |why: &str| ApiError::field(codes::VALIDATION_FAILED, "batch", why);
        let (device, terminal, festival, keys, limits) = {
            let mut conn = self.pool.acquire().await?;
            let (device, terminal) = self.terminal(&mut conn, &caller, festival_id).await?;
            let festival = Self::festival(&mut conn, festival_id).await?;
            let keys = self.keys.get(&mut conn, festival_id).await.map_err(ApiError::internal)?;
            let limits = store::settings::get(&mut conn, festival_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
            (device, terminal, festival, keys, limits)
        };
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
        if batch.vendor_id != terminal.vendor_id.to_string() {
            return Err(invalid("made for another vendor: upload as that vendor's terminal, then take a new snapshot"));
        }
        if batch.charges.is_empty() || batch.charges.len() > MAX_BATCH {
            return Err(bad("holds 1 to 20000 charges"));
        }

        // Each charge well formed (a signed batch with a malformed one is refused whole),
        // and its band's proof checked as the terminal should have.
        let now = self.now();
        let (earliest, latest) = (now - chrono::TimeDelta::days(MAX_AGE_DAYS), now + chrono::TimeDelta::minutes(5));
        let mut verified = Vec::with_capacity(batch.charges.len());
        let mut seqs = HashSet::with_capacity(batch.charges.len());
        for c in &batch.charges {
            if !(1..=MAX_SEQUENCE).contains(&c.sequence) || !seqs.insert(c.sequence) {
                return Err(bad("sequence numbers are distinct, from 1 to 10^12"));
            }
            let uid = Uid::parse(&c.uid).map_err(|_| bad("a UID is malformed"))?;
            let value = amount("batch", c.amount_minor)?;
            if !(0..=age::MAX_LEVEL).contains(&c.min_age) {
                return Err(bad("an age level is 0 to 21"));
            }
            if c.currency != festival.currency {
                return Err(ApiError::new(codes::CURRENCY_MISMATCH));
            }
            let at = c
                .charged_at
                .as_ref()
                .and_then(festival_platform::convert::from_timestamp)
                .filter(|at| (earliest..=latest).contains(at))
                .ok_or_else(|| bad("a charge's time is missing, in the future, or older than 30 days"))?
                .trunc_subsecs(6);
            let challenge =
                nfc::offline_challenge(festival_id.as_bytes(), device.id.as_bytes(), c.sequence, value, &c.currency);
            let tap_ok =
                proof(&c.tap_proof).is_ok_and(|p| keys.master.wristband_key(&uid).verify(&challenge, &p).is_ok());
            verified.push(Verified {
                seq: c.sequence,
                uid: uid.to_hex(),
                amount: value,
                at,
                tap_ok,
                min_age: c.min_age,
            });
        }

        let mut tx = self.pool.begin().await?;
        // Revoked while this upload was on its way: nothing of it is booked.
        if store::terminals::is_revoked(&mut tx, device.id).await? {
            return Err(ApiError::new(codes::DEVICE_REVOKED));
        }
        let uploads: Vec<Upload> =
            verified.iter().map(|v| Upload { seq: v.seq, uid: &v.uid, amount: v.amount, at: v.at }).collect();
        let fresh: HashSet<i64> =
            store::offline::record(&mut tx, device.id, festival_id, &uploads, now).await?.into_iter().collect();
        let mut results: HashMap<i64, pb::OfflineChargeResult> = HashMap::new();
        let mut exceptions = Vec::new();
        // A sequence number seen before: a duplicate if it is the same charge; another
        // charge under a reused number (a terminal restored from a backup) is on record.
        let old: Vec<i64> = verified.iter().filter(|v| !fresh.contains(&v.seq)).map(|v| v.seq).collect();
        if !old.is_empty() {
            let stored: HashMap<i64, (String, i64, chrono::DateTime<chrono::Utc>)> =
                store::offline::stored(&mut tx, device.id, &old)
                    .await?
                    .into_iter()
                    .map(|(s, u, a, t)| (s, (u, a, t)))
                    .collect();
            for v in verified.iter().filter(|v| !fresh.contains(&v.seq)) {
                if stored.get(&v.seq).is_some_and(|(u, a, t)| (u.as_str(), *a, *t) != (v.uid.as_str(), v.amount, v.at))
                {
                    results.insert(v.seq, refused(v.seq, "SEQUENCE_REUSED"));
                    exceptions.push(exception(v, None, "SEQUENCE_REUSED", None, 0));
                }
            }
        }
        let fresh_charges: Vec<&Verified> = verified.iter().filter(|v| fresh.contains(&v.seq)).collect();
        let uids: Vec<&str> = fresh_charges.iter().map(|v| v.uid.as_str()).collect();
        let bands: HashMap<String, store::offline::BandWallet> =
            store::offline::bands(&mut tx, festival_id, &uids).await?.into_iter().map(|b| (b.uid.clone(), b)).collect();

        let mut to_book: Vec<(&Verified, &store::offline::BandWallet)> = Vec::new();
        for v in &fresh_charges {
            let kind = match bands.get(&v.uid) {
                _ if !v.tap_ok => "BAD_TAP",
                None => "UNKNOWN_BAND",
                Some(_) if v.amount > limits.max_charge_minor => "OVER_MAX_CHARGE",
                Some(band) => {
                    to_book.push((v, band));
                    continue;
                }
            };
            results.insert(v.seq, refused(v.seq, kind));
            exceptions.push(exception(v, bands.get(&v.uid).map(|b| b.wallet_id), kind, None, 0));
        }
        // The wallets locked (in id order) before anything about their bands is read: two
        // terminals uploading one band at once see each other's bookings.
        let mut wallet_ids: Vec<Uuid> = to_book.iter().map(|(_, b)| b.wallet_id).collect();
        wallet_ids.sort();
        wallet_ids.dedup();
        let locked: HashMap<Uuid, i64> =
            store::offline::lock_wallets(&mut tx, &wallet_ids).await?.into_iter().collect();
        let booked_uids: Vec<&str> = to_book.iter().map(|(v, _)| v.uid.as_str()).collect();
        let allowances: HashMap<String, i64> = {
            let spent: HashMap<String, i64> =
                store::offline::losses(&mut tx, festival_id, &booked_uids).await?.into_iter().collect();
            booked_uids
                .iter()
                .map(|u| (u.to_string(), limits.offline_limit_minor - spent.get(*u).copied().unwrap_or(0)))
                .collect()
        };
        let mut elsewhere: HashMap<String, Vec<chrono::DateTime<chrono::Utc>>> = HashMap::new();
        if let (Some(from), Some(to)) =
            (to_book.iter().map(|(v, _)| v.at).min(), to_book.iter().map(|(v, _)| v.at).max())
        {
            let found = store::offline::elsewhere(
                &mut tx,
                festival_id,
                device.id,
                &booked_uids,
                from - rules::SAME_TIME,
                to + rules::SAME_TIME,
            )
            .await?;
            for (uid, at) in found {
                elsewhere.entry(uid).or_default().push(at);
            }
        }
        let charges: Vec<Charge> = to_book
            .iter()
            .map(|(v, b)| Charge {
                seq: v.seq,
                wallet: b.wallet_id,
                uid: v.uid.clone(),
                amount: v.amount,
                at: v.at,
                blocked_before: b.blocked_at.is_some_and(|blocked| blocked <= v.at),
            })
            .collect();
        let settled = rules::settle(&locked, &allowances, &charges);
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

        let mut block: HashSet<&str> = HashSet::new();
        let mut postings = Vec::with_capacity(to_book.len());
        let mut paid_by: HashMap<Uuid, i64> = HashMap::new();
        for (v, band) in &to_book {
            let s =
                settled.get(&v.seq).copied().ok_or_else(|| ApiError::internal(anyhow::anyhow!("unsettled charge")))?;
            let kind = if s.unfunded > 0 {
                Some("UNFUNDED")
            } else if band.blocked_at.is_some_and(|b| b <= v.at) {
                Some("BLOCKED_BAND")
            } else if s.from_loss > 0 {
                Some("OVERDRAWN")
            } else if !age::allowed(v.min_age, band.birth_date, festival_day(v.at, &festival.time_zone)) {
                // Served already: booked, and flagged for the organisers to follow up.
                Some("UNDERAGE")
            } else if rules::seen_elsewhere(v.at, elsewhere.get(&v.uid).map_or(&[][..], Vec::as_slice)) {
                Some("SEEN_ELSEWHERE")
            } else {
                None
            };
            if s.unfunded > 0 || s.from_loss > 0 {
                block.insert(v.uid.as_str());
            }
            if s.booked() == 0 {
                // Nobody pays it: not booked, not credited to the vendor.
                results.insert(v.seq, refused(v.seq, "UNFUNDED"));
                exceptions.push(exception(v, Some(band.wallet_id), "UNFUNDED", None, v.amount));
                continue;
            }
            let id = Uuid::now_v7();
            if let Some(kind) = kind {
                exceptions.push(exception(v, Some(band.wallet_id), kind, Some(id), v.amount - s.paid));
            }
            let outcome = match kind {
                None => pb::OfflineOutcome::Applied,
                Some("OVERDRAWN" | "UNFUNDED") => pb::OfflineOutcome::Overdrawn,
                Some(_) => pb::OfflineOutcome::Flagged,
            };
            results.insert(
                v.seq,
                pb::OfflineChargeResult {
                    sequence: v.seq,
                    outcome: outcome as i32,
                    transaction_id: id.to_string(),
                    shortfall_minor: v.amount - s.paid,
                    reason: kind.unwrap_or_default().into(),
                },
            );
            *paid_by.entry(band.wallet_id).or_insert(0) += s.paid;
            let posting = Posting::offline_payment(band.wallet_id, loss, revenue, s.booked(), s.paid);
            let row = TxRow {
                id,
                festival_id,
                kind: posting.kind,
                currency: festival.currency.clone(),
                amount_minor: s.booked(),
                wallet_id: band.wallet_id,
                wallet_change_minor: posting.wallet_change,
                balance_after_minor: s.balance_after,
                counterpart_id: Some(terminal.vendor_id),
                counterpart_balance_after_minor: None,
                actor_id: device.id,
                reason: String::new(),
                created_at: v.at,
                idempotency_key: Some(format!("offline:{}", v.seq)),
                charge_day: None,
                day_spent_after_minor: None,
                daily_cap_minor: None,
                credit_change_minor: 0,
            };
            postings.push((
                id,
                v.seq,
                posting,
                s.balance_after,
                s.from_loss,
                Queued::new(&convert::recorded(&row)),
                v.at,
            ));
        }
        let bookings: Vec<Booking> = postings
            .iter()
            .map(|(id, seq, posting, after, loss, event, _)| Booking {
                id: *id,
                seq: *seq,
                posting,
                balance_after: *after,
                loss: *loss,
                event,
            })
            .collect();
        let times: Vec<_> = postings.iter().map(|p| p.6).collect();
        let balances: Vec<(Uuid, i64)> = wallet_ids
            .iter()
            .map(|w| (*w, locked.get(w).copied().unwrap_or(0) - paid_by.get(w).copied().unwrap_or(0)))
            .collect();
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
        let gaps = store::offline::gaps(&mut tx, device.id).await?;
        tx.commit().await?;

        let mut response = pb::UploadOfflineChargesResponse {
            gaps: gaps.into_iter().map(|(first, last)| pb::SequenceGap { first, last }).collect(),
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
