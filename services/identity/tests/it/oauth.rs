//! Signing in with Google and GitHub against the test kit's fake provider (a real HTTP
//! server; identity's real client talks to it by base URL): new accounts, accounts
//! linked by a verified address, a state that is not the client's, a code presented
//! with another flow's PKCE verifier, a forged ID token, linking and unlinking, and the
//! second factor still asked for.

use std::time::Duration;

use festival_identity::config::ProviderConfig;
use festival_platform::config::Secret;
use festival_proto::identity::v1 as pb;
use festival_testkit::fake_oauth::{self, Account, FakeOAuth};
use tonic::Status;

use crate::helpers::*;

const REDIRECT: &str = "https://fest.example/oauth/callback";

async fn spawn_with_providers() -> (App, Client, FakeOAuth) {
    let fake = FakeOAuth::start(fake_oauth::Client {
        client_id: "festival-app".into(),
        client_secret: "fake-client-secret".into(),
        redirect_uri: REDIRECT.into(),
    })
    .await;
    let (base, issuer) = (fake.base_url(), fake.issuer());
    let app = App::spawn_on_manual_clock(move |c| {
        let provider = |dialect: &str, scopes: &str| ProviderConfig {
            client_id: "festival-app".into(),
            client_secret: Secret::new("fake-client-secret"),
            redirect_uri: REDIRECT.into(),
            authorize_url: format!("{base}/{dialect}/authorize"),
            token_url: format!("{base}/{dialect}/token"),
            issuer: issuer.clone(),
            jwks_url: format!("{base}/google/jwks"),
            user_url: format!("{base}/github/user"),
            emails_url: format!("{base}/github/user/emails"),
            scopes: scopes.into(),
        };
        c.oauth.google = provider("google", "openid email profile");
        c.oauth.github = provider("github", "read:user user:email");
    })
    .await;
    let c = client(&app);
    (app, c, fake)
}

/// A provider account with a new address (GitHub's ids are numbers: digits for both).
fn account(fake: &FakeOAuth, verified: bool) -> Account {
    let subject = format!("{}", uuid::Uuid::new_v4().as_u128() % 10_000_000_000);
    let account = Account { subject, email: new_email(), email_verified: verified, name: "Ana Lima".into() };
    fake.add_account(account.clone());
    account
}

async fn start(c: &mut Client, provider: &str) -> pb::OAuthAuthorization {
    let request = pb::StartOAuthLoginRequest { provider: provider.into(), device_name: "Firefox".into() };
    c.start_o_auth_login(request).await.expect("start").into_inner()
}

fn complete(provider: &str, flow: &pb::OAuthAuthorization, code: &str) -> pb::CompleteOAuthLoginRequest {
    pb::CompleteOAuthLoginRequest {
        provider: provider.into(),
        state: flow.state.clone(),
        code: code.into(),
        binding: flow.binding.clone(),
    }
}

/// Start, consent as `email` at the provider, complete: what identity answers.
async fn sign_in(c: &mut Client, fake: &FakeOAuth, provider: &str, email: &str) -> Result<pb::TokenPair, Status> {
    let flow = start(c, provider).await;
    let back = fake.consent(&flow.authorization_url, email).await.expect("consent");
    assert_eq!(back.state, flow.state, "the provider sends the state back");
    c.complete_o_auth_login(complete(provider, &flow, &back.code)).await.map(tonic::Response::into_inner)
}

/// Marks the account's address verified, as following a mailed link does (the mail
/// round trip is tested in `recovery`).
async fn verify_address(app: &App, user: &pb::User) {
    let mut conn = app.pool.acquire().await.expect("conn");
    let id = user.id.parse().expect("uuid");
    festival_identity::store::users::mark_email_verified(&mut conn, id, &user.email, app.clock.now())
        .await
        .expect("verified");
}

async fn methods(c: &mut Client, token: &str) -> pb::LoginMethods {
    c.list_login_methods(authed(pb::ListLoginMethodsRequest {}, token)).await.expect("methods").into_inner()
}

/// The linked providers, sorted.
fn providers_of(methods: &pb::LoginMethods) -> Vec<&str> {
    let mut providers: Vec<&str> = methods.identities.iter().map(|i| i.provider.as_str()).collect();
    providers.sort_unstable();
    providers
}

