//! A scanner client: what a gate device runs.
//!
//! It scans **online** (ticketing's `Redeem`) while ticketing answers, and falls back to
//! **offline** by itself the moment it does not (the connection refused or dropped, no
//! answer within [`ScannerConfig::online_timeout`], ticketing unavailable): every answer
//! says which mode gave it ([`Scan::mode`]), so the steward sees the switch. Offline it
//! answers from its [`Gate`] (the last snapshot, plus what it let through since) without
//! waiting on the network, and keeps each accepted scan for upload; an invalid code is
//! one refused answer and the next scan goes on as usual.
//!
//! [`Scanner::sync`] uploads the kept scans signed with the device's key, takes a fresh
//! snapshot and goes (back) online. The app calls it on a timer **in both modes**: every
//! few seconds while offline, every few minutes online, so the snapshot an outage falls
//! back on is recent.
//!
//! A device refused as such (revoked, not for this festival: ERR_2010, ERR_2011,
//! ERR_3xxx) **stops** for good, online or offline: a retired or stolen scanner must not
//! keep admitting people. An expired or unreadable token is [`ScannerError::TokenNeeded`]:
//! the app renews it ([`Scanner::set_token`]). Offline answers stop too when the
//! snapshot is older than [`ScannerConfig::max_snapshot_age`] or the device's clock reads
//! earlier than the snapshot (a reset clock).
//!
//! With a [`ScannerConfig::state_dir`] nothing is lost to a restart: the snapshot, the
//! kept scans (journaled before the answer is given), the batch being uploaded with its
//! nonce (written before it is sent, so a batch whose answer was lost is sent again
//! under the same nonce and applied once) and batches ticketing refused outright (kept
//! aside, reported, never retried forever). A restarted scanner replays its kept scans
//! into the gate, so it still refuses a second entry it let through before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer as _, SigningKey};
use festival_platform::clock::Clock;
use festival_platform::convert::timestamp;
use festival_proto::ticketing::v1 as pb;
use festival_proto::ticketing::v1::ticketing_service_client::TicketingServiceClient;
use prost::Message as _;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::offline::{BadSnapshot, Gate, Refused};
use crate::rule::{Direction, Move};

/// Scans one upload carries at most (ticketing's limit).
const BATCH: usize = 1_000;
/// The largest snapshot accepted (50,000 tickets and a long revocation list).
const MAX_SNAPSHOT_BYTES: usize = 64 << 20;

/// Which way the scanner answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Ticketing decided.
    Online,
    /// The scanner decided from its snapshot; an accepted scan is kept for upload.
    Offline,
}

/// A scan's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub mode: Mode,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let them through.
    Admitted { ticket_id: Uuid, movement: Move },
    /// Do not: the catalogued code (the same online and offline) and a message.
    Refused { code: String, message: String },
}

impl Verdict {
    pub fn code(&self) -> &str {
        match self {
            Verdict::Admitted { .. } => "OK",
            Verdict::Refused { code, .. } => code,
        }
    }
}

/// Why a scan or a sync could not be made at all.
#[derive(Debug)]
pub enum ScannerError {
    /// No snapshot yet: the scanner cannot answer offline (sync first).
    NoSnapshot,
    /// The snapshot is older than allowed, or the device's clock reads before it.
    SnapshotStale,
    /// Ticketing refused the device itself (revoked, not for this festival): it has
    /// stopped, online and offline, for good.
    DeviceRefused {
        code: String,
        message: String,
    },
    /// The device token expired or was not accepted: renew it.
    TokenNeeded {
        code: String,
    },
    /// Ticketing cannot be reached (a sync stays offline).
    Unreachable(tonic::Status),
    BadSnapshot(BadSnapshot),
    State(std::io::Error),
}

impl std::fmt::Display for ScannerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScannerError::NoSnapshot => write!(f, "no snapshot yet: sync first"),
            ScannerError::SnapshotStale => write!(f, "the snapshot is too old (or the clock is wrong): sync first"),
            ScannerError::DeviceRefused { code, message } => write!(f, "device refused: {code} {message}"),
            ScannerError::TokenNeeded { code } => write!(f, "device token refused ({code}): renew it"),
            ScannerError::Unreachable(status) => write!(f, "ticketing unreachable: {status}"),
            ScannerError::BadSnapshot(e) => write!(f, "{e}"),
            ScannerError::State(e) => write!(f, "scanner state: {e}"),
        }
    }
}

impl std::error::Error for ScannerError {}

