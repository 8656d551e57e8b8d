//! The gates: check-in lists, scans (online), what an offline scanner downloads, the
//! scans it uploads later, and check-in counts. Every scan is decided by
//! [`decide`](crate::domain::checkin::decide), online or reconciled.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use festival_platform::auth::{Device, GateCaller, Principal, Role};
use festival_platform::convert::{from_timestamp, timestamp};
use festival_platform::credential::{Kind, Unverified};
use festival_platform::events::outbox::Queued;
use festival_platform::live::{self, LiveConfig};
use festival_platform::rpc::{RpcStream, record_festival};
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::ticketing::v1 as pb;
use prost::Message as _;
use sqlx::PgConnection;
use uuid::Uuid;

use super::convert::{ticket_status, to_list};
use super::{GATE_ROLES, TicketingApi};
use crate::domain::checkin::{Direction, Entrance, Move, Refusal, decide, local_day};
use crate::domain::status::FestivalStatus;
use crate::store::{self, gates::GROUNDS, gates::GateTicket, gates::ListRow, gates::Scanner};

/// Longer than any credential (142 characters): refused before any decoding work.
const MAX_CREDENTIAL: usize = 256;
const MAX_LIST_CATEGORIES: usize = 100;
const MAX_UPLOAD_SCANS: usize = 1_000;
const SNAPSHOT_TICKETS: i64 = 50_000;
/// How far ahead of the server's clock an offline scan may be dated (scanner clocks drift).
const CLOCK_SKEW: Duration = Duration::minutes(5);
/// How old an uploaded scan may be: a device uploads when the network is back, not weeks
/// later (and an old date must not skip the day check or rewrite a first use).
const MAX_UPLOAD_AGE: Duration = Duration::days(7);
/// Rounds of decide-then-write before a scan gives up to concurrent scans of its ticket.
const SCAN_ROUNDS: usize = 3;

/// What a scanned code turned out to be.
#[derive(Debug, Clone, Copy)]
enum Code {
    Ticket(Uuid),
    Forged,
    OtherFestival,
}

/// How one scan ended, as recorded and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Admitted,
    Exited,
    Refused(Refusal),
    Forged,
    OtherFestival,
    RefusedByScanner,
    /// Not written: the move needs a transaction (see `apply_scan`'s `plain_only`).
    NeedsTransaction,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Admitted => "ADMITTED",
            Outcome::Exited => "EXITED",
            Outcome::Refused(Refusal::AlreadyUsed) => "DUPLICATE",
            Outcome::Refused(Refusal::Revoked) => "REVOKED",
            Outcome::Refused(Refusal::WrongDay) => "WRONG_DAY",
            Outcome::Refused(Refusal::WrongList) => "WRONG_LIST",
            Outcome::Refused(Refusal::NotInside) => "NOT_INSIDE",
            Outcome::Forged => "FORGED",
            Outcome::OtherFestival => "WRONG_FESTIVAL",
            Outcome::RefusedByScanner => "REFUSED_BY_SCANNER",
            // Never recorded: the scan is applied again in a transaction.
            Outcome::NeedsTransaction => "DEFERRED",
        }
    }

    fn to_proto(self) -> pb::ScanOutcome {
        match self {
            Outcome::Admitted => pb::ScanOutcome::Admitted,
            Outcome::Exited => pb::ScanOutcome::Exited,
            Outcome::Refused(Refusal::AlreadyUsed) => pb::ScanOutcome::Duplicate,
            Outcome::Refused(Refusal::Revoked) => pb::ScanOutcome::Revoked,
            Outcome::Refused(Refusal::WrongDay) => pb::ScanOutcome::WrongDay,
            Outcome::Refused(Refusal::WrongList) => pb::ScanOutcome::WrongList,
            Outcome::Refused(Refusal::NotInside) => pb::ScanOutcome::NotInside,
            Outcome::Forged => pb::ScanOutcome::Forged,
            Outcome::OtherFestival => pb::ScanOutcome::WrongFestival,
            Outcome::RefusedByScanner => pb::ScanOutcome::RefusedByScanner,
            Outcome::NeedsTransaction => pb::ScanOutcome::Unspecified,
        }
    }
}

/// How close to a device's own online entry an offline duplicate of it counts as the
/// same person (the online answer lost to a timeout), not as a second entry to flag.
const OWN_ECHO_WINDOW: Duration = Duration::seconds(60);

