//! Devices: organisers register gate scanners (next, cashless terminals) and revoke them;
//! a device pairs with its one-time code and its own key, then asks for short-lived
//! device tokens with proofs signed by that key.
//!
//! Identity holds devices because it is what every service already trusts to say who
//! is calling: a device token is verified with the same keys as a person's, so no
//! service needs a second trust root, and revoking a device is one event.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use ed25519_dalek::{Signature, VerifyingKey};
use festival_platform::auth::{DEVICE_TOKEN_USE, DeviceClaims, DeviceLevel, Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, typed_code, validate};
use festival_proto::identity::v1 as pb;
use uuid::Uuid;

use super::IdentityApi;
use super::convert::to_device;
use crate::domain::audit::AuditAction;
use crate::domain::device;
use crate::events;
use crate::store::audit::AuditRow;
use crate::store::{self, devices::DeviceStatus};

/// Devices a festival may register (its list shows them all).
const MAX_DEVICES: i64 = 1_000;

impl IdentityApi {
    pub(super) async fn create_device(
        &self,
        caller: Principal,
        req: pb::CreateDeviceRequest,
    ) -> ApiResult<pb::CreateDeviceResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let name = validate::plain_text("name", validate::required("name", req.name.trim(), 100)?, false)?;
        let gate = validate::plain_text("gate", validate::required("gate", req.gate.trim(), 64)?, false)?;
        let level = match validate::known_enum::<pb::DeviceLevel>("level", req.level, true)? {
            None | Some(pb::DeviceLevel::Unspecified | pb::DeviceLevel::Steward) => DeviceLevel::Steward,
            Some(pb::DeviceLevel::Supervisor) => DeviceLevel::Supervisor,
        };
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        // Every device a festival ever had stays listed (revoked ones too), so none can be
        // pushed out of sight.
        if store::devices::count(&mut conn, festival_id).await? >= MAX_DEVICES {
            return Err(ApiError::new(codes::LIMIT_REACHED)
                .with_message(format!("A festival has at most {MAX_DEVICES} devices")));
        }
        let code = typed_code::new_code();
        let canonical = typed_code::normalize(&code)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a new pairing code does not read back")))?;
        let now = self.clock.now();
        let row = store::devices::insert(
            &mut conn,
            &store::devices::NewDevice {
                id: Uuid::now_v7(),
                festival_id,
                name,
                gate,
                level,
                pairing_code_hash: &typed_code::hash(&canonical),
                pairing_expires_at: now + device::PAIRING_TTL,
                created_by: caller.user_id,
                created_at: now,
            },
        )
        .await?;
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            festival_id: Some(festival_id),
            detail: format!("device {}", row.id),
            ..AuditRow::new(AuditAction::DeviceCreated, now)
        };
        store::audit::record(&mut conn, &entry).await?;
        Ok(pb::CreateDeviceResponse { device: Some(to_device(&row)), pairing_code: code })
    }

    pub(super) async fn list_devices(
        &self,
        caller: Principal,
        req: pb::ListDevicesRequest,
    ) -> ApiResult<pb::ListDevicesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let rows = store::devices::of_festival(&mut *self.pool.acquire().await?, festival_id).await?;
        Ok(pb::ListDevicesResponse { devices: rows.iter().map(to_device).collect() })
    }

    pub(super) async fn revoke_device(&self, caller: Principal, req: pb::RevokeDeviceRequest) -> ApiResult<pb::Device> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let device_id = validate::uuid("device_id", &req.device_id)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut tx = self.pool.begin().await?;
        let (row, newly) = store::devices::revoke(&mut tx, festival_id, device_id, caller.user_id, self.clock.now())
            .await?
            .ok_or_else(|| ApiError::new(codes::NOT_FOUND).with_message("No such device at this festival"))?;
        if newly {
            events::publish(
                &mut tx,
                &pb::DeviceRevoked {
                    device_id: device_id.to_string(),
                    festival_id: festival_id.to_string(),
                    revoked_by: caller.user_id.to_string(),
                },
            )
            .await?;
            let entry = AuditRow {
                actor_id: Some(caller.user_id),
                festival_id: Some(festival_id),
                detail: format!("device {device_id}"),
                ..AuditRow::new(AuditAction::DeviceRevoked, self.clock.now())
            };
            store::audit::record(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(to_device(&row))
    }

    pub(super) async fn pair_device(&self, req: pb::PairDeviceRequest) -> ApiResult<pb::Device> {
        let invalid_code = || ApiError::field(codes::DEVICE_PAIRING_INVALID, "pairing_code", "invalid or expired");
        let code = validate::required("pairing_code", &req.pairing_code, 64)?;
        let canonical = typed_code::normalize(code).ok_or_else(invalid_code)?;
        let public_key = parse_public_key(&req.public_key)?;
        let mut tx = self.pool.begin().await?;
        let now = self.clock.now();
        let row = store::devices::pair(&mut tx, &typed_code::hash(&canonical), public_key.as_bytes(), now)
            .await?
            .ok_or_else(invalid_code)?;
        record_festival(row.festival_id);
        let entry = AuditRow {
            festival_id: Some(row.festival_id),
            detail: format!("device {}", row.id),
            ..AuditRow::new(AuditAction::DevicePaired, now)
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(to_device(&row))
    }

    pub(super) async fn issue_device_token(&self, req: pb::IssueDeviceTokenRequest) -> ApiResult<pb::DeviceToken> {
        let device_id = validate::uuid("device_id", &req.device_id)?;
        let signed_at = validate::required_timestamp("sign_time", &req.sign_time)?;
        let proof_invalid = || ApiError::new(codes::DEVICE_PROOF_INVALID);
        let signature = URL_SAFE_NO_PAD
            .decode(validate::required("signature", &req.signature, 128)?.as_bytes())
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or_else(|| ApiError::field(codes::DEVICE_PROOF_INVALID, "signature", "not an Ed25519 signature"))?;
        let now = self.clock.now();
        if !device::proof_is_fresh(signed_at, now) {
            return Err(ApiError::field(
                codes::DEVICE_PROOF_INVALID,
                "sign_time",
                "more than 60 s from the server's clock",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let device = store::devices::find(&mut tx, device_id).await?.ok_or_else(proof_invalid)?;
        match device.status {
            DeviceStatus::Revoked => return Err(ApiError::new(codes::DEVICE_REVOKED)),
            DeviceStatus::Pending => return Err(proof_invalid()),
            DeviceStatus::Active => {}
        }
        let key = device
            .public_key
            .as_deref()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .and_then(|k| VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("active device {device_id} without a valid key")))?;
        let message = device::token_proof_message(device_id, signed_at.timestamp());
        key.verify_strict(message.as_bytes(), &signature).map_err(|_| proof_invalid())?;
        // Whole seconds are what was signed; the stored time keeps them only.
        let signed_at = chrono::DateTime::from_timestamp(signed_at.timestamp(), 0).ok_or_else(proof_invalid)?;
        let device = store::devices::accept_proof(&mut tx, device_id, signed_at).await?.ok_or_else(proof_invalid)?;
        tx.commit().await?;
        record_festival(device.festival_id);
        let exp = now + Duration::seconds(self.config.tokens.device_ttl_secs);
        let claims = DeviceClaims {
            iss: self.config.common.auth.issuer.clone(),
            aud: self.config.common.auth.audience.clone(),
            sub: device.id,
            exp: exp.timestamp(),
            nbf: now.timestamp(),
            iat: now.timestamp(),
            jti: Uuid::now_v7(),
            token_use: DEVICE_TOKEN_USE.into(),
            fid: device.festival_id,
            gate: device.gate.clone(),
            lvl: device.level,
            dkey: URL_SAFE_NO_PAD.encode(key.as_bytes()),
        };
        let signer = self.keyring.signer().await.map_err(ApiError::internal)?;
        Ok(pb::DeviceToken {
            access_token: signer.sign(&claims).map_err(ApiError::internal)?,
            expire_time: Some(timestamp(exp)),
            token_type: "Bearer".into(),
            device: Some(to_device(&device)),
        })
    }
}

/// A device's Ed25519 public key, base64url: a weak key (small order) is refused.
fn parse_public_key(text: &str) -> ApiResult<VerifyingKey> {
    let bad = || ApiError::field(codes::VALIDATION_FAILED, "public_key", "not a base64url Ed25519 public key");
    let bytes = URL_SAFE_NO_PAD.decode(validate::required("public_key", text, 64)?.as_bytes()).map_err(|_| bad())?;
    let key =
        <[u8; 32]>::try_from(bytes.as_slice()).ok().and_then(|k| VerifyingKey::from_bytes(&k).ok()).ok_or_else(bad)?;
    if key.is_weak() {
        return Err(bad());
    }
    Ok(key)
}
