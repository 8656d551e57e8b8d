//! The gRPC surface: validate, authorize (the festival's organizers, or admins), call the
//! domain and the store, encode. Every write and its event commit together.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use festival_platform::auth::{Principal, Role, Verifier};
use festival_platform::convert::{from_timestamp, timestamp};
use festival_platform::error::is_unique_violation;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::program::v1 as pb;
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::conflicts::{self, Conflict, Rules, Slot};
use crate::domain::festival::{self as rules, MAX_NAME, MAX_TEXT};
use crate::domain::status::{self, Completeness, Status as FestivalStatus, TransitionError};
use crate::events;
use crate::store::{self, artists::ArtistRow, festivals::FestivalRow, performances::PerformanceRow, stages::StageRow};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

pub struct ProgramApi {
    pool: PgPool,
    verifier: Verifier,
}

impl ProgramApi {
    pub fn new(pool: PgPool, verifier: Verifier) -> Self {
        Self { pool, verifier }
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

    async fn create_festival(&self, caller: Principal, req: pb::CreateFestivalRequest) -> ApiResult<pb::Festival> {
        let name = validate::required("name", &req.name, MAX_NAME)?;
        let slug = validate::required("slug", &req.slug, 63)?;
        if !rules::valid_slug(slug) {
            return Err(ApiError::field(
                codes::VALIDATION_FAILED,
                "slug",
                "3 to 63 characters of a-z, 0-9 and inner hyphens",
            ));
        }
        let time_zone = validate::required("time_zone", &req.time_zone, 64)?;
        if !rules::valid_time_zone(time_zone) {
            return Err(ApiError::field(codes::UNKNOWN_TIME_ZONE, "time_zone", "not an IANA time zone"));
        }
        let currency = validate::required("currency", &req.currency, 3)?;
        if !rules::valid_currency(currency) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "currency", "an ISO 4217 code such as EUR"));
        }
        let venue = validate::optional("venue", &req.venue, MAX_TEXT)?.unwrap_or("");
        let address = validate::optional("address", &req.address, MAX_TEXT)?.unwrap_or("");
        let (start_time, end_time) = (time("start_time", &req.start_time)?, time("end_time", &req.end_time)?);
        if !rules::valid_dates(start_time, end_time) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "end_time", "must be after start_time"));
        }
        let capacity = non_negative("capacity", req.capacity)?;
        let travel_minutes =
            if req.travel_minutes == 0 { 15 } else { non_negative("travel_minutes", req.travel_minutes)? };

        let mut tx = self.pool.begin().await?;
        let row = store::festivals::insert(
            &mut tx,
            &store::festivals::NewFestival {
                id: Uuid::now_v7(),
                name,
                slug,
                time_zone,
                currency,
                venue,
                address,
                start_time,
                end_time,
                capacity,
                travel_minutes,
                created_by: caller.user_id,
            },
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e, store::festivals::SLUG_UNIQUE) {
                ApiError::field(codes::SLUG_TAKEN, "slug", "is already used by another festival")
            } else {
                e.into()
            }
        })?;
        events::festival_created(
            &mut tx,
            pb::FestivalCreated {
                festival_id: row.id.to_string(),
                slug: row.slug.clone(),
                created_by: caller.user_id.to_string(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(to_festival(&row))
    }

    async fn get_festival(&self, caller: Option<Principal>, req: pb::GetFestivalRequest) -> ApiResult<pb::Festival> {
        let key = validate::required("id_or_slug", &req.id_or_slug, 63)?;
        let mut conn = self.pool.acquire().await?;
        let festival = match Uuid::try_parse(key) {
            Ok(id) => store::festivals::find(&mut conn, id, false).await?,
            Err(_) => store::festivals::find_by_slug(&mut conn, key).await?,
        }
        .ok_or(ApiError::new(codes::NOT_FOUND))?;
        if !is_public(&festival) && !caller.as_ref().is_some_and(|c| manages(c, &festival)) {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        Ok(to_festival(&festival))
    }

    async fn list_festivals(
        &self,
        caller: Option<Principal>,
        req: pb::ListFestivalsRequest,
    ) -> ApiResult<pb::ListFestivalsResponse> {
        let page_size = validate::page_size("page_size", req.page_size, DEFAULT_PAGE, MAX_PAGE)?;
        let after =
            match req.page_token.as_str() {
                "" => None,
                token => Some(URL_SAFE_NO_PAD.decode(token).ok().and_then(|b| Uuid::from_slice(&b).ok()).ok_or_else(
                    || ApiError::field(codes::INVALID_PAGE_TOKEN, "page_token", "is not a token this API issued"),
                )?),
            };
        let (admin, user, organizer_of) = match &caller {
            Some(c) => (
                c.is_admin(),
                Some(c.user_id),
                c.memberships.iter().filter(|m| m.role == Role::Organizer).map(|m| m.fid).collect(),
            ),
            None => (false, None, Vec::new()),
        };
        let mut conn = self.pool.acquire().await?;
        let mut rows =
            store::festivals::list_visible(&mut conn, admin, user, &organizer_of, after, i64::from(page_size) + 1)
                .await?;
        let next_page_token = if rows.len() > page_size as usize {
            rows.truncate(page_size as usize);
            rows.last().map(|r| URL_SAFE_NO_PAD.encode(r.id.as_bytes())).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListFestivalsResponse { festivals: rows.iter().map(to_festival).collect(), next_page_token })
    }

    async fn update_festival(&self, caller: Principal, req: pb::UpdateFestivalRequest) -> ApiResult<pb::Festival> {
        let id = validate::uuid("festival_id", &req.festival_id)?;
        let changes = store::festivals::Changes {
            name: validate::optional("name", &req.name, MAX_NAME)?,
            venue: validate::optional("venue", &req.venue, MAX_TEXT)?,
            address: validate::optional("address", &req.address, MAX_TEXT)?,
            start_time: time("start_time", &req.start_time)?,
            end_time: time("end_time", &req.end_time)?,
            capacity: (req.capacity != 0).then(|| non_negative("capacity", req.capacity)).transpose()?,
        };
        let mut tx = self.pool.begin().await?;
        let current = Self::managed(&mut tx, id, &caller).await?;
        if !rules::valid_dates(changes.start_time.or(current.start_time), changes.end_time.or(current.end_time)) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "end_time", "must be after start_time"));
        }
        let row = store::festivals::update(&mut tx, id, &changes).await?;
        events::festival_updated(&mut tx, pb::FestivalUpdated { festival_id: id.to_string() }).await?;
        tx.commit().await?;
        Ok(to_festival(&row))
    }

    async fn transition_festival(
        &self,
        caller: Principal,
        req: pb::TransitionFestivalRequest,
    ) -> ApiResult<pb::Festival> {
        let id = validate::uuid("festival_id", &req.festival_id)?;
        let target = validate::known_enum::<pb::FestivalStatus>("status", req.status, false)?
            .and_then(status_from_proto)
            .ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "status", "is required"))?;
        let mut tx = self.pool.begin().await?;
        let current = Self::managed(&mut tx, id, &caller).await?;
        let from = FestivalStatus::parse(&current.status)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("bad status in row")))?;
        let completeness = Completeness {
            has_dates: current.start_time.is_some() && current.end_time.is_some(),
            stage_count: store::stages::count(&mut tx, id).await? as usize,
        };
        let to = status::transition(from, target, completeness).map_err(|e| match e {
            TransitionError::NotAllowed { from, to } => ApiError::new(codes::INVALID_STATUS_TRANSITION)
                .with_message(format!("A {} festival cannot become {}", from.as_str(), to.as_str()))
                .with_metadata("from", from.as_str())
                .with_metadata("to", to.as_str()),
            TransitionError::Incomplete(missing) => {
                missing.iter().fold(ApiError::new(codes::FESTIVAL_INCOMPLETE), |e, field| {
                    e.with_violation(field, "is required before publishing")
                })
            }
        })?;
        let row = store::festivals::set_status(&mut tx, id, to.as_str()).await?;
        events::festival_status_changed(
            &mut tx,
            pb::FestivalStatusChanged {
                festival_id: id.to_string(),
                from: status_to_proto(from) as i32,
                to: status_to_proto(to) as i32,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(to_festival(&row))
    }

    async fn delete_festival(
        &self,
        caller: Principal,
        req: pb::DeleteFestivalRequest,
    ) -> ApiResult<pb::DeleteFestivalResponse> {
        let id = validate::uuid("festival_id", &req.festival_id)?;
        let mut tx = self.pool.begin().await?;
        let current = Self::managed(&mut tx, id, &caller).await?;
        if !matches!(FestivalStatus::parse(&current.status), Some(FestivalStatus::Draft | FestivalStatus::Cancelled)) {
            return Err(ApiError::new(codes::INVALID_STATUS_TRANSITION)
                .with_message("Only draft or cancelled festivals can be deleted; cancel it first"));
        }
        store::festivals::soft_delete(&mut tx, id).await?;
        events::festival_deleted(&mut tx, pb::FestivalDeleted { festival_id: id.to_string() }).await?;
        tx.commit().await?;
        Ok(pb::DeleteFestivalResponse {})
    }

    async fn create_stage(&self, caller: Principal, req: pb::CreateStageRequest) -> ApiResult<pb::Stage> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let name = validate::required("name", &req.name, MAX_NAME)?;
        let capacity = non_negative("capacity", req.capacity)?;
        let position = non_negative("position", req.position)?;
        let changeover_minutes = non_negative("changeover_minutes", req.changeover_minutes)?;
        if changeover_minutes > 24 * 60 {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "changeover_minutes", "must be at most a day"));
        }
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        let stage =
            StageRow { id: Uuid::now_v7(), festival_id, name: name.to_owned(), capacity, position, changeover_minutes };
        let row = store::stages::insert(&mut tx, &stage).await.map_err(|e| {
            if is_unique_violation(&e, store::stages::NAME_UNIQUE) {
                ApiError::field(codes::ALREADY_EXISTS, "name", "this festival already has a stage with that name")
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(to_stage(&row))
    }

    async fn list_stages(
        &self,
        caller: Option<Principal>,
        req: pb::ListStagesRequest,
    ) -> ApiResult<pb::ListStagesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut conn = self.pool.acquire().await?;
        let festival =
            store::festivals::find(&mut conn, festival_id, false).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if !is_public(&festival) && !caller.as_ref().is_some_and(|c| manages(c, &festival)) {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        let rows = store::stages::of_festival(&mut conn, festival_id).await?;
        Ok(pb::ListStagesResponse { stages: rows.iter().map(to_stage).collect() })
    }
}

impl ProgramApi {
    /// A festival the caller may read (public, or managed by the caller).
    async fn readable(conn: &mut PgConnection, id: Uuid, caller: Option<&Principal>) -> ApiResult<(FestivalRow, bool)> {
        let festival = store::festivals::find(conn, id, false).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let manager = caller.is_some_and(|c| manages(c, &festival));
        if !is_public(&festival) && !manager {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        Ok((festival, manager))
    }

    async fn create_artist(&self, caller: Principal, req: pb::CreateArtistRequest) -> ApiResult<pb::Artist> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let name = validate::required("name", &req.name, MAX_NAME)?;
        if req.genres.len() > 20 {
            return Err(ApiError::field(codes::FIELD_TOO_LONG, "genres", "at most 20 genres"));
        }
        let genres = req
            .genres
            .iter()
            .map(|g| validate::required("genres", g, 50).map(str::to_lowercase))
            .collect::<ApiResult<Vec<_>>>()?;
        let bio = validate::optional("bio", &req.bio, 5_000)?.unwrap_or("");
        let image_url = validate::optional("image_url", &req.image_url, 2_000)?.unwrap_or("");
        if !image_url.is_empty() && !image_url.starts_with("https://") {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "image_url", "must be an https URL"));
        }
        let contact = validate::optional("contact", &req.contact, MAX_TEXT)?.unwrap_or("");
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        let artist = ArtistRow {
            id: Uuid::now_v7(),
            festival_id,
            name: name.to_owned(),
            genres,
            bio: bio.to_owned(),
            image_url: image_url.to_owned(),
            contact: contact.to_owned(),
        };
        let row = store::artists::insert(&mut tx, &artist).await.map_err(|e| {
            if is_unique_violation(&e, store::artists::NAME_UNIQUE) {
                ApiError::field(codes::ALREADY_EXISTS, "name", "this festival already has an artist with that name")
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(to_artist(&row, true))
    }

    async fn list_artists(
        &self,
        caller: Option<Principal>,
        req: pb::ListArtistsRequest,
    ) -> ApiResult<pb::ListArtistsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut conn = self.pool.acquire().await?;
        let (_, manager) = Self::readable(&mut conn, festival_id, caller.as_ref()).await?;
        let rows = store::artists::of_festival(&mut conn, festival_id).await?;
        Ok(pb::ListArtistsResponse { artists: rows.iter().map(|a| to_artist(a, manager)).collect() })
    }

    async fn create_performance(
        &self,
        caller: Principal,
        req: pb::CreatePerformanceRequest,
    ) -> ApiResult<pb::Performance> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let artist_id = validate::uuid("artist_id", &req.artist_id)?;
        let stage_id = validate::uuid("stage_id", &req.stage_id)?;
        let start_time = time("start_time", &req.start_time)?
            .ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "start_time", "is required"))?;
        let end_time = time("end_time", &req.end_time)?
            .ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "end_time", "is required"))?;
        if start_time >= end_time {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "end_time", "must be after start_time"));
        }
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        if !store::artists::exists(&mut tx, festival_id, artist_id).await? {
            return Err(ApiError::field(codes::NOT_FOUND, "artist_id", "no such artist at this festival"));
        }
        if !store::stages::of_festival(&mut tx, festival_id).await?.iter().any(|s| s.id == stage_id) {
            return Err(ApiError::field(codes::NOT_FOUND, "stage_id", "no such stage at this festival"));
        }
        let row = PerformanceRow {
            id: Uuid::now_v7(),
            festival_id,
            artist_id,
            stage_id,
            start_time,
            end_time,
            status: String::new(),
        };
        let row = store::performances::insert(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(to_performance(&row))
    }

    async fn list_performances(
        &self,
        caller: Option<Principal>,
        req: pb::ListPerformancesRequest,
    ) -> ApiResult<pb::ListPerformancesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut conn = self.pool.acquire().await?;
        let (_, manager) = Self::readable(&mut conn, festival_id, caller.as_ref()).await?;
        let rows = store::performances::of_festival(&mut conn, festival_id, manager).await?;
        Ok(pb::ListPerformancesResponse { performances: rows.iter().map(to_performance).collect() })
    }

    /// Every conflict of the festival's current schedule (drafts included).
    async fn conflicts(conn: &mut PgConnection, festival: &FestivalRow) -> ApiResult<Vec<Conflict<Uuid>>> {
        let stages = store::stages::of_festival(conn, festival.id).await?;
        let performances = store::performances::of_festival(conn, festival.id, true).await?;
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
        Ok(conflicts::detect(
            &slots,
            &Rules { changeover: &changeover, travel: i64::from(festival.travel_minutes) * 60, window },
        ))
    }

    async fn check_schedule(
        &self,
        caller: Principal,
        req: pb::CheckScheduleRequest,
    ) -> ApiResult<pb::CheckScheduleResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::managed(&mut tx, festival_id, &caller).await?;
        let found = Self::conflicts(&mut tx, &festival).await?;
        tx.commit().await?;
        Ok(pb::CheckScheduleResponse { conflicts: found.iter().map(to_conflict).collect() })
    }

    async fn publish_schedule(
        &self,
        caller: Principal,
        req: pb::PublishScheduleRequest,
    ) -> ApiResult<pb::PublishScheduleResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::managed(&mut tx, festival_id, &caller).await?;
        let found = Self::conflicts(&mut tx, &festival).await?;
        if !found.is_empty() {
            let refusal = ApiError::new(codes::SCHEDULE_CONFLICT)
                .with_message(format!("The schedule has {} conflict(s); resolve them before publishing", found.len()));
            return Err(found.iter().map(to_conflict).fold(refusal, |e, c| {
                e.with_violation(
                    "performances",
                    format!(
                        "{}: {}",
                        pb::ConflictKind::try_from(c.kind).map_or("CONFLICT", |k| k.as_str_name()),
                        c.performance_ids.join(", ")
                    ),
                )
            }));
        }
        let published = store::performances::publish_drafts(&mut tx, festival_id).await?;
        tx.commit().await?;
        Ok(pb::PublishScheduleResponse { published: published as i32 })
    }
}

