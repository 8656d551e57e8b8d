//! A scanner client: what a gate device runs.
//!
//! It scans **online** (ticketing's `Redeem`) while ticketing answers, and falls back to
//! **offline** by itself the moment it does not (the connection refused or dropped, no
//! answer within [`ScannerConfig::online_timeout`], ticketing unavailable): every answer
//! says which mode gave it ([`Scan::mode`]), so the steward sees the switch. Offline it
//! answers from its [`Gate`] (the last snapshot, plus what it let through since) without
//! waiting on the network, and keeps each accepted scan for upload; an invalid code is
//! one refused answer and the next scan goes on as usual. [`Scanner::sync`] (the app
//! calls it on a timer, every few seconds while offline) uploads the kept scans signed
//! with the device's key, takes a fresh snapshot and goes back online.
//!
//! A device that is refused as such (revoked, token expired: ERR_2xxx / ERR_3xxx) does
//! **not** fall back: a stolen or retired scanner must not keep admitting people
//! offline. Uploads are cut into batches with a random nonce kept until ticketing
//! acknowledges them, so a batch whose answer was lost is sent again under the same
//! nonce and applied once. Kept scans also go to an optional journal file, so a scanner
//! that restarts before it could upload loses nothing.

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

/// Which way the scanner answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Ticketing decided.
    Online,
    /// The scanner decided from its snapshot; the scan is kept for upload.
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
    /// No snapshot yet: the scanner cannot answer offline (call `sync` first).
    NoSnapshot,
    /// Ticketing refused the device itself (revoked, token expired or not for this
    /// festival): it stops rather than scan offline.
    DeviceRefused {
        code: String,
        message: String,
    },
    /// Ticketing cannot be reached (a sync stays offline).
    Unreachable(tonic::Status),
    BadSnapshot(BadSnapshot),
    Journal(std::io::Error),
}

impl std::fmt::Display for ScannerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScannerError::NoSnapshot => write!(f, "no snapshot yet: sync first"),
            ScannerError::DeviceRefused { code, message } => write!(f, "device refused: {code} {message}"),
            ScannerError::Unreachable(status) => write!(f, "ticketing unreachable: {status}"),
            ScannerError::BadSnapshot(e) => write!(f, "{e}"),
            ScannerError::Journal(e) => write!(f, "scan journal: {e}"),
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
    /// Where kept scans are journaled until uploaded (none: memory only).
    pub journal: Option<PathBuf>,
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
}

pub struct Scanner {
    client: TicketingServiceClient<Channel>,
    config: ScannerConfig,
    key: SigningKey,
    token: String,
    clock: Clock,
    mode: Mode,
    gate: Option<Gate>,
    /// Accepted offline, not uploaded yet, oldest first.
    kept: Vec<pb::OfflineScan>,
    /// A batch sent whose answer has not been seen: sent again under the same nonce.
    in_flight: Option<(String, Vec<pb::OfflineScan>)>,
}

impl Scanner {
    /// A scanner talking to ticketing over `channel` (lazy: it connects when first used)
    /// with the device's `key` and `token`. Scans kept in the journal by an earlier run
    /// are loaded to be uploaded. Starts online, without a snapshot: call
    /// [`sync`](Self::sync) before the gates open.
    pub fn new(
        channel: Channel,
        config: ScannerConfig,
        key: SigningKey,
        token: String,
        clock: Clock,
    ) -> Result<Self, ScannerError> {
        let kept = match &config.journal {
            Some(path) => read_journal(path).map_err(ScannerError::Journal)?,
            None => Vec::new(),
        };
        Ok(Self {
            client: TicketingServiceClient::new(channel),
            config,
            key,
            token,
            clock,
            mode: Mode::Online,
            gate: None,
            kept,
            in_flight: None,
        })
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

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = format!("Bearer {}", self.token).parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request.set_timeout(self.config.online_timeout);
        request
    }

