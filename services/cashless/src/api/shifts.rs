//! Cash at the desks: a cashier's shift opens with a float counted into its own drawer
//! from the safe, takes the cashier's cash top-ups, moves cash to and from the safe, and
//! closes with a count; the difference from the ledger goes to the imbalance account.
//! Each step is a posting between the festival's own accounts (no wallet concerned).

use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::cashless::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::money::book;
use super::{CashlessApi, amount};
use crate::domain::cash::Count;
use crate::domain::ledger::{AccountKind, Posting};
use crate::store::{self, ledger::Meta, shifts::ShiftRow};

fn count(field: &str, currency: &str, pieces: &[pb::CashCount]) -> ApiResult<Count> {
    if pieces.len() > 30 {
        return Err(ApiError::field(codes::VALIDATION_FAILED, field, "names at most 30 denominations"));
    }
    let pairs: Vec<(i64, i64)> = pieces.iter().map(|c| (c.denomination_minor, c.count)).collect();
    Count::new(field, currency, &pairs)
}

impl CashlessApi {
    /// Books a movement between two of the festival's own accounts.
    async fn book_cash(
        &self,
        conn: &mut PgConnection,
        shift: &ShiftRow,
        posting: &Posting,
        actor: Uuid,
        reason: &str,
    ) -> ApiResult<()> {
        let meta = Meta {
            id: Uuid::now_v7(),
            festival_id: shift.festival_id,
            currency: &shift.currency,
            counterpart_id: Some(shift.id),
            actor_id: actor,
            reason,
            at: self.now(),
        };
        book(conn, posting, meta, 0, None).await?;
        Ok(())
    }

    /// A shift with its figures read from the ledger.
    async fn shift_message(conn: &mut PgConnection, s: &ShiftRow) -> ApiResult<pb::CashShift> {
        let cash_top_ups = store::shifts::cash_top_ups(conn, s.drawer_account).await?;
        let expected = match s.expected_minor {
            Some(expected) => expected,
            None => store::shifts::drawer_holds(conn, s.drawer_account).await?,
        };
        let counted = s.counted_minor.unwrap_or(0);
        Ok(pb::CashShift {
            id: s.id.to_string(),
            festival_id: s.festival_id.to_string(),
            cashier_id: s.cashier_id.to_string(),
            currency: s.currency.clone(),
            opened_at: Some(timestamp(s.opened_at)),
            closed_at: s.closed_at.map(timestamp),
            float_minor: s.float_minor,
            cash_top_ups_minor: cash_top_ups,
            to_safe_minor: s.to_safe_minor,
            from_safe_minor: s.from_safe_minor,
            expected_minor: expected,
            counted_minor: counted,
            difference_minor: if s.closed_at.is_some() { counted - expected } else { 0 },
        })
    }

