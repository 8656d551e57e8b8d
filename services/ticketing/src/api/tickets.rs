//! Tickets: the holder's list, and what scanners need offline (public keys, revocations);
//! the gates themselves are in [`gates`](super::gates).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use festival_platform::auth::{GateCaller, Principal};
use festival_platform::convert::timestamp;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiResult, validate};
use festival_proto::ticketing::v1 as pb;

use super::TicketingApi;
use super::convert::to_ticket;
use crate::store;

/// A festival's public key as scanners download it.
pub(super) fn to_key(k: &store::keys::KeyRow) -> pb::TicketKey {
    pb::TicketKey {
        kid: k.kid.clone(),
        public_key: URL_SAFE_NO_PAD.encode(&k.public_key),
        create_time: Some(timestamp(k.created_at)),
    }
}

impl TicketingApi {
    pub(super) async fn list_my_tickets(
        &self,
        caller: Principal,
        req: pb::ListMyTicketsRequest,
    ) -> ApiResult<pb::ListMyTicketsResponse> {
        let festival = match req.festival_id.as_str() {
            "" => None,
            raw => Some(validate::uuid("festival_id", raw)?),
        };
        let mut conn = self.pool.acquire().await?;
        let tickets = store::tickets::of_holder(&mut conn, caller.user_id, festival).await?;
        Ok(pb::ListMyTicketsResponse { tickets: tickets.iter().map(to_ticket).collect() })
    }

    pub(super) async fn get_ticket_keys(&self, req: pb::GetTicketKeysRequest) -> ApiResult<pb::TicketKeys> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let mut conn = self.pool.acquire().await?;
        Self::festival(&mut conn, festival_id).await?;
        let keys = store::keys::of_festival(&mut conn, festival_id).await?;
        Ok(pb::TicketKeys { keys: keys.iter().map(to_key).collect() })
    }

    pub(super) async fn list_revoked_tickets(
        &self,
        caller: GateCaller,
        req: pb::ListRevokedTicketsRequest,
    ) -> ApiResult<pb::ListRevokedTicketsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        self.admit_gate_caller(&caller, festival_id).await?;
        let mut conn = self.pool.acquire().await?;
        let ids = store::tickets::revoked_ids(&mut conn, festival_id).await?;
        Ok(pb::ListRevokedTicketsResponse { ticket_ids: ids.iter().map(ToString::to_string).collect() })
    }
}