    /// Scans a code read at the gate. Online while ticketing answers; offline from the
    /// moment it does not, without waiting on the network again until a sync succeeds.
    pub async fn scan(&mut self, credential: &str, direction: Direction) -> Result<Scan, ScannerError> {
        if self.mode == Mode::Online {
            let request = self.request(pb::RedeemRequest {
                festival_id: self.config.festival_id.to_string(),
                credential: credential.trim().to_owned(),
                gate: self.config.gate.clone(),
                list_id: self.config.list_id.clone(),
                direction: match direction {
                    Direction::Entry => pb::ScanDirection::Entry,
                    Direction::Exit => pb::ScanDirection::Exit,
                } as i32,
                ..Default::default()
            });
            let answer = tokio::time::timeout(self.config.online_timeout, self.client.redeem(request)).await;
            match answer {
                Ok(Ok(check_in)) => return Ok(self.admitted_online(check_in.into_inner())),
                Ok(Err(status)) => match classify(&status) {
                    Failure::Refused { code, message } => {
                        return Ok(Scan { mode: Mode::Online, verdict: Verdict::Refused { code, message } });
                    }
                    Failure::Device { code, message } => return Err(ScannerError::DeviceRefused { code, message }),
                    Failure::Unreachable => self.go_offline(&status.to_string()),
                },
                Err(_) => self.go_offline("no answer in time"),
            }
        }
        self.scan_offline(credential, direction)
    }

    fn admitted_online(&mut self, check_in: pb::CheckIn) -> Scan {
        let ticket_id = Uuid::parse_str(&check_in.ticket_id).unwrap_or_default();
        let movement = if check_in.direction == pb::ScanDirection::Exit as i32 {
            Move::Leave
        } else if check_in.reentry {
            Move::Reenter
        } else {
            Move::Enter
        };
        // Remembered, so that if the network drops now a second scan is still refused.
        if let Some(gate) = &mut self.gate {
            gate.record(ticket_id, Uuid::parse_str(&check_in.category_id).ok(), movement);
        }
        Scan { mode: Mode::Online, verdict: Verdict::Admitted { ticket_id, movement } }
    }

    fn go_offline(&mut self, why: &str) {
        tracing::warn!(reason = why, "ticketing cannot be reached: scanning offline");
        self.mode = Mode::Offline;
    }

    fn scan_offline(&mut self, credential: &str, direction: Direction) -> Result<Scan, ScannerError> {
        let now = self.clock.now();
        let gate = self.gate.as_mut().ok_or(ScannerError::NoSnapshot)?;
        let verdict = match gate.scan(credential, direction, now) {
            Ok(accepted) => {
                let scan = pb::OfflineScan {
                    credential: credential.trim().to_owned(),
                    list_id: self.config.list_id.clone(),
                    direction: match direction {
                        Direction::Entry => pb::ScanDirection::Entry,
                        Direction::Exit => pb::ScanDirection::Exit,
                    } as i32,
                    scan_time: Some(timestamp(now)),
                    accepted: true,
                };
                if let Some(path) = &self.config.journal {
                    append_journal(path, &scan).map_err(ScannerError::Journal)?;
                }
                self.kept.push(scan);
                Verdict::Admitted { ticket_id: accepted.ticket_id, movement: accepted.movement }
            }
            Err(refused) => refused_verdict(refused),
        };
        Ok(Scan { mode: Mode::Offline, verdict })
    }