    /// The shift, locked, if the caller is its cashier or an organiser of its festival
    /// (others learn nothing of it), and open.
    async fn own_open_shift(conn: &mut PgConnection, caller: &Principal, id: Uuid) -> ApiResult<ShiftRow> {
        let shift = store::shifts::lock(conn, id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(shift.festival_id);
        let cashier = shift.cashier_id == caller.user_id && caller.require(shift.festival_id, Role::Cashier).is_ok();
        if !cashier && caller.require(shift.festival_id, Role::Organizer).is_err() {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        if shift.closed_at.is_some() {
            return Err(ApiError::new(codes::VALIDATION_FAILED).with_message("This shift is closed"));
        }
        Ok(shift)
    }

    pub(super) async fn open_shift(&self, caller: Principal, req: pb::OpenShiftRequest) -> ApiResult<pb::CashShift> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        caller.require_any(festival_id, &[Role::Cashier, Role::Organizer])?;
        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::CashShift>(&mut tx, "cashless.OpenShift", caller.user_id, key, &req)
            .await?
        {
            Claim::Replay(answer) => return Ok(answer),
            Claim::Fresh(fresh) => fresh,
        };
        let festival = Self::open_festival(&mut tx, festival_id).await?;
        let float = count("float", &festival.currency, &req.float)?;
        let id = Uuid::now_v7();
        let drawer =
            store::accounts::ensure(&mut tx, festival_id, AccountKind::CashDrawer, Some(id), &festival.currency)
                .await?;
        let safe = store::accounts::ensure(&mut tx, festival_id, AccountKind::Safe, None, &festival.currency).await?;
        let shift = ShiftRow {
            id,
            festival_id,
            cashier_id: caller.user_id,
            drawer_account: drawer,
            currency: festival.currency.clone(),
            opened_at: self.now(),
            float_minor: float.total(),
            to_safe_minor: 0,
            from_safe_minor: 0,
            closed_at: None,
            counted_minor: None,
            expected_minor: None,
        };
        match store::shifts::open(&mut tx, &shift, &float).await {
            Ok(()) => {}
            Err(sqlx::Error::Database(e)) if e.constraint() == Some(store::shifts::OPEN_UNIQUE) => {
                return Err(ApiError::new(codes::ALREADY_EXISTS).with_message("Close your open shift first"));
            }
            Err(e) => return Err(e.into()),
        }
        if float.total() > 0 {
            self.book_cash(&mut tx, &shift, &Posting::cash_move(safe, drawer, float.total()), caller.user_id, "float")
                .await?;
        }
        let answer = Self::shift_message(&mut tx, &shift).await?;
        fresh.complete(&mut tx, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    pub(super) async fn move_cash(&self, caller: Principal, req: pb::MoveCashRequest) -> ApiResult<pb::CashShift> {
        let shift_id = validate::uuid("shift_id", &req.shift_id)?;
        let direction = validate::known_enum::<pb::CashDirection>("direction", req.direction, false)?
            .ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "direction", "is required"))?;
        let value = amount("amount_minor", req.amount_minor)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let mut tx = self.pool.begin().await?;
        let fresh =
            match idempotency::claim::<pb::CashShift>(&mut tx, "cashless.MoveCash", caller.user_id, key, &req).await? {
                Claim::Replay(answer) => return Ok(answer),
                Claim::Fresh(fresh) => fresh,
            };
        let shift = Self::own_open_shift(&mut tx, &caller, shift_id).await?;
        let safe =
            store::accounts::ensure(&mut tx, shift.festival_id, AccountKind::Safe, None, &shift.currency).await?;
        let to_safe = direction == pb::CashDirection::ToSafe;
        let posting = if to_safe {
            // A drawer cannot hand over more than the ledger says it holds.
            if store::shifts::drawer_holds(&mut tx, shift.drawer_account).await? < value {
                return Err(ApiError::new(codes::INSUFFICIENT_BALANCE).with_message("The drawer holds less"));
            }
            Posting::cash_move(shift.drawer_account, safe, value)
        } else {
            Posting::cash_move(safe, shift.drawer_account, value)
        };
        self.book_cash(&mut tx, &shift, &posting, caller.user_id, if to_safe { "to safe" } else { "from safe" })
            .await?;
        store::shifts::moved(&mut tx, shift.id, to_safe, value).await?;
        let shift = store::shifts::lock(&mut tx, shift.id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let answer = Self::shift_message(&mut tx, &shift).await?;
        fresh.complete(&mut tx, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    /// The count goes to the safe; the ledger's drawer minus the count is the
    /// difference, booked to the imbalance account, so the drawer ends at zero.
    pub(super) async fn close_shift(&self, caller: Principal, req: pb::CloseShiftRequest) -> ApiResult<pb::CashShift> {
        let shift_id = validate::uuid("shift_id", &req.shift_id)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::CashShift>(&mut tx, "cashless.CloseShift", caller.user_id, key, &req)
            .await?
        {
            Claim::Replay(answer) => return Ok(answer),
            Claim::Fresh(fresh) => fresh,
        };
        // The lock waits for cash top-ups into this drawer in flight (they share-lock it).
        let shift = Self::own_open_shift(&mut tx, &caller, shift_id).await?;
        let counted = count("counted", &shift.currency, &req.counted)?;
        let expected = store::shifts::drawer_holds(&mut tx, shift.drawer_account).await?;
        let difference = counted.total() - expected;
        let festival_id = shift.festival_id;
        if difference != 0 {
            let imbalance =
                store::accounts::ensure(&mut tx, festival_id, AccountKind::CashImbalance, None, &shift.currency)
                    .await?;
            let posting = Posting::cash_difference(shift.drawer_account, imbalance, difference);
            self.book_cash(&mut tx, &shift, &posting, caller.user_id, "count difference").await?;
        }
        if counted.total() > 0 {
            let safe = store::accounts::ensure(&mut tx, festival_id, AccountKind::Safe, None, &shift.currency).await?;
            let posting = Posting::cash_move(shift.drawer_account, safe, counted.total());
            self.book_cash(&mut tx, &shift, &posting, caller.user_id, "closing count").await?;
        }
        store::shifts::close(&mut tx, shift.id, &counted, expected, self.now(), caller.user_id).await?;
        let shift = store::shifts::lock(&mut tx, shift.id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let answer = Self::shift_message(&mut tx, &shift).await?;
        fresh.complete(&mut tx, &answer).await?;
        tx.commit().await?;
        tracing::info!(shift = %shift.id, difference, by = %caller.user_id, "cash shift closed");
        Ok(answer)
    }

    pub(super) async fn list_shifts(
        &self,
        caller: Principal,
        req: pb::ListShiftsRequest,
    ) -> ApiResult<pb::ListShiftsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        Self::festival(&mut conn, festival_id).await?;
        let rows = store::shifts::list(&mut conn, festival_id).await?;
        let mut shifts = Vec::with_capacity(rows.len());
        for row in &rows {
            shifts.push(Self::shift_message(&mut conn, row).await?);
        }
        Ok(pb::ListShiftsResponse { shifts })
    }
}
