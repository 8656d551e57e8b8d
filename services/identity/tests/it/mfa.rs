//! The second factor (TOTP): enrolment, sign-in with a code or a recovery code, replays,
//! challenges that run out, switching it off, and festivals that require it of staff.

use std::collections::HashSet;
use std::time::Duration;

use festival_identity::domain::mfa;
use festival_proto::identity::v1 as pb;

use crate::helpers::*;

/// The code the authenticator app shows at the service's (controlled) time.
fn totp(app: &App, secret: &[u8]) -> String {
    mfa::format_code(mfa::code_at_step(secret, mfa::step_at(app.clock.now())))
}

/// Enrols and confirms a second factor for the signed-in holder of `token`: its secret
/// and recovery codes.
async fn switch_on(app: &App, c: &mut Client, token: &str) -> (Vec<u8>, Vec<String>) {
    let enrol = pb::EnrolMfaRequest { password: PASSWORD.into() };
    let enrolment = c.enrol_mfa(authed(enrol, token)).await.expect("enrol").into_inner();
    let secret = mfa::from_base32(&enrolment.secret).expect("base32");
    let confirm = pb::ConfirmMfaRequest { code: totp(app, &secret) };
    let codes = c.confirm_mfa(authed(confirm, token)).await.expect("confirm").into_inner().recovery_codes;
    (secret, codes)
}

/// An app on a manual clock whose sign-in throttle stays out of the way (`free`
/// attempts), and a new account with a second factor: (app, client, email, secret).
async fn unthrottled_account_with_mfa(free: u32) -> (App, Client, String, Vec<u8>) {
    let app = App::spawn_on_manual_clock(|c| {
        c.login_throttle.account.free_attempts = free;
        c.login_throttle.known_address.free_attempts = free;
    })
    .await;
    let mut c = client(&app);
    let email = new_email();
    register(&mut c, &email).await;
    let token = login(&mut c, &email).await.access_token;
    let (secret, _) = switch_on(&app, &mut c, &token).await;
    (app, c, email, secret)
}

async fn challenge(c: &mut Client, email: &str) -> String {
    let pair = login(c, email).await;
    assert!(pair.access_token.is_empty() && pair.refresh_token.is_empty(), "no tokens before the second factor");
    assert!(pair.mfa_challenge.starts_with("mfa_"), "{pair:?}");
    pair.mfa_challenge
}

fn verify(challenge: &str, code: &str) -> pb::VerifyMfaRequest {
    pb::VerifyMfaRequest { mfa_challenge: challenge.into(), code: code.into() }
}

/// The `amr` claim of an access token (its payload read without checking: identity
/// signed it, the test only looks).
fn amr(access_token: &str) -> Vec<String> {
    payload(access_token)["amr"].as_array().expect("amr").iter().map(|v| v.as_str().expect("str").to_owned()).collect()
}

async fn audit_of(c: &mut Client, admin: &str, subject: &str) -> Vec<(String, String)> {
    let request = pb::ListAuditEntriesRequest { page_size: 200, ..Default::default() };
    let entries = c.list_audit_entries(authed(request, admin)).await.expect("audit").into_inner().entries;
    entries.into_iter().filter(|e| e.subject_id == subject).map(|e| (e.action, e.detail)).collect()
}

