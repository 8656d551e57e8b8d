//! Signing in with a Google or GitHub account, and linking such accounts to ours.
//!
//! A flow: Start stores a state (sent through the provider and back), a binding (kept by
//! the client that started), the PKCE verifier and the OIDC nonce, and answers the
//! consent page's URL; Complete spends the state at once, checks the binding, exchanges
//! the code with the verifier, and checks what the provider says of its account. Which
//! account that signs into is [`oauth::sign_in_to`]; a second factor still applies.

use std::net::IpAddr;

use chrono::Duration;
use festival_platform::auth::Principal;
use festival_platform::convert::timestamp;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::identity::v1 as pb;
use uuid::Uuid;

use super::{IdentityApi, parse_email};
use crate::domain::audit::{AuditAction, ip_prefix};
use crate::domain::bearer;
use crate::domain::oauth::{self, FlowPurpose, Provider, ProviderAccount, SameAddress, SignInTo};
use crate::domain::profile::Language;
use crate::events;
use crate::oauth::Failure;
use crate::store;
use crate::store::audit::AuditRow;
use crate::store::oauth::{FlowRow, Owner};
use crate::store::users::UserRow;

/// Longest state, binding or code read (a provider's code is well under 1 KiB).
const MAX_STATE_LEN: usize = 64;
const MAX_CODE_LEN: usize = 2048;

impl IdentityApi {
    pub(super) async fn start_o_auth_login(
        &self,
        client: Option<IpAddr>,
        req: pb::StartOAuthLoginRequest,
    ) -> ApiResult<pb::OAuthAuthorization> {
        let provider = self.provider_on(&req.provider)?;
        let device_name = super::sessions::device_name(&req.device_name)?;
        self.guard.admit_oauth_start(client).await?;
        self.start_flow(provider, FlowPurpose::SignIn, None, device_name).await
    }

    pub(super) async fn start_o_auth_link(
        &self,
        caller: Principal,
        client: Option<IpAddr>,
        req: pb::StartOAuthLinkRequest,
    ) -> ApiResult<pb::OAuthAuthorization> {
        let provider = self.provider_on(&req.provider)?;
        let user = self.password_asked_again(&caller, client, req.password).await?;
        // Only the holder of the address links: someone who registered another's address
        // here (unverified) cannot add their own provider account as a way in, which would
        // outlast the owner's reset.
        if user.email_verified_at.is_none() {
            return Err(ApiError::new(codes::EMAIL_NOT_VERIFIED));
        }
        self.guard.admit_oauth_start(client).await?;
        self.start_flow(provider, FlowPurpose::Link, Some(caller.user_id), "").await
    }

    async fn start_flow(
        &self,
        provider: Provider,
        purpose: FlowPurpose,
        user_id: Option<Uuid>,
        device_name: &str,
    ) -> ApiResult<pb::OAuthAuthorization> {
        let state = bearer::new(oauth::STATE_PREFIX);
        let binding = bearer::new(oauth::BINDING_PREFIX);
        let code_verifier = oauth::new_code_verifier();
        let nonce = oauth::new_nonce();
        let now = self.clock.now();
        let expires_at = now + Duration::seconds(self.config.oauth.flow_ttl_secs);
        let authorization_url = self
            .providers
            .authorization_url(provider, &state, &code_verifier, &nonce)
            .ok_or(ApiError::new(codes::OAUTH_PROVIDER_DISABLED))?;
        let mut conn = self.pool.acquire().await?;
        store::oauth::prune_flows(&mut conn, now).await?;
        let flow = store::oauth::NewFlow {
            state_hash: &bearer::hash(&state),
            binding_hash: &bearer::hash(&binding),
            provider,
            purpose,
            user_id,
            code_verifier: &code_verifier,
            nonce: &nonce,
            device_name,
            expires_at,
        };
        store::oauth::create_flow(&mut conn, &flow).await?;
        Ok(pb::OAuthAuthorization { authorization_url, state, binding, expire_time: Some(timestamp(expires_at)) })
    }

