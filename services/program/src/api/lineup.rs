//! The line-up: stages, artists and performances, conflict checks and publishing the
//! schedule, moving or cancelling a performance.

use festival_platform::auth::Principal;
use festival_platform::convert::timestamp;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::program::v1 as pb;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use super::convert::{performance_status, to_artist, to_conflict, to_performance, to_stage};
use super::{ProgramApi, conflict_refusal, https_urls, localized, non_negative};
use crate::domain::conflicts::{self, Conflict, Rules, Slot, involves, new_conflicts};
use crate::domain::festival::{self as rules, MAX_NAME, MAX_TEXT};
use crate::domain::lineup::PerformanceStatus;
use crate::events;
use crate::store::{self, artists::ArtistRow, festivals::FestivalRow, performances::PerformanceRow, stages::StageRow};

/// Fan ids per `performance.changed` event (about 37 bytes each as text).
const FANS_PER_EVENT: usize = 5_000;

impl ProgramApi {
    pub(super) async fn create_stage(&self, caller: Principal, req: pb::CreateStageRequest) -> ApiResult<pb::Stage> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let name = validate::required("name", &req.name, MAX_NAME)?;
        let capacity = non_negative("capacity", req.capacity)?;
        let position = non_negative("position", req.position)?;
        let changeover_minutes = non_negative("changeover_minutes", req.changeover_minutes)?;
        if changeover_minutes > rules::MAX_CHANGEOVER_MINUTES {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "changeover_minutes", "must be at most a day"));
        }
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        let stage =
            StageRow { id: Uuid::now_v7(), festival_id, name: name.to_owned(), capacity, position, changeover_minutes };
        let row = store::stages::insert(&mut tx, &stage).await.on_unique(
            store::stages::NAME_UNIQUE,
            ApiError::field(codes::ALREADY_EXISTS, "name", "this festival already has a stage with that name"),
        )?;
        tx.commit().await?;
        Ok(to_stage(&row))
    }

    pub(super) async fn list_stages(
        &self,
        caller: Option<Principal>,
        req: pb::ListStagesRequest,
    ) -> ApiResult<pb::ListStagesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut conn = self.pool.acquire().await?;
        Self::readable(&mut conn, festival_id, caller.as_ref()).await?;
        let rows = store::stages::of_festival(&mut conn, festival_id).await?;
        Ok(pb::ListStagesResponse { stages: rows.iter().map(to_stage).collect() })
    }

    pub(super) async fn update_stage(&self, caller: Principal, req: pb::UpdateStageRequest) -> ApiResult<pb::Stage> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let stage_id = validate::uuid("stage_id", &req.stage_id)?;
        let name = validate::optional("name", &req.name, MAX_NAME)?;
        let capacity = non_negative("capacity", req.capacity)?;
        let position = non_negative("position", req.position)?;
        let changeover_minutes = non_negative("changeover_minutes", req.changeover_minutes)?;
        if changeover_minutes > rules::MAX_CHANGEOVER_MINUTES {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "changeover_minutes", "must be at most a day"));
        }
        let mut tx = self.pool.begin().await?;
        let festival = Self::managed(&mut tx, festival_id, &caller).await?;
        let current = store::stages::of_festival(&mut tx, festival_id)
            .await?
            .into_iter()
            .find(|s| s.id == stage_id)
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "stage_id", "no such stage at this festival"))?;
        let changed = StageRow {
            name: name.map_or(current.name.clone(), str::to_owned),
            capacity: if capacity == 0 { current.capacity } else { capacity },
            position: if position == 0 { current.position } else { position },
            changeover_minutes: if changeover_minutes == 0 { current.changeover_minutes } else { changeover_minutes },
            ..current
        };
        let before = Self::conflicts(&mut tx, &festival, false).await?;
        let row = store::stages::update(&mut tx, &changed).await.on_unique(
            store::stages::NAME_UNIQUE,
            ApiError::field(codes::ALREADY_EXISTS, "name", "this festival already has a stage with that name"),
        )?;
        let broken = new_conflicts(&before, Self::conflicts(&mut tx, &festival, false).await?);
        if !broken.is_empty() {
            return Err(conflict_refusal(&broken, "This changeover would put the published schedule in conflict"));
        }
        tx.commit().await?;
        Ok(to_stage(&row))
    }

    pub(super) async fn delete_stage(
        &self,
        caller: Principal,
        req: pb::DeleteStageRequest,
    ) -> ApiResult<pb::DeleteStageResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let stage_id = validate::uuid("stage_id", &req.stage_id)?;
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        Self::require_stage(&mut tx, festival_id, stage_id).await?;
        let uses = store::stages::uses(&mut tx, stage_id).await?;
        if uses > 0 {
            return Err(ApiError::new(codes::IN_USE).with_message(format!(
                "{uses} performance(s) or shift(s) are on this stage; cancel or move them first"
            )));
        }
        store::stages::delete(&mut tx, stage_id).await?;
        tx.commit().await?;
        Ok(pb::DeleteStageResponse {})
    }

    pub(super) async fn update_artist(&self, caller: Principal, req: pb::UpdateArtistRequest) -> ApiResult<pb::Artist> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let artist_id = validate::uuid("artist_id", &req.artist_id)?;
        let name = validate::optional("name", &req.name, MAX_NAME)?;
        let new_genres = (!req.genres.is_empty()).then(|| genres(&req.genres)).transpose()?;
        let bio = validate::optional("bio", &req.bio, 5_000)?;
        let image_url = validate::optional("image_url", &req.image_url, 2_000)?;
        if image_url.is_some_and(|url| !rules::valid_https_url(url)) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "image_url", "must be an https URL"));
        }
        let contact = validate::optional("contact", &req.contact, MAX_TEXT)?;
        let links = https_urls("links", &req.links)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::managed(&mut tx, festival_id, &caller).await?;
        let bios = localized("bios", &req.bios, &festival.languages, 5_000)?;
        let current = store::artists::find(&mut tx, festival_id, artist_id)
            .await?
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "artist_id", "no such artist at this festival"))?;
        let changed = ArtistRow {
            name: name.map_or(current.name.clone(), str::to_owned),
            genres: new_genres.unwrap_or(current.genres.clone()),
            bio: bio.map_or(current.bio.clone(), str::to_owned),
            image_url: image_url.map_or(current.image_url.clone(), str::to_owned),
            contact: contact.map_or(current.contact.clone(), str::to_owned),
            bios: if bios.is_empty() { current.bios.clone() } else { Json(bios) },
            links: if links.is_empty() { current.links.clone() } else { links.to_vec() },
            ..current
        };
        let row = store::artists::update(&mut tx, &changed).await.on_unique(
            store::artists::NAME_UNIQUE,
            ApiError::field(codes::ALREADY_EXISTS, "name", "this festival already has an artist with that name"),
        )?;
        tx.commit().await?;
        Ok(to_artist(&row, true))
    }

    pub(super) async fn delete_artist(
        &self,
        caller: Principal,
        req: pb::DeleteArtistRequest,
    ) -> ApiResult<pb::DeleteArtistResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let artist_id = validate::uuid("artist_id", &req.artist_id)?;
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        if store::artists::find(&mut tx, festival_id, artist_id).await?.is_none() {
            return Err(ApiError::field(codes::NOT_FOUND, "artist_id", "no such artist at this festival"));
        }
        let uses = store::artists::uses(&mut tx, artist_id).await?;
        if uses > 0 {
            return Err(ApiError::new(codes::IN_USE)
                .with_message(format!("{uses} performance(s) of this artist are scheduled; cancel them first")));
        }
        store::artists::delete(&mut tx, artist_id).await?;
        tx.commit().await?;
        Ok(pb::DeleteArtistResponse {})
    }

    pub(super) async fn create_artist(&self, caller: Principal, req: pb::CreateArtistRequest) -> ApiResult<pb::Artist> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let name = validate::required("name", &req.name, MAX_NAME)?;
        let genres = genres(&req.genres)?;
        let bio = validate::optional("bio", &req.bio, 5_000)?.unwrap_or("");
        let image_url = validate::optional("image_url", &req.image_url, 2_000)?.unwrap_or("");
        if !image_url.is_empty() && !rules::valid_https_url(image_url) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "image_url", "must be an https URL"));
        }
        let contact = validate::optional("contact", &req.contact, MAX_TEXT)?.unwrap_or("");
        let links = https_urls("links", &req.links)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::managed(&mut tx, festival_id, &caller).await?;
        let bios = localized("bios", &req.bios, &festival.languages, 5_000)?;
        let artist = ArtistRow {
            id: Uuid::now_v7(),
            festival_id,
            name: name.to_owned(),
            genres,
            bio: bio.to_owned(),
            image_url: image_url.to_owned(),
            contact: contact.to_owned(),
            bios: Json(bios),
            links: links.to_vec(),
        };
        let row = store::artists::insert(&mut tx, &artist).await.on_unique(
            store::artists::NAME_UNIQUE,
            ApiError::field(codes::ALREADY_EXISTS, "name", "this festival already has an artist with that name"),
        )?;
        tx.commit().await?;
        Ok(to_artist(&row, true))
    }

    pub(super) async fn list_artists(
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

    pub(super) async fn create_performance(
        &self,
        caller: Principal,
        req: pb::CreatePerformanceRequest,
    ) -> ApiResult<pb::Performance> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let artist_id = validate::uuid("artist_id", &req.artist_id)?;
        let stage_id = validate::uuid("stage_id", &req.stage_id)?;
        let start_time = validate::required_timestamp("start_time", &req.start_time)?;
        let end_time = validate::required_timestamp("end_time", &req.end_time)?;
        if start_time >= end_time {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "end_time", "must be after start_time"));
        }
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        if !store::artists::exists(&mut tx, festival_id, artist_id).await? {
            return Err(ApiError::field(codes::NOT_FOUND, "artist_id", "no such artist at this festival"));
        }
        Self::require_stage(&mut tx, festival_id, stage_id).await?;
        let row = PerformanceRow {
            id: Uuid::now_v7(),
            festival_id,
            artist_id,
            stage_id,
            start_time,
            end_time,
            status: PerformanceStatus::Draft,
        };
        let row = store::performances::insert(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(to_performance(&row))
    }

    pub(super) async fn list_performances(
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

    pub(super) async fn require_stage(conn: &mut PgConnection, festival_id: Uuid, stage_id: Uuid) -> ApiResult<()> {
        if store::stages::of_festival(conn, festival_id).await?.iter().any(|s| s.id == stage_id) {
            Ok(())
        } else {
            Err(ApiError::field(codes::NOT_FOUND, "stage_id", "no such stage at this festival"))
        }
    }

    pub(super) async fn update_performance(
        &self,
        caller: Principal,
        req: pb::UpdatePerformanceRequest,
    ) -> ApiResult<pb::Performance> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let id = validate::uuid("performance_id", &req.performance_id)?;
        let stage_id = (!req.stage_id.is_empty()).then(|| validate::uuid("stage_id", &req.stage_id)).transpose()?;
        let (start_time, end_time) =
            (validate::timestamp("start_time", &req.start_time)?, validate::timestamp("end_time", &req.end_time)?);
        let mut tx = self.pool.begin().await?;
        let festival = Self::managed(&mut tx, festival_id, &caller).await?;
        let before = store::performances::find_locked(&mut tx, festival_id, id).await?.ok_or_else(|| {
            ApiError::field(codes::NOT_FOUND, "performance_id", "no such performance at this festival")
        })?;
        if before.status == PerformanceStatus::Cancelled {
            return Err(ApiError::new(codes::PERFORMANCE_CANCELLED).with_message("A cancelled performance cannot move"));
        }
        let stage_id = stage_id.unwrap_or(before.stage_id);
        Self::require_stage(&mut tx, festival_id, stage_id).await?;
        let (start, end) = (start_time.unwrap_or(before.start_time), end_time.unwrap_or(before.end_time));
        if start >= end {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "end_time", "must be after start_time"));
        }
        let after = store::performances::reschedule(&mut tx, id, stage_id, start, end).await?;
        if after.status == PerformanceStatus::Published {
            // The public schedule stays conflict-free: a published set may not move into a clash.
            let published: Vec<_> =
                Self::conflicts(&mut tx, &festival, false).await?.into_iter().filter(|c| involves(c, id)).collect();
            if !published.is_empty() {
                return Err(conflict_refusal(&published, "This move would put the published schedule in conflict"));
            }
            self.performance_changed(&mut tx, &before, &after, "").await?;
        }
        tx.commit().await?;
        Ok(to_performance(&after))
    }

    pub(super) async fn cancel_performance(
        &self,
        caller: Principal,
        req: pb::CancelPerformanceRequest,
    ) -> ApiResult<pb::Performance> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let id = validate::uuid("performance_id", &req.performance_id)?;
        let reason = validate::optional("reason", &req.reason, MAX_TEXT)?.unwrap_or("");
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        let before = store::performances::find_locked(&mut tx, festival_id, id).await?.ok_or_else(|| {
            ApiError::field(codes::NOT_FOUND, "performance_id", "no such performance at this festival")
        })?;
        if before.status == PerformanceStatus::Cancelled {
            tx.commit().await?;
            return Ok(to_performance(&before));
        }
        let after = store::performances::cancel(&mut tx, id, reason).await?;
        if before.status == PerformanceStatus::Published {
            self.performance_changed(&mut tx, &before, &after, reason).await?;
        }
        tx.commit().await?;
        Ok(to_performance(&after))
    }

    /// `performance.changed` for a published performance, with the fans to tell: one event
    /// per [`FANS_PER_EVENT`] fans, so a headliner starred by 50,000 people stays well
    /// under the NATS message size limit.
    pub(super) async fn performance_changed(
        &self,
        conn: &mut PgConnection,
        before: &PerformanceRow,
        after: &PerformanceRow,
        reason: &str,
    ) -> ApiResult<()> {
        let artist_name = store::artists::of_festival(conn, after.festival_id)
            .await?
            .into_iter()
            .find(|a| a.id == after.artist_id)
            .map(|a| a.name)
            .unwrap_or_default();
        let fans = store::favourites::fans(conn, after.id).await?;
        let batches: Vec<&[Uuid]> = if fans.is_empty() { vec![&[]] } else { fans.chunks(FANS_PER_EVENT).collect() };
        let batch_count = i32::try_from(batches.len()).unwrap_or(i32::MAX);
        for (i, batch) in batches.into_iter().enumerate() {
            let event = pb::PerformanceChanged {
                festival_id: after.festival_id.to_string(),
                performance_id: after.id.to_string(),
                artist_id: after.artist_id.to_string(),
                artist_name: artist_name.clone(),
                status: performance_status(after.status) as i32,
                previous_stage_id: before.stage_id.to_string(),
                previous_start_time: Some(timestamp(before.start_time)),
                previous_end_time: Some(timestamp(before.end_time)),
                stage_id: after.stage_id.to_string(),
                start_time: Some(timestamp(after.start_time)),
                end_time: Some(timestamp(after.end_time)),
                reason: reason.to_owned(),
                fan_user_ids: batch.iter().map(Uuid::to_string).collect(),
                fan_batch: i32::try_from(i).unwrap_or(i32::MAX),
                fan_batches: batch_count,
            };
            events::publish(conn, &event).await?;
        }
        Ok(())
    }

    /// Every conflict of the festival's scheduled performances, drafts included when asked.
    pub(super) async fn conflicts(
        conn: &mut PgConnection,
        festival: &FestivalRow,
        with_drafts: bool,
    ) -> ApiResult<Vec<Conflict<Uuid>>> {
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
        Ok(conflicts::detect(
            &slots,
            &Rules { changeover: &changeover, travel: i64::from(festival.travel_minutes) * 60, window },
        ))
    }

    pub(super) async fn check_schedule(
        &self,
        caller: Principal,
        req: pb::CheckScheduleRequest,
    ) -> ApiResult<pb::CheckScheduleResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::managed(&mut tx, festival_id, &caller).await?;
        let found = Self::conflicts(&mut tx, &festival, true).await?;
        tx.commit().await?;
        Ok(pb::CheckScheduleResponse { conflicts: found.iter().map(to_conflict).collect() })
    }

    pub(super) async fn publish_schedule(
        &self,
        caller: Principal,
        req: pb::PublishScheduleRequest,
    ) -> ApiResult<pb::PublishScheduleResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::managed(&mut tx, festival_id, &caller).await?;
        let found = Self::conflicts(&mut tx, &festival, true).await?;
        if !found.is_empty() {
            return Err(conflict_refusal(
                &found,
                &format!("The schedule has {} conflict(s); resolve them before publishing", found.len()),
            ));
        }
        let published = store::performances::publish_drafts(&mut tx, festival_id).await?;
        tx.commit().await?;
        Ok(pb::PublishScheduleResponse { published: published as i32 })
    }
}

/// Up to 20 genres of up to 50 characters, lower-cased.
fn genres(list: &[String]) -> ApiResult<Vec<String>> {
    if list.len() > rules::MAX_GENRES {
        return Err(ApiError::field(codes::FIELD_TOO_LONG, "genres", format!("at most {} genres", rules::MAX_GENRES)));
    }
    list.iter().map(|g| validate::required("genres", g, rules::MAX_GENRE_CHARS).map(rules::normalise_genre)).collect()
}