#[derive(Debug, Clone)]
pub struct ScannerConfig {
    pub festival_id: Uuid,
    /// The entrance's check-in list; empty: the festival grounds.
    pub list_id: String,
    /// The device's id (as identity paired it) and gate.
    pub device_id: Uuid,
    pub gate: String,
    /// How long an online answer may take before the scan is answered offline.
    pub online_timeout: Duration,
    /// How long an upload or a snapshot download may take (they are larger).
    pub sync_timeout: Duration,
    /// Offline answers stop once the snapshot is older than this.
    pub max_snapshot_age: Duration,
    /// Where the snapshot and the kept scans live across restarts (none: memory only).
    pub state_dir: Option<PathBuf>,
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Scans uploaded, and ticketing's verdicts on them.
    pub uploaded: usize,
    pub admitted: i32,
    pub duplicates: i32,
    /// Accepted offline but refused by ticketing (a revoked ticket): followed up by
    /// organisers.
    pub flagged: i32,
    /// Scans of batches ticketing refused outright (kept aside in `rejected`).
    pub rejected: usize,
}

pub struct Scanner {
    client: TicketingServiceClient<Channel>,
    config: ScannerConfig,
    key: SigningKey,
    token: String,
    clock: Clock,
    mode: Mode,
    stopped: Option<(String, String)>,
    gate: Option<Gate>,
    /// Accepted offline, not uploaded yet, oldest first.
    kept: Vec<pb::OfflineScan>,
    /// A batch sent whose answer has not been seen: sent again under the same nonce.
    in_flight: Option<(String, Vec<pb::OfflineScan>)>,
}

impl Scanner {
    /// A scanner talking to ticketing over `channel` (lazy: it connects when first used)
    /// with the device's `key` and `token`. What an earlier run left in the state
    /// directory is loaded: its snapshot, with its kept scans replayed into it, and the
    /// batch it was uploading. Starts online: call [`sync`](Self::sync) before the gates
    /// open.
    pub fn new(
        channel: Channel,
        config: ScannerConfig,
        key: SigningKey,
        token: String,
        clock: Clock,
    ) -> Result<Self, ScannerError> {
        let client = TicketingServiceClient::new(channel).max_decoding_message_size(MAX_SNAPSHOT_BYTES);
        let mut scanner = Self {
            client,
            config,
            key,
            token,
            clock,
            mode: Mode::Online,
            stopped: None,
            gate: None,
            kept: Vec::new(),
            in_flight: None,
        };
        if let Some(state) = scanner.state() {
            scanner.load(&state).map_err(ScannerError::State)?;
        }
        Ok(scanner)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Scans kept for upload (accepted offline, not yet acknowledged by ticketing).
    pub fn pending(&self) -> usize {
        self.kept.len() + self.in_flight.as_ref().map_or(0, |(_, scans)| scans.len())
    }

    /// A renewed device token (they last minutes).
    pub fn set_token(&mut self, token: String) {
        self.token = token;
    }

    /// Scans offline from now on (until the next successful sync), e.g. when the app
    /// cannot renew the device token because identity is unreachable.
    pub fn go_offline(&mut self) {
        self.mode = Mode::Offline;
    }

    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = format!("Bearer {}", self.token).parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request.set_timeout(timeout);
        request
    }

    fn stopped(&self) -> Result<(), ScannerError> {
        match &self.stopped {
            Some((code, message)) => Err(ScannerError::DeviceRefused { code: code.clone(), message: message.clone() }),
            None => Ok(()),
        }
    }

    /// Stops the device for good (also across restarts).
    fn stop(&mut self, code: String, message: String) -> ScannerError {
        tracing::error!(%code, %message, "ticketing refused this device: scanning stopped");
        if let Some(state) = self.state() {
            let _ = std::fs::write(state.join("stopped"), format!("{code} {message}"));
        }
        self.gate = None;
        self.stopped = Some((code.clone(), message.clone()));
        ScannerError::DeviceRefused { code, message }
    }