/// The audit log's (action, detail) entries, oldest first.
async fn audit(app: &App) -> Vec<(String, String)> {
    sqlx::query_as("select action, detail from security_audit order by at, id")
        .fetch_all(&app.pool)
        .await
        .expect("audit")
}

async fn audited(app: &App, action: &str, detail: &str) -> bool {
    audit(app).await.iter().any(|(a, d)| a == action && d == detail)
}

#[tokio::test]
async fn a_google_account_makes_an_account_then_signs_into_it_again() {
    let (app, mut c, fake) = spawn_with_providers().await;
    let ana = account(&fake, true);

    let flow = start(&mut c, "google").await;
    let url = &flow.authorization_url;
    assert!(url.starts_with(&format!("{}/google/authorize?response_type=code", fake.base_url())), "{url}");
    for part in ["client_id=festival-app", "code_challenge_method=S256", "scope=openid+email+profile", "&nonce="] {
        assert!(url.contains(part), "{part} in {url}");
    }
    assert!(url.contains(&format!("state={}", flow.state)) && flow.binding.starts_with("ob_"), "{flow:?}");
    assert!(!url.contains(&flow.binding), "the binding never leaves the client");

    let back = fake.consent(url, &ana.email).await.expect("consent");
    let first = c.complete_o_auth_login(complete("google", &flow, &back.code)).await.expect("complete").into_inner();
    let user = first.user.clone().expect("user");
    assert_eq!((user.email.as_str(), user.display_name.as_str()), (ana.email.as_str(), "Ana Lima"));
    assert!(user.email_verified, "the provider verified the address");
    assert_eq!(me(&mut c, &first.access_token).await.id, user.id);
    let linked = methods(&mut c, &first.access_token).await;
    assert!(!linked.has_password);
    assert_eq!(providers_of(&linked), ["google"]);
    assert_eq!(linked.identities[0].email, ana.email);

    let again = sign_in(&mut c, &fake, "google", &ana.email).await.expect("again");
    assert_eq!(again.user.expect("user").id, user.id, "the same account");
    assert_eq!(count(&app, "users").await, 1);
    // No password was ever set: signing in with one fails like a wrong one.
    let password = pb::LoginRequest { email: ana.email.clone(), password: PASSWORD.into(), ..Default::default() };
    assert_eq!(code(c.login(password).await), "ERR_2001");
    assert!(audited(&app, "ACCOUNT_CREATED", "google").await);
    assert!(audited(&app, "OAUTH_LINKED", "google, new account").await);
    let sign_ins = audit(&app).await.into_iter().filter(|(a, d)| a == "SIGN_IN" && d.starts_with("google, session"));
    assert_eq!(sign_ins.count(), 2);
    assert_eq!(fake.jwks_fetches(), 1, "the provider's keys are fetched once and kept");
}

#[tokio::test]
async fn a_github_account_signs_into_the_account_with_its_verified_address_only() {
    let (app, mut c, fake) = spawn_with_providers().await;
    // An account whose address was verified here: linked by that address.
    let owner = account(&fake, true);
    let registered = register(&mut c, &owner.email).await;
    verify_address(&app, &registered).await;
    let pair = sign_in(&mut c, &fake, "github", &owner.email).await.expect("linked by address");
    assert_eq!(pair.user.expect("user").id, registered.id);
    let linked = methods(&mut c, &pair.access_token).await;
    assert!(linked.has_password);
    assert_eq!(providers_of(&linked), ["github"]);
    assert!(audited(&app, "OAUTH_LINKED", "github, by verified address").await);

    // An account that never verified its address is not handed to the provider's holder.
    let squatted = account(&fake, true);
    let squatter = register(&mut c, &squatted.email).await;
    assert_eq!(code(sign_in(&mut c, &fake, "github", &squatted.email).await), "ERR_2023");
    let failed: (String, Option<uuid::Uuid>) =
        sqlx::query_as("select detail, subject_id from security_audit where action = 'OAUTH_FAILED'")
            .fetch_one(&app.pool)
            .await
            .expect("failure audited");
    assert_eq!(failed, ("github: address not verified here".into(), Some(squatter.id.parse().expect("uuid"))));

    // An address the provider has not verified proves nothing: no account is made.
    let unverified = account(&fake, false);
    assert_eq!(code(sign_in(&mut c, &fake, "github", &unverified.email).await), "ERR_2022");
    assert_eq!(count(&app, "users").await, 2);
    assert!(audited(&app, "OAUTH_FAILED", "github: address not verified by the provider").await);
}