    pub(super) async fn complete_o_auth_login(
        &self,
        client: Option<IpAddr>,
        req: pb::CompleteOAuthLoginRequest,
    ) -> ApiResult<pb::TokenPair> {
        let provider = self.provider_on(&req.provider)?;
        let answer = Answer::of(&req.state, &req.code, &req.binding)?;
        let attempt = self.guard.admit_oauth(client).await?;
        let flow = self.take_flow(provider, FlowPurpose::SignIn, &answer, None, client).await?;
        let account = self.provider_account(provider, &answer, &flow, None, client).await?;
        let pair = match self.sign_in_with(provider, &account, &flow, client).await {
            // Another sign-in of the same provider account made or linked its account
            // meanwhile (the unique indexes stopped this one): now it is linked, and the
            // code is spent, so look again rather than send the holder back to the start.
            Err(e) if e.code == codes::CONCURRENT_UPDATE && !cfg!(feature = "race-hooks") => {
                self.sign_in_with(provider, &account, &flow, client).await
            }
            answered => answered,
        }?;
        self.guard.oauth_succeeded(&attempt).await;
        Ok(pair)
    }

    pub(super) async fn complete_o_auth_link(
        &self,
        caller: Principal,
        client: Option<IpAddr>,
        req: pb::CompleteOAuthLinkRequest,
    ) -> ApiResult<pb::LoginMethods> {
        let provider = self.provider_on(&req.provider)?;
        let answer = Answer::of(&req.state, &req.code, &req.binding)?;
        let attempt = self.guard.admit_oauth(client).await?;
        let me = Some(caller.user_id);
        let flow = self.take_flow(provider, FlowPurpose::Link, &answer, me, client).await?;
        let account = self.provider_account(provider, &answer, &flow, me, client).await?;
        let methods = match self.link_to(&caller, provider, &account, client).await {
            // Linked by someone else (or this caller) meanwhile: the second look says which.
            Err(e) if e.code == codes::CONCURRENT_UPDATE => self.link_to(&caller, provider, &account, client).await,
            answered => answered,
        }?;
        self.guard.oauth_succeeded(&attempt).await;
        tracing::info!(user_id = %caller.user_id, provider = provider.name(), "provider linked");
        Ok(methods)
    }

    async fn link_to(
        &self,
        caller: &Principal,
        provider: Provider,
        account: &ProviderAccount,
        client: Option<IpAddr>,
    ) -> ApiResult<pb::LoginMethods> {
        let me = Some(caller.user_id);
        let mut tx = self.pool.begin().await?;
        let user = store::users::lock_for_change(&mut tx, caller.user_id)
            .await?
            .ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        if user.email_verified_at.is_none() {
            return Err(ApiError::new(codes::EMAIL_NOT_VERIFIED));
        }
        match store::oauth::owner(&mut tx, provider, &account.subject).await? {
            Some(Owner::Linked(owner)) if owner == user.id => {}
            Some(Owner::Linked(_)) => {
                self.audit_oauth_failure(&mut tx, provider, "linked to another account", me, client).await?;
                tx.commit().await?;
                return Err(ApiError::new(codes::OAUTH_IDENTITY_TAKEN));
            }
            Some(Owner::Unlinked) | None => {
                self.link(&mut tx, provider, account, &user, "linked by its holder", client).await?;
            }
        }
        let methods = login_methods(&mut tx, &user).await?;
        tx.commit().await?;
        Ok(methods)
    }

    pub(super) async fn list_login_methods(
        &self,
        caller: Principal,
        _req: pb::ListLoginMethodsRequest,
    ) -> ApiResult<pb::LoginMethods> {
        let mut conn = self.pool.acquire().await?;
        let user =
            store::users::find(&mut conn, caller.user_id).await?.ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        login_methods(&mut conn, &user).await
    }

