//! The public schedule: the timetable with grid positions, filtered by festival day,
//! stage, genre or artist, and the whole line-up as iCalendar.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use festival_platform::auth::Principal;
use festival_platform::rpc::cacheable;
use festival_platform::{ApiError, ApiResult, codes, page_token, validate};
use festival_proto::google::api::HttpBody;
use festival_proto::program::v1 as pb;
use tonic::Response;
use uuid::Uuid;

use super::convert::{calendar_body, columns, entry, to_stage};
use super::{ProgramApi, is_public, zone};
use crate::domain::days;
use crate::domain::festival as rules;
use crate::store::{self, festivals::FestivalRow, performances::ListingRow, stages::StageRow};

const DEFAULT_SCHEDULE_PAGE: u32 = 500;
const MAX_SCHEDULE_PAGE: u32 = 1000;
/// Festivals whose published timetable is kept in memory; past this, the cache starts over.
const CACHED_FESTIVALS: usize = 256;

/// A festival's published timetable as of one `schedule_version`.
pub(super) struct Snapshot {
    version: i64,
    stages: Vec<StageRow>,
    rows: Vec<ListingRow>,
}

/// Published timetables by festival. An entry is used only while the festival row still
/// carries its version, so a change is visible on the next read, on every replica.
#[derive(Default)]
pub struct ScheduleCache {
    entries: Mutex<HashMap<Uuid, Arc<Snapshot>>>,
}

impl ScheduleCache {
    fn get(&self, festival: &FestivalRow) -> Option<Arc<Snapshot>> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(&festival.id).filter(|s| s.version == festival.schedule_version).cloned()
    }

    fn put(&self, festival: Uuid, snapshot: Arc<Snapshot>) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= CACHED_FESTIVALS && !entries.contains_key(&festival) {
            entries.clear();
        }
        entries.insert(festival, snapshot);
    }
}

impl ProgramApi {
    pub(super) async fn get_schedule(
        &self,
        caller: Option<Principal>,
        req: pb::GetScheduleRequest,
    ) -> ApiResult<Response<pb::Schedule>> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let day = validate::optional("day", &req.day, 10)?
            .map(|d| {
                days::parse_day(d)
                    .ok_or_else(|| ApiError::field(codes::VALIDATION_FAILED, "day", "a date as YYYY-MM-DD"))
            })
            .transpose()?;
        if req.stage_ids.len() > 100 {
            return Err(ApiError::field(codes::FIELD_TOO_LONG, "stage_ids", "at most 100 stages"));
        }
        let stage_ids = req.stage_ids.iter().map(|s| validate::uuid("stage_ids", s)).collect::<ApiResult<Vec<_>>>()?;
        let genre = validate::optional("genre", &req.genre, rules::MAX_GENRE_CHARS)?.map(rules::normalise_genre);
        let artist_query = validate::optional("artist_query", &req.artist_query, 200)?.map(str::to_lowercase);
        let page_size =
            validate::page_size("page_size", req.page_size, DEFAULT_SCHEDULE_PAGE, MAX_SCHEDULE_PAGE)? as usize;
        let scope = format!("program.GetSchedule:{festival_id}");
        let after: Option<(DateTime<Utc>, Uuid)> = page_token::decode(&scope, &req.page_token)?;

        let mut conn = self.pool.acquire().await?;
        let (festival, _) = Self::readable(&mut conn, festival_id, caller.as_ref()).await?;
        let tz = zone(&festival)?;
        let snapshot = self.published(&mut conn, &festival).await?;
        drop(conn);
        let (stages, rows) = (&snapshot.stages, &snapshot.rows);

        let mut day_counts: BTreeMap<chrono::NaiveDate, i32> = BTreeMap::new();
        for row in rows {
            *day_counts.entry(days::festival_day(row.start_time, tz)).or_default() += 1;
        }
        let columns = columns(stages);
        let mut matching = rows.iter().filter(|r| {
            day.is_none_or(|d| days::festival_day(r.start_time, tz) == d)
                && (stage_ids.is_empty() || stage_ids.contains(&r.stage_id))
                && genre.as_ref().is_none_or(|g| r.genres.iter().any(|x| x == g))
                && artist_query.as_ref().is_none_or(|q| r.artist_name.to_lowercase().contains(q.as_str()))
                && after.is_none_or(|(t, id)| (r.start_time, r.id) > (t, id))
        });
        let page: Vec<&ListingRow> = matching.by_ref().take(page_size).collect();
        let next_page_token = match (page.last(), matching.next()) {
            (Some(last), Some(_)) => page_token::encode(&scope, &(last.start_time, last.id)),
            _ => String::new(),
        };
        let schedule = pb::Schedule {
            festival_id: festival_id.to_string(),
            time_zone: festival.time_zone.clone(),
            days: day_counts
                .into_iter()
                .map(|(date, performance_count)| pb::ScheduleDay { date: date.to_string(), performance_count })
                .collect(),
            stages: stages.iter().map(to_stage).collect(),
            entries: page.into_iter().map(|r| entry(r, tz, &columns)).collect(),
            next_page_token,
        };
        Ok(cacheable(schedule, &timetable_tag(&festival), is_public(&festival), None))
    }

    pub(super) async fn export_calendar(
        &self,
        caller: Option<Principal>,
        req: pb::ExportCalendarRequest,
    ) -> ApiResult<Response<HttpBody>> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut conn = self.pool.acquire().await?;
        let (festival, _) = Self::readable(&mut conn, festival_id, caller.as_ref()).await?;
        let snapshot = self.published(&mut conn, &festival).await?;
        let body = calendar_body(&festival, &festival.name, &snapshot.rows);
        let file = format!("{}.ics", festival.slug);
        Ok(cacheable(body, &timetable_tag(&festival), is_public(&festival), Some(&file)))
    }

    /// The festival's published timetable, from the cache while its version holds. The
    /// rows are read after the festival row, so they are never older than its version.
    async fn published(&self, conn: &mut sqlx::PgConnection, festival: &FestivalRow) -> ApiResult<Arc<Snapshot>> {
        if let Some(hit) = self.schedule_cache.get(festival) {
            return Ok(hit);
        }
        let snapshot = Arc::new(Snapshot {
            version: festival.schedule_version,
            stages: store::stages::of_festival(conn, festival.id).await?,
            rows: store::performances::published_listing(conn, festival.id).await?,
        });
        self.schedule_cache.put(festival.id, snapshot.clone());
        Ok(snapshot)
    }
}

/// Version of everything a timetable shows: the line-up (`schedule_version`) and the
/// festival itself (name, venue, status).
fn timetable_tag(festival: &FestivalRow) -> String {
    format!("{}-{}", festival.schedule_version, festival.updated_at.timestamp_micros())
}