#[tokio::test]
async fn a_state_that_is_not_this_clients_is_refused_and_spent() {
    let (app, mut c, fake) = spawn_with_providers().await;
    let ana = account(&fake, true);
    let flow = start(&mut c, "google").await;
    let back = fake.consent(&flow.authorization_url, &ana.email).await.expect("consent");

    // A state never issued.
    let forged = pb::CompleteOAuthLoginRequest {
        state: format!("os_{}", "A".repeat(43)),
        ..complete("google", &flow, &back.code)
    };
    assert_eq!(code(c.complete_o_auth_login(forged).await), "ERR_2018");
    // Login CSRF: the attacker's code and state, completed with the victim's binding.
    let victims = start(&mut c, "google").await;
    let csrf =
        pb::CompleteOAuthLoginRequest { binding: victims.binding.clone(), ..complete("google", &flow, &back.code) };
    assert_eq!(code(c.complete_o_auth_login(csrf).await), "ERR_2018");
    // Refusing it spent nothing: whoever saw a state cannot cancel its holder's sign-in.
    let mine = c.complete_o_auth_login(complete("google", &flow, &back.code)).await.expect("the holder completes");
    assert_eq!(mine.into_inner().user.expect("user").email, ana.email);
    // Spent now: a replay is refused.
    assert_eq!(code(c.complete_o_auth_login(complete("google", &flow, &back.code)).await), "ERR_2018");
    // Another provider's state.
    let other = start(&mut c, "google").await;
    let back = fake.consent(&other.authorization_url, &ana.email).await.expect("consent");
    assert_eq!(code(c.complete_o_auth_login(complete("github", &other, &back.code)).await), "ERR_2018");
    // A flow past its ten minutes.
    let late = start(&mut c, "google").await;
    let back = fake.consent(&late.authorization_url, &ana.email).await.expect("consent");
    app.clock.advance(Duration::from_secs(601));
    assert_eq!(code(c.complete_o_auth_login(complete("google", &late, &back.code)).await), "ERR_2018");

    assert_eq!(fake.token_requests(), 1, "only the holder's code was exchanged");
    assert_eq!(count(&app, "users").await, 1);
    let refusals = audit(&app).await.into_iter().filter(|(a, d)| a == "OAUTH_FAILED" && d.ends_with("state invalid"));
    assert_eq!(refusals.count(), 5);
}

