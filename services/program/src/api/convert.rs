//! Mapping between rows, domain types and protos.

use std::collections::HashMap;

use chrono::Utc;
use chrono_tz::Tz;
use festival_platform::convert::timestamp;
use festival_proto::google::api::HttpBody;
use festival_proto::program::v1 as pb;
use uuid::Uuid;

use crate::domain::clashes::Clash;
use crate::domain::conflicts::Conflict;
use crate::domain::lineup::PerformanceStatus;
use crate::domain::shifts::{PlaceKind, ShiftRole};
use crate::domain::status::Status as FestivalStatus;
use crate::domain::{days, ics};
use crate::store::artists::ArtistRow;
use crate::store::festivals::FestivalRow;
use crate::store::performances::{ListingRow, PerformanceRow};
use crate::store::shifts::ShiftRow;
use crate::store::stages::StageRow;

pub(super) fn to_artist(a: &ArtistRow, manager: bool) -> pb::Artist {
    pb::Artist {
        id: a.id.to_string(),
        festival_id: a.festival_id.to_string(),
        name: a.name.clone(),
        genres: a.genres.clone(),
        bio: a.bio.clone(),
        image_url: a.image_url.clone(),
        contact: if manager { a.contact.clone() } else { String::new() },
        bios: a.bios.0.clone().into_iter().collect(),
        links: a.links.clone(),
    }
}

pub(super) fn performance_status(status: PerformanceStatus) -> pb::PerformanceStatus {
    match status {
        PerformanceStatus::Draft => pb::PerformanceStatus::Draft,
        PerformanceStatus::Published => pb::PerformanceStatus::Published,
        PerformanceStatus::Cancelled => pb::PerformanceStatus::Cancelled,
    }
}

pub(super) fn to_performance(p: &PerformanceRow) -> pb::Performance {
    let status = performance_status(p.status);
    pb::Performance {
        id: p.id.to_string(),
        festival_id: p.festival_id.to_string(),
        artist_id: p.artist_id.to_string(),
        stage_id: p.stage_id.to_string(),
        start_time: Some(timestamp(p.start_time)),
        end_time: Some(timestamp(p.end_time)),
        status: status as i32,
    }
}

pub(super) fn to_conflict(c: &Conflict<Uuid>) -> pb::Conflict {
    let (kind, ids) = match *c {
        Conflict::StageOverlap { first, second } => (pb::ConflictKind::StageOverlap, vec![first, second]),
        Conflict::ArtistDoubleBooked { first, second } => (pb::ConflictKind::ArtistDoubleBooked, vec![first, second]),
        Conflict::ArtistTravel { first, second } => (pb::ConflictKind::ArtistTravel, vec![first, second]),
        Conflict::OutsideFestival { slot } => (pb::ConflictKind::OutsideFestival, vec![slot]),
    };
    pb::Conflict { kind: kind as i32, performance_ids: ids.iter().map(Uuid::to_string).collect() }
}

pub(super) fn to_stage(s: &StageRow) -> pb::Stage {
    pb::Stage {
        id: s.id.to_string(),
        festival_id: s.festival_id.to_string(),
        name: s.name.clone(),
        capacity: s.capacity,
        position: s.position,
        changeover_minutes: s.changeover_minutes,
    }
}

pub(super) fn status_from_proto(s: pb::FestivalStatus) -> Option<FestivalStatus> {
    Some(match s {
        pb::FestivalStatus::Unspecified => return None,
        pb::FestivalStatus::Draft => FestivalStatus::Draft,
        pb::FestivalStatus::Published => FestivalStatus::Published,
        pb::FestivalStatus::Ongoing => FestivalStatus::Ongoing,
        pb::FestivalStatus::Completed => FestivalStatus::Completed,
        pb::FestivalStatus::Cancelled => FestivalStatus::Cancelled,
    })
}

pub(crate) fn status_to_proto(s: FestivalStatus) -> pb::FestivalStatus {
    match s {
        FestivalStatus::Draft => pb::FestivalStatus::Draft,
        FestivalStatus::Published => pb::FestivalStatus::Published,
        FestivalStatus::Ongoing => pb::FestivalStatus::Ongoing,
        FestivalStatus::Completed => pb::FestivalStatus::Completed,
        FestivalStatus::Cancelled => pb::FestivalStatus::Cancelled,
    }
}

pub(super) fn to_festival(f: &FestivalRow) -> pb::Festival {
    pb::Festival {
        id: f.id.to_string(),
        name: f.name.clone(),
        slug: f.slug.clone(),
        time_zone: f.time_zone.clone(),
        currency: f.currency.clone(),
        venue: f.venue.clone(),
        address: f.address.clone(),
        start_time: f.start_time.map(timestamp),
        end_time: f.end_time.map(timestamp),
        capacity: f.capacity,
        status: status_to_proto(f.status) as i32,
        created_by: f.created_by.to_string(),
        create_time: Some(timestamp(f.created_at)),
        update_time: Some(timestamp(f.updated_at)),
        travel_minutes: f.travel_minutes,
        languages: f.languages.clone(),
        descriptions: f.descriptions.0.clone().into_iter().collect(),
        image_urls: f.image_urls.clone(),
    }
}