    pub(super) async fn unlink_o_auth_identity(
        &self,
        caller: Principal,
        client: Option<IpAddr>,
        req: pb::UnlinkOAuthIdentityRequest,
    ) -> ApiResult<pb::LoginMethods> {
        let provider = provider_of(&req.provider)?;
        // It signs every other session out: not for a stolen access token alone.
        self.password_asked_again(&caller, client, req.password).await?;
        let mut tx = self.pool.begin().await?;
        // The account row, as a password reset locks it: two unlinks take turns, so the
        // last way in is never removed by both at once.
        let user = store::users::lock_for_change(&mut tx, caller.user_id)
            .await?
            .ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        let linked = store::oauth::of_user(&mut tx, user.id).await?;
        if !linked.iter().any(|l| l.provider == provider) {
            return Err(ApiError::new(codes::NOT_FOUND).with_message("No account of this provider is linked"));
        }
        if !oauth::may_unlink(!user.password_hash.is_empty(), linked.len()) {
            return Err(ApiError::new(codes::LAST_SIGN_IN_METHOD)
                .with_message("This is the account's only way to sign in: set a password with a reset link first"));
        }
        store::oauth::unlink(&mut tx, user.id, provider, self.clock.now()).await?;
        // Unlinking is what a holder does when the provider's account was taken over:
        // whatever signed in with it is signed out (every session but this one).
        let ended = store::sessions::revoke_all_but(&mut tx, user.id, caller.session_id, "provider_unlinked").await?;
        Self::announce_revoked(&mut tx, user.id, &ended, "provider_unlinked").await?;
        store::mfa::delete_challenges(&mut tx, user.id).await?;
        let entry = AuditRow {
            actor_id: Some(user.id),
            subject_id: Some(user.id),
            detail: format!("{}, {} other sessions ended", provider.name(), ended.len()),
            ..AuditRow::new(AuditAction::OAuthUnlinked, self.clock.now())
        };
        store::audit::record(&mut tx, &entry).await?;
        let methods = login_methods(&mut tx, &user).await?;
        tx.commit().await?;
        Ok(methods)
    }

    /// The provider named, if it is set up here: unknown names are ERR_1003, providers
    /// without a client id ERR_2025.
    fn provider_on(&self, name: &str) -> ApiResult<Provider> {
        let provider = provider_of(name)?;
        self.providers.config(provider).ok_or(ApiError::new(codes::OAUTH_PROVIDER_DISABLED))?;
        Ok(provider)
    }

    /// Spends the flow of this state and binding (whatever follows) and checks it is for
    /// this provider and purpose (and caller), and live. Anything else: ERR_2018.
    async fn take_flow(
        &self,
        provider: Provider,
        purpose: FlowPurpose,
        answer: &Answer<'_>,
        caller: Option<Uuid>,
        client: Option<IpAddr>,
    ) -> ApiResult<FlowRow> {
        let mut conn = self.pool.acquire().await?;
        let (state, binding) = (bearer::hash(answer.state), bearer::hash(answer.binding));
        let flow = store::oauth::take_flow(&mut conn, &state, &binding).await?;
        let now = self.clock.now();
        let flow = flow
            .filter(|f| f.provider == provider && f.purpose == purpose && f.user_id == caller && f.expires_at > now);
        match flow {
            Some(flow) => Ok(flow),
            None => {
                self.audit_oauth_failure(&mut conn, provider, "state invalid", caller, client).await?;
                Err(ApiError::new(codes::OAUTH_STATE_INVALID))
            }
        }
    }

