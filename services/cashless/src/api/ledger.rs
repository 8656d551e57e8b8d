//! The organiser's checks: the ledger recomputed and the journal walked, and closures
//! that sign the journal's head.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, validate};
use festival_proto::cashless::v1 as pb;

use super::CashlessApi;
use crate::{audit, journal, store};

impl CashlessApi {
    pub(super) async fn verify_ledger(
        &self,
        caller: Principal,
        req: pb::VerifyLedgerRequest,
    ) -> ApiResult<pb::LedgerReport> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        Self::festival(&mut conn, festival_id).await?;
        let key = store::keys::find(&mut conn, festival_id)
            .await?
            .and_then(|k| <[u8; 32]>::try_from(k.journal_public_key.as_slice()).ok())
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok());
        let report = audit::verify(&mut conn, festival_id, key).await.map_err(ApiError::internal)?;
        Ok(pb::LedgerReport {
            festival_id: festival_id.to_string(),
            ok: report.problems.is_empty(),
            transactions: report.transactions,
            wallets: report.wallets,
            chained: report.chained,
            closures: report.closures,
            problems: report.problems,
        })
    }

    pub(super) async fn close_journal(
        &self,
        caller: Principal,
        req: pb::CloseJournalRequest,
    ) -> ApiResult<pb::JournalClosure> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let keys = {
            let mut conn = self.pool.acquire().await?;
            Self::festival(&mut conn, festival_id).await?;
            self.keys.get(&mut conn, festival_id).await.map_err(ApiError::internal)?
        };
        let closure =
            journal::close(&self.pool, &keys, festival_id, self.clock.now()).await.map_err(ApiError::internal)?;
        Ok(pb::JournalClosure {
            festival_id: festival_id.to_string(),
            sequence: closure.seq,
            head_hash: closure.head_hash.iter().map(|b| format!("{b:02x}")).collect(),
            closed_at: Some(timestamp(closure.closed_at)),
            signature: URL_SAFE_NO_PAD.encode(&closure.signature),
            public_key: URL_SAFE_NO_PAD.encode(keys.journal.verifying_key().as_bytes()),
        })
    }
}