#[tokio::test]
async fn enrol_sign_in_with_a_code_then_a_recovery_code_once_then_switch_off() {
    let app = App::spawn_on_manual_clock(|_| {}).await;
    let mut c = client(&app);
    // Minted before the clock moves (other services' verifiers use the real clock).
    let admin = signed_in_admin(&app, &mut c).await;
    let email = new_email();
    let user = register(&mut c, &email).await;
    let first = login(&mut c, &email).await;

    // A stolen access token alone cannot put the thief's factor on the account.
    let guess = pb::EnrolMfaRequest { password: "not the password at all".into() };
    assert_eq!(code(c.enrol_mfa(authed(guess, &first.access_token)).await), "ERR_2001");
    let enrol = pb::EnrolMfaRequest { password: PASSWORD.into() };
    let enrolment = c.enrol_mfa(authed(enrol.clone(), &first.access_token)).await.expect("enrol").into_inner();
    assert!(enrolment.otpauth_uri.starts_with("otpauth://totp/Festival:fan-"), "{}", enrolment.otpauth_uri);
    assert!(enrolment.otpauth_uri.contains(&format!("secret={}", enrolment.secret)));
    assert!(enrolment.qr_svg.contains("<svg") && enrolment.qr_svg.contains("<path"), "a QR code");
    let secret = mfa::from_base32(&enrolment.secret).expect("base32");
    assert_eq!(secret.len(), mfa::SECRET_LEN);
    // Not on until confirmed: signing in is unchanged.
    let elsewhere = login(&mut c, &email).await;
    assert!(!elsewhere.access_token.is_empty());
    let wrong = pb::ConfirmMfaRequest { code: "000000".into() };
    let wrong = if totp(&app, &secret) == "000000" { pb::ConfirmMfaRequest { code: "111111".into() } } else { wrong };
    assert_eq!(code(c.confirm_mfa(authed(wrong, &first.access_token)).await), "ERR_2013");
    let confirm = pb::ConfirmMfaRequest { code: totp(&app, &secret) };
    let recovery = c.confirm_mfa(authed(confirm, &first.access_token)).await.expect("confirm").into_inner();
    assert_eq!(recovery.recovery_codes.len(), 10);
    assert_eq!(recovery.recovery_codes.iter().collect::<HashSet<_>>().len(), 10, "distinct");
    assert_eq!(code(c.enrol_mfa(authed(enrol, &first.access_token)).await), "ERR_2015");
    // Every other session (signed in with the password alone) ended; this one goes on.
    let refresh = pb::RefreshRequest { refresh_token: elsewhere.refresh_token.clone() };
    assert_eq!(code(c.refresh(refresh).await), "ERR_2003");
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &elsewhere.access_token)).await), "ERR_2005");
    c.get_me(authed(pb::GetMeRequest {}, &first.access_token)).await.expect("the confirming session goes on");

    // Sign-in now stops at a challenge. The code just used to confirm is spent.
    let pending = challenge(&mut c, &email).await;
    assert_eq!(code(c.verify_mfa(verify(&pending, &totp(&app, &secret))).await), "ERR_2013", "replayed code");
    app.clock.advance(Duration::from_secs(30));
    let signed_in = c.verify_mfa(verify(&pending, &totp(&app, &secret))).await.expect("verify").into_inner();
    assert_eq!(amr(&signed_in.access_token), ["pwd", "otp", "mfa"]);
    assert_eq!(signed_in.user.expect("user").id, user.id);
    let me = c.get_me(authed(pb::GetMeRequest {}, &signed_in.access_token)).await.expect("me").into_inner();
    assert_eq!(me.id, user.id);
    // A refresh keeps the session's second factor.
    let refreshed = c
        .refresh(pb::RefreshRequest { refresh_token: signed_in.refresh_token.clone() })
        .await
        .expect("refresh")
        .into_inner();
    assert_eq!(amr(&refreshed.access_token), ["pwd", "otp", "mfa"]);
    assert_eq!(code(c.verify_mfa(verify(&pending, &totp(&app, &secret))).await), "ERR_2014", "challenge spent");

    // A recovery code works once, typed any which way.
    let next = challenge(&mut c, &email).await;
    let sloppy = recovery.recovery_codes[3].to_lowercase().replace('-', " ");
    let by_recovery = c.verify_mfa(verify(&next, &sloppy)).await.expect("recovery code").into_inner();
    assert_eq!(amr(&by_recovery.access_token), ["pwd", "otp", "mfa"]);
    let again = challenge(&mut c, &email).await;
    assert_eq!(code(c.verify_mfa(verify(&again, &recovery.recovery_codes[3])).await), "ERR_2013");

    // Switching it off takes a current code; then sign-in is one step again.
    app.clock.advance(Duration::from_secs(30));
    let bad = pb::DisableMfaRequest { code: recovery.recovery_codes[3].clone() };
    assert_eq!(code(c.disable_mfa(authed(bad, &signed_in.access_token)).await), "ERR_2013");
    let off = pb::DisableMfaRequest { code: totp(&app, &secret) };
    c.disable_mfa(authed(off, &signed_in.access_token)).await.expect("disable");
    let off_again = pb::DisableMfaRequest { code: totp(&app, &secret) };
    assert_eq!(code(c.disable_mfa(authed(off_again, &signed_in.access_token)).await), "ERR_2016");
    let plain = login(&mut c, &email).await;
    assert!(!plain.access_token.is_empty() && plain.mfa_challenge.is_empty());
    assert_eq!(amr(&plain.access_token), ["pwd"]);
    assert_eq!(code(c.verify_mfa(verify(&again, &totp(&app, &secret))).await), "ERR_2014", "challenges end with it");

    // Each step is in the audit log, newest first.
    let log = audit_of(&mut c, &admin.access_token, &user.id).await;
    let actions: Vec<&str> = log.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "SIGN_IN",
            "MFA_DISABLED",
            "MFA_FAILED",
            "MFA_FAILED",
            "MFA_CHALLENGED",
            "RECOVERY_CODE_USED",
            "SIGN_IN",
            "MFA_CHALLENGED",
            "SIGN_IN",
            "MFA_FAILED",
            "MFA_CHALLENGED",
            "MFA_ENABLED",
            "SIGN_IN",
            "SIGN_IN",
            "ACCOUNT_CREATED"
        ]
    );
    assert_eq!(log[5].1, "9 left");
    assert!(log[6].1.ends_with("second factor: recovery code"), "{:?}", log[6]);
    assert!(log[8].1.ends_with("second factor: authenticator code"), "{:?}", log[8]);
    assert_eq!(log[11].1, "10 recovery codes, 1 other sessions ended");
}