    /// Scans a code read at the gate. Online while ticketing answers; offline from the
    /// moment it does not, without waiting on the network again until a sync succeeds.
    pub async fn scan(&mut self, credential: &str, direction: Direction) -> Result<Scan, ScannerError> {
        self.stopped()?;
        let credential = credential.trim();
        if self.mode == Mode::Online {
            // A conflict (two gates on one ticket at once) is asked again once.
            for attempt in 0..2 {
                match self.redeem(credential, direction).await {
                    Ok(check_in) => return Ok(self.admitted_online(check_in, credential)),
                    Err(Failure::Refused { code, message }) => {
                        if code == "ERR_6001" {
                            self.remember_used(credential);
                        }
                        return Ok(Scan { mode: Mode::Online, verdict: Verdict::Refused { code, message } });
                    }
                    Err(Failure::Device { code, message }) => return Err(self.stop(code, message)),
                    Err(Failure::Token { code }) => return Err(ScannerError::TokenNeeded { code }),
                    Err(Failure::Conflict) if attempt == 0 => continue,
                    Err(Failure::Conflict | Failure::Unreachable) => {
                        tracing::warn!("ticketing cannot answer: scanning offline");
                        self.mode = Mode::Offline;
                        break;
                    }
                }
            }
        }
        self.scan_offline(credential, direction)
    }

    async fn redeem(&mut self, credential: &str, direction: Direction) -> Result<pb::CheckIn, Failure> {
        let request = self.request(
            pb::RedeemRequest {
                festival_id: self.config.festival_id.to_string(),
                credential: credential.to_owned(),
                gate: self.config.gate.clone(),
                list_id: self.config.list_id.clone(),
                direction: direction_pb(direction) as i32,
                ..Default::default()
            },
            self.config.online_timeout,
        );
        match tokio::time::timeout(self.config.online_timeout, self.client.redeem(request)).await {
            Ok(Ok(check_in)) => Ok(check_in.into_inner()),
            Ok(Err(status)) => Err(classify(&status)),
            Err(_) => Err(Failure::Unreachable),
        }
    }

    fn admitted_online(&mut self, check_in: pb::CheckIn, credential: &str) -> Scan {
        let ticket_id = Uuid::parse_str(&check_in.ticket_id).unwrap_or_default();
        let movement = if check_in.direction == pb::ScanDirection::Exit as i32 {
            Move::Leave
        } else if check_in.reentry {
            Move::Reenter
        } else {
            Move::Enter
        };
        // Remembered, so that if the network drops now a second scan is still refused.
        if let Some(gate) = &mut self.gate
            && gate.ticket_of(credential) == Some(ticket_id)
        {
            gate.record(ticket_id, Uuid::parse_str(&check_in.category_id).ok(), movement);
        }
        Scan { mode: Mode::Online, verdict: Verdict::Admitted { ticket_id, movement } }
    }

    /// A ticket ticketing says is used (elsewhere, since the snapshot): remembered as
    /// inside, so offline it is refused too.
    fn remember_used(&mut self, credential: &str) {
        if let Some(gate) = &mut self.gate
            && let Some(ticket) = gate.ticket_of(credential)
        {
            gate.record(ticket, None, Move::Enter);
        }
    }

    fn scan_offline(&mut self, credential: &str, direction: Direction) -> Result<Scan, ScannerError> {
        let now = self.clock.now();
        let gate = self.gate.as_ref().ok_or(ScannerError::NoSnapshot)?;
        let age = now.signed_duration_since(gate.taken_at());
        let max_age = chrono::Duration::from_std(self.config.max_snapshot_age).unwrap_or(chrono::Duration::MAX);
        if age > max_age || age < -chrono::Duration::minutes(5) {
            return Err(ScannerError::SnapshotStale);
        }
        let verdict = match gate.answer(credential, direction, now) {
            Ok(accepted) => {
                let scan = pb::OfflineScan {
                    credential: credential.to_owned(),
                    list_id: self.config.list_id.clone(),
                    direction: direction_pb(direction) as i32,
                    scan_time: Some(timestamp(now)),
                    accepted: true,
                };
                // Kept on disk before the answer is given: an admission is never lost.
                if let Some(state) = self.state() {
                    append_lines(&state.join("journal"), std::slice::from_ref(&scan)).map_err(ScannerError::State)?;
                }
                self.kept.push(scan);
                if let Some(gate) = &mut self.gate {
                    gate.record(accepted.ticket_id, accepted.category_id, accepted.movement);
                }
                Verdict::Admitted { ticket_id: accepted.ticket_id, movement: accepted.movement }
            }
            Err(refused) => refused_verdict(refused),
        };
        Ok(Scan { mode: Mode::Offline, verdict })
    }

