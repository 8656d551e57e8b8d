//! Session control: a user's own sessions (listed, ended one by one or all but this one),
//! accounts disabled and enabled by admins, a second factor reset by an admin, and the
//! list of ended sessions every service polls.

use std::collections::HashSet;

use festival_proto::identity::v1 as pb;

use crate::helpers::*;

async fn sign_in_on(c: &mut Client, email: &str, device: &str) -> pb::TokenPair {
    let request = pb::LoginRequest { email: email.into(), password: PASSWORD.into(), device_name: device.into() };
    c.login(request).await.expect("login").into_inner()
}

async fn my_sessions(c: &mut Client, token: &str) -> Vec<pb::ActiveSession> {
    c.list_my_sessions(authed(pb::ListMySessionsRequest {}, token)).await.expect("sessions").into_inner().sessions
}

fn session_of(pair: &pb::TokenPair) -> String {
    payload(&pair.access_token)["sid"].as_str().expect("sid").to_owned()
}

async fn ended_since_window(c: &mut Client) -> HashSet<String> {
    let answer = c.list_revoked_sessions(pb::ListRevokedSessionsRequest::default()).await.expect("list");
    answer.into_inner().sessions.into_iter().map(|s| s.session_id).collect()
}

#[tokio::test]
async fn a_user_sees_their_sessions_and_ends_one_or_all_others() {
    let app = spawn().await;
    let mut c = client(&app);
    let email = new_email();
    let user = register(&mut c, &email).await;
    let phone = sign_in_on(&mut c, &email, "Phone").await;
    let tablet = sign_in_on(&mut c, &email, "Tablet").await;
    let laptop = sign_in_on(&mut c, &email, "Firefox on a laptop").await;
    let (_, stranger) = signed_in(&mut c).await;

    let listed = my_sessions(&mut c, &laptop.access_token).await;
    let devices: Vec<&str> = listed.iter().map(|s| s.device_name.as_str()).collect();
    assert_eq!(devices, ["Firefox on a laptop", "Tablet", "Phone"], "most recently used first");
    let current: Vec<bool> = listed.iter().map(|s| s.current).collect();
    assert_eq!(current, [true, false, false]);
    assert!(listed.iter().all(|s| s.ip_prefix == "127.0.0.0/24" && !s.mfa && s.last_use_time.is_some()));
    // Using a session moves it up.
    let phone = c.refresh(pb::RefreshRequest { refresh_token: phone.refresh_token }).await.expect("refresh");
    let phone = phone.into_inner();
    assert_eq!(my_sessions(&mut c, &laptop.access_token).await[0].device_name, "Phone");

    // Ending another user's session, or a made-up one: not found, nothing ends.
    let theirs = pb::RevokeMySessionRequest { session_id: session_of(&stranger) };
    assert_eq!(code(c.revoke_my_session(authed(theirs, &laptop.access_token)).await), "ERR_4000");
    c.get_me(authed(pb::GetMeRequest {}, &stranger.access_token)).await.expect("the stranger's session goes on");
    let made_up = pb::RevokeMySessionRequest { session_id: uuid::Uuid::now_v7().to_string() };
    assert_eq!(code(c.revoke_my_session(authed(made_up, &laptop.access_token)).await), "ERR_4000");

    // The phone is lost: ended from the laptop.
    let lost = pb::RevokeMySessionRequest { session_id: session_of(&phone) };
    c.revoke_my_session(authed(lost.clone(), &laptop.access_token)).await.expect("revoke");
    assert_eq!(code(c.refresh(pb::RefreshRequest { refresh_token: phone.refresh_token.clone() }).await), "ERR_2003");
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &phone.access_token)).await), "ERR_2005");
    assert_eq!(code(c.revoke_my_session(authed(lost, &laptop.access_token)).await), "ERR_4000", "already ended");
    assert!(ended_since_window(&mut c).await.contains(&session_of(&phone)), "services learn of it");
    let event = app.last_event::<pb::SessionRevoked>().await;
    assert_eq!((event.session_id, event.reason), (session_of(&phone), "revoked".to_owned()));

    // Every other session ends; this one goes on.
    let others = c.revoke_other_sessions(authed(pb::RevokeOtherSessionsRequest {}, &laptop.access_token)).await;
    assert_eq!(others.expect("others").into_inner().sessions_revoked, 1, "the tablet");
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &tablet.access_token)).await), "ERR_2005");
    let left = my_sessions(&mut c, &laptop.access_token).await;
    assert_eq!(left.len(), 1);
    assert!(left[0].current);
    let ended = ended_since_window(&mut c).await;
    assert!(ended.contains(&session_of(&tablet)) && !ended.contains(&session_of(&laptop)));

    let admin = signed_in_admin(&app, &mut c).await;
    let request = pb::ListAuditEntriesRequest { page_size: 200, ..Default::default() };
    let log = c.list_audit_entries(authed(request, &admin.access_token)).await.expect("audit").into_inner().entries;
    let revoked: Vec<&str> = log
        .iter()
        .filter(|e| e.subject_id == user.id && e.action == "SESSION_REVOKED")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(revoked, ["1 other sessions".to_owned(), format!("session {}", session_of(&phone))]);
}

