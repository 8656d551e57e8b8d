//! The gRPC surface: validate, authorize (the festival's organizers, or admins; members
//! and fans where a method says so), call the domain and the store, encode. Every write
//! and its event commit together.
//!
//! One module per area; this one holds what they share and the tonic binding.

mod artists;
mod convert;
mod editions;
mod favourites;
mod festivals;
mod performances;
mod schedule;
mod shifts;
mod stages;

use chrono::Utc;
use chrono_tz::Tz;
use festival_platform::auth::{Principal, Role, Verifier};
use festival_platform::rpc::{Authenticate, record_festival};
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::program::v1 as pb;
use sqlx::{PgConnection, PgPool};
use tonic::Request;
use uuid::Uuid;

use crate::config::Limits;
use crate::domain::conflicts::{self, Conflict, Rules, Slot};
use crate::domain::festival as rules;
use crate::store::{self, festivals::FestivalRow, festivals::Holding};
pub(crate) use convert::status_to_proto;
use convert::to_conflict;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

pub struct ProgramApi {
    pool: PgPool,
    verifier: Verifier,
    schedule_cache: schedule::ScheduleCache,
    limits: Limits,
}

/// Conflicts kept in memory at most while checking a schedule (the rest are counted).
const MAX_KEPT_CONFLICTS: usize = 10_000;

impl ProgramApi {
    pub fn new(pool: PgPool, verifier: Verifier, limits: Limits) -> Self {
        Self { pool, verifier, schedule_cache: schedule::ScheduleCache::default(), limits }
    }

    /// Refuses one more `what` at a festival that holds its limit already (`ERR_4005`).
    /// Callers hold the festival row's lock (from [`Self::managed`]), so concurrent
    /// creations are counted one after another.
    async fn room_for(&self, conn: &mut PgConnection, festival_id: Uuid, what: Holding) -> ApiResult<()> {
        let limit = match what {
            Holding::Stages => self.limits.stages,
            Holding::Artists => self.limits.artists,
            Holding::Performances => self.limits.performances,
            Holding::Shifts => self.limits.shifts,
        };
        if store::festivals::count_of(conn, festival_id, what).await? >= limit {
            return Err(ApiError::new(codes::LIMIT_REACHED)
                .with_message(format!("A festival holds at most {limit} {}", what.name()))
                .with_metadata("limit", limit.to_string()));
        }
        Ok(())
    }

    /// A live festival the caller manages, locked. Drafts the caller cannot see are
    /// "not found" rather than "forbidden", so their existence does not leak; its own
    /// organisers lacking the second factor it requires are told so (ERR_2012).
    async fn managed(conn: &mut PgConnection, id: Uuid, caller: &Principal) -> ApiResult<FestivalRow> {
        record_festival(id);
        let festival = store::festivals::find(conn, id, true).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if manages(caller, &festival) {
            return Ok(festival);
        }
        match caller.require(id, Role::Organizer) {
            Err(refusal) if is_public(&festival) || refusal.code == codes::MFA_REQUIRED => Err(refusal),
            _ => Err(ApiError::new(codes::NOT_FOUND)),
        }
    }