fn to_artist(a: &ArtistRow, manager: bool) -> pb::Artist {
    pb::Artist {
        id: a.id.to_string(),
        festival_id: a.festival_id.to_string(),
        name: a.name.clone(),
        genres: a.genres.clone(),
        bio: a.bio.clone(),
        image_url: a.image_url.clone(),
        contact: if manager { a.contact.clone() } else { String::new() },
    }
}

fn to_performance(p: &PerformanceRow) -> pb::Performance {
    let status = match p.status.as_str() {
        "DRAFT" => pb::PerformanceStatus::Draft,
        "PUBLISHED" => pb::PerformanceStatus::Published,
        "CANCELLED" => pb::PerformanceStatus::Cancelled,
        _ => pb::PerformanceStatus::Unspecified,
    };
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

fn to_conflict(c: &Conflict<Uuid>) -> pb::Conflict {
    let (kind, ids) = match *c {
        Conflict::StageOverlap { first, second } => (pb::ConflictKind::StageOverlap, vec![first, second]),
        Conflict::ArtistDoubleBooked { first, second } => (pb::ConflictKind::ArtistDoubleBooked, vec![first, second]),
        Conflict::ArtistTravel { first, second } => (pb::ConflictKind::ArtistTravel, vec![first, second]),
        Conflict::OutsideFestival { slot } => (pb::ConflictKind::OutsideFestival, vec![slot]),
    };
    pb::Conflict { kind: kind as i32, performance_ids: ids.iter().map(Uuid::to_string).collect() }
}

/// Organizers of the festival (and admins) manage it; so does its creator, even before
/// identity has granted the ORGANIZER membership that the creation event asks for.
fn manages(caller: &Principal, festival: &FestivalRow) -> bool {
    caller.has(festival.id, Role::Organizer) || caller.user_id == festival.created_by
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

fn non_negative(field: &str, value: i32) -> ApiResult<i32> {
    if value < 0 { Err(ApiError::field(codes::VALIDATION_FAILED, field, "must not be negative")) } else { Ok(value) }
}

fn status_from_proto(s: pb::FestivalStatus) -> Option<FestivalStatus> {
    Some(match s {
        pb::FestivalStatus::Unspecified => return None,
        pb::FestivalStatus::Draft => FestivalStatus::Draft,
        pb::FestivalStatus::Published => FestivalStatus::Published,
        pb::FestivalStatus::Ongoing => FestivalStatus::Ongoing,
        pb::FestivalStatus::Completed => FestivalStatus::Completed,
        pb::FestivalStatus::Cancelled => FestivalStatus::Cancelled,
    })
}

fn status_to_proto(s: FestivalStatus) -> pb::FestivalStatus {
    match s {
        FestivalStatus::Draft => pb::FestivalStatus::Draft,
        FestivalStatus::Published => pb::FestivalStatus::Published,
        FestivalStatus::Ongoing => pb::FestivalStatus::Ongoing,
        FestivalStatus::Completed => pb::FestivalStatus::Completed,
        FestivalStatus::Cancelled => pb::FestivalStatus::Cancelled,
    }
}

fn to_festival(f: &FestivalRow) -> pb::Festival {
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
        status: FestivalStatus::parse(&f.status).map_or(pb::FestivalStatus::Unspecified, status_to_proto) as i32,
        created_by: f.created_by.to_string(),
        create_time: Some(timestamp(f.created_at)),
        update_time: Some(timestamp(f.updated_at)),
        travel_minutes: f.travel_minutes,
    }
}

fn to_stage(s: &StageRow) -> pb::Stage {
    pb::Stage {
        id: s.id.to_string(),
        festival_id: s.festival_id.to_string(),
        name: s.name.clone(),
        capacity: s.capacity,
        position: s.position,
        changeover_minutes: s.changeover_minutes,
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::program_service_server::ProgramService for ProgramApi {
    async fn create_festival(&self, request: Request<pb::CreateFestivalRequest>) -> RpcResult<pb::Festival> {
        let caller = self.verifier.authenticate(&request).await?;
        Ok(Response::new(self.create_festival(caller, request.into_inner()).await?))
    }

    async fn get_festival(&self, request: Request<pb::GetFestivalRequest>) -> RpcResult<pb::Festival> {
        let caller = self.optional_caller(&request).await?;
        Ok(Response::new(self.get_festival(caller, request.into_inner()).await?))
    }

    async fn list_festivals(&self, request: Request<pb::ListFestivalsRequest>) -> RpcResult<pb::ListFestivalsResponse> {
        let caller = self.optional_caller(&request).await?;
        Ok(Response::new(self.list_festivals(caller, request.into_inner()).await?))
    }

    async fn update_festival(&self, request: Request<pb::UpdateFestivalRequest>) -> RpcResult<pb::Festival> {
        let caller = self.verifier.authenticate(&request).await?;
        Ok(Response::new(self.update_festival(caller, request.into_inner()).await?))
    }

    async fn transition_festival(&self, request: Request<pb::TransitionFestivalRequest>) -> RpcResult<pb::Festival> {
        let caller = self.verifier.authenticate(&request).await?;
        Ok(Response::new(self.transition_festival(caller, request.into_inner()).await?))
    }

    async fn delete_festival(
        &self,
        request: Request<pb::DeleteFestivalRequest>,
    ) -> RpcResult<pb::DeleteFestivalResponse> {
        let caller = self.verifier.authenticate(&request).await?;
        Ok(Response::new(self.delete_festival(caller, request.into_inner()).await?))
    }

    async fn create_stage(&self, request: Request<pb::CreateStageRequest>) -> RpcResult<pb::Stage> {
        let caller = self.verifier.authenticate(&request).await?;
        Ok(Response::new(self.create_stage(caller, request.into_inner()).await?))
    }

    async fn list_stages(&self, request: Request<pb::ListStagesRequest>) -> RpcResult<pb::ListStagesResponse> {
        let caller = self.optional_caller(&request).await?;
        Ok(Response::new(self.list_stages(caller, request.into_inner()).await?))
    }

    async fn create_artist(&self, request: Request<pb::CreateArtistRequest>) -> RpcResult<pb::Artist> {
        let caller = self.verifier.authenticate(&request).await?;
        Ok(Response::new(self.create_artist(caller, request.into_inner()).await?))
    }

    async fn list_artists(&self, request: Request<pb::ListArtistsRequest>) -> RpcResult<pb::ListArtistsResponse> {
        let caller = self.optional_caller(&request).await?;
        Ok(Response::new(self.list_artists(caller, request.into_inner()).await?))
    }

    async fn create_performance(&self, request: Request<pb::CreatePerformanceRequest>) -> RpcResult<pb::Performance> {
        let caller = self.verifier.authenticate(&request).await?;
        Ok(Response::new(self.create_performance(caller, request.into_inner()).await?))
    }

    async fn list_performances(
        &self,
        request: Request<pb::ListPerformancesRequest>,
    ) -> RpcResult<pb::ListPerformancesResponse> {
        let caller = self.optional_caller(&request).await?;
        Ok(Response::new(self.list_performances(caller, request.into_inner()).await?))
    }

    async fn check_schedule(&self, request: Request<pb::CheckScheduleRequest>) -> RpcResult<pb::CheckScheduleResponse> {
        let caller = self.verifier.authenticate(&request).await?;
        Ok(Response::new(self.check_schedule(caller, request.into_inner()).await?))
    }

    async fn publish_schedule(
        &self,
        request: Request<pb::PublishScheduleRequest>,
    ) -> RpcResult<pb::PublishScheduleResponse> {
        let caller = self.verifier.authenticate(&request).await?;
        Ok(Response::new(self.publish_schedule(caller, request.into_inner()).await?))
    }
}