/// Grid column of each stage: its index in running order.
pub(super) fn columns(stages: &[StageRow]) -> HashMap<Uuid, i32> {
    stages.iter().enumerate().map(|(i, s)| (s.id, i32::try_from(i).unwrap_or(i32::MAX))).collect()
}

pub(super) fn entry(r: &ListingRow, tz: Tz, columns: &HashMap<Uuid, i32>) -> pb::ScheduleEntry {
    let day = days::festival_day(r.start_time, tz);
    pb::ScheduleEntry {
        performance_id: r.id.to_string(),
        artist_id: r.artist_id.to_string(),
        artist_name: r.artist_name.clone(),
        genres: r.genres.clone(),
        stage_id: r.stage_id.to_string(),
        stage_name: r.stage_name.clone(),
        start_time: Some(timestamp(r.start_time)),
        end_time: Some(timestamp(r.end_time)),
        day: day.to_string(),
        start_minute: days::minute_of_day(r.start_time, tz, day),
        end_minute: days::minute_of_day(r.end_time, tz, day),
        column: columns.get(&r.stage_id).copied().unwrap_or(-1),
    }
}

/// An iCalendar body of `rows`; cancelled ones are marked so subscribed calendars drop them.
pub(super) fn calendar_body(festival: &FestivalRow, title: &str, rows: &[ListingRow]) -> HttpBody {
    let descriptions: Vec<String> = rows.iter().map(|r| r.genres.join(", ")).collect();
    let locations: Vec<String> = rows
        .iter()
        .map(|r| {
            if festival.venue.is_empty() {
                r.stage_name.clone()
            } else {
                format!("{}, {}", r.stage_name, festival.venue)
            }
        })
        .collect();
    let events: Vec<ics::Event<'_>> = rows
        .iter()
        .zip(descriptions.iter().zip(&locations))
        .map(|(r, (description, location))| ics::Event {
            uid: format!("{}@{}.festival", r.id, festival.slug),
            start: r.start_time,
            end: r.end_time,
            summary: &r.artist_name,
            location,
            description,
            cancelled: r.status == PerformanceStatus::Cancelled,
            last_modified: r.updated_at,
        })
        .collect();
    HttpBody {
        content_type: "text/calendar; charset=utf-8".into(),
        data: ics::calendar(title, &festival.time_zone, &events, Utc::now()).into_bytes(),
        extensions: Vec::new(),
    }
}

pub(super) fn to_shift(s: &ShiftRow) -> pb::Shift {
    pb::Shift {
        id: s.id.to_string(),
        festival_id: s.festival_id.to_string(),
        place_kind: match s.place_kind {
            PlaceKind::Stage => pb::PlaceKind::Stage,
            PlaceKind::Zone => pb::PlaceKind::Zone,
            PlaceKind::Bar => pb::PlaceKind::Bar,
            PlaceKind::Gate => pb::PlaceKind::Gate,
            PlaceKind::Other => pb::PlaceKind::Other,
        } as i32,
        place: s.place.clone(),
        role: match s.role {
            ShiftRole::Staff => pb::ShiftRole::Staff,
            ShiftRole::Cashier => pb::ShiftRole::Cashier,
            ShiftRole::Security => pb::ShiftRole::Security,
        } as i32,
        head_count: s.head_count,
        start_time: Some(timestamp(s.start_time)),
        end_time: Some(timestamp(s.end_time)),
        assignees: s.assignees.iter().map(Uuid::to_string).collect(),
        notes: s.notes.clone(),
    }
}

pub(super) fn place_kind_from_proto(kind: pb::PlaceKind) -> Option<PlaceKind> {
    Some(match kind {
        pb::PlaceKind::Unspecified => return None,
        pb::PlaceKind::Stage => PlaceKind::Stage,
        pb::PlaceKind::Zone => PlaceKind::Zone,
        pb::PlaceKind::Bar => PlaceKind::Bar,
        pb::PlaceKind::Gate => PlaceKind::Gate,
        pb::PlaceKind::Other => PlaceKind::Other,
    })
}

pub(super) fn shift_role_from_proto(role: pb::ShiftRole) -> Option<ShiftRole> {
    Some(match role {
        pb::ShiftRole::Unspecified => return None,
        pb::ShiftRole::Staff => ShiftRole::Staff,
        pb::ShiftRole::Cashier => ShiftRole::Cashier,
        pb::ShiftRole::Security => ShiftRole::Security,
    })
}

pub(super) fn to_clash(c: &Clash<Uuid>) -> pb::Clash {
    let (kind, first, second) = match *c {
        Clash::Overlap { first, second } => (pb::ClashKind::Overlap, first, second),
        Clash::TooClose { first, second } => (pb::ClashKind::TooClose, first, second),
    };
    pb::Clash { kind: kind as i32, performance_ids: vec![first.to_string(), second.to_string()] }
}
