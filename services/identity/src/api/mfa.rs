//! The second factor: enrolling an authenticator app, switching it on and off, the
//! second step of a sign-in, and a festival's policy requiring it of its staff.
//!
//! Every code check runs with the account's TOTP row locked (a code is accepted once,
//! also when sent twice at once) and is counted by the sign-in throttle like a password
//! (six digits must not be guessable at the speed of requests).

use std::net::IpAddr;

use chrono::Duration;
use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, qr, validate};
use festival_proto::identity::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::IdentityApi;
use crate::domain::audit::{AuditAction, ip_prefix};
use crate::domain::mfa::{self, Presented};
use crate::store;
use crate::store::audit::AuditRow;
use crate::store::users::UserRow;

/// Longest challenge or code read (anything longer is no challenge or code of ours).
const MAX_INPUT: usize = 128;

/// How a code checked out.
enum Checked {
    Totp,
    RecoveryCode,
}

impl IdentityApi {
    /// The first step of a sign-in for an account with a second factor: a challenge to
    /// answer with VerifyMfa, no tokens.
    pub(super) async fn mfa_challenge(
        &self,
        conn: &mut PgConnection,
        user: &UserRow,
        device_name: &str,
    ) -> ApiResult<pb::TokenPair> {
        let challenge = mfa::new_challenge();
        let now = self.clock.now();
        let expires_at = now + Duration::seconds(self.config.mfa.challenge_ttl_secs);
        let hash = mfa::hash_challenge(&challenge);
        store::mfa::create_challenge(conn, &hash, user.id, now, expires_at, device_name).await?;
        Ok(pb::TokenPair {
            mfa_challenge: challenge,
            mfa_challenge_expire_time: Some(timestamp(expires_at)),
            ..Default::default()
        })
    }

    pub(super) async fn verify_mfa(
        &self,
        client: Option<IpAddr>,
        req: pb::VerifyMfaRequest,
    ) -> ApiResult<pb::TokenPair> {
        let challenge = validate::required("mfa_challenge", &req.mfa_challenge, MAX_INPUT)
            .map_err(|_| ApiError::new(codes::MFA_CHALLENGE_INVALID))?;
        if !challenge.starts_with(mfa::CHALLENGE_PREFIX) {
            return Err(ApiError::new(codes::MFA_CHALLENGE_INVALID));
        }
        let presented = presented_code(&req.code)?;
        let hash = mfa::hash_challenge(challenge);
        let now = self.clock.now();
        let mut conn = self.pool.acquire().await?;
        let owner = store::mfa::live_challenge_owner(&mut conn, &hash, now, mfa::MAX_CHALLENGE_ATTEMPTS)
            .await?
            .ok_or(ApiError::new(codes::MFA_CHALLENGE_INVALID))?;
        drop(conn);
        let code_attempt = self.guard.admit_code(owner).await?;

        let mut tx = self.pool.begin().await?;
        // The account, its factor, then the challenge: the order every MFA change locks in.
        let user = store::users::lock_live(&mut tx, owner).await?.ok_or(ApiError::new(codes::MFA_CHALLENGE_INVALID))?;
        store::mfa::lock_totp(&mut tx, owner).await?;
        let found =
            store::mfa::lock_challenge(&mut tx, &hash).await?.ok_or(ApiError::new(codes::MFA_CHALLENGE_INVALID))?;
        // Answered ones are deleted: here only the time and the wrong codes can end it.
        if found.expires_at <= now || found.attempts >= mfa::MAX_CHALLENGE_ATTEMPTS {
            return Err(ApiError::new(codes::MFA_CHALLENGE_INVALID));
        }
        if user.disabled_at.is_some() {
            return Err(ApiError::new(codes::ACCOUNT_DISABLED));
        }
        let checked = self.check_code(&mut tx, user.id, &presented).await?;
        let Some(how) = checked else {
            store::mfa::count_attempt(&mut tx, &hash).await?;
            self.audit_failure(&mut tx, user.id, client, "sign-in").await?;
            tx.commit().await?;
            return Err(ApiError::new(codes::MFA_CODE_INVALID));
        };
        store::mfa::spend_challenge(&mut tx, &hash).await?;
        let session_id = Uuid::now_v7();
        let session = store::sessions::NewSession {
            id: session_id,
            user_id: user.id,
            started_at: now,
            mfa: true,
            ip_prefix: &client.map(ip_prefix).unwrap_or_default(),
            device_name: &found.device_name,
        };
        store::sessions::create(&mut tx, &session).await?;
        let pair = self.issue_tokens(&mut tx, &user, session_id, now, true).await?;
        let factor = match how {
            Checked::Totp => "authenticator code",
            Checked::RecoveryCode => "recovery code",
        };
        let entry = AuditRow {
            actor_id: Some(user.id),
            subject_id: Some(user.id),
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            detail: format!("session {session_id}, second factor: {factor}"),
            ..AuditRow::new(AuditAction::SignIn, now)
        };
        store::audit::record(&mut tx, &entry).await?;
        if matches!(how, Checked::RecoveryCode) {
            self.audit_recovery_code_used(&mut tx, user.id, client).await?;
        }
        tx.commit().await?;
        self.guard.code_succeeded(&code_attempt).await;
        // Only now is this address one the account signed in from.
        self.guard.remember_address(&self.guard.attempt(&user.email, Some(user.id), client)).await;
        tracing::info!(user_id = %user.id, %session_id, "signed in with a second factor");
        Ok(pair)
    }