/// One scan to apply: online (now, by a person or a device) or from an upload.
struct ScanJob<'a> {
    festival_id: Uuid,
    ticket_id: Uuid,
    list: Option<&'a ListRow>,
    direction: Direction,
    at: DateTime<Utc>,
    gate: &'a str,
    override_reason: Option<&'a str>,
    offline: bool,
    by: Scanner,
}

/// A scan applied or refused, with the ticket as it was last seen.
struct Applied {
    outcome: Outcome,
    ticket: Option<GateTicket>,
    mv: Option<Move>,
    overridden: bool,
}

fn entrance(list: Option<&ListRow>) -> Entrance {
    list.map(|l| Entrance { categories: l.category_ids.clone(), zone: l.zone.clone() }).unwrap_or_default()
}

fn direction(raw: i32, field: &str) -> ApiResult<Direction> {
    Ok(match validate::known_enum::<pb::ScanDirection>(field, raw, true)? {
        Some(pb::ScanDirection::Exit) => Direction::Exit,
        _ => Direction::Entry,
    })
}

fn optional_uuid(field: &str, raw: &str) -> ApiResult<Option<Uuid>> {
    if raw.is_empty() { Ok(None) } else { validate::uuid(field, raw).map(Some) }
}

/// The catalogued error of a refused online scan.
fn refusal_error(refusal: Refusal, ticket: &GateTicket) -> ApiError {
    match refusal {
        Refusal::AlreadyUsed => {
            let first = ticket.first_at.map(|t| t.to_rfc3339()).unwrap_or_default();
            let gate = ticket.first_gate.clone().unwrap_or_default();
            ApiError::new(codes::TICKET_ALREADY_USED)
                .with_message(format!("Already used at {gate}, {first}"))
                .with_metadata("first_used_time", first)
                .with_metadata("first_used_gate", gate)
        }
        Refusal::Revoked => ApiError::new(codes::TICKET_REVOKED),
        Refusal::WrongDay => {
            let days: Vec<String> = ticket.valid_days.iter().map(|d| d.format("%Y-%m-%d").to_string()).collect();
            ApiError::new(codes::TICKET_WRONG_DAY).with_message(format!("Valid on {}", days.join(", ")))
        }
        Refusal::WrongList => ApiError::new(codes::TICKET_WRONG_LIST),
        Refusal::NotInside => ApiError::new(codes::TICKET_NOT_INSIDE),
    }
}

impl TicketingApi {
    /// A person with a gate role at the festival, or a device paired to it and not
    /// revoked (identity's `device.revoked` reaches here within the event's delivery).
    pub(super) async fn admit_gate_caller(&self, caller: &GateCaller, festival_id: Uuid) -> ApiResult<()> {
        caller.require(festival_id, &GATE_ROLES)?;
        if let Some(device) = caller.device()
            && store::gates::device_revoked(&mut *self.pool.acquire().await?, device.id).await?
        {
            return Err(ApiError::new(codes::DEVICE_REVOKED));
        }
        Ok(())
    }

    /// The check-in list a request names (none: the festival grounds).
    async fn list_named(
        conn: &mut PgConnection,
        festival_id: Uuid,
        list_id: Option<Uuid>,
    ) -> ApiResult<Option<ListRow>> {
        let Some(id) = list_id else { return Ok(None) };
        let list = store::gates::find_list(conn, festival_id, id).await?;
        list.map(Some).ok_or_else(|| ApiError::field(codes::NOT_FOUND, "list_id", "no such check-in list here"))
    }

    /// Verifies a scanned code with the keys of the festival it names, so a genuine
    /// ticket of another festival is told apart from a forged one.
    async fn read_code(&self, text: &str, festival_id: Uuid) -> ApiResult<Code> {
        let Ok(credential) = Unverified::parse(text) else { return Ok(Code::Forged) };
        let keyring =
            self.keys.keyring(credential.claimed_festival(), credential.key_id()).await.map_err(super::kit_error)?;
        Ok(match keyring.get(credential.key_id()).map(|key| credential.verify(key)) {
            Some(Ok(claims)) if claims.kind == Kind::Ticket && claims.festival == festival_id => {
                Code::Ticket(claims.subject)
            }
            Some(Ok(claims)) if claims.kind == Kind::Ticket => Code::OtherFestival,
            _ => Code::Forged,
        })
    }