    /// A festival the caller may read (public, or managed by the caller), and whether
    /// the caller manages it.
    async fn readable(conn: &mut PgConnection, id: Uuid, caller: Option<&Principal>) -> ApiResult<(FestivalRow, bool)> {
        record_festival(id);
        let festival = store::festivals::find(conn, id, false).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if !visible(&festival, caller) {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        let manager = caller.is_some_and(|c| manages(c, &festival));
        Ok((festival, manager))
    }

    /// Every conflict of the festival's scheduled performances, drafts included when asked.
    pub(super) async fn conflicts(
        conn: &mut PgConnection,
        festival: &FestivalRow,
        with_drafts: bool,
    ) -> ApiResult<conflicts::Detected<Uuid>> {
        let stages = store::stages::of_festival(conn, festival.id).await?;
        let performances = store::performances::of_festival(conn, festival.id, with_drafts).await?;
        let changeover =
            |stage: Uuid| stages.iter().find(|s| s.id == stage).map_or(0, |s| i64::from(s.changeover_minutes) * 60);
        let slots: Vec<Slot<Uuid>> = performances
            .iter()
            .map(|p| Slot {
                id: p.id,
                stage: p.stage_id,
                artist: p.artist_id,
                start: p.start_time.timestamp(),
                end: p.end_time.timestamp(),
            })
            .collect();
        let window = (
            festival.start_time.map_or(i64::MIN, |t| t.timestamp()),
            festival.end_time.map_or(i64::MAX, |t| t.timestamp()),
        );
        Ok(conflicts::detect_at_most(
            &slots,
            &Rules { changeover: &changeover, travel: i64::from(festival.travel_minutes) * 60, window },
            MAX_KEPT_CONFLICTS,
        ))
    }
}

impl Authenticate for ProgramApi {
    /// Program trusts the token: roles and memberships are read from its claims.
    async fn caller<T: Send + Sync>(&self, request: &Request<T>) -> ApiResult<Principal> {
        self.verifier.authenticate(request).await
    }
}

/// Organizers of the festival (and admins) manage it; so does its creator, but only until
/// a token can carry the ORGANIZER membership identity grants from the creation event
/// ([`rules::creator_may_manage`]): a creator whose role is later revoked loses it.
fn manages(caller: &Principal, festival: &FestivalRow) -> bool {
    caller.has(festival.id, Role::Organizer)
        || (caller.user_id == festival.created_by && rules::creator_may_manage(festival.created_at, Utc::now()))
}

/// Public festivals are visible to all; drafts only to those who manage them.
fn visible(festival: &FestivalRow, caller: Option<&Principal>) -> bool {
    is_public(festival) || caller.is_some_and(|c| manages(c, festival))
}

fn is_public(festival: &FestivalRow) -> bool {
    festival.status.is_public()
}

pub(super) fn localized(
    field: &str,
    texts: &std::collections::BTreeMap<String, String>,
    languages: &[String],
    max_chars: usize,
) -> ApiResult<std::collections::BTreeMap<String, String>> {
    texts
        .iter()
        .map(|(lang, text)| {
            if !languages.contains(lang) {
                return Err(ApiError::field(
                    codes::VALIDATION_FAILED,
                    field,
                    format!("{lang:?} is not one of the festival's languages"),
                ));
            }
            validate::optional(field, text, max_chars)?;
            Ok((lang.clone(), text.clone()))
        })
        .collect()
}

/// At most [`rules::MAX_URLS`] https URLs.
pub(super) fn https_urls<'a>(field: &str, urls: &'a [String]) -> ApiResult<&'a [String]> {
    if urls.len() > rules::MAX_URLS {
        return Err(ApiError::field(codes::FIELD_TOO_LONG, field, "at most 20 URLs"));
    }
    for url in urls {
        validate::required(field, url, 2_000)?;
        if !rules::valid_https_url(url) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, field, "must be https URLs"));
        }
    }
    Ok(urls)
}

/// ERR_7004 listing each conflict as a violation.
pub(super) fn conflict_refusal(found: &[Conflict<Uuid>], total: usize, message: &str) -> ApiError {
    // Each conflict is a field violation; past a screenful, the count says the rest.
    const LISTED: usize = 50;
    let refusal =
        ApiError::new(codes::SCHEDULE_CONFLICT).with_message(message).with_metadata("conflicts", total.to_string());
    found.iter().take(LISTED).map(to_conflict).fold(refusal, |e, c| {
        e.with_violation(
            "performances",
            format!(
                "{}: {}",
                pb::ConflictKind::try_from(c.kind).map_or("CONFLICT", |k| k.as_str_name()),
                c.performance_ids.join(", ")
            ),
        )
    })
}

/// The festival's time zone (checked on creation, so a failure here is a bug).
pub(super) fn zone(festival: &FestivalRow) -> ApiResult<Tz> {
    festival.time_zone.parse().map_err(|_| ApiError::internal(anyhow::anyhow!("festival has an unknown time zone")))
}

