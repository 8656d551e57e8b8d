//! The gate a scanner keeps from its snapshot: the festival's public keys, the
//! revocation list, its entrance's rule, the categories' validity and (optionally) the
//! tickets with where each stands at this entrance. It answers a scan with the public
//! keys alone, through the same [`decide`](crate::rule::decide) as ticketing, and
//! remembers what it let through so a second scan on this device is refused.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use festival_platform::credential::{Keyring, Kind, Unverified};
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use crate::rule::{Direction, Entrance, Move, Presence, Refusal, Validity, decide, local_day};

/// Why the offline gate refuses a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The gate's rule (the same as online).
    Rule(Refusal),
    /// Not a credential signed by one of the festival's keys (or not a ticket).
    Forged,
    /// Genuine, of another festival.
    OtherFestival,
    /// Genuine, but this scanner cannot tell what it admits: a ticket missing from its
    /// snapshot at an entrance that admits only some categories.
    Unknown,
}

impl Refused {
    /// The catalogued code ticketing answers for the same case online.
    pub fn code(self) -> &'static str {
        match self {
            Refused::Rule(Refusal::AlreadyUsed) => "ERR_6001",
            Refused::Rule(Refusal::Revoked) => "ERR_6009",
            Refused::Rule(Refusal::WrongDay) => "ERR_6012",
            Refused::Rule(Refusal::WrongList) => "ERR_6013",
            Refused::Rule(Refusal::NotInside) => "ERR_6014",
            Refused::Forged => "ERR_6004",
            Refused::OtherFestival => "ERR_6005",
            Refused::Unknown => "ERR_4000",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refused::Rule(Refusal::AlreadyUsed) => "Ticket already used",
            Refused::Rule(Refusal::Revoked) => "Ticket revoked",
            Refused::Rule(Refusal::WrongDay) => "Ticket is not valid today",
            Refused::Rule(Refusal::WrongList) => "Ticket is not valid at this entrance",
            Refused::Rule(Refusal::NotInside) => "Ticket is not checked in",
            Refused::Forged => "Invalid ticket code",
            Refused::OtherFestival => "Ticket is not valid for this festival",
            Refused::Unknown => "Ticket unknown to this scanner: send to a supervisor",
        }
    }
}

/// A snapshot that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSnapshot(pub String);

impl std::fmt::Display for BadSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unusable scanner snapshot: {}", self.0)
    }
}

impl std::error::Error for BadSnapshot {}

/// A credential issued this close before the snapshot may have missed it.
const ISSUE_MARGIN_SECS: i64 = 300;

#[derive(Debug, Clone, Copy)]
struct Known {
    category: Option<Uuid>,
    presence: Presence,
}

/// An accepted scan: the ticket and what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub ticket_id: Uuid,
    pub category_id: Option<Uuid>,
    pub movement: Move,
}

#[derive(Debug, Clone)]
pub struct Gate {
    festival: Uuid,
    time_zone: String,
    keyring: Keyring,
    revoked: HashSet<Uuid>,
    entrance: Entrance,
    /// Every category, no zone: a ticket's category does not matter here.
    admits_all: bool,
    categories: HashMap<Uuid, Validity>,
    tickets: HashMap<Uuid, Known>,
    /// The snapshot lists every live ticket (not truncated): one it lacks that was issued
    /// before it was taken is not to be trusted.
    complete: bool,
    taken_at: DateTime<Utc>,
}

fn uuid(field: &str, raw: &str) -> Result<Uuid, BadSnapshot> {
    Uuid::parse_str(raw).map_err(|_| BadSnapshot(format!("{field}: not an id")))
}