    /// Like [`read_code`](Self::read_code) for an upload, verified as one batch: only this
    /// festival's keys are used (cached), so codes naming made-up festivals cost no key
    /// lookups; such a code is "not ours" whether genuine or not.
    async fn read_own_codes<'t>(
        &self,
        texts: impl Iterator<Item = &'t str>,
        festival_id: Uuid,
    ) -> ApiResult<Vec<Code>> {
        let texts: Vec<&str> = texts.collect();
        let mut key_ids: Vec<u32> = texts
            .iter()
            .filter_map(|t| Unverified::parse(t).ok())
            .filter(|c| c.claimed_festival() == festival_id)
            .map(|c| c.key_id())
            .collect();
        key_ids.sort_unstable();
        key_ids.dedup();
        // Each unknown key id reloads the festival's keys at most once per interval; the
        // last keyring fetched holds every key known by then.
        let mut keyring = festival_platform::credential::Keyring::default();
        for key_id in key_ids {
            keyring = self.keys.keyring(festival_id, key_id).await.map_err(super::kit_error)?;
        }
        let own = |t: &&str| Unverified::parse(t).is_ok_and(|c| c.claimed_festival() == festival_id);
        let mut verified = keyring.verify_many(texts.iter().copied().filter(own)).into_iter();
        Ok(texts
            .iter()
            .map(|t| match Unverified::parse(t) {
                Err(_) => Code::Forged,
                Ok(c) if c.claimed_festival() != festival_id => Code::OtherFestival,
                Ok(_) => match verified.next() {
                    Some(Ok(claims)) if claims.kind == Kind::Ticket => Code::Ticket(claims.subject),
                    _ => Code::Forged,
                },
            })
            .collect())
    }

    /// Decides and writes one scan, deciding again when a concurrent scan of the same
    /// ticket moved it first. `None`: no such ticket. Nobody is admitted online to a
    /// cancelled (or deleted) festival; uploads record what happened offline.
    /// `plain_only`: the caller holds no transaction, so only a plain first entry (one
    /// statement, its own record) may be written; anything else answers
    /// [`Outcome::NeedsTransaction`] having written nothing.
    async fn apply_scan(
        &self,
        conn: &mut PgConnection,
        job: &ScanJob<'_>,
        plain_only: bool,
    ) -> ApiResult<Option<Applied>> {
        let entrance = entrance(job.list);
        let list_key = job.list.map_or(GROUNDS, |l| l.id);
        for _ in 0..SCAN_ROUNDS {
            let Some(ticket) = store::gates::ticket(conn, job.festival_id, job.ticket_id, list_key).await? else {
                return Ok(None);
            };
            if !job.offline && ticket.festival_status == FestivalStatus::Cancelled {
                return Err(ApiError::new(codes::FESTIVAL_NOT_ACTIVE));
            }
            let day = local_day(&ticket.time_zone, job.at);
            let decision = |over| {
                decide(&entrance, ticket.category_id, &ticket.validity(), ticket.presence(), job.direction, day, over)
            };
            let mv = match decision(job.override_reason.is_some()) {
                Ok(mv) => mv,
                Err(refusal) => {
                    return Ok(Some(Applied {
                        outcome: Outcome::Refused(refusal),
                        ticket: Some(ticket),
                        mv: None,
                        overridden: false,
                    }));
                }
            };
            let overridden = job.override_reason.is_some() && decision(false).is_err();
            if plain_only && (mv != Move::Enter || overridden) {
                let outcome = Outcome::NeedsTransaction;
                return Ok(Some(Applied { outcome, ticket: Some(ticket), mv: Some(mv), overridden }));
            }
            let event = Self::move_event(job, &ticket, mv);
            let (festival, id) = (job.festival_id, job.ticket_id);
            if store::gates::apply_move(conn, festival, id, list_key, mv, job.at, job.gate, job.by, &event).await? {
                let outcome = if mv == Move::Leave { Outcome::Exited } else { Outcome::Admitted };
                return Ok(Some(Applied { outcome, ticket: Some(ticket), mv: Some(mv), overridden }));
            }
        }
        Err(ApiError::new(codes::CONCURRENT_UPDATE))
    }

    /// The event of a move, written with it (`ticket.admitted` or `ticket.exited`).
    fn move_event(job: &ScanJob<'_>, ticket: &GateTicket, mv: Move) -> Queued {
        let list_id = job.list.map(|l| l.id.to_string()).unwrap_or_default();
        let zone = job.list.and_then(|l| l.zone.clone()).unwrap_or_default();
        match mv {
            Move::Enter | Move::Reenter => Queued::new(&pb::TicketAdmitted {
                ticket_id: ticket.id.to_string(),
                festival_id: job.festival_id.to_string(),
                category_id: ticket.category_id.to_string(),
                gate: job.gate.to_owned(),
                admit_time: Some(timestamp(job.at)),
                list_id,
                zone,
                reentry: mv == Move::Reenter,
                offline: job.offline,
            }),
            Move::Leave => Queued::new(&pb::TicketExited {
                ticket_id: ticket.id.to_string(),
                festival_id: job.festival_id.to_string(),
                gate: job.gate.to_owned(),
                exit_time: Some(timestamp(job.at)),
                list_id,
                zone,
                offline: job.offline,
            }),
        }
    }

    pub(super) async fn redeem(&self, caller: GateCaller, req: pb::RedeemRequest) -> ApiResult<pb::CheckIn> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        self.admit_gate_caller(&caller, festival_id).await?;
        let gate = scan_gate(&caller, &req.gate)?;
        let direction = direction(req.direction, "direction")?;
        let list_id = optional_uuid("list_id", &req.list_id)?;
        let supervisor = caller.is_supervisor(festival_id, Role::Organizer);
        let only_supervisors = |what: &str| {
            ApiError::new(codes::INSUFFICIENT_PERMISSIONS).with_message(format!("Only a supervisor {what}"))
        };
        let override_reason = match req.override_reason.trim() {
            "" => None,
            _ if !supervisor => return Err(only_supervisors("overrides a refusal")),
            reason => Some(validate::plain_text(
                "override_reason",
                validate::max_len("override_reason", reason, 200)?,
                false,
            )?),
        };
        let forged = || ApiError::field(codes::TICKET_SIGNATURE_INVALID, "credential", "not a valid ticket");
        let manual = !req.ticket_id.is_empty();
        let ticket_id = match (req.credential.is_empty(), manual) {
            (false, false) => {
                let text = validate::required("credential", &req.credential, MAX_CREDENTIAL)?;
                match self.read_code(text, festival_id).await? {
                    Code::Ticket(id) => id,
                    Code::Forged => return Err(forged()),
                    Code::OtherFestival => return Err(ApiError::new(codes::TICKET_WRONG_FESTIVAL)),
                }
            }
            (true, true) if supervisor => validate::uuid("ticket_id", &req.ticket_id)?,
            (true, true) => return Err(only_supervisors("checks in by hand")),
            (true, false) => return Err(ApiError::field(codes::REQUIRED_FIELD, "credential", "is required")),
            (false, true) => {
                return Err(ApiError::field(
                    codes::VALIDATION_FAILED,
                    "ticket_id",
                    "give a credential or a ticket id, not both",
                ));
            }
        };
        let now = self.clock.now();
        let mut conn = self.pool.acquire().await?;
        let list = Self::list_named(&mut conn, festival_id, list_id).await?;
        let job = ScanJob {
            festival_id,
            ticket_id,
            list: list.as_ref(),
            direction,
            at: now,
            gate,
            override_reason,
            offline: false,
            by: Scanner { actor_id: caller.actor_id(), device_id: caller.device().map(|d| d.id) },
        };
        let not_found = || {
            if manual { ApiError::field(codes::NOT_FOUND, "ticket_id", "no such ticket here") } else { forged() }
        };
        // A plain first entry is the hot path: one guarded statement (the move and its
        // event) without a transaction, its presence row keeping who let it in.
        // Everything else (re-entries, exits, overrides, manual check-ins) is applied and
        // recorded in one transaction.
        let first = if direction == Direction::Entry && !manual && override_reason.is_none() {
            self.apply_scan(&mut conn, &job, true).await?.ok_or_else(not_found)?
        } else {
            Applied { outcome: Outcome::NeedsTransaction, ticket: None, mv: None, overridden: false }
        };
        let applied = if first.outcome == Outcome::NeedsTransaction {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let applied = self.apply_scan(&mut tx, &job, false).await?.ok_or_else(not_found)?;
            let plain = applied.mv == Some(Move::Enter) && !manual && !applied.overridden;
            if matches!(applied.outcome, Outcome::Admitted | Outcome::Exited) && !plain {
                store::gates::record(
                    &mut tx,
                    &store::gates::Scan {
                        festival_id,
                        ticket_id: Some(ticket_id),
                        category_id: applied.ticket.as_ref().map(|t| t.category_id),
                        list_id,
                        direction,
                        outcome: applied.outcome.as_str(),
                        gate,
                        device_id: caller.device().map(|d| d.id),
                        actor_id: caller.actor_id(),
                        scanned_at: now,
                        recorded_at: now,
                        upload_nonce: None,
                        flagged: false,
                        override_reason: override_reason.filter(|_| applied.overridden),
                    },
                )
                .await?;
            }
            tx.commit().await?;
            applied
        } else {
            first
        };
        let ticket = applied.ticket.as_ref().ok_or_else(forged)?;
        if let Outcome::Refused(refusal) = applied.outcome {
            return Err(refusal_error(refusal, ticket));
        }
        Ok(pb::CheckIn {
            ticket_id: ticket_id.to_string(),
            category_id: ticket.category_id.to_string(),
            gate: gate.to_owned(),
            admit_time: Some(timestamp(now)),
            direction: match direction {
                Direction::Entry => pb::ScanDirection::Entry,
                Direction::Exit => pb::ScanDirection::Exit,
            } as i32,
            list_id: list_id.map(|l| l.to_string()).unwrap_or_default(),
            reentry: applied.mv == Some(Move::Reenter),
            overridden: applied.overridden,
        })
    }

    pub(super) async fn create_check_in_list(
        &self,
        caller: Principal,
        req: pb::CreateCheckInListRequest,
    ) -> ApiResult<pb::CheckInList> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let name = validate::plain_text("name", validate::required("name", req.name.trim(), 100)?, false)?;
        let zone = match req.zone.trim() {
            "" => None,
            zone => Some(validate::plain_text("zone", validate::max_len("zone", zone, 64)?, false)?.to_owned()),
        };
        if req.category_ids.len() > MAX_LIST_CATEGORIES {
            let why = format!("at most {MAX_LIST_CATEGORIES}");
            return Err(ApiError::field(codes::VALIDATION_FAILED, "category_ids", why));
        }
        let mut categories = Vec::with_capacity(req.category_ids.len());
        for (i, raw) in req.category_ids.iter().enumerate() {
            let id = validate::uuid(&format!("category_ids[{i}]"), raw)?;
            if !categories.contains(&id) {
                categories.push(id);
            }
        }
        let mut tx = self.pool.begin().await?;
        Self::festival(&mut tx, festival_id).await?;
        let found = store::categories::find_many(&mut tx, festival_id, &categories).await?;
        if let Some(missing) = categories.iter().position(|id| !found.iter().any(|c| c.id == *id)) {
            return Err(ApiError::field(
                codes::NOT_FOUND,
                &format!("category_ids[{missing}]"),
                "no such category here",
            ));
        }
        let row = store::gates::insert_list(
            &mut tx,
            &ListRow {
                id: Uuid::now_v7(),
                festival_id,
                name: name.to_owned(),
                category_ids: categories,
                zone,
                created_at: self.clock.now(),
            },
        )
        .await
        .on_unique(store::gates::LIST_NAME_UNIQUE, ApiError::field(codes::ALREADY_EXISTS, "name", "is already used"))?;
        tx.commit().await?;
        Ok(to_list(&row))
    }

    pub(super) async fn list_check_in_lists(
        &self,
        caller: GateCaller,
        req: pb::ListCheckInListsRequest,
    ) -> ApiResult<pb::ListCheckInListsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        self.admit_gate_caller(&caller, festival_id).await?;
        let lists = store::gates::lists(&mut *self.pool.acquire().await?, festival_id).await?;
        Ok(pb::ListCheckInListsResponse { lists: lists.iter().map(to_list).collect() })
    }

    pub(super) async fn get_scanner_snapshot(
        &self,
        caller: GateCaller,
        req: pb::GetScannerSnapshotRequest,
    ) -> ApiResult<pb::ScannerSnapshot> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        self.admit_gate_caller(&caller, festival_id).await?;
        let list_id = optional_uuid("list_id", &req.list_id)?;
        let now = self.clock.now();
        // One snapshot: everything read at one point in time.
        let mut tx = self.pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
        let festival = Self::festival(&mut tx, festival_id).await?;
        let list = Self::list_named(&mut tx, festival_id, list_id).await?;
        let keys = store::keys::of_festival(&mut tx, festival_id).await?;
        let revoked = store::tickets::revoked_ids(&mut tx, festival_id).await?;
        let categories = store::categories::of_festival(&mut tx, festival_id).await?;
        let (tickets, truncated) = if req.include_tickets {
            // Every ticket, not only the list's: the credential does not carry its
            // category, so the scanner needs the ticket to tell "not on this list".
            let list_key = list_id.unwrap_or(GROUNDS);
            let mut rows = store::gates::snapshot_tickets(&mut tx, festival_id, list_key, SNAPSHOT_TICKETS + 1).await?;
            let truncated = rows.len() > usize::try_from(SNAPSHOT_TICKETS).unwrap_or(usize::MAX);
            rows.truncate(usize::try_from(SNAPSHOT_TICKETS).unwrap_or(usize::MAX));
            (rows, truncated)
        } else {
            (Vec::new(), false)
        };
        tx.commit().await?;
        Ok(pb::ScannerSnapshot {
            festival_id: festival_id.to_string(),
            time_zone: festival.time_zone,
            keys: keys.iter().map(super::tickets::to_key).collect(),
            revoked_ticket_ids: revoked.iter().map(ToString::to_string).collect(),
            list: list.as_ref().map(to_list),
            categories: categories
                .iter()
                .map(|c| pb::CategoryValidity {
                    category_id: c.id.to_string(),
                    valid_days: c.valid_days.iter().map(|d| d.format("%Y-%m-%d").to_string()).collect(),
                    zones: c.zones.clone(),
                    reentry: c.reentry,
                })
                .collect(),
            tickets: tickets
                .iter()
                .map(|t| pb::SnapshotTicket {
                    ticket_id: t.id.to_string(),
                    category_id: t.category_id.to_string(),
                    status: ticket_status(t.status) as i32,
                    entered: t.entered,
                    inside: t.inside,
                })
                .collect(),
            snapshot_time: Some(timestamp(now)),
            tickets_truncated: truncated,
        })
    }

    pub(super) async fn upload_scans(
        &self,
        caller: GateCaller,
        req: pb::UploadScansRequest,
    ) -> ApiResult<pb::UploadScansResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let Some(device) = caller.device().cloned() else {
            return Err(ApiError::new(codes::INSUFFICIENT_PERMISSIONS)
                .with_message("Offline scans are uploaded by the paired device that made them"));
        };
        self.admit_gate_caller(&caller, festival_id).await?;
        let batch = signed_batch(&device, &req)?;
        if batch.festival_id != festival_id.to_string() || batch.device_id != device.id.to_string() {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "batch", "made for another festival or device"));
        }
        let nonce = validate::required("batch.nonce", &batch.nonce, 64)?;
        if !nonce.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "batch.nonce", "printable ASCII only"));
        }
        let now = self.clock.now();
        let scans = parse_scans(&batch.scans, now)?;
        // Codes are checked before the transaction: no key lookup while rows are locked.
        let read = self.read_own_codes(scans.iter().map(|s| s.credential.as_str()), festival_id).await?;

        let mut tx = self.pool.begin().await?;
        if !store::gates::claim_upload(&mut tx, device.id, nonce, festival_id, now).await? {
            let stored = store::gates::upload_result(&mut tx, device.id, nonce).await?;
            let mut answer = stored
                .and_then(|bytes| pb::UploadScansResponse::decode(bytes.as_slice()).ok())
                .ok_or_else(|| ApiError::new(codes::CONCURRENT_UPDATE))?;
            answer.replayed = true;
            return Ok(answer);
        }
        Self::festival(&mut tx, festival_id).await?;
        let lists: HashMap<Uuid, ListRow> =
            store::gates::lists(&mut tx, festival_id).await?.into_iter().map(|l| (l.id, l)).collect();
        // In the order they happened, whatever order the device sent them in.
        let mut order: Vec<usize> = (0..scans.len()).collect();
        order.sort_by_key(|&i| (scans[i].at, i));
        let mut results = vec![pb::ScanResult::default(); scans.len()];
        for i in order {
            let scan = &scans[i];
            let (outcome, ticket) = match read[i] {
                Code::Forged => (Outcome::Forged, None),
                Code::OtherFestival => (Outcome::OtherFestival, None),
                // What the scanner refused changed nothing at the gate: recorded only.
                Code::Ticket(_) if !scan.accepted => (Outcome::RefusedByScanner, None),
                Code::Ticket(ticket_id) => match scan.list_id.map(|id| lists.get(&id)) {
                    Some(None) => (Outcome::Refused(Refusal::WrongList), None),
                    list => {
                        let job = ScanJob {
                            festival_id,
                            ticket_id,
                            list: list.flatten(),
                            direction: scan.direction,
                            at: scan.at,
                            gate: &device.gate,
                            override_reason: None,
                            offline: true,
                            by: Scanner { actor_id: device.id, device_id: Some(device.id) },
                        };
                        match self.apply_scan(&mut tx, &job, false).await? {
                            Some(applied) => (applied.outcome, applied.ticket),
                            None => (Outcome::Forged, None),
                        }
                    }
                },
            };
            let accepted_by_server = matches!(outcome, Outcome::Admitted | Outcome::Exited);
            // A duplicate of this device's own first entry moments before is one person:
            // its online answer was lost (a timeout whose entry still committed) and it
            // let them in offline. A device never admits a ticket twice knowingly.
            let own_echo = outcome == Outcome::Refused(Refusal::AlreadyUsed)
                && ticket.as_ref().is_some_and(|t| {
                    t.first_device == Some(device.id)
                        && t.first_at.is_some_and(|first| (scan.at - first).abs() <= OWN_ECHO_WINDOW)
                });
            let flagged = scan.accepted && !accepted_by_server && !own_echo;
            store::gates::record(
                &mut tx,
                &store::gates::Scan {
                    festival_id,
                    ticket_id: ticket.as_ref().map(|t| t.id),
                    category_id: ticket.as_ref().map(|t| t.category_id),
                    list_id: scan.list_id,
                    direction: scan.direction,
                    outcome: outcome.as_str(),
                    gate: &device.gate,
                    device_id: Some(device.id),
                    actor_id: device.id,
                    scanned_at: scan.at,
                    recorded_at: now,
                    upload_nonce: Some(nonce),
                    flagged,
                    override_reason: None,
                },
            )
            .await?;
            let duplicate = outcome == Outcome::Refused(Refusal::AlreadyUsed);
            results[i] = pb::ScanResult {
                index: i32::try_from(i).unwrap_or(i32::MAX),
                ticket_id: ticket.as_ref().map(|t| t.id.to_string()).unwrap_or_default(),
                outcome: outcome.to_proto() as i32,
                flagged,
                first_use_time: ticket.as_ref().and_then(|t| t.first_at).filter(|_| duplicate).map(timestamp),
                first_use_gate: ticket.and_then(|t| t.first_gate).filter(|_| duplicate).unwrap_or_default(),
            };
        }
        let count = |pred: &dyn Fn(&pb::ScanResult) -> bool| {
            i32::try_from(results.iter().filter(|r| pred(r)).count()).unwrap_or(i32::MAX)
        };
        let answer = pb::UploadScansResponse {
            admitted: count(&|r| r.outcome == pb::ScanOutcome::Admitted as i32),
            duplicates: count(&|r| r.outcome == pb::ScanOutcome::Duplicate as i32),
            flagged: count(&|r| r.flagged),
            replayed: false,
            results,
        };
        store::gates::save_upload_result(&mut tx, device.id, nonce, &answer.encode_to_vec()).await?;
        tx.commit().await?;
        Ok(answer)
    }

    pub(super) async fn get_check_in_stats(
        &self,
        caller: Principal,
        req: pb::GetCheckInStatsRequest,
    ) -> ApiResult<pb::CheckInStats> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        Self::festival(&mut *self.pool.acquire().await?, festival_id).await?;
        Self::stats(&self.pool, festival_id).await
    }

    pub(super) async fn watch_check_ins(
        &self,
        caller: Principal,
        req: pb::WatchCheckInsRequest,
    ) -> ApiResult<RpcStream<pb::CheckInStats>> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        Self::festival(&mut *self.pool.acquire().await?, festival_id).await?;
        let gates = &self.config.gates;
        let live = LiveConfig {
            watch_interval_ms: gates.watch_interval_ms,
            watch_max_secs: gates.watch_max_secs,
            max_watchers_per_festival: gates.max_watchers_per_festival,
        };
        let watching = self.watchers.open(festival_id, live.max_watchers_per_festival)?;
        let (pool, verifier) = (self.pool.clone(), self.verifier.clone());
        Ok(live::changes(live, watching, move || {
            let pool = pool.clone();
            // A session ended meanwhile (signed out, account disabled) ends the stream.
            let ended = verifier.session_ended(caller.session_id);
            async move {
                if ended {
                    return Err(ApiError::new(codes::SESSION_REVOKED));
                }
                Self::stats(&pool, festival_id).await
            }
        }))
    }

    /// A festival's check-in counts, read at one point in time.
    async fn stats(pool: &sqlx::PgPool, festival_id: Uuid) -> ApiResult<pb::CheckInStats> {
        let mut tx = pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
        let lists = store::gates::checked_in_per_list(&mut tx, festival_id).await?;
        let categories = store::gates::per_category(&mut tx, festival_id).await?;
        let on_site = store::gates::on_site(&mut tx, festival_id).await?;
        tx.commit().await?;
        Ok(pb::CheckInStats {
            lists: lists
                .into_iter()
                .map(|(key, checked_in)| pb::ListCheckIns {
                    list_id: if key == GROUNDS { String::new() } else { key.to_string() },
                    checked_in,
                })
                .collect(),
            categories: categories
                .into_iter()
                .map(|(id, sold, checked_in)| pb::CategoryCheckIns { category_id: id.to_string(), sold, checked_in })
                .collect(),
            on_site,
        })
    }
}