#[tokio::test]
async fn a_device_name_is_plain_and_short_and_a_since_in_the_future_lists_nothing() {
    let app = spawn().await;
    let mut c = client(&app);
    let email = new_email();
    register(&mut c, &email).await;
    for (name, expected) in [
        ("x".repeat(101), "ERR_1002"),
        ("tab\there".to_owned(), "ERR_1000"),
        ("Anna\u{202E}enohPi".to_owned(), "ERR_1000"),
        ("Pho\u{200B}ne".to_owned(), "ERR_1000"),
    ] {
        let request = pb::LoginRequest { email: email.clone(), password: PASSWORD.into(), device_name: name };
        assert_eq!(code(c.login(request).await), expected);
    }
    assert_eq!(count(&app, "sessions").await, 0, "nothing started");
    let pair = sign_in_on(&mut c, &email, "  Phone  ").await;
    assert_eq!(my_sessions(&mut c, &pair.access_token).await[0].device_name, "Phone");
    // The holder's export shows what a session says about them.
    let export = c.export_my_data(authed(pb::ExportMyDataRequest {}, &pair.access_token)).await.expect("export");
    let sessions = export.into_inner().sessions;
    assert_eq!(sessions.len(), 1);
    assert_eq!((sessions[0].device_name.as_str(), sessions[0].ip_prefix.as_str()), ("Phone", "127.0.0.0/24"));
    c.logout(pb::LogoutRequest { refresh_token: pair.refresh_token.clone() }).await.expect("logout");
    assert!(ended_since_window(&mut c).await.contains(&session_of(&pair)));
    let later = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() + 3600, nanos: 0 };
    let answer =
        c.list_revoked_sessions(pb::ListRevokedSessionsRequest { since: Some(later), ..Default::default() }).await;
    assert!(answer.expect("list").into_inner().sessions.is_empty());
}