    pub(super) async fn enrol_mfa(
        &self,
        caller: Principal,
        client: Option<IpAddr>,
        req: pb::EnrolMfaRequest,
    ) -> ApiResult<pb::MfaEnrolment> {
        self.password_asked_again(&caller, client, req.password).await?;
        let secret = mfa::new_secret();
        let sealed =
            self.keyring.sealer().seal(&secret, &secret_binding(caller.user_id)).map_err(ApiError::internal)?;
        let mut tx = self.pool.begin().await?;
        let user =
            store::users::lock_live(&mut tx, caller.user_id).await?.ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        if !store::mfa::start_enrolment(&mut tx, user.id, &sealed).await? {
            return Err(ApiError::new(codes::MFA_ALREADY_ENABLED));
        }
        tx.commit().await?;
        let otpauth_uri = mfa::otpauth_uri(&self.config.mfa.issuer, &user.email, &secret);
        let matrix = qr::Matrix::of(&otpauth_uri).map_err(|e| ApiError::internal(anyhow::anyhow!("QR code: {e:?}")))?;
        Ok(pb::MfaEnrolment { secret: mfa::base32(&secret), qr_svg: qr::svg(&matrix), otpauth_uri })
    }

    pub(super) async fn confirm_mfa(
        &self,
        caller: Principal,
        req: pb::ConfirmMfaRequest,
    ) -> ApiResult<pb::MfaRecoveryCodes> {
        let Presented::Totp(code) = presented_code(&req.code)? else {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "code", "six digits from the authenticator app"));
        };
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        store::users::lock_live(&mut tx, caller.user_id).await?.ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        let totp =
            store::mfa::lock_totp(&mut tx, caller.user_id).await?.ok_or(ApiError::new(codes::MFA_NOT_ENABLED))?;
        if totp.confirmed_at.is_some() {
            return Err(ApiError::new(codes::MFA_ALREADY_ENABLED));
        }
        let secret = self.open_secret(caller.user_id, &totp.sealed_secret)?;
        let step =
            mfa::accepted_step(&secret, code, now, totp.last_step).ok_or(ApiError::new(codes::MFA_CODE_INVALID))?;
        store::mfa::confirm(&mut tx, caller.user_id, step, now).await?;
        let recovery_codes: Vec<String> = (0..mfa::RECOVERY_CODES).map(|_| mfa::new_recovery_code()).collect();
        let hashes: Vec<Vec<u8>> = recovery_codes
            .iter()
            .filter_map(|c| match mfa::parse_code(c) {
                Some(Presented::Recovery(normalised)) => Some(mfa::hash_recovery_code(&normalised)),
                _ => None,
            })
            .collect();
        store::mfa::replace_recovery_codes(&mut tx, caller.user_id, &hashes).await?;
        // The holder just proved the factor: this session counts as started with it, and
        // every other one (the password alone, perhaps a thief's) ends.
        store::sessions::set_mfa(&mut tx, caller.session_id).await?;
        let ended = store::sessions::revoke_all_but(&mut tx, caller.user_id, caller.session_id, "mfa_enabled").await?;
        Self::announce_revoked(&mut tx, caller.user_id, &ended, "mfa_enabled").await?;
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            subject_id: Some(caller.user_id),
            detail: format!("{} recovery codes, {} other sessions ended", hashes.len(), ended.len()),
            ..AuditRow::new(AuditAction::MfaEnabled, now)
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(pb::MfaRecoveryCodes { recovery_codes })
    }

    pub(super) async fn disable_mfa(
        &self,
        caller: Principal,
        client: Option<IpAddr>,
        req: pb::DisableMfaRequest,
    ) -> ApiResult<pb::DisableMfaResponse> {
        let presented = presented_code(&req.code)?;
        // Guessing a code through a stolen token is throttled like signing in.
        let attempt = self.guard.admit_code(caller.user_id).await?;
        let mut tx = self.pool.begin().await?;
        let user =
            store::users::lock_live(&mut tx, caller.user_id).await?.ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        if !store::mfa::is_enabled(&mut tx, user.id).await? {
            return Err(ApiError::new(codes::MFA_NOT_ENABLED));
        }
        let Some(how) = self.check_code(&mut tx, user.id, &presented).await? else {
            self.audit_failure(&mut tx, user.id, client, "switching it off").await?;
            tx.commit().await?;
            return Err(ApiError::new(codes::MFA_CODE_INVALID));
        };
        if matches!(how, Checked::RecoveryCode) {
            self.audit_recovery_code_used(&mut tx, user.id, client).await?;
        }
        store::mfa::remove(&mut tx, user.id).await?;
        let entry = AuditRow {
            actor_id: Some(user.id),
            subject_id: Some(user.id),
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            ..AuditRow::new(AuditAction::MfaDisabled, self.clock.now())
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        self.guard.code_succeeded(&attempt).await;
        Ok(pb::DisableMfaResponse {})
    }

    pub(super) async fn get_security_policy(
        &self,
        caller: Principal,
        req: pb::GetSecurityPolicyRequest,
    ) -> ApiResult<pb::SecurityPolicy> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let policy = store::mfa::policy(&mut *self.pool.acquire().await?, festival_id).await?;
        Ok(to_policy(&policy))
    }

    pub(super) async fn set_security_policy(
        &self,
        caller: Principal,
        req: pb::SetSecurityPolicyRequest,
    ) -> ApiResult<pb::SecurityPolicy> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        if req.staff_mfa_required && !caller.mfa && !caller.is_admin() {
            // Requiring what one's own session lacks would lock oneself out mid-change.
            return Err(ApiError::new(codes::MFA_REQUIRED)
                .with_message("Sign in with a second factor before requiring one of the festival's staff"));
        }
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let policy = store::mfa::set_policy(&mut tx, festival_id, req.staff_mfa_required, caller.user_id, now).await?;
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            festival_id: Some(festival_id),
            detail: format!("staff_mfa_required={}", req.staff_mfa_required),
            ..AuditRow::new(AuditAction::SecurityPolicyChanged, now)
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(to_policy(&policy))
    }

    /// Checks a code against the account's confirmed factor (its row locked) and spends
    /// it: a TOTP code's step, or the recovery code. `None`: wrong, replayed, or no
    /// factor to check against.
    async fn check_code(
        &self,
        conn: &mut PgConnection,
        user_id: Uuid,
        presented: &Presented,
    ) -> ApiResult<Option<Checked>> {
        let Some(totp) = store::mfa::lock_totp(conn, user_id).await?.filter(|t| t.confirmed_at.is_some()) else {
            return Ok(None);
        };
        let now = self.clock.now();
        match presented {
            Presented::Totp(code) => {
                let secret = self.open_secret(user_id, &totp.sealed_secret)?;
                let Some(step) = mfa::accepted_step(&secret, *code, now, totp.last_step) else { return Ok(None) };
                // Test-only: widen the window between the check and the write, so the
                // race test's negative control (no lock) reliably interleaves.
                #[cfg(feature = "race-hooks")]
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                store::mfa::accept_step(conn, user_id, step).await?;
                Ok(Some(Checked::Totp))
            }
            Presented::Recovery(normalised) => {
                let used =
                    store::mfa::use_recovery_code(conn, user_id, &mfa::hash_recovery_code(normalised), now).await?;
                Ok(used.then_some(Checked::RecoveryCode))
            }
        }
    }

    fn open_secret(&self, user_id: Uuid, sealed: &[u8]) -> ApiResult<Vec<u8>> {
        self.keyring.sealer().open(sealed, &secret_binding(user_id)).map_err(ApiError::internal)
    }

    async fn audit_failure(
        &self,
        conn: &mut PgConnection,
        user_id: Uuid,
        client: Option<IpAddr>,
        during: &str,
    ) -> ApiResult<()> {
        let entry = AuditRow {
            subject_id: Some(user_id),
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            detail: format!("wrong code, {during}"),
            ..AuditRow::new(AuditAction::MfaFailed, self.clock.now())
        };
        Ok(store::audit::record(conn, &entry).await?)
    }

    async fn audit_recovery_code_used(
        &self,
        conn: &mut PgConnection,
        user_id: Uuid,
        client: Option<IpAddr>,
    ) -> ApiResult<()> {
        let left = store::mfa::unused_recovery_codes(conn, user_id).await?;
        let entry = AuditRow {
            actor_id: Some(user_id),
            subject_id: Some(user_id),
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            detail: format!("{left} left"),
            ..AuditRow::new(AuditAction::RecoveryCodeUsed, self.clock.now())
        };
        Ok(store::audit::record(conn, &entry).await?)
    }
}

/// A typed code, or ERR_2013 for anything that is neither six digits nor a recovery code
/// (no attempt is counted: such input can never be right).
fn presented_code(raw: &str) -> ApiResult<Presented> {
    let raw = validate::required("code", raw, MAX_INPUT)?;
    mfa::parse_code(raw).ok_or(ApiError::new(codes::MFA_CODE_INVALID))
}

/// What a sealed TOTP secret is bound to: it opens only as this account's.
fn secret_binding(user_id: Uuid) -> String {
    format!("totp:{user_id}")
}

fn to_policy(p: &store::mfa::PolicyRow) -> pb::SecurityPolicy {
    pb::SecurityPolicy {
        festival_id: p.festival_id.to_string(),
        staff_mfa_required: p.staff_mfa_required,
        update_user_id: p.updated_by.map(|u| u.to_string()).unwrap_or_default(),
        update_time: p.updated_at.map(timestamp),
    }
}