    /// Uploads the kept scans (signed, in batches), takes a fresh snapshot and goes
    /// online. If ticketing cannot be reached the scanner stays as it is (offline keeps
    /// answering) and keeps every scan not acknowledged.
    pub async fn sync(&mut self) -> Result<SyncReport, ScannerError> {
        let mut report = SyncReport::default();
        loop {
            if self.in_flight.is_none() {
                if self.kept.is_empty() {
                    break;
                }
                let cut = self.kept.len().min(BATCH);
                let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>());
                self.in_flight = Some((nonce, self.kept.drain(..cut).collect()));
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
            let request = self.request(pb::UploadScansRequest {
                festival_id: self.config.festival_id.to_string(),
                batch,
                signature,
            });
            let answer = tokio::time::timeout(self.config.online_timeout, self.client.upload_scans(request)).await;
            let uploaded = match answer {
                Ok(Ok(answer)) => answer.into_inner(),
                Ok(Err(status)) => return Err(self.sync_failed(status)),
                Err(_) => return Err(ScannerError::Unreachable(tonic::Status::deadline_exceeded("upload"))),
            };
            let sent = self.in_flight.take().map_or(0, |(_, scans)| scans.len());
            report.uploaded += sent;
            report.admitted += uploaded.admitted;
            report.duplicates += uploaded.duplicates;
            report.flagged += uploaded.flagged;
            if let Some(path) = &self.config.journal {
                write_journal(path, &self.kept).map_err(ScannerError::Journal)?;
            }
        }
        let request = self.request(pb::GetScannerSnapshotRequest {
            festival_id: self.config.festival_id.to_string(),
            list_id: self.config.list_id.clone(),
            include_tickets: true,
        });
        let snapshot =
            match tokio::time::timeout(self.config.online_timeout, self.client.get_scanner_snapshot(request)).await {
                Ok(Ok(snapshot)) => snapshot.into_inner(),
                Ok(Err(status)) => return Err(self.sync_failed(status)),
                Err(_) => return Err(ScannerError::Unreachable(tonic::Status::deadline_exceeded("snapshot"))),
            };
        self.gate = Some(Gate::from_snapshot(&snapshot).map_err(ScannerError::BadSnapshot)?);
        if self.mode == Mode::Offline {
            tracing::info!(uploaded = report.uploaded, "ticketing reached again: scanning online");
        }
        self.mode = Mode::Online;
        Ok(report)
    }

    fn sync_failed(&self, status: tonic::Status) -> ScannerError {
        match classify(&status) {
            Failure::Device { code, message } => ScannerError::DeviceRefused { code, message },
            Failure::Refused { .. } | Failure::Unreachable => ScannerError::Unreachable(status),
        }
    }
}

fn refused_verdict(refused: Refused) -> Verdict {
    Verdict::Refused { code: refused.code().to_owned(), message: refused.message().to_owned() }
}

enum Failure {
    /// Ticketing answered: the scan is refused (a gate code, a malformed request).
    Refused { code: String, message: String },
    /// The device itself is refused.
    Device { code: String, message: String },
    /// No usable answer: the network, a deadline, ticketing overloaded or down.
    Unreachable,
}

fn classify(status: &tonic::Status) -> Failure {
    use tonic::Code;
    let reason = festival_platform::error::reason(status);
    match (status.code(), reason) {
        (Code::Unauthenticated | Code::PermissionDenied, Some(code)) => {
            Failure::Device { code, message: status.message().to_owned() }
        }
        (
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
            | Code::Internal
            | Code::Unknown,
            _,
        )
        | (_, None) => Failure::Unreachable,
        (_, Some(code)) => Failure::Refused { code, message: status.message().to_owned() },
    }
}

/// One kept scan per line: its protobuf encoding in base64.
fn append_journal(path: &Path, scan: &pb::OfflineScan) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "{}", STANDARD.encode(scan.encode_to_vec()))?;
    file.sync_data()
}

fn write_journal(path: &Path, scans: &[pb::OfflineScan]) -> std::io::Result<()> {
    let text: String = scans.iter().map(|s| format!("{}\n", STANDARD.encode(s.encode_to_vec()))).collect();
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(temporary, path)
}

fn read_journal(path: &Path) -> std::io::Result<Vec<pb::OfflineScan>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut scans = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // A line cut short by a crash mid-write is the only one that can be damaged.
        let Ok(bytes) = STANDARD.decode(line.trim()) else { continue };
        let Ok(scan) = pb::OfflineScan::decode(bytes.as_slice()) else { continue };
        scans.push(scan);
    }
    Ok(scans)
}
