//! Reading the security audit log: organisers see their festival's entries, admins all.

use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, page_token, validate};
use festival_proto::identity::v1 as pb;

use super::IdentityApi;
use crate::store::{self, audit::AuditRow};

impl IdentityApi {
    pub(super) async fn list_audit_entries(
        &self,
        caller: Principal,
        req: pb::ListAuditEntriesRequest,
    ) -> ApiResult<pb::ListAuditEntriesResponse> {
        let festival = match req.festival_id.as_str() {
            "" => None,
            raw => Some(validate::uuid("festival_id", raw)?),
        };
        let size = validate::page_size("page_size", req.page_size, 50, 200)?;
        match festival {
            Some(f) => {
                record_festival(f);
                if caller.role != Role::Admin {
                    caller.require(f, Role::Organizer)?;
                }
            }
            None if caller.role == Role::Admin => {}
            None => {
                return Err(ApiError::field(codes::REQUIRED_FIELD, "festival_id", "organisers read one festival's"));
            }
        }
        let scope = format!("identity.ListAuditEntries:{}", req.festival_id);
        let after = page_token::decode(&scope, &req.page_token)?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::audit::page(&mut conn, festival, after, i64::from(size) + 1).await?;
        let next_page_token = page_token::next_page(&mut rows, size as usize, &scope, |r| (r.at, r.id));
        Ok(pb::ListAuditEntriesResponse { entries: rows.iter().map(entry).collect(), next_page_token })
    }
}

fn entry(r: &AuditRow) -> pb::AuditEntry {
    let id = |u: Option<uuid::Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    pb::AuditEntry {
        id: r.id.to_string(),
        time: Some(timestamp(r.at)),
        action: r.action.as_str().to_owned(),
        actor_id: id(r.actor_id),
        subject_id: id(r.subject_id),
        festival_id: id(r.festival_id),
        ip_prefix: r.ip_prefix.clone(),
        detail: r.detail.clone(),
    }
}