#[tokio::test]
async fn a_code_presented_with_another_flows_pkce_verifier_is_refused() {
    let (app, mut c, fake) = spawn_with_providers().await;
    for provider in ["google", "github"] {
        let ana = account(&fake, true);
        // The victim's code, intercepted on its way back, completed with the thief's own
        // flow: identity sends the thief's verifier, which does not match the victim's
        // challenge.
        let victims = start(&mut c, provider).await;
        let stolen = fake.consent(&victims.authorization_url, &ana.email).await.expect("consent");
        let thiefs = start(&mut c, provider).await;
        assert_eq!(code(c.complete_o_auth_login(complete(provider, &thiefs, &stolen.code)).await), "ERR_2019");
        assert!(audited(&app, "OAUTH_FAILED", &format!("{provider}: code refused: invalid_grant")).await);
        // The provider spent the code on that attempt: the victim starts again.
        assert_eq!(code(c.complete_o_auth_login(complete(provider, &victims, &stolen.code)).await), "ERR_2019");
        sign_in(&mut c, &fake, provider, &ana.email).await.expect("a fresh flow signs in");
    }
    assert_eq!(count(&app, "users").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_sign_ins_make_one_account() {
    const ROUNDS: usize = 4;
    const AT_ONCE: usize = 4;
    let (app, mut c, fake) = spawn_with_providers().await;
    let mut raced_rounds = 0;
    for round in 0..ROUNDS {
        // One new provider account, its holder signing in from several tabs at once
        // (GitHub: no ID token to sign, so the fake answers the four alike and fast).
        let ana = account(&fake, true);
        let mut answers = Vec::new();
        for _ in 0..AT_ONCE {
            let flow = start(&mut c, "github").await;
            let back = fake.consent(&flow.authorization_url, &ana.email).await.expect("consent");
            answers.push(complete("github", &flow, &back.code));
        }
        let attempts = answers
            .into_iter()
            .map(|request| {
                let mut c = c.clone();
                async move { c.complete_o_auth_login(request).await }
            })
            .collect();
        let results = festival_testkit::all_at_once(attempts).await;
        assert_eq!(results.len(), AT_ONCE);
        let users: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|p| p.get_ref().user.clone().expect("user").id)
            .collect();
        let accounts: i64 = sqlx::query_scalar("select count(*) from users where email = $1")
            .bind(&ana.email)
            .fetch_one(&app.pool)
            .await
            .expect("count");
        assert_eq!(accounts, 1, "round {round}: one account, whatever the race");
        if users.len() < AT_ONCE {
            let refused: Vec<String> = results.into_iter().filter(|r| r.is_err()).map(code).collect();
            assert_eq!(refused, vec!["ERR_1007".to_owned(); AT_ONCE - users.len()], "round {round}");
            raced_rounds += 1;
            continue;
        }
        assert!(users.iter().all(|u| *u == users[0]), "round {round}: the same account {users:?}");
    }
    if cfg!(feature = "race-hooks") {
        assert!(raced_rounds > 0, "negative control: without the second look a first sign-in must collide");
    } else {
        assert_eq!(raced_rounds, 0, "a first sign-in was refused by a concurrent one");
    }
}

#[tokio::test]
async fn an_id_token_with_a_bad_signature_is_refused() {
    let (app, mut c, fake) = spawn_with_providers().await;
    let ana = account(&fake, true);
    fake.sign_with_rogue_key(true);
    assert_eq!(code(sign_in(&mut c, &fake, "google", &ana.email).await), "ERR_2020");
    assert_eq!(count(&app, "users").await, 0);
    assert!(audited(&app, "OAUTH_FAILED", "google: ID token: signature").await);
    fake.sign_with_rogue_key(false);
    let pair = sign_in(&mut c, &fake, "google", &ana.email).await.expect("a real token");
    assert_eq!(pair.user.expect("user").email, ana.email);
}

#[tokio::test]
async fn linking_and_unlinking_never_remove_the_last_way_to_sign_in() {
    let (app, mut c, fake) = spawn_with_providers().await;
    let ana = account(&fake, true);
    let pair = sign_in(&mut c, &fake, "google", &ana.email).await.expect("sign in");
    let token = pair.access_token.clone();
    // No password to ask again: the session is minutes old.
    let unlink = |provider: &str| {
        authed(pb::UnlinkOAuthIdentityRequest { provider: provider.into(), password: String::new() }, &token)
    };
    assert_eq!(code(c.unlink_o_auth_identity(unlink("google")).await), "ERR_2024", "its only way in");

    // Link a GitHub account (another address is fine: the holder proves both).
    let octo = account(&fake, true);
    let link = pb::StartOAuthLinkRequest { provider: "github".into(), password: String::new() };
    let flow = c.start_o_auth_link(authed(link.clone(), &token)).await.expect("start link").into_inner();
    let back = fake.consent(&flow.authorization_url, &octo.email).await.expect("consent");
    // The link flow is not a sign-in flow, nor anyone else's.
    let (_, other) = signed_in(&mut c).await;
    let done = pb::CompleteOAuthLinkRequest {
        provider: "github".into(),
        state: flow.state.clone(),
        code: back.code.clone(),
        binding: flow.binding.clone(),
    };
    assert_eq!(code(c.complete_o_auth_link(authed(done.clone(), &other.access_token)).await), "ERR_2018");
    let flow = c.start_o_auth_link(authed(link.clone(), &token)).await.expect("start link").into_inner();
    let back = fake.consent(&flow.authorization_url, &octo.email).await.expect("consent");
    let done = pb::CompleteOAuthLinkRequest { state: flow.state, code: back.code, binding: flow.binding, ..done };
    let linked = c.complete_o_auth_link(authed(done, &token)).await.expect("linked").into_inner();
    assert_eq!(providers_of(&linked), ["github", "google"]);
    assert!(audited(&app, "OAUTH_LINKED", "github, linked by its holder").await);
    // Signing in with GitHub now reaches the same account.
    let via_github = sign_in(&mut c, &fake, "github", &octo.email).await.expect("github");
    assert_eq!(via_github.user.expect("user").id, pair.user.clone().expect("user").id);

    // Someone who registered an address here without verifying it links nothing: a
    // provider account of theirs would outlast the address owner's reset.
    let others_link = pb::StartOAuthLinkRequest { provider: "github".into(), password: PASSWORD.into() };
    let unverified = c.start_o_auth_link(authed(others_link.clone(), &other.access_token)).await;
    assert_eq!(code(unverified), "ERR_2028");
    verify_address(&app, &other.user.clone().expect("user")).await;
    // A provider account linked to someone else stays theirs.
    let flow = c.start_o_auth_link(authed(others_link, &other.access_token)).await.expect("start").into_inner();
    let back = fake.consent(&flow.authorization_url, &octo.email).await.expect("consent");
    let taken = pb::CompleteOAuthLinkRequest {
        provider: "github".into(),
        state: flow.state,
        code: back.code,
        binding: flow.binding,
    };
    assert_eq!(code(c.complete_o_auth_link(authed(taken, &other.access_token)).await), "ERR_2021");
    let wrong = pb::StartOAuthLinkRequest { provider: "github".into(), password: "not the password".into() };
    assert_eq!(code(c.start_o_auth_link(authed(wrong, &other.access_token)).await), "ERR_2001");

    let left = c.unlink_o_auth_identity(unlink("google")).await.expect("unlink").into_inner();
    assert_eq!(providers_of(&left), ["github"]);
    assert_eq!(code(c.unlink_o_auth_identity(unlink("google")).await), "ERR_4000", "not linked any more");
    assert_eq!(code(c.unlink_o_auth_identity(unlink("github")).await), "ERR_2024");
    // What signed in elsewhere is signed out (the GitHub session here).
    assert!(audited(&app, "OAUTH_UNLINKED", "google, 1 other sessions ended").await);
    let refresh = pb::RefreshRequest { refresh_token: via_github.refresh_token.clone() };
    assert_eq!(code(c.refresh(refresh).await), "ERR_2003");
    // Unlinked once, the Google account is not linked again by its (verified) address:
    // the holder may have unlinked it because it was taken over.
    assert_eq!(code(sign_in(&mut c, &fake, "google", &ana.email).await), "ERR_2023");
    // The holder's data export shows it, unlinked, beside the live link.
    let export = c.export_my_data(authed(pb::ExportMyDataRequest {}, &token)).await.expect("export").into_inner();
    let mut kept: Vec<(&str, bool)> =
        export.linked_identities.iter().map(|l| (l.provider.as_str(), l.unlink_time.is_some())).collect();
    kept.sort_unstable();
    assert_eq!(kept, [("github", false), ("google", true)]);

    // An account without a password proves itself by a recent sign-in instead.
    app.clock.advance(Duration::from_secs(11 * 60));
    assert_eq!(code(c.start_o_auth_link(authed(link, &token)).await), "ERR_2027");
}

#[tokio::test]
async fn the_second_factor_still_applies_and_a_disabled_account_is_refused() {
    let (app, mut c, fake) = spawn_with_providers().await;
    let ana = account(&fake, true);
    let pair = sign_in(&mut c, &fake, "google", &ana.email).await.expect("sign in");
    // No password to ask again: the session is minutes old.
    let enrolment = c
        .enrol_mfa(authed(pb::EnrolMfaRequest { password: String::new() }, &pair.access_token))
        .await
        .expect("enrol")
        .into_inner();
    use festival_identity::domain::mfa;
    let secret = mfa::from_base32(&enrolment.secret).expect("secret");
    let totp = || mfa::format_code(mfa::code_at_step(&secret, mfa::step_at(app.clock.now())));
    c.confirm_mfa(authed(pb::ConfirmMfaRequest { code: totp() }, &pair.access_token)).await.expect("confirm");

    let challenged = sign_in(&mut c, &fake, "google", &ana.email).await.expect("challenged");
    assert!(challenged.access_token.is_empty() && challenged.mfa_challenge.starts_with("mfa_"), "{challenged:?}");
    app.clock.advance(Duration::from_secs(30));
    let verify = pb::VerifyMfaRequest { mfa_challenge: challenged.mfa_challenge, code: totp() };
    let tokens = c.verify_mfa(verify).await.expect("second factor").into_inner();
    assert!(payload(&tokens.access_token)["amr"].as_array().expect("amr").iter().any(|v| v == "otp"));
    assert!(audited(&app, "MFA_CHALLENGED", "google").await);

    // An account with a second factor is not linked by its address: a sign-in that never
    // answers the challenge must leave nothing behind.
    let octo = account(&fake, true);
    register(&mut c, &octo.email).await;
    let password_pair = login(&mut c, &octo.email).await;
    verify_address(&app, &password_pair.user.clone().expect("user")).await;
    let enrol = pb::EnrolMfaRequest { password: PASSWORD.into() };
    let octo_enrolment = c.enrol_mfa(authed(enrol, &password_pair.access_token)).await.expect("enrol").into_inner();
    let octo_secret = mfa::from_base32(&octo_enrolment.secret).expect("secret");
    let octo_code = mfa::format_code(mfa::code_at_step(&octo_secret, mfa::step_at(app.clock.now())));
    let confirm = pb::ConfirmMfaRequest { code: octo_code };
    c.confirm_mfa(authed(confirm, &password_pair.access_token)).await.expect("confirm");
    assert_eq!(code(sign_in(&mut c, &fake, "github", &octo.email).await), "ERR_2023");
    let links: i64 = sqlx::query_scalar("select count(*) from oauth_identities where provider = 'GITHUB'")
        .fetch_one(&app.pool)
        .await
        .expect("links");
    assert_eq!(links, 0);

    let admin = signed_in_admin(&app, &mut c).await;
    let user_id = tokens.user.expect("user").id;
    let disable = pb::DisableAccountRequest { user_id, reason: "stolen laptop".into() };
    c.disable_account(authed(disable, &admin.access_token)).await.expect("disable");
    assert_eq!(code(sign_in(&mut c, &fake, "google", &ana.email).await), "ERR_2006");
    assert!(audited(&app, "SIGN_IN_FAILED", "google: account disabled").await);
}

#[tokio::test]
async fn deleting_the_account_forgets_its_links() {
    let (app, mut c, fake) = spawn_with_providers().await;
    let ana = account(&fake, true);
    let first = sign_in(&mut c, &fake, "google", &ana.email).await.expect("sign in");
    let delete = pb::DeleteMeRequest { password: String::new() };
    c.delete_me(authed(delete, &first.access_token)).await.expect("a fresh session deletes without a password");
    let links: i64 = sqlx::query_scalar("select count(*) from oauth_identities").fetch_one(&app.pool).await.expect("n");
    assert_eq!(links, 0);
    let again = sign_in(&mut c, &fake, "google", &ana.email).await.expect("a new account");
    assert_ne!(again.user.expect("user").id, first.user.expect("user").id);
}

#[tokio::test]
async fn hostile_input_and_providers_that_are_off() {
    let (_app, mut c, fake) = spawn_with_providers().await;
    let flow = start(&mut c, "google").await;
    let request = |state: &str, code: &str, binding: &str| pb::CompleteOAuthLoginRequest {
        provider: "google".into(),
        state: state.into(),
        code: code.into(),
        binding: binding.into(),
    };
    let cases = [
        (request("", "c", &flow.binding), "ERR_1001"),
        (request(&flow.state, "", &flow.binding), "ERR_1001"),
        (request(&flow.state, "c", ""), "ERR_1001"),
        (request(&"s".repeat(65), "c", &flow.binding), "ERR_1002"),
        (request(&flow.state, &"c".repeat(2049), &flow.binding), "ERR_1002"),
        (request("xx_not_ours", "c", &flow.binding), "ERR_2018"),
        (request(&flow.state, "a code\u{0}", &flow.binding), "ERR_1000"),
    ];
    for (request, expected) in cases {
        assert_eq!(code(c.complete_o_auth_login(request.clone()).await), expected, "{request:?}");
    }
    let unknown = pb::StartOAuthLoginRequest { provider: "facebook".into(), ..Default::default() };
    assert_eq!(code(c.start_o_auth_login(unknown).await), "ERR_1003");
    let long_name = pb::StartOAuthLoginRequest { provider: "google".into(), device_name: "d".repeat(101) };
    assert_eq!(code(c.start_o_auth_login(long_name).await), "ERR_1002");
    assert_eq!(fake.token_requests(), 0);

    // A deployment without providers says so.
    let app = spawn().await;
    let mut c = client(&app);
    let off = pb::StartOAuthLoginRequest { provider: "github".into(), ..Default::default() };
    assert_eq!(code(c.start_o_auth_login(off).await), "ERR_2025");
}
