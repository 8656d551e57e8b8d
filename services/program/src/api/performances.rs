//! Performances: scheduling sets without conflicts, moving and cancelling them (telling
//! their fans), checking and publishing the schedule.

use festival_platform::auth::Principal;
use festival_platform::convert::timestamp;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::program::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::convert::{performance_status, to_conflict, to_performance};
use super::{ProgramApi, conflict_refusal};
use crate::domain::conflicts::involves;
use crate::domain::festival::MAX_TEXT;
use crate::domain::lineup::PerformanceStatus;
use crate::events;
use crate::store::festivals::Holding;
use crate::store::{self, performances::PerformanceRow};

/// Fan ids per `performance.changed` event (about 37 bytes each as text), so a headliner's
/// fans span several events and none exceeds the NATS payload limit.
const FANS_PER_EVENT: usize = 5_000;

impl ProgramApi {
    pub(super) async fn create_performance(
        &self,
        caller: Principal,
        req: pb::CreatePerformanceRequest,
    ) -> ApiResult<pb::Performance> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let artist_id = validate::uuid("artist_id", &req.artist_id)?;
        let stage_id = validate::uuid("stage_id", &req.stage_id)?;
        let (start_time, end_time) =
            validate::required_range("start_time", &req.start_time, "end_time", &req.end_time)?;
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        self.room_for(&mut tx, festival_id, Holding::Performances).await?;
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
            let published: Vec<_> = Self::conflicts(&mut tx, &festival, false)
                .await?
                .conflicts
                .into_iter()
                .filter(|c| involves(c, id))
                .collect();
            if !published.is_empty() {
                let message = "This move would put the published schedule in conflict";
                return Err(conflict_refusal(&published, published.len(), message));
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
        Ok(pb::CheckScheduleResponse {
            conflicts: found.conflicts.iter().take(self.limits.conflicts_reported).map(to_conflict).collect(),
            total_conflicts: i32::try_from(found.total).unwrap_or(i32::MAX),
        })
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
        if found.total > 0 {
            let message = format!("The schedule has {} conflict(s); resolve them before publishing", found.total);
            return Err(conflict_refusal(&found.conflicts, found.total, &message));
        }
        let published = store::performances::publish_drafts(&mut tx, festival_id).await?;
        tx.commit().await?;
        Ok(pb::PublishScheduleResponse { published: published as i32 })
    }
}
