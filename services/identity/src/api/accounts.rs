//! Accounts: registration, the caller's own profile, account deletion.

use festival_platform::auth::Principal;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::identity::v1 as pb;
use uuid::Uuid;

use std::net::IpAddr;

use festival_platform::convert::timestamp;

use super::convert::{to_membership, to_session_record, to_user};
use super::{IdentityApi, hashing_refused, parse_email};
use crate::domain::audit::{AuditAction, ip_prefix};
use crate::domain::email::Email;
use crate::domain::password::{self, PasswordRule};
use crate::domain::profile::{self, Language};
use crate::events;
use crate::store;
use crate::store::audit::AuditRow;

impl IdentityApi {
    pub(super) async fn register(
        &self,
        client: Option<IpAddr>,
        req: pb::RegisterRequest,
    ) -> ApiResult<pb::RegisterResponse> {
        let email = parse_email(&req.email)?;
        check_password(&req.password, Some(&email))?;
        let display_name = display_name_of(&req.display_name)?.unwrap_or_else(|| email.local_part().to_owned());
        let language = language_of(req.language)?.unwrap_or(Language::DEFAULT);

        let password_hash = self.hasher.hash(req.password).await.map_err(hashing_refused)?;
        let mut tx = self.pool.begin().await?;
        let user = store::users::insert(
            &mut tx,
            &store::users::NewUser {
                id: Uuid::now_v7(),
                email: email.as_str(),
                password_hash: &password_hash,
                display_name: &display_name,
                language: language.code(),
            },
        )
        .await
        .on_unique(store::users::EMAIL_UNIQUE, ApiError::field(codes::EMAIL_TAKEN, "email", "is already registered"))?;
        events::publish(
            &mut tx,
            &pb::UserRegistered { user_id: user.id.to_string(), language: language.to_proto() as i32 },
        )
        .await?;
        let verification = self.verification(&mut tx, &user).await?;
        let entry = AuditRow {
            actor_id: Some(user.id),
            subject_id: Some(user.id),
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            detail: "password".into(),
            ..AuditRow::new(AuditAction::AccountCreated, self.clock.now())
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        // Mail to an address is throttled wherever it is asked for: held back, the holder
        // asks for the link later (RequestEmailVerification).
        match self.guard.admit_mail(email.as_str(), client).await {
            Ok(()) => self.mail_in_background(verification),
            Err(_) => tracing::info!(user_id = %user.id, "verification mail held back by the mail throttle"),
        }
        tracing::info!(user_id = %user.id, "account registered");
        Ok(pb::RegisterResponse { user: Some(to_user(&user, &[])) })
    }

    pub(super) async fn get_me(&self, caller: Principal, _req: pb::GetMeRequest) -> ApiResult<pb::User> {
        let mut conn = self.pool.acquire().await?;
        let user =
            store::users::find(&mut conn, caller.user_id).await?.ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        let memberships = store::memberships::of_user(&mut conn, user.id).await?;
        Ok(to_user(&user, &memberships))
    }

    pub(super) async fn update_me(&self, caller: Principal, req: pb::UpdateMeRequest) -> ApiResult<pb::User> {
        let display_name = display_name_of(&req.display_name)?;
        let language = language_of(req.language)?;
        if display_name.is_none() && language.is_none() {
            return Err(ApiError::new(codes::REQUIRED_FIELD)
                .with_message("Nothing to update")
                .with_violation("display_name", "set display_name or language"));
        }
        let mut tx = self.pool.begin().await?;
        let user = store::users::update_profile(
            &mut tx,
            caller.user_id,
            display_name.as_deref(),
            language.map(Language::code),
        )
        .await?
        .ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        let user_language = Language::from_code(&user.language).unwrap_or(Language::DEFAULT);
        events::publish(
            &mut tx,
            &pb::UserUpdated { user_id: user.id.to_string(), language: user_language.to_proto() as i32 },
        )
        .await?;
        let memberships = store::memberships::of_user(&mut tx, user.id).await?;
        tx.commit().await?;
        Ok(to_user(&user, &memberships))
    }

    pub(super) async fn delete_me(
        &self,
        caller: Principal,
        client: Option<IpAddr>,
        req: pb::DeleteMeRequest,
    ) -> ApiResult<pb::DeleteMeResponse> {
        self.password_asked_again(&caller, client, req.password).await?;
        // The account row first (sign-ins and refreshes lock it too, so none slips past),
        // then its sessions, then their tokens.
        let mut tx = self.pool.begin().await?;
        if !store::users::delete(&mut tx, caller.user_id).await? {
            return Err(ApiError::new(codes::ACCOUNT_DISABLED));
        }
        let user_id = caller.user_id.to_string();
        let ended = store::sessions::revoke_all(&mut tx, caller.user_id, "account_deleted").await?;
        store::sessions::delete_refresh_tokens_of_user(&mut tx, caller.user_id).await?;
        store::mfa::remove(&mut tx, caller.user_id).await?;
        store::sessions::scrub_of_user(&mut tx, caller.user_id).await?;
        store::email_tokens::delete_of_user(&mut tx, caller.user_id).await?;
        store::oauth::forget_user(&mut tx, caller.user_id).await?;
        Self::announce_revoked(&mut tx, caller.user_id, &ended, "account_deleted").await?;
        for m in store::memberships::revoke_all_of_user(&mut tx, caller.user_id).await? {
            events::publish(
                &mut tx,
                &pb::MembershipRevoked {
                    festival_id: m.festival_id.to_string(),
                    user_id: user_id.clone(),
                    role: pb::Role::from(m.role) as i32,
                    revoked_by: user_id.clone(),
                },
            )
            .await?;
        }
        // After the memberships, the order a role's revocation locks them in.
        self.revoke_badges_of(&mut tx, Some(caller.user_id), caller.user_id, None, "account deleted").await?;
        events::publish(&mut tx, &pb::UserDeleted { user_id }).await?;
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            subject_id: Some(caller.user_id),
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            ..AuditRow::new(AuditAction::AccountDeleted, self.clock.now())
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        tracing::info!(user_id = %caller.user_id, "account deleted");
        Ok(pb::DeleteMeResponse {})
    }
}

impl IdentityApi {
    pub(super) async fn export_my_data(
        &self,
        caller: Principal,
        _req: pb::ExportMyDataRequest,
    ) -> ApiResult<pb::MyData> {
        let mut tx = self.pool.begin().await?;
        let user = store::users::find(&mut tx, caller.user_id).await?.ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        let memberships = store::memberships::of_user(&mut tx, user.id).await?;
        let sessions = store::sessions::of_user(&mut tx, user.id).await?;
        let linked = store::oauth::all_of_user(&mut tx, user.id).await?;
        tx.commit().await?;
        Ok(pb::MyData {
            account: Some(to_user(&user, &memberships)),
            memberships: memberships.iter().map(to_membership).collect(),
            sessions: sessions.iter().map(to_session_record).collect(),
            export_time: Some(timestamp(self.clock.now())),
            linked_identities: linked.iter().map(super::convert::to_linked_identity).collect(),
        })
    }
}

pub(super) fn check_password(raw: &str, email: Option<&Email>) -> ApiResult<()> {
    if raw.is_empty() {
        return Err(ApiError::field(codes::REQUIRED_FIELD, "password", "is required"));
    }
    password::check(raw, email).map_err(|rule| {
        let code = if rule == PasswordRule::MaxLength { codes::FIELD_TOO_LONG } else { codes::WEAK_PASSWORD };
        ApiError::field(code, "password", rule.describe()).with_metadata("rule", rule.name())
    })
}

fn language_of(value: i32) -> ApiResult<Option<Language>> {
    Ok(validate::known_enum::<pb::Language>("language", value, true)?.and_then(Language::from_proto))
}

/// An optional display name: too long is `ERR_1002`; anything else the profile rule
/// refuses (control characters included) is `ERR_10004`, which says more than the
/// generic text check would.
fn display_name_of(raw: &str) -> ApiResult<Option<String>> {
    let name = raw.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > profile::MAX_DISPLAY_NAME {
        let limit = format!("must be at most {} characters", profile::MAX_DISPLAY_NAME);
        return Err(ApiError::field(codes::FIELD_TOO_LONG, "display_name", limit));
    }
    profile::display_name(name).map(Some).map_err(|d| ApiError::field(codes::INVALID_DISPLAY_NAME, "display_name", d))
}