impl Gate {
    pub fn from_snapshot(s: &pb::ScannerSnapshot) -> Result<Self, BadSnapshot> {
        let mut keyring = Keyring::default();
        for key in &s.keys {
            let bytes = URL_SAFE_NO_PAD.decode(&key.public_key).map_err(|_| BadSnapshot("a key: not base64".into()))?;
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| BadSnapshot("a key: not 32 bytes".into()))?;
            keyring.insert(VerifyingKey::from_bytes(&bytes).map_err(|_| BadSnapshot("a key: not Ed25519".into()))?);
        }
        if s.keys.is_empty() {
            return Err(BadSnapshot("no keys".into()));
        }
        // A gate verifies every code it scans with these few keys: twice as fast with tables.
        keyring.precompute();
        let revoked = s.revoked_ticket_ids.iter().map(|id| uuid("revoked_ticket_ids", id)).collect::<Result<_, _>>()?;
        let entrance = match &s.list {
            None => Entrance::default(),
            Some(list) => Entrance {
                categories: list.category_ids.iter().map(|c| uuid("list.category_ids", c)).collect::<Result<_, _>>()?,
                zone: Some(list.zone.clone()).filter(|z| !z.is_empty()),
            },
        };
        let mut categories = HashMap::new();
        for c in &s.categories {
            let days = c
                .valid_days
                .iter()
                .map(|d| d.parse().map_err(|_| BadSnapshot(format!("valid_days: {d}"))))
                .collect::<Result<_, _>>()?;
            categories.insert(
                uuid("categories.category_id", &c.category_id)?,
                Validity { days, zones: c.zones.clone(), reentry: c.reentry },
            );
        }
        let mut tickets = HashMap::new();
        for t in &s.tickets {
            let id = uuid("tickets.ticket_id", &t.ticket_id)?;
            let presence = Presence { revoked: false, entered: t.entered, inside: t.inside };
            tickets.insert(id, Known { category: Some(uuid("tickets.category_id", &t.category_id)?), presence });
        }
        let taken_at = s
            .snapshot_time
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, 0))
            .ok_or_else(|| BadSnapshot("no snapshot time".into()))?;
        Ok(Self {
            festival: uuid("festival_id", &s.festival_id)?,
            time_zone: s.time_zone.clone(),
            keyring,
            revoked,
            admits_all: entrance.categories.is_empty() && entrance.zone.is_none(),
            entrance,
            categories,
            tickets,
            complete: !s.tickets.is_empty() && !s.tickets_truncated,
            taken_at,
        })
    }

    /// The ticket a genuine credential of this festival names.
    pub fn ticket_of(&self, credential: &str) -> Option<Uuid> {
        self.verified(credential).ok().map(|(ticket, _)| ticket)
    }

    /// `(ticket, issue time)` of a genuine ticket credential of this festival.
    fn verified(&self, credential: &str) -> Result<(Uuid, u32), Refused> {
        let claims = match self.keyring.verify(credential.trim()) {
            Ok(claims) => claims,
            // Another festival's keys are not here: what it claims only picks the answer.
            Err(_) => {
                let other = Unverified::parse(credential).is_ok_and(|c| c.claimed_festival() != self.festival);
                return Err(if other { Refused::OtherFestival } else { Refused::Forged });
            }
        };
        if claims.kind != Kind::Ticket {
            return Err(Refused::Forged);
        }
        if claims.festival != self.festival {
            return Err(Refused::OtherFestival);
        }
        Ok((claims.subject, claims.issued_at))
    }

    /// The answer to a scan at `at`, without remembering it.
    pub fn answer(&self, credential: &str, direction: Direction, at: DateTime<Utc>) -> Result<Accepted, Refused> {
        let (ticket, issued_at) = self.verified(credential)?;
        let day = local_day(&self.time_zone, at);
        let revoked = self.revoked.contains(&ticket);
        let known = match self.tickets.get(&ticket) {
            Some(known) => *known,
            // Revoked and not inside here: the snapshot drops it.
            None if revoked => Known { category: None, presence: Presence { revoked, entered: true, inside: false } },
            // Sold after the snapshot (issued up to a few minutes before it may not be in
            // it yet), or beyond a truncated one.
            None if !self.complete || i64::from(issued_at) + ISSUE_MARGIN_SECS >= self.taken_at.timestamp() => {
                Known { category: None, presence: Presence { revoked, entered: false, inside: false } }
            }
            None => return Err(Refused::Unknown),
        };
        let presence = Presence { revoked: revoked || known.presence.revoked, ..known.presence };
        let (category, validity) = match known.category {
            Some(category) => (category, self.categories.get(&category).cloned().unwrap_or_default()),
            // Its category is unknown here: it enters only where any category would,
            // today (every category admitted, each valid today), and may always leave.
            None if presence.revoked || direction == Direction::Exit || self.any_category_enters(day) => {
                (Uuid::nil(), Validity::default())
            }
            None => return Err(Refused::Unknown),
        };
        let entrance = if known.category.is_none() { &Entrance::default() } else { &self.entrance };
        decide(entrance, category, &validity, presence, direction, day, false)
            .map(|movement| Accepted { ticket_id: ticket, category_id: known.category, movement })
            .map_err(Refused::Rule)
    }

    /// Every category passes this entrance on `day`.
    fn any_category_enters(&self, day: chrono::NaiveDate) -> bool {
        self.admits_all && self.categories.values().all(|v| v.days.is_empty() || v.days.contains(&day))
    }

    /// Answers a scan and remembers an accepted one, so the next scan of that ticket on
    /// this device sees it inside (or out).
    pub fn scan(&mut self, credential: &str, direction: Direction, at: DateTime<Utc>) -> Result<Accepted, Refused> {
        let accepted = self.answer(credential, direction, at)?;
        self.record(accepted.ticket_id, accepted.category_id, accepted.movement);
        Ok(accepted)
    }

    /// Remembers a movement this device saw (offline, or answered online since the
    /// snapshot).
    pub fn record(&mut self, ticket_id: Uuid, category_id: Option<Uuid>, movement: Move) {
        let revoked = self.revoked.contains(&ticket_id);
        let entry =
            self.tickets.entry(ticket_id).or_insert(Known { category: category_id, presence: movement.after() });
        entry.category = entry.category.or(category_id);
        entry.presence = Presence { revoked, ..movement.after() };
    }

    pub fn festival_id(&self) -> Uuid {
        self.festival
    }

    pub fn taken_at(&self) -> DateTime<Utc> {
        self.taken_at
    }
}
