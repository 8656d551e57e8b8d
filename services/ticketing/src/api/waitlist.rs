//! The waiting list: people queue for a sold-out category; the worker
//! ([`lifecycle::offer_waiting`](crate::lifecycle::offer_waiting)) offers freed places in
//! order, as holds in their name.

use festival_platform::auth::Principal;
use festival_platform::convert::timestamp;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use super::TicketingApi;
use super::holds::quantity_allowed;
use crate::domain::status::{HoldStatus, Visibility};
use crate::lifecycle;
use crate::store::{self, waitlist::EntryRow, waitlist::WaitingStatus};

fn to_entry(e: &EntryRow) -> pb::WaitingListEntry {
    pb::WaitingListEntry {
        id: e.id.to_string(),
        festival_id: e.festival_id.to_string(),
        category_id: e.category_id.to_string(),
        quantity: e.quantity,
        status: match e.status {
            WaitingStatus::Waiting => pb::WaitingStatus::Waiting,
            WaitingStatus::Offered => pb::WaitingStatus::Offered,
            WaitingStatus::Bought => pb::WaitingStatus::Bought,
            WaitingStatus::Expired => pb::WaitingStatus::Expired,
            WaitingStatus::Left => pb::WaitingStatus::Left,
        } as i32,
        ahead: i32::try_from(e.ahead).unwrap_or(i32::MAX),
        hold_id: e.hold_id.filter(|_| e.status == WaitingStatus::Offered).map(|h| h.to_string()).unwrap_or_default(),
        offer_expire_time: e.offer_expires_at.filter(|_| e.status == WaitingStatus::Offered).map(timestamp),
        create_time: Some(timestamp(e.created_at)),
    }
}

impl TicketingApi {
    pub(super) async fn join_waiting_list(
        &self,
        caller: Principal,
        req: pb::JoinWaitingListRequest,
    ) -> ApiResult<pb::WaitingListEntry> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let category_id = validate::uuid("category_id", &req.category_id)?;
        let mut tx = self.pool.begin().await?;
        Self::festival_on_sale(&mut tx, festival_id).await?;
        let category = store::categories::find_many(&mut tx, festival_id, &[category_id])
            .await?
            .pop()
            .filter(|c| c.visibility == Visibility::Public)
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "category_id", "no such category here"))?;
        quantity_allowed("quantity", req.quantity, category.min_per_order, category.max_per_order)?;
        let now = self.clock.now();
        if category.sale_end.is_some_and(|end| end <= now) {
            return Err(ApiError::new(codes::SALES_CLOSED).with_message("The sale of this category has ended"));
        }
        if !store::categories::account_may_take(&mut tx, &category, caller.user_id, req.quantity).await? {
            let why = format!("at most {} per account", category.max_per_account);
            return Err(ApiError::field(codes::PURCHASE_LIMIT_EXCEEDED, "quantity", why));
        }
        let id = Uuid::now_v7();
        store::waitlist::insert(&mut tx, id, festival_id, category_id, caller.user_id, req.quantity, now)
            .await
            .on_unique(
                store::waitlist::ACTIVE_UNIQUE,
                ApiError::field(codes::ALREADY_EXISTS, "category_id", "you are already on this waiting list"),
            )?;
        let entry = store::waitlist::find(&mut tx, id).await?.ok_or_else(|| ApiError::new(codes::CONCURRENT_UPDATE))?;
        tx.commit().await?;
        Ok(to_entry(&entry))
    }

    pub(super) async fn list_my_waiting_list(
        &self,
        caller: Principal,
        req: pb::ListMyWaitingListRequest,
    ) -> ApiResult<pb::ListMyWaitingListResponse> {
        let festival = match req.festival_id.as_str() {
            "" => None,
            raw => Some(validate::uuid("festival_id", raw)?),
        };
        let entries = store::waitlist::of_user(&mut *self.pool.acquire().await?, caller.user_id, festival).await?;
        Ok(pb::ListMyWaitingListResponse { entries: entries.iter().map(to_entry).collect() })
    }

    pub(super) async fn leave_waiting_list(
        &self,
        caller: Principal,
        req: pb::LeaveWaitingListRequest,
    ) -> ApiResult<pb::WaitingListEntry> {
        let id = validate::uuid("entry_id", &req.entry_id)?;
        let mut tx = self.pool.begin().await?;
        let (status, hold_id, user_id) = store::waitlist::lock(&mut tx, id)
            .await?
            .filter(|(_, _, user)| *user == caller.user_id)
            .ok_or_else(|| ApiError::new(codes::NOT_FOUND))?;
        debug_assert_eq!(user_id, caller.user_id);
        match status {
            WaitingStatus::Waiting => store::waitlist::set_status(&mut tx, id, WaitingStatus::Left).await?,
            WaitingStatus::Offered => {
                // The offer goes back at once: its stock is free for the next in line.
                if let Some(hold) = hold_id
                    && let Some(hold) = store::holds::lock(&mut tx, hold).await?
                    && hold.status == HoldStatus::Active
                {
                    lifecycle::end_hold(&mut tx, &hold, HoldStatus::Released).await?;
                }
                store::waitlist::set_status(&mut tx, id, WaitingStatus::Left).await?;
            }
            WaitingStatus::Bought | WaitingStatus::Expired | WaitingStatus::Left => {}
        }
        let entry = store::waitlist::find(&mut tx, id).await?.ok_or_else(|| ApiError::new(codes::NOT_FOUND))?;
        record_festival(entry.festival_id);
        tx.commit().await?;
        Ok(to_entry(&entry))
    }
}