/// The gate a scan happens at: a device's own; a person names it.
fn scan_gate<'a>(caller: &'a GateCaller, requested: &'a str) -> ApiResult<&'a str> {
    let requested = requested.trim();
    match caller {
        GateCaller::Device(d) if requested.is_empty() || requested == d.gate => Ok(&d.gate),
        GateCaller::Device(d) => {
            Err(ApiError::field(codes::VALIDATION_FAILED, "gate", format!("this device scans at {}", d.gate)))
        }
        GateCaller::Person(_) => validate::plain_text("gate", validate::required("gate", requested, 64)?, false),
    }
}

/// The batch of an upload, if the device's key signed exactly these bytes.
fn signed_batch(device: &Device, req: &pb::UploadScansRequest) -> ApiResult<pb::ScanBatch> {
    if req.batch.is_empty() {
        return Err(ApiError::field(codes::REQUIRED_FIELD, "batch", "is required"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(validate::required("signature", &req.signature, 128)?.as_bytes())
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::field(codes::DEVICE_PROOF_INVALID, "signature", "not an Ed25519 signature"))?;
    let key = VerifyingKey::from_bytes(&device.public_key).map_err(|_| ApiError::new(codes::DEVICE_PROOF_INVALID))?;
    key.verify_strict(&req.batch, &signature)
        .map_err(|_| ApiError::field(codes::DEVICE_PROOF_INVALID, "signature", "does not match the batch"))?;
    pb::ScanBatch::decode(req.batch.as_slice())
        .map_err(|_| ApiError::field(codes::VALIDATION_FAILED, "batch", "not an encoded ScanBatch"))
}

/// An uploaded scan, checked.
struct OfflineScan {
    credential: String,
    list_id: Option<Uuid>,
    direction: Direction,
    at: DateTime<Utc>,
    accepted: bool,
}

fn parse_scans(raw: &[pb::OfflineScan], now: DateTime<Utc>) -> ApiResult<Vec<OfflineScan>> {
    if raw.is_empty() || raw.len() > MAX_UPLOAD_SCANS {
        let why = format!("1 to {MAX_UPLOAD_SCANS} scans");
        return Err(ApiError::field(codes::VALIDATION_FAILED, "batch.scans", why));
    }
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            let field = |name: &str| format!("batch.scans[{i}].{name}");
            let at = s
                .scan_time
                .as_ref()
                .and_then(from_timestamp)
                .ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, &field("scan_time"), "is required"))?;
            if at > now + CLOCK_SKEW {
                return Err(ApiError::field(codes::VALIDATION_FAILED, &field("scan_time"), "in the future"));
            }
            if at < now - MAX_UPLOAD_AGE {
                return Err(ApiError::field(codes::VALIDATION_FAILED, &field("scan_time"), "more than 7 days old"));
            }
            Ok(OfflineScan {
                credential: validate::required(&field("credential"), &s.credential, MAX_CREDENTIAL)?.to_owned(),
                list_id: optional_uuid(&field("list_id"), &s.list_id)?,
                direction: direction(s.direction, &field("direction"))?,
                at,
                accepted: s.accepted,
            })
        })
        .collect()
}
