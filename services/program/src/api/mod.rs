//! The gRPC surface: validate, authorize (the festival's organizers, or admins; members
//! and fans where a method says so), call the domain and the store, encode. Every write
//! and its event commit together.
//!
//! One module per area; this one holds what they share and the tonic binding.

mod favourites;
mod festivals;
mod lineup;
mod schedule;
mod shifts;

use festival_platform::auth::{Principal, Role, Verifier};
use festival_platform::codes::ErrorCode;
use festival_platform::convert::from_timestamp;
use festival_platform::error::is_unique_violation;
use festival_platform::{ApiError, ApiResult, codes};
use festival_proto::program::v1 as pb;
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::status::Status as FestivalStatus;
use crate::store::{self, festivals::FestivalRow};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

pub struct ProgramApi {
    pool: PgPool,
    verifier: Verifier,
    schedule_cache: schedule::ScheduleCache,
}

impl ProgramApi {
    pub fn new(pool: PgPool, verifier: Verifier) -> Self {
        Self { pool, verifier, schedule_cache: schedule::ScheduleCache::default() }
    }

    /// The caller when a token is presented; `None` for anonymous calls. A bad token is an error.
    async fn optional_caller<T>(&self, request: &Request<T>) -> ApiResult<Option<Principal>> {
        if request.metadata().get("authorization").is_none() {
            return Ok(None);
        }
        self.verifier.authenticate(request).await.map(Some)
    }

    /// A live festival the caller manages, locked. Drafts the caller cannot see are
    /// "not found" rather than "forbidden", so their existence does not leak.
    async fn managed(conn: &mut PgConnection, id: Uuid, caller: &Principal) -> ApiResult<FestivalRow> {
        let festival = store::festivals::find(conn, id, true).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if manages(caller, &festival) {
            return Ok(festival);
        }
        match caller.require(id, Role::Organizer) {
            Err(refusal) if is_public(&festival) => Err(refusal),
            _ => Err(ApiError::new(codes::NOT_FOUND)),
        }
    }

    /// A festival the caller may read (public, or managed by the caller), and whether
    /// the caller manages it.
    async fn readable(conn: &mut PgConnection, id: Uuid, caller: Option<&Principal>) -> ApiResult<(FestivalRow, bool)> {
        let festival = store::festivals::find(conn, id, false).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if !visible(&festival, caller) {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        let manager = caller.is_some_and(|c| manages(c, &festival));
        Ok((festival, manager))
    }
}

/// Organizers of the festival (and admins) manage it; so does its creator, even before
/// identity has granted the ORGANIZER membership that the creation event asks for.
fn manages(caller: &Principal, festival: &FestivalRow) -> bool {
    caller.has(festival.id, Role::Organizer) || caller.user_id == festival.created_by
}

/// Public festivals are visible to all; drafts only to those who manage them.
fn visible(festival: &FestivalRow, caller: Option<&Principal>) -> bool {
    is_public(festival) || caller.is_some_and(|c| manages(c, festival))
}

fn is_public(festival: &FestivalRow) -> bool {
    FestivalStatus::parse(&festival.status).is_some_and(FestivalStatus::is_public)
}

fn time(field: &str, value: &Option<prost_types::Timestamp>) -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
    match value {
        None => Ok(None),
        Some(t) => from_timestamp(t)
            .map(Some)
            .ok_or_else(|| ApiError::field(codes::VALIDATION_FAILED, field, "is not a valid timestamp")),
    }
}

fn required_time(field: &str, value: &Option<prost_types::Timestamp>) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    time(field, value)?.ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, field, "is required"))
}

/// Maps a violation of the unique constraint `constraint` to `code` on `field`; other
/// database errors stay internal.
fn on_clash(
    constraint: &'static str,
    code: ErrorCode,
    field: &'static str,
    description: &'static str,
) -> impl FnOnce(sqlx::Error) -> ApiError {
    move |e| if is_unique_violation(&e, constraint) { ApiError::field(code, field, description) } else { e.into() }
}

fn non_negative(field: &str, value: i32) -> ApiResult<i32> {
    if value < 0 { Err(ApiError::field(codes::VALIDATION_FAILED, field, "must not be negative")) } else { Ok(value) }
}

type RpcResult<T> = Result<Response<T>, Status>;