    /// What the provider says the code is worth; refusals and failed checks audited.
    async fn provider_account(
        &self,
        provider: Provider,
        answer: &Answer<'_>,
        flow: &FlowRow,
        caller: Option<Uuid>,
        client: Option<IpAddr>,
    ) -> ApiResult<ProviderAccount> {
        let now = self.clock.now().timestamp();
        let failure = match self.providers.account(provider, answer.code, &flow.code_verifier, &flow.nonce, now).await {
            Ok(account) => return Ok(account),
            Err(failure) => failure,
        };
        let (detail, code) = match &failure {
            Failure::Refused(error) => (format!("code refused: {}", short(error)), codes::OAUTH_CODE_REFUSED),
            Failure::IdToken(why) => (format!("ID token: {why}"), codes::OAUTH_ID_TOKEN_INVALID),
            Failure::Unavailable(why) => {
                tracing::warn!(provider = provider.name(), error = %why, "sign-in provider unusable");
                return Err(ApiError::new(codes::OAUTH_PROVIDER_UNAVAILABLE));
            }
        };
        self.audit_oauth_failure(&mut *self.pool.acquire().await?, provider, &detail, caller, client).await?;
        Err(ApiError::new(code))
    }

    /// Signs the provider's account into ours (see [`oauth::sign_in_to`]): tokens, or an
    /// MFA challenge when the account has a second factor.
    async fn sign_in_with(
        &self,
        provider: Provider,
        account: &ProviderAccount,
        flow: &FlowRow,
        client: Option<IpAddr>,
    ) -> ApiResult<pb::TokenPair> {
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let owner = store::oauth::owner(&mut tx, provider, &account.subject).await?;
        let linked = match owner {
            Some(Owner::Linked(user_id)) => Some(user_id),
            _ => None,
        };
        // The address only matters to an account not linked yet; one that is no address
        // proves nothing, as an unverified one.
        let email = match linked {
            Some(_) => None,
            None => Some(parse_email(&account.email).map_err(|_| ApiError::new(codes::OAUTH_EMAIL_UNVERIFIED))?),
        };
        let same_address = match &email {
            Some(email) => match store::users::find_by_email(&mut tx, email.as_str()).await? {
                Some(u) => Some(SameAddress {
                    user: u.id,
                    verified_here: u.email_verified_at.is_some(),
                    second_factor: store::mfa::is_enabled(&mut tx, u.id).await?,
                }),
                None => None,
            },
            None => None,
        };
        // Test-only: widen the window between the look and the write, so the race test's
        // negative control (no second look) reliably sees two first sign-ins collide even
        // when the provider's answers reach them some way apart.
        #[cfg(feature = "race-hooks")]
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let unlinked = owner == Some(Owner::Unlinked);
        let user = match oauth::sign_in_to(linked, same_address, account.email_verified, unlinked) {
            SignInTo::Linked(user_id) => {
                // Deleted meanwhile (its links go with it): the second look finds none.
                let user =
                    store::users::lock_live(&mut tx, user_id).await?.ok_or(ApiError::new(codes::CONCURRENT_UPDATE))?;
                // Unlinked while this sign-in waited for the account: the second look sees it.
                if !store::oauth::touch(&mut tx, provider, &account.subject, user.id, now).await? {
                    return Err(ApiError::new(codes::CONCURRENT_UPDATE));
                }
                user
            }
            SignInTo::LinkByAddress(user_id) => {
                let user = store::users::lock_for_change(&mut tx, user_id)
                    .await?
                    .ok_or(ApiError::new(codes::CONCURRENT_UPDATE))?;
                if user.disabled_at.is_none() {
                    self.link(&mut tx, provider, account, &user, "by verified address", client).await?;
                }
                user
            }
            SignInTo::NewAccount => {
                let email = email.as_ref().ok_or(ApiError::new(codes::OAUTH_STATE_INVALID))?;
                self.new_account(&mut tx, provider, account, email, client).await?
            }
            SignInTo::AddressUnverified => {
                self.audit_oauth_failure(&mut tx, provider, "address not verified by the provider", None, client)
                    .await?;
                tx.commit().await?;
                return Err(ApiError::new(codes::OAUTH_EMAIL_UNVERIFIED));
            }
            SignInTo::LinkRequired(why) => {
                let holder = same_address.map(|a| a.user);
                self.audit_oauth_failure(&mut tx, provider, why.describe(), holder, client).await?;
                tx.commit().await?;
                return Err(ApiError::new(codes::OAUTH_LINK_REQUIRED));
            }
        };
        let ip = client.map(ip_prefix).unwrap_or_default();
        if user.disabled_at.is_some() {
            let entry = AuditRow {
                subject_id: Some(user.id),
                ip_prefix: ip,
                detail: format!("{}: account disabled", provider.name()),
                ..AuditRow::new(AuditAction::SignInFailed, now)
            };
            store::audit::record(&mut tx, &entry).await?;
            tx.commit().await?;
            return Err(ApiError::new(codes::ACCOUNT_DISABLED));
        }
        if store::mfa::is_enabled(&mut tx, user.id).await? {
            // The provider stands in for the password, not for the second factor.
            let pair = self.mfa_challenge(&mut tx, &user, &flow.device_name).await?;
            let entry = AuditRow {
                subject_id: Some(user.id),
                ip_prefix: ip,
                detail: provider.name().into(),
                ..AuditRow::new(AuditAction::MfaChallenged, now)
            };
            store::audit::record(&mut tx, &entry).await?;
            tx.commit().await?;
            return Ok(pair);
        }
        let session_id = Uuid::now_v7();
        let session = store::sessions::NewSession {
            id: session_id,
            user_id: user.id,
            started_at: now,
            mfa: false,
            ip_prefix: &ip,
            device_name: &flow.device_name,
        };
        store::sessions::create(&mut tx, &session).await?;
        let pair = self.issue_tokens(&mut tx, &user, session_id, now, false).await?;
        let entry = AuditRow {
            actor_id: Some(user.id),
            subject_id: Some(user.id),
            ip_prefix: ip,
            detail: format!("{}, session {session_id}", provider.name()),
            ..AuditRow::new(AuditAction::SignIn, now)
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, %session_id, provider = provider.name(), "signed in with a provider");
        Ok(pair)
    }