#[tokio::test]
async fn a_challenge_expires_and_takes_five_wrong_codes_at_most() {
    // The throttle out of the way: this test is about the challenge's own limits.
    let (app, mut c, email, secret) = unthrottled_account_with_mfa(100).await;
    app.clock.advance(Duration::from_secs(30));

    let pending = challenge(&mut c, &email).await;
    app.clock.advance(Duration::from_secs(app.config.mfa.challenge_ttl_secs as u64));
    assert_eq!(code(c.verify_mfa(verify(&pending, &totp(&app, &secret))).await), "ERR_2014", "expired");

    let pending = challenge(&mut c, &email).await;
    let right = totp(&app, &secret);
    let wrong = if right == "123456" { "654321" } else { "123456" };
    for _ in 0..mfa::MAX_CHALLENGE_ATTEMPTS {
        assert_eq!(code(c.verify_mfa(verify(&pending, wrong)).await), "ERR_2013");
    }
    assert_eq!(code(c.verify_mfa(verify(&pending, &right)).await), "ERR_2014", "spent by wrong codes");
    // Neither shape of code: refused without costing an attempt; no such challenge.
    let pending = challenge(&mut c, &email).await;
    for junk in ["12345", "1234567", "letters", "ÄÖÜ-ÄÖÜ"] {
        assert_eq!(code(c.verify_mfa(verify(&pending, junk)).await), "ERR_2013", "{junk}");
    }
    assert_eq!(code(c.verify_mfa(verify(&pending, "")).await), "ERR_1001");
    assert_eq!(code(c.verify_mfa(verify("mfa_not-a-challenge", &right)).await), "ERR_2014");
    assert_eq!(code(c.verify_mfa(verify("rt_a-refresh-token", &right)).await), "ERR_2014");
    assert_eq!(code(c.verify_mfa(verify(&"m".repeat(10_000), &right)).await), "ERR_2014");
    let signed_in = c.verify_mfa(verify(&pending, &right)).await.expect("still good").into_inner();
    assert!(!signed_in.access_token.is_empty());
}