/// The tonic binding: each RPC authenticates as declared (`auth`: a valid token is
/// required; `optional`: anonymous callers are served too; `public`: no token is read;
/// `_response`: the method returns the whole `tonic::Response`, with cache metadata)
/// and calls the inherent method of the same name.
macro_rules! bind_rpcs {
    ($($kind:ident $name:ident($req:ident) -> $resp:ident;)*) => {
        #[tonic::async_trait]
        impl pb::program_service_server::ProgramService for ProgramApi {
            $(
                async fn $name(&self, request: Request<pb::$req>) -> RpcResult<bind_rpcs!(@resp $resp)> {
                    bind_rpcs!(@call $kind self request $name)
                }
            )*
        }
    };
    (@resp HttpBody) => { festival_proto::google::api::HttpBody };
    (@resp $resp:ident) => { pb::$resp };
    (@call auth $self:ident $request:ident $name:ident) => {{
        let caller = $self.verifier.authenticate(&$request).await?;
        Ok(Response::new($self.$name(caller, $request.into_inner()).await?))
    }};
    (@call optional $self:ident $request:ident $name:ident) => {{
        let caller = $self.optional_caller(&$request).await?;
        Ok(Response::new($self.$name(caller, $request.into_inner()).await?))
    }};
    (@call public $self:ident $request:ident $name:ident) => {{
        Ok(Response::new($self.$name($request.into_inner()).await?))
    }};
    // The method builds the response itself (to set cache metadata).
    (@call optional_response $self:ident $request:ident $name:ident) => {{
        let caller = $self.optional_caller(&$request).await?;
        Ok($self.$name(caller, $request.into_inner()).await?)
    }};
    (@call public_response $self:ident $request:ident $name:ident) => {{
        Ok($self.$name($request.into_inner()).await?)
    }};
}

bind_rpcs! {
    auth create_festival(CreateFestivalRequest) -> Festival;
    optional get_festival(GetFestivalRequest) -> Festival;
    optional list_festivals(ListFestivalsRequest) -> ListFestivalsResponse;
    auth update_festival(UpdateFestivalRequest) -> Festival;
    auth transition_festival(TransitionFestivalRequest) -> Festival;
    auth delete_festival(DeleteFestivalRequest) -> DeleteFestivalResponse;
    auth clone_festival(CloneFestivalRequest) -> Festival;
    auth create_stage(CreateStageRequest) -> Stage;
    optional list_stages(ListStagesRequest) -> ListStagesResponse;
    auth update_stage(UpdateStageRequest) -> Stage;
    auth delete_stage(DeleteStageRequest) -> DeleteStageResponse;
    auth create_artist(CreateArtistRequest) -> Artist;
    optional list_artists(ListArtistsRequest) -> ListArtistsResponse;
    auth update_artist(UpdateArtistRequest) -> Artist;
    auth delete_artist(DeleteArtistRequest) -> DeleteArtistResponse;
    auth create_performance(CreatePerformanceRequest) -> Performance;
    optional list_performances(ListPerformancesRequest) -> ListPerformancesResponse;
    auth update_performance(UpdatePerformanceRequest) -> Performance;
    auth cancel_performance(CancelPerformanceRequest) -> Performance;
    auth check_schedule(CheckScheduleRequest) -> CheckScheduleResponse;
    auth publish_schedule(PublishScheduleRequest) -> PublishScheduleResponse;
    optional_response get_schedule(GetScheduleRequest) -> Schedule;
    optional_response export_calendar(ExportCalendarRequest) -> HttpBody;
    auth add_favourite(AddFavouriteRequest) -> AddFavouriteResponse;
    auth remove_favourite(RemoveFavouriteRequest) -> RemoveFavouriteResponse;
    auth list_favourites(ListFavouritesRequest) -> ListFavouritesResponse;
    auth get_favourites_feed(GetFavouritesFeedRequest) -> FavouritesFeed;
    public_response get_personal_calendar(GetPersonalCalendarRequest) -> HttpBody;
    auth create_shift(CreateShiftRequest) -> Shift;
    auth list_shifts(ListShiftsRequest) -> ListShiftsResponse;
    auth assign_shift(AssignShiftRequest) -> Shift;
    auth unassign_shift(UnassignShiftRequest) -> Shift;
    auth delete_shift(DeleteShiftRequest) -> DeleteShiftResponse;
    auth sign_up_for_shift(SignUpForShiftRequest) -> Shift;
    auth get_shift_coverage(GetShiftCoverageRequest) -> ShiftCoverage;
    auth get_worked_hours(GetWorkedHoursRequest) -> WorkedHours;
}
