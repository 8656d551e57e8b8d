//! Stages: their running order, capacity and changeover; a change that would break the
//! published schedule is refused.

use festival_platform::auth::Principal;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::program::v1 as pb;
use uuid::Uuid;

use super::convert::to_stage;
use super::{ProgramApi, conflict_refusal, non_negative};
use crate::domain::conflicts::new_conflicts;
use crate::domain::festival::{self as rules, MAX_NAME};
use crate::store::festivals::Holding;
use crate::store::{self, stages::StageRow};

impl ProgramApi {
    pub(super) async fn create_stage(&self, caller: Principal, req: pb::CreateStageRequest) -> ApiResult<pb::Stage> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let name = validate::required("name", &req.name, MAX_NAME)?;
        let (capacity, position, changeover_minutes) =
            stage_numbers(req.capacity, req.position, req.changeover_minutes)?;
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        self.room_for(&mut tx, festival_id, Holding::Stages).await?;
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
        let (capacity, position, changeover_minutes) =
            stage_numbers(req.capacity, req.position, req.changeover_minutes)?;
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
        let before = Self::conflicts(&mut tx, &festival, false).await?.conflicts;
        let row = store::stages::update(&mut tx, &changed).await.on_unique(
            store::stages::NAME_UNIQUE,
            ApiError::field(codes::ALREADY_EXISTS, "name", "this festival already has a stage with that name"),
        )?;
        let broken = new_conflicts(&before, Self::conflicts(&mut tx, &festival, false).await?.conflicts);
        if !broken.is_empty() {
            let message = "This changeover would put the published schedule in conflict";
            return Err(conflict_refusal(&broken, broken.len(), message));
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
}

/// A stage's capacity, running-order position and changeover (minutes, at most a day).
fn stage_numbers(capacity: i32, position: i32, changeover_minutes: i32) -> ApiResult<(i32, i32, i32)> {
    let capacity = non_negative("capacity", capacity)?;
    let position = non_negative("position", position)?;
    let changeover_minutes = non_negative("changeover_minutes", changeover_minutes)?;
    if changeover_minutes > rules::MAX_CHANGEOVER_MINUTES {
        return Err(ApiError::field(codes::VALIDATION_FAILED, "changeover_minutes", "must be at most a day"));
    }
    Ok((capacity, position, changeover_minutes))
}
