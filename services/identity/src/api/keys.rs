//! Signing keys: the public JWKS and rotation.

use festival_platform::auth::Principal;
use festival_platform::{ApiError, ApiResult};
use festival_proto::identity::v1 as pb;

use super::IdentityApi;

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
        Ok(pb::RotateSigningKeyResponse { kid })
    }
}