#[tokio::test]
async fn wrong_codes_are_throttled_like_wrong_passwords() {
    let app = App::spawn_on_manual_clock(|_| {}).await;
    let mut c = client(&app);
    let email = new_email();
    register(&mut c, &email).await;
    let token = login(&mut c, &email).await.access_token;
    let (secret, _) = switch_on(&app, &mut c, &token).await;
    app.clock.advance(Duration::from_secs(30));
    let right = totp(&app, &secret);
    let wrong = if right == "123456" { "654321" } else { "123456" };
    let free = app.config.login_throttle.account.free_attempts;
    // A guesser who has the password: signing in again gives no fresh guesses, the
    // account's code count stops the next ones whatever the challenge.
    let mut answers = Vec::new();
    while answers.len() < free as usize + 3 {
        let pending = challenge(&mut c, &email).await;
        for _ in 0..2 {
            answers.push(code(c.verify_mfa(verify(&pending, wrong)).await));
        }
    }
    // The free attempts, then one more that takes the first lock; then held off.
    let through = free as usize + 1;
    assert_eq!(answers[..through], vec!["ERR_2013".to_owned(); through][..], "{answers:?}");
    assert!(answers[through..].iter().all(|a| a == "ERR_2008"), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uses_of_one_code_sign_in_once() {
    const ROUNDS: usize = 4;
    const AT_ONCE: usize = 6;
    let (app, mut c, email, secret) = unthrottled_account_with_mfa(1_000).await;
    let mut raced_rounds = 0;
    for round in 0..ROUNDS {
        // A new step each round: the code an eavesdropper copied, sent with ours at once.
        app.clock.advance(Duration::from_secs(30));
        let code_now = totp(&app, &secret);
        let mut challenges = Vec::new();
        for _ in 0..AT_ONCE {
            challenges.push(challenge(&mut c, &email).await);
        }
        let attempts = challenges
            .into_iter()
            .map(|pending| {
                let mut c = c.clone();
                let request = verify(&pending, &code_now);
                async move { c.verify_mfa(request).await }
            })
            .collect();
        let results = festival_testkit::all_at_once(attempts).await;
        assert_eq!(results.len(), AT_ONCE);
        let winners = results.iter().filter(|r| r.is_ok()).count();
        if winners > 1 {
            raced_rounds += 1;
            continue;
        }
        assert_eq!(winners, 1, "round {round}: the code signs in once");
        let losers: HashSet<String> = results.into_iter().filter(|r| r.is_err()).map(code).collect();
        assert_eq!(losers, HashSet::from(["ERR_2013".to_owned()]), "round {round}");
    }
    if cfg!(feature = "race-hooks") {
        assert!(raced_rounds > 0, "negative control: without the lock a code must be accepted twice");
    } else {
        assert_eq!(raced_rounds, 0, "a code was accepted more than once");
    }
}

#[tokio::test]
async fn a_festival_requiring_mfa_refuses_its_staff_without_it_and_no_other_festival_is_touched() {
    let app = spawn().await;
    let mut c = client(&app);
    let (festival, organizer) = organiser(&app, &mut c).await;
    let (other_festival, other_organizer) = organiser(&app, &mut c).await;
    let policy = |festival: uuid::Uuid, on: bool| pb::SetSecurityPolicyRequest {
        festival_id: festival.to_string(),
        staff_mfa_required: on,
    };
    let get = |festival: uuid::Uuid| pb::GetSecurityPolicyRequest { festival_id: festival.to_string() };
    let unset = c.get_security_policy(authed(get(festival), &organizer)).await.expect("get").into_inner();
    assert!(!unset.staff_mfa_required && unset.update_user_id.is_empty());
    // Another festival's organiser can neither read nor set it.
    assert_eq!(code(c.get_security_policy(authed(get(festival), &other_organizer)).await), "ERR_3002");
    assert_eq!(code(c.set_security_policy(authed(policy(festival, false), &other_organizer)).await), "ERR_3002");
    // Requiring it from a session without it would lock the organiser out: refused.
    assert_eq!(code(c.set_security_policy(authed(policy(festival, true), &organizer)).await), "ERR_2012");

    // The organiser switches a second factor on (this session now counts as having it).
    let (_, _) = switch_on(&app, &mut c, &organizer).await;
    let set = c.set_security_policy(authed(policy(festival, true), &organizer)).await.expect("set").into_inner();
    assert!(set.staff_mfa_required);
    assert!(!set.update_user_id.is_empty() && set.update_time.is_some());

    // A co-organiser of both festivals, signed in with a password only.
    let (staff, staff_tokens) = signed_in(&mut c).await;
    for (f, token) in [(festival, &organizer), (other_festival, &other_organizer)] {
        let grant = pb::GrantMembershipRequest {
            festival_id: f.to_string(),
            user_id: staff.id.clone(),
            role: pb::Role::Organizer as i32,
        };
        c.grant_membership(authed(grant, token)).await.expect("grant");
    }
    let roster = |f: uuid::Uuid| pb::ListMembershipsRequest { festival_id: f.to_string(), ..Default::default() };
    assert_eq!(code(c.list_memberships(authed(roster(festival), &staff_tokens.access_token)).await), "ERR_2012");
    let there = c.list_memberships(authed(roster(other_festival), &staff_tokens.access_token)).await;
    assert!(!there.expect("the other festival requires nothing").into_inner().memberships.is_empty());
    // Its token says so too, for the services that read only the token.
    let refreshed = c
        .refresh(pb::RefreshRequest { refresh_token: staff_tokens.refresh_token.clone() })
        .await
        .expect("refresh")
        .into_inner();
    let mem = membership_claims(&refreshed.access_token);
    assert!(
        mem.contains(&(festival.to_string(), true)) && mem.contains(&(other_festival.to_string(), false)),
        "{mem:?}"
    );

    // The change is in the festival's audit log.
    let log = c
        .list_audit_entries(authed(
            pb::ListAuditEntriesRequest { festival_id: festival.to_string(), ..Default::default() },
            &organizer,
        ))
        .await
        .expect("audit")
        .into_inner()
        .entries;
    let changed = log.iter().find(|e| e.action == "SECURITY_POLICY_CHANGED").expect("recorded");
    assert_eq!(changed.detail, "staff_mfa_required=true");
}

/// (festival, requires MFA) of each membership in an access token.
fn membership_claims(access_token: &str) -> Vec<(String, bool)> {
    payload(access_token)["mem"]
        .as_array()
        .expect("mem")
        .iter()
        .map(|m| (m["fid"].as_str().expect("fid").to_owned(), m["mfa"].as_bool().unwrap_or(false)))
        .collect()
}

#[tokio::test]
async fn an_admin_resets_a_lost_second_factor_and_every_session_ends() {
    let app = App::spawn_on_manual_clock(|_| {}).await;
    let mut c = client(&app);
    let admin = signed_in_admin(&app, &mut c).await;
    let email = new_email();
    let user = register(&mut c, &email).await;
    let token = login(&mut c, &email).await.access_token;
    switch_on(&app, &mut c, &token).await;
    let reset = pb::ResetAccountMfaRequest { user_id: user.id.clone(), reason: "ID checked at the box office".into() };

    assert_eq!(code(c.reset_account_mfa(authed(reset.clone(), &token)).await), "ERR_3001", "admins only");
    let status = c.reset_account_mfa(authed(reset.clone(), &admin.access_token)).await.expect("reset").into_inner();
    assert_eq!(status.sessions_revoked, 1);
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &token)).await), "ERR_2005");
    let plain = login(&mut c, &email).await;
    assert!(!plain.access_token.is_empty(), "one step again");
    assert_eq!(code(c.reset_account_mfa(authed(reset, &admin.access_token)).await), "ERR_2016");
    let log = audit_of(&mut c, &admin.access_token, &user.id).await;
    assert!(log.contains(&("MFA_DISABLED".to_owned(), "reset by an admin: ID checked at the box office".to_owned())));
}