    /// A new account for a provider's verified address: no password (a reset link can
    /// set one), the address verified, the provider linked.
    async fn new_account(
        &self,
        conn: &mut sqlx::PgConnection,
        provider: Provider,
        account: &ProviderAccount,
        email: &crate::domain::email::Email,
        client: Option<IpAddr>,
    ) -> ApiResult<UserRow> {
        let now = self.clock.now();
        let display_name =
            crate::domain::profile::display_name(&account.name).unwrap_or_else(|_| email.local_part().to_owned());
        let language = Language::DEFAULT;
        let user = store::users::insert(
            conn,
            &store::users::NewUser {
                id: Uuid::now_v7(),
                email: email.as_str(),
                password_hash: "",
                display_name: &display_name,
                language: language.code(),
            },
        )
        .await
        // Another sign-in made it a moment ago: this one retries and signs into it.
        .on_unique(store::users::EMAIL_UNIQUE, ApiError::new(codes::CONCURRENT_UPDATE))?;
        store::users::mark_email_verified(conn, user.id, &user.email, now).await?;
        events::publish(
            conn,
            &pb::UserRegistered { user_id: user.id.to_string(), language: language.to_proto() as i32 },
        )
        .await?;
        let entry = AuditRow {
            actor_id: Some(user.id),
            subject_id: Some(user.id),
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            detail: provider.name().into(),
            ..AuditRow::new(AuditAction::AccountCreated, now)
        };
        store::audit::record(conn, &entry).await?;
        self.link(conn, provider, account, &user, "new account", client).await?;
        let user = store::users::find(conn, user.id).await?.ok_or(ApiError::new(codes::CONCURRENT_UPDATE))?;
        tracing::info!(user_id = %user.id, provider = provider.name(), "account registered with a provider");
        Ok(user)
    }

