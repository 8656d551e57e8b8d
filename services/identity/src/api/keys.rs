//! Signing keys: the public JWKS, rotation and emergency revocation.

use festival_platform::auth::Principal;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::identity::v1 as pb;

use super::IdentityApi;
use crate::domain::audit::AuditAction;
use crate::events;
use crate::store;
use crate::store::audit::AuditRow;

impl IdentityApi {
    pub(super) async fn get_jwks(&self, _req: pb::GetJwksRequest) -> ApiResult<pb::Jwks> {
        let keys = self.keyring.published().await.map_err(ApiError::internal)?;
        Ok(pb::Jwks {
            keys: keys
                .into_iter()
                .map(|k| pb::Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    x: k.x,
                    kid: k.kid,
                    alg: "EdDSA".into(),
                    r#use: "sig".into(),
                })
                .collect(),
        })
    }

    pub(super) async fn rotate_signing_key(
        &self,
        caller: Principal,
        _req: pb::RotateSigningKeyRequest,
    ) -> ApiResult<pb::RotateSigningKeyResponse> {
        caller.require_admin()?;
        let kid = self.keyring.rotate().await.map_err(ApiError::internal)?;
        self.verifier.refresh(true).await;
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            detail: format!("new key {kid}"),
            ..AuditRow::new(AuditAction::SigningKeyRotated, self.clock.now())
        };
        store::audit::record(&mut *self.pool.acquire().await?, &entry).await?;
        Ok(pb::RotateSigningKeyResponse { kid })
    }

    pub(super) async fn revoke_signing_key(
        &self,
        caller: Principal,
        req: pb::RevokeSigningKeyRequest,
    ) -> ApiResult<pb::RevokeSigningKeyResponse> {
        caller.require_admin()?;
        let kid = validate::required("kid", &req.kid, 100)?;
        let reason = validate::max_len("reason", &req.reason, 200)?;
        let mut tx = self.pool.begin().await?;
        let active_kid = self
            .keyring
            .revoke(&mut tx, kid, reason)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::new(codes::NOT_FOUND).with_message("No such unrevoked signing key"))?;
        events::publish(
            &mut tx,
            &pb::SigningKeyRevoked { kid: kid.into(), reason: reason.into(), revoked_by: caller.user_id.to_string() },
        )
        .await?;
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            detail: format!("key {kid}: {reason}"),
            ..AuditRow::new(AuditAction::SigningKeyRevoked, self.clock.now())
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        // This replica at once; the others and every service on the event.
        self.keyring.forget_signer().await;
        self.verifier.forget_keys(&[kid.to_owned()]).await;
        self.verifier.refresh(true).await;
        tracing::warn!(%kid, revoked_by = %caller.user_id, %active_kid, "signing key revoked");
        Ok(pb::RevokeSigningKeyResponse { active_kid })
    }
}