/// 3 to 63 characters of a-z, 0-9 and inner hyphens.
pub(super) fn slug(value: &str) -> ApiResult<&str> {
    let slug = validate::required("slug", value, 63)?;
    if !rules::valid_slug(slug) {
        return Err(ApiError::field(
            codes::VALIDATION_FAILED,
            "slug",
            "3 to 63 characters of a-z, 0-9 and inner hyphens",
        ));
    }
    Ok(slug)
}

fn non_negative(field: &str, value: i32) -> ApiResult<i32> {
    if value < 0 { Err(ApiError::field(codes::VALIDATION_FAILED, field, "must not be negative")) } else { Ok(value) }
}

festival_platform::bind_rpcs! {
    ProgramApi => pb::program_service_server::ProgramService {
        auth create_festival(pb::CreateFestivalRequest) -> pb::Festival;
        optional get_festival(pb::GetFestivalRequest) -> pb::Festival;
        optional list_festivals(pb::ListFestivalsRequest) -> pb::ListFestivalsResponse;
        auth update_festival(pb::UpdateFestivalRequest) -> pb::Festival;
        auth transition_festival(pb::TransitionFestivalRequest) -> pb::Festival;
        auth delete_festival(pb::DeleteFestivalRequest) -> pb::DeleteFestivalResponse;
        auth clone_festival(pb::CloneFestivalRequest) -> pb::Festival;
        auth create_stage(pb::CreateStageRequest) -> pb::Stage;
        optional list_stages(pb::ListStagesRequest) -> pb::ListStagesResponse;
        auth update_stage(pb::UpdateStageRequest) -> pb::Stage;
        auth delete_stage(pb::DeleteStageRequest) -> pb::DeleteStageResponse;
        auth create_artist(pb::CreateArtistRequest) -> pb::Artist;
        optional list_artists(pb::ListArtistsRequest) -> pb::ListArtistsResponse;
        auth update_artist(pb::UpdateArtistRequest) -> pb::Artist;
        auth delete_artist(pb::DeleteArtistRequest) -> pb::DeleteArtistResponse;
        auth create_performance(pb::CreatePerformanceRequest) -> pb::Performance;
        optional list_performances(pb::ListPerformancesRequest) -> pb::ListPerformancesResponse;
        auth update_performance(pb::UpdatePerformanceRequest) -> pb::Performance;
        auth cancel_performance(pb::CancelPerformanceRequest) -> pb::Performance;
        auth check_schedule(pb::CheckScheduleRequest) -> pb::CheckScheduleResponse;
        auth publish_schedule(pb::PublishScheduleRequest) -> pb::PublishScheduleResponse;
        optional_response get_schedule(pb::GetScheduleRequest) -> pb::Schedule;
        optional_response export_calendar(pb::ExportCalendarRequest) -> festival_proto::google::api::HttpBody;
        auth add_favourite(pb::AddFavouriteRequest) -> pb::AddFavouriteResponse;
        auth remove_favourite(pb::RemoveFavouriteRequest) -> pb::RemoveFavouriteResponse;
        auth list_favourites(pb::ListFavouritesRequest) -> pb::ListFavouritesResponse;
        auth get_favourites_feed(pb::GetFavouritesFeedRequest) -> pb::FavouritesFeed;
        public_response get_personal_calendar(pb::GetPersonalCalendarRequest) -> festival_proto::google::api::HttpBody;
        auth create_shift(pb::CreateShiftRequest) -> pb::Shift;
        auth list_shifts(pb::ListShiftsRequest) -> pb::ListShiftsResponse;
        auth assign_shift(pb::AssignShiftRequest) -> pb::Shift;
        auth unassign_shift(pb::UnassignShiftRequest) -> pb::Shift;
        auth delete_shift(pb::DeleteShiftRequest) -> pb::DeleteShiftResponse;
        auth sign_up_for_shift(pb::SignUpForShiftRequest) -> pb::Shift;
        auth get_shift_coverage(pb::GetShiftCoverageRequest) -> pb::ShiftCoverage;
        auth get_worked_hours(pb::GetWorkedHoursRequest) -> pb::WorkedHours;
    }
}