    /// Links the provider's account to `user`, audited. The account has another of this
    /// provider's: ERR_2021; the provider's was linked meanwhile: ERR_1007.
    async fn link(
        &self,
        conn: &mut sqlx::PgConnection,
        provider: Provider,
        account: &ProviderAccount,
        user: &UserRow,
        how: &str,
        client: Option<IpAddr>,
    ) -> ApiResult<()> {
        let now = self.clock.now();
        let subject = validate::max_len("subject", &account.subject, oauth::MAX_SUBJECT)?;
        // The caller holds the account's row: no other link of it is made meanwhile.
        match store::oauth::of_user(conn, user.id).await?.iter().find(|l| l.provider == provider) {
            // Linked a moment ago by a sign-in racing this one.
            Some(linked) if linked.subject == subject => return Ok(()),
            Some(_) => {
                return Err(ApiError::new(codes::OAUTH_IDENTITY_TAKEN)
                    .with_message("Another account of this provider is linked; unlink it first"));
            }
            None => {}
        }
        // The address shown to the holder: only one the provider verified, normalised.
        let email = match parse_email(&account.email) {
            Ok(email) if account.email_verified => email.as_str().to_owned(),
            _ => String::new(),
        };
        let linked = store::oauth::link(conn, provider, subject, user.id, &email, now).await.on_unique(
            store::oauth::USER_PROVIDER_UNIQUE,
            ApiError::new(codes::OAUTH_IDENTITY_TAKEN)
                .with_message("Another account of this provider is linked; unlink it first"),
        )?;
        if !linked {
            // Linked meanwhile by a sign-in or link racing this one: the caller looks again.
            return Err(ApiError::new(codes::CONCURRENT_UPDATE));
        }
        store::oauth::touch(conn, provider, subject, user.id, now).await?;
        let entry = AuditRow {
            actor_id: Some(user.id),
            subject_id: Some(user.id),
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            detail: format!("{}, {how}", provider.name()),
            ..AuditRow::new(AuditAction::OAuthLinked, now)
        };
        store::audit::record(conn, &entry).await?;
        Ok(())
    }

    async fn audit_oauth_failure(
        &self,
        conn: &mut sqlx::PgConnection,
        provider: Provider,
        what: &str,
        subject: Option<Uuid>,
        client: Option<IpAddr>,
    ) -> ApiResult<()> {
        let entry = AuditRow {
            subject_id: subject,
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            detail: format!("{}: {what}", provider.name()),
            ..AuditRow::new(AuditAction::OAuthFailed, self.clock.now())
        };
        store::audit::record(conn, &entry).await?;
        Ok(())
    }
}

/// What the provider sent back to the redirect URI, and the client's binding.
struct Answer<'a> {
    state: &'a str,
    code: &'a str,
    binding: &'a str,
}

impl<'a> Answer<'a> {
    fn of(state: &'a str, code: &'a str, binding: &'a str) -> ApiResult<Self> {
        let state = validate::required("state", state, MAX_STATE_LEN)?;
        let binding = validate::required("binding", binding, MAX_STATE_LEN)?;
        let code = validate::required("code", code, MAX_CODE_LEN)?;
        if !state.starts_with(oauth::STATE_PREFIX) || !binding.starts_with(oauth::BINDING_PREFIX) {
            return Err(ApiError::new(codes::OAUTH_STATE_INVALID));
        }
        // A code is printable ASCII; anything else is no provider's.
        if !code.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "code", "is not a provider's code"));
        }
        Ok(Self { state, code, binding })
    }
}

fn provider_of(name: &str) -> ApiResult<Provider> {
    let name = validate::required("provider", name, 16)?;
    Provider::from_name(name)
        .ok_or_else(|| ApiError::field(codes::UNKNOWN_ENUM_VALUE, "provider", "must be \"google\" or \"github\""))
}

/// A provider's error code, kept short and plain for the audit log.
fn short(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ')).take(40).collect()
}

async fn login_methods(conn: &mut sqlx::PgConnection, user: &UserRow) -> ApiResult<pb::LoginMethods> {
    let linked = store::oauth::of_user(conn, user.id).await?;
    Ok(pb::LoginMethods {
        has_password: !user.password_hash.is_empty(),
        identities: linked.iter().map(super::convert::to_linked_identity).collect(),
    })
}