    /// Uploads the kept scans (signed, in batches), takes a fresh snapshot and goes
    /// online. If ticketing cannot be reached the scanner stays as it is (offline keeps
    /// answering) and keeps every scan not acknowledged. A batch ticketing refuses
    /// outright (a scan time its clock cannot accept) is kept aside and reported.
    pub async fn sync(&mut self) -> Result<SyncReport, ScannerError> {
        self.stopped()?;
        let mut report = SyncReport::default();
        loop {
            if self.in_flight.is_none() {
                if self.kept.is_empty() {
                    break;
                }
                self.cut_batch()?;
            }
            let Some((nonce, scans)) = self.in_flight.clone() else { break };
            let batch = pb::ScanBatch {
                festival_id: self.config.festival_id.to_string(),
                device_id: self.config.device_id.to_string(),
                nonce,
                scans,
            }
            .encode_to_vec();
            let signature = URL_SAFE_NO_PAD.encode(self.key.sign(&batch).to_bytes());
            let request = self.request(
                pb::UploadScansRequest { festival_id: self.config.festival_id.to_string(), batch, signature },
                self.config.sync_timeout,
            );
            let answer = tokio::time::timeout(self.config.sync_timeout, self.client.upload_scans(request)).await;
            let sent = self.in_flight.as_ref().map_or(0, |(_, scans)| scans.len());
            match answer {
                Ok(Ok(answer)) => {
                    let answer = answer.into_inner();
                    report.uploaded += sent;
                    report.admitted += answer.admitted;
                    report.duplicates += answer.duplicates;
                    report.flagged += answer.flagged;
                }
                Ok(Err(status)) => match classify(&status) {
                    Failure::Refused { code, message } => {
                        tracing::error!(%code, %message, scans = sent, "ticketing refused an upload: kept aside");
                        if let (Some(state), Some((_, scans))) = (self.state(), &self.in_flight) {
                            append_lines(&state.join("rejected"), scans).map_err(ScannerError::State)?;
                        }
                        report.rejected += sent;
                    }
                    failure => return Err(self.sync_failed(failure, status)),
                },
                Err(_) => return Err(ScannerError::Unreachable(tonic::Status::deadline_exceeded("upload"))),
            }
            self.in_flight = None;
            if let Some(state) = self.state() {
                remove_if_there(&state.join("in-flight")).map_err(ScannerError::State)?;
            }
        }
        let request = self.request(
            pb::GetScannerSnapshotRequest {
                festival_id: self.config.festival_id.to_string(),
                list_id: self.config.list_id.clone(),
                include_tickets: true,
            },
            self.config.sync_timeout,
        );
        let snapshot =
            match tokio::time::timeout(self.config.sync_timeout, self.client.get_scanner_snapshot(request)).await {
                Ok(Ok(snapshot)) => snapshot.into_inner(),
                Ok(Err(status)) => return Err(self.sync_failed(classify(&status), status)),
                Err(_) => return Err(ScannerError::Unreachable(tonic::Status::deadline_exceeded("snapshot"))),
            };
        let gate = Gate::from_snapshot(&snapshot).map_err(ScannerError::BadSnapshot)?;
        if let Some(state) = self.state() {
            write_atomically(&state.join("snapshot"), &snapshot.encode_to_vec()).map_err(ScannerError::State)?;
        }
        self.gate = Some(gate);
        if self.mode == Mode::Offline {
            tracing::info!(uploaded = report.uploaded, "ticketing reached again: scanning online");
        }
        self.mode = Mode::Online;
        Ok(report)
    }