#[tokio::test]
async fn an_admin_disables_an_account_which_then_cannot_sign_in_refresh_or_call_until_enabled() {
    let app = spawn().await;
    let mut c = client(&app);
    let admin = signed_in_admin(&app, &mut c).await;
    let admin_id = admin.user.clone().expect("admin").id;
    let email = new_email();
    let user = register(&mut c, &email).await;
    let session = login(&mut c, &email).await;
    let (_, other) = signed_in(&mut c).await;
    let disable = |user_id: &str| pb::DisableAccountRequest { user_id: user_id.into(), reason: "stolen laptop".into() };

    assert_eq!(code(c.disable_account(authed(disable(&user.id), &other.access_token)).await), "ERR_3001");
    assert_eq!(code(c.disable_account(authed(disable(&admin_id), &admin.access_token)).await), "ERR_1000");
    let no_reason = pb::DisableAccountRequest { user_id: user.id.clone(), reason: String::new() };
    assert_eq!(code(c.disable_account(authed(no_reason, &admin.access_token)).await), "ERR_1001");
    let nobody = disable(&uuid::Uuid::now_v7().to_string());
    assert_eq!(code(c.disable_account(authed(nobody, &admin.access_token)).await), "ERR_4000");
    c.get_me(authed(pb::GetMeRequest {}, &session.access_token)).await.expect("not disabled yet");

    let status = c.disable_account(authed(disable(&user.id), &admin.access_token)).await.expect("disable");
    let status = status.into_inner();
    assert!(status.disabled && status.disable_time.is_some());
    assert_eq!(status.sessions_revoked, 1);
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &session.access_token)).await), "ERR_2005");
    // Its sessions ended with it: a refresh token is just dead (no hint it is disabled).
    assert_eq!(code(c.refresh(pb::RefreshRequest { refresh_token: session.refresh_token.clone() }).await), "ERR_2003");
    // Only the right password learns the account is disabled.
    let wrong =
        pb::LoginRequest { email: email.clone(), password: "not the password at all".into(), ..Default::default() };
    assert_eq!(code(c.login(wrong).await), "ERR_2001");
    let right = pb::LoginRequest { email: email.clone(), password: PASSWORD.into(), ..Default::default() };
    assert_eq!(code(c.login(right.clone()).await), "ERR_2006");
    assert!(ended_since_window(&mut c).await.contains(&session_of(&session)));
    let event = app.last_event::<pb::SessionRevoked>().await;
    assert_eq!(event.reason, "account_disabled");
    c.get_me(authed(pb::GetMeRequest {}, &other.access_token)).await.expect("others are untouched");

    let enabled = c.enable_account(authed(pb::EnableAccountRequest { user_id: user.id.clone() }, &admin.access_token));
    assert!(!enabled.await.expect("enable").into_inner().disabled);
    let back = c.login(right).await.expect("signs in again").into_inner();
    c.get_me(authed(pb::GetMeRequest {}, &back.access_token)).await.expect("and calls");
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &session.access_token)).await), "ERR_2005", "old one ended");

    let request = pb::ListAuditEntriesRequest { page_size: 200, ..Default::default() };
    let log = c.list_audit_entries(authed(request, &admin.access_token)).await.expect("audit").into_inner().entries;
    let mine: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e.subject_id == user.id && e.actor_id == admin_id)
        .map(|e| (e.action.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(mine, [("ACCOUNT_ENABLED", ""), ("ACCOUNT_DISABLED", "stolen laptop")]);
    let refused =
        log.iter().find(|e| e.subject_id == user.id && e.action == "SIGN_IN_FAILED" && e.detail == "account disabled");
    assert!(refused.is_some(), "the refused sign-in is recorded");
}

#[tokio::test]
async fn a_mass_sign_out_is_listed_in_pages_and_a_verifier_reads_them_all() {
    let app = spawn().await;
    let mut c = client(&app);
    let (user, _) = signed_in(&mut c).await;
    // 10,050 sessions ended in one statement (one stamp): more than one answer holds.
    sqlx::query(
        "insert into sessions (id, user_id, created_at, revoked_at, revoked_reason)
         select gen_random_uuid(), $1, now(), clock_timestamp(), 'logout_all' from generate_series(1, 10050)",
    )
    .bind(uuid::Uuid::parse_str(&user.id).expect("id"))
    .execute(&app.pool)
    .await
    .expect("sessions");
    let first = c.list_revoked_sessions(pb::ListRevokedSessionsRequest::default()).await.expect("first").into_inner();
    assert_eq!(first.sessions.len(), 10_000);
    assert!(first.more);
    let last = first.sessions.last().expect("last").clone();
    let next = pb::ListRevokedSessionsRequest { since: last.revoke_time, after_session_id: last.session_id };
    let second = c.list_revoked_sessions(next).await.expect("second").into_inner();
    assert!(!second.more);
    let all: HashSet<String> = first.sessions.iter().chain(&second.sessions).map(|s| s.session_id.clone()).collect();
    assert_eq!(all.len(), 10_050, "each once, none lost at the page's edge");

    // The platform's verifier follows the pages.
    let verifier = festival_platform::auth::Verifier::new(
        &app.config.common.auth,
        festival_platform::auth::IdentityKeySource::new(&format!("http://{}", app.addr)).expect("source"),
    );
    assert!(verifier.refresh_revoked_sessions().await);
    for s in [&first.sessions[0], &second.sessions[second.sessions.len() - 1]] {
        assert!(verifier.session_ended(s.session_id.parse().expect("uuid")), "{}", s.session_id);
    }
}
