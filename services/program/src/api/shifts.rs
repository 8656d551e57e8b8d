//! Staff shifts: places, times, a required role and a head count; assignments by
//! organizers or volunteer sign-ups, with one person never on two overlapping shifts;
//! coverage and worked-hours reports.
//!
//! Who holds which role comes from identity's membership events (`store::members`).

use chrono::Utc;
use festival_platform::auth::{Principal, Role};
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::program::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::convert::{place_kind_from_proto, shift_role_from_proto, to_shift};
use super::{ProgramApi, is_public, manages};
use crate::domain::festival::{MAX_NAME, MAX_TEXT};
use crate::domain::shifts::{self, PlaceKind, Worked};
use crate::store::festivals::Holding;
use crate::store::{self, festivals::FestivalRow, shifts::ShiftRow};

impl ProgramApi {
    pub(super) async fn create_shift(&self, caller: Principal, req: pb::CreateShiftRequest) -> ApiResult<pb::Shift> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let place_kind = validate::known_enum::<pb::PlaceKind>("place_kind", req.place_kind, false)?
            .and_then(place_kind_from_proto)
            .ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "place_kind", "is required"))?;
        let place = validate::required("place", &req.place, MAX_NAME)?;
        let role = validate::known_enum::<pb::ShiftRole>("role", req.role, false)?
            .and_then(shift_role_from_proto)
            .ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "role", "is required"))?;
        if !(1..=1000).contains(&req.head_count) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "head_count", "from 1 to 1000"));
        }
        let (start_time, end_time) =
            validate::required_range("start_time", &req.start_time, "end_time", &req.end_time)?;
        if end_time - start_time > chrono::Duration::hours(24) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "end_time", "a shift lasts at most 24 hours"));
        }
        let notes = validate::optional("notes", &req.notes, MAX_TEXT)?.unwrap_or("");
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        self.room_for(&mut tx, festival_id, Holding::Shifts).await?;
        if place_kind == PlaceKind::Stage {
            let stage = Uuid::try_parse(place).ok();
            let stages = store::stages::of_festival(&mut tx, festival_id).await?;
            if !stage.is_some_and(|id| stages.iter().any(|s| s.id == id)) {
                return Err(ApiError::field(
                    codes::NOT_FOUND,
                    "place",
                    "a STAGE shift's place is a stage id of this festival",
                ));
            }
        }
        let row = ShiftRow {
            id: Uuid::now_v7(),
            festival_id,
            place_kind,
            place: place.to_owned(),
            role,
            head_count: req.head_count,
            start_time,
            end_time,
            notes: notes.to_owned(),
            assignees: Vec::new(),
        };
        store::shifts::insert(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(to_shift(&row))
    }

    pub(super) async fn list_shifts(
        &self,
        caller: Principal,
        req: pb::ListShiftsRequest,
    ) -> ApiResult<pb::ListShiftsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let role = validate::known_enum::<pb::ShiftRole>("role", req.role, true)?.and_then(shift_role_from_proto);
        let mut conn = self.pool.acquire().await?;
        Self::crew(&mut conn, festival_id, &caller).await?;
        let rows = store::shifts::of_festival(&mut conn, festival_id).await?;
        let shifts = rows
            .iter()
            .filter(|s| role.is_none_or(|r| s.role == r))
            .filter(|s| !req.open_only || shifts::missing(s.head_count, s.assignees.len()) > 0)
            .filter(|s| !req.mine || s.assignees.contains(&caller.user_id))
            .map(to_shift)
            .collect();
        Ok(pb::ListShiftsResponse { shifts })
    }

    pub(super) async fn assign_shift(&self, caller: Principal, req: pb::AssignShiftRequest) -> ApiResult<pb::Shift> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let shift_id = validate::uuid("shift_id", &req.shift_id)?;
        let user_id = validate::uuid("user_id", &req.user_id)?;
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        let shift = Self::staff(&mut tx, festival_id, shift_id, user_id, caller.user_id, false).await?;
        tx.commit().await?;
        Ok(to_shift(&shift))
    }

    pub(super) async fn sign_up_for_shift(
        &self,
        caller: Principal,
        req: pb::SignUpForShiftRequest,
    ) -> ApiResult<pb::Shift> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let shift_id = validate::uuid("shift_id", &req.shift_id)?;
        let mut tx = self.pool.begin().await?;
        Self::crew(&mut tx, festival_id, &caller).await?;
        let shift = Self::staff(&mut tx, festival_id, shift_id, caller.user_id, caller.user_id, true).await?;
        tx.commit().await?;
        Ok(to_shift(&shift))
    }

    /// An organizer takes someone off a shift; people may also withdraw themselves
    /// before it starts.
    pub(super) async fn unassign_shift(
        &self,
        caller: Principal,
        req: pb::UnassignShiftRequest,
    ) -> ApiResult<pb::Shift> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let shift_id = validate::uuid("shift_id", &req.shift_id)?;
        let user_id = validate::uuid("user_id", &req.user_id)?;
        let mut tx = self.pool.begin().await?;
        let festival = if user_id == caller.user_id {
            Self::crew(&mut tx, festival_id, &caller).await?
        } else {
            Self::managed(&mut tx, festival_id, &caller).await?
        };
        if !store::shifts::lock(&mut tx, festival_id, shift_id).await? {
            return Err(ApiError::field(codes::NOT_FOUND, "shift_id", "no such shift at this festival"));
        }
        let shift =
            store::shifts::find(&mut tx, festival_id, shift_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if !manages(&caller, &festival) && shift.start_time <= Utc::now() {
            return Err(
                ApiError::new(codes::SHIFT_STARTED).with_message("Ask an organizer to change a shift under way")
            );
        }
        store::shifts::unassign(&mut tx, shift_id, user_id).await?;
        let shift =
            store::shifts::find(&mut tx, festival_id, shift_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        tx.commit().await?;
        Ok(to_shift(&shift))
    }

    pub(super) async fn delete_shift(
        &self,
        caller: Principal,
        req: pb::DeleteShiftRequest,
    ) -> ApiResult<pb::DeleteShiftResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let shift_id = validate::uuid("shift_id", &req.shift_id)?;
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        if !store::shifts::lock(&mut tx, festival_id, shift_id).await? {
            return Err(ApiError::field(codes::NOT_FOUND, "shift_id", "no such shift at this festival"));
        }
        let shift =
            store::shifts::find(&mut tx, festival_id, shift_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if shift.start_time <= Utc::now() && !shift.assignees.is_empty() {
            return Err(ApiError::new(codes::SHIFT_STARTED)
                .with_message("This shift has started; it stays as the record of who worked it"));
        }
        store::shifts::delete(&mut tx, shift_id).await?;
        tx.commit().await?;
        Ok(pb::DeleteShiftResponse {})
    }

    pub(super) async fn get_shift_coverage(
        &self,
        caller: Principal,
        req: pb::GetShiftCoverageRequest,
    ) -> ApiResult<pb::ShiftCoverage> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        let rows = store::shifts::of_festival(&mut tx, festival_id).await?;
        tx.commit().await?;
        let understaffed: Vec<pb::UnderstaffedShift> = rows
            .iter()
            .filter_map(|s| {
                let missing = shifts::missing(s.head_count, s.assignees.len());
                (missing > 0).then(|| pb::UnderstaffedShift { shift: Some(to_shift(s)), missing })
            })
            .collect();
        let shift_count = i32::try_from(rows.len()).unwrap_or(i32::MAX);
        Ok(pb::ShiftCoverage {
            shift_count,
            fully_staffed: shift_count - i32::try_from(understaffed.len()).unwrap_or(i32::MAX),
            understaffed,
        })
    }

    pub(super) async fn get_worked_hours(
        &self,
        caller: Principal,
        req: pb::GetWorkedHoursRequest,
    ) -> ApiResult<pb::WorkedHours> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        let assignments = store::shifts::assignments(&mut tx, festival_id).await?;
        tx.commit().await?;
        let worked: Vec<Worked> =
            assignments.into_iter().map(|(user, start, end)| Worked { user, start, end }).collect();
        let people = shifts::hours(&worked, Utc::now())
            .into_iter()
            .map(|(user, h)| pb::PersonHours {
                user_id: user.to_string(),
                shift_count: h.shifts,
                worked_minutes: h.worked_minutes,
                scheduled_minutes: h.scheduled_minutes,
            })
            .collect();
        Ok(pb::WorkedHours { people })
    }

    /// The festival's crew may see its shifts: organizers, and members holding a shift
    /// role. Others get ERR_3002 (or "not found" for a draft).
    pub(super) async fn crew(conn: &mut PgConnection, festival_id: Uuid, caller: &Principal) -> ApiResult<FestivalRow> {
        festival_platform::rpc::record_festival(festival_id);
        let festival =
            store::festivals::find(conn, festival_id, false).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if manages(caller, &festival)
            || [Role::Staff, Role::Cashier, Role::Security].iter().any(|r| caller.has(festival_id, *r))
        {
            return Ok(festival);
        }
        if is_public(&festival) {
            Err(ApiError::new(codes::NOT_A_MEMBER))
        } else {
            Err(ApiError::new(codes::NOT_FOUND))
        }
    }

    /// Puts `user_id` on the shift, enforcing the rules in order: the shift exists, the
    /// person holds its role, has no overlapping shift anywhere, and there is room.
    /// The shift row and the person are both locked, so concurrent calls cannot
    /// overfill a shift or double-book a person. Assigning someone twice is a no-op.
    /// Volunteers sign up before a shift starts; organizers may also record who worked
    /// a past one.
    pub(super) async fn staff(
        conn: &mut PgConnection,
        festival_id: Uuid,
        shift_id: Uuid,
        user_id: Uuid,
        by: Uuid,
        volunteer: bool,
    ) -> ApiResult<ShiftRow> {
        if !store::shifts::lock(conn, festival_id, shift_id).await? {
            return Err(ApiError::field(codes::NOT_FOUND, "shift_id", "no such shift at this festival"));
        }
        store::shifts::lock_person(conn, user_id).await?;
        let shift = store::shifts::find(conn, festival_id, shift_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if shift.assignees.contains(&user_id) {
            return Ok(shift);
        }
        if !store::members::holds(conn, festival_id, user_id, shift.role.as_str()).await? {
            return Err(ApiError::new(codes::SHIFT_ROLE_MISMATCH)
                .with_message(format!("Only {} members of this festival can work this shift", shift.role))
                .with_metadata("role", shift.role.as_str()));
        }
        if volunteer && shift.start_time <= Utc::now() {
            return Err(ApiError::new(codes::SHIFT_STARTED));
        }
        if let Some((other, other_festival)) =
            store::shifts::overlapping(conn, user_id, shift.start_time, shift.end_time).await?
        {
            let refusal =
                ApiError::new(codes::SHIFT_OVERLAP).with_message("This person already works a shift at that time");
            // Which shift clashes is this festival's business only: another festival's
            // shift id would tell its organizers' rosters to a stranger.
            return Err(if other_festival == festival_id {
                refusal.with_metadata("shift_id", other.to_string())
            } else {
                refusal
            });
        }
        if shifts::missing(shift.head_count, shift.assignees.len()) == 0 {
            return Err(ApiError::new(codes::SHIFT_FULL));
        }
        // Test-only: widen the window between the checks and the write, so the race
        // tests' negative control (no locks) reliably interleaves.
        #[cfg(feature = "race-hooks")]
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        store::shifts::assign(conn, &shift, user_id, by).await?;
        store::shifts::find(conn, festival_id, shift_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))
    }
}