    /// Moves the oldest kept scans into a batch with a fresh nonce, written to disk
    /// before it is sent (and before the journal forgets them).
    fn cut_batch(&mut self) -> Result<(), ScannerError> {
        let cut = self.kept.len().min(BATCH);
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>());
        let scans: Vec<pb::OfflineScan> = self.kept.drain(..cut).collect();
        if let Some(state) = self.state() {
            let mut text = format!("{nonce}\n");
            text.push_str(&lines(&scans));
            write_atomically(&state.join("in-flight"), text.as_bytes()).map_err(ScannerError::State)?;
            write_atomically(&state.join("journal"), lines(&self.kept).as_bytes()).map_err(ScannerError::State)?;
        }
        self.in_flight = Some((nonce, scans));
        Ok(())
    }

    fn sync_failed(&mut self, failure: Failure, status: tonic::Status) -> ScannerError {
        match failure {
            Failure::Device { code, message } => self.stop(code, message),
            Failure::Token { code } => ScannerError::TokenNeeded { code },
            Failure::Refused { .. } | Failure::Conflict | Failure::Unreachable => ScannerError::Unreachable(status),
        }
    }

    fn state(&self) -> Option<PathBuf> {
        self.config.state_dir.clone()
    }

    /// What an earlier run left: stopped or not, its snapshot (with the scans it kept
    /// replayed into it), its kept scans and the batch it was uploading.
    fn load(&mut self, state: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(state)?;
        if let Ok(text) = std::fs::read_to_string(state.join("stopped")) {
            let (code, message) = text.split_once(' ').unwrap_or((text.as_str(), ""));
            self.stopped = Some((code.to_owned(), message.to_owned()));
            return Ok(());
        }
        if let Some(bytes) = read_if_there(&state.join("snapshot"))? {
            let snapshot = pb::ScannerSnapshot::decode(bytes.as_slice()).map_err(std::io::Error::other)?;
            self.gate = Some(Gate::from_snapshot(&snapshot).map_err(std::io::Error::other)?);
        }
        if let Some(bytes) = read_if_there(&state.join("in-flight"))? {
            let text = String::from_utf8_lossy(&bytes);
            let mut rows = text.lines();
            if let Some(nonce) = rows.next().filter(|n| !n.is_empty()) {
                let scans = parse_lines(rows);
                if !scans.is_empty() {
                    self.in_flight = Some((nonce.to_owned(), scans));
                }
            }
        }
        let kept = read_if_there(&state.join("journal"))?.unwrap_or_default();
        let flying = self.in_flight.as_ref().map(|(_, scans)| scans.clone()).unwrap_or_default();
        // A crash between writing the batch and shortening the journal leaves its scans
        // in both: they belong to the batch (one nonce, applied once).
        self.kept = parse_lines(String::from_utf8_lossy(&kept).lines())
            .into_iter()
            .filter(|scan| !flying.contains(scan))
            .collect();
        // Rewritten whole: a line cut short by a crash mid-write is dropped now, not
        // glued to the next scan appended.
        write_atomically(&state.join("journal"), lines(&self.kept).as_bytes())?;
        if let Some(gate) = &mut self.gate {
            for scan in flying.iter().chain(&self.kept) {
                let direction =
                    if scan.direction == pb::ScanDirection::Exit as i32 { Direction::Exit } else { Direction::Entry };
                let at = scan.scan_time.as_ref().and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0));
                if let Some(at) = at {
                    let _ = gate.scan(&scan.credential, direction, at);
                }
            }
        }
        Ok(())
    }
}

fn direction_pb(direction: Direction) -> pb::ScanDirection {
    match direction {
        Direction::Entry => pb::ScanDirection::Entry,
        Direction::Exit => pb::ScanDirection::Exit,
    }
}

fn refused_verdict(refused: Refused) -> Verdict {
    Verdict::Refused { code: refused.code().to_owned(), message: refused.message().to_owned() }
}

enum Failure {
    /// Ticketing answered: the scan is refused (a gate code, a malformed request).
    Refused { code: String, message: String },
    /// The device itself is refused: it stops.
    Device { code: String, message: String },
    /// The token is not accepted (expired, unreadable): renew it.
    Token { code: String },
    /// Two commands on one ticket at once: worth asking again.
    Conflict,
    /// No usable answer: the network, a deadline, ticketing overloaded or down.
    Unreachable,
}

fn classify(status: &tonic::Status) -> Failure {
    use tonic::Code;
    let Some(code) = festival_platform::error::reason(status) else { return Failure::Unreachable };
    let message = status.message().to_owned();
    match status.code() {
        Code::PermissionDenied => Failure::Device { code, message },
        Code::Unauthenticated if code == "ERR_2010" || code == "ERR_2011" => Failure::Device { code, message },
        Code::Unauthenticated => Failure::Token { code },
        Code::Aborted => Failure::Conflict,
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::Internal
        | Code::Unknown => Failure::Unreachable,
        _ => Failure::Refused { code, message },
    }
}

/// Kept scans, one per line: the protobuf encoding in base64.
fn lines(scans: &[pb::OfflineScan]) -> String {
    scans.iter().map(|s| format!("{}\n", STANDARD.encode(s.encode_to_vec()))).collect()
}

fn parse_lines<'a>(rows: impl Iterator<Item = &'a str>) -> Vec<pb::OfflineScan> {
    rows.filter_map(|line| STANDARD.decode(line.trim()).ok())
        .filter_map(|bytes| pb::OfflineScan::decode(bytes.as_slice()).ok())
        .filter(|scan| scan.scan_time.is_some() && !scan.credential.is_empty())
        .collect()
}

fn append_lines(path: &Path, scans: &[pb::OfflineScan]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(lines(scans).as_bytes())?;
    file.sync_data()
}

/// Writes a whole file so that a crash leaves the old one or the new one, never half.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_if_there(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
