//! Mailed links through a real SMTP exchange (the test kit's sink): a new account's
//! verification link, a password reset (single use, expiring, ending every session), and
//! requests that tell nothing about which addresses have accounts.

use std::time::Duration;

use festival_proto::identity::v1 as pb;
use festival_testkit::smtp_sink::SmtpSink;

use crate::helpers::*;

async fn spawn_with_mail(sink: &SmtpSink) -> App {
    let url = sink.url();
    App::spawn_on_manual_clock(move |c| {
        c.mail.smtp_url = url;
        c.mail.reset_link = "https://fest.example/reset".into();
        c.mail.verification_link = "https://fest.example/verify".into();
    })
    .await
}

/// The token of the link in a mail whose link starts with `page`.
fn token_in(text: &str, page: &str) -> String {
    let start = text.find(&format!("{page}#token=")).expect("a link") + page.len() + "#token=".len();
    text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')).collect()
}

#[tokio::test]
async fn a_new_account_verifies_its_address_with_the_mailed_link_once() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_mail(&sink).await;
    let mut c = client(&app);
    let email = new_email();
    let user = register(&mut c, &email).await;
    assert!(!user.email_verified);
    let mail = sink.next_to(&email, 0).await;
    assert_eq!(mail.from, "no-reply@festival.local");
    assert!(mail.data.contains("Subject: Confirm your email address"), "{}", mail.data);
    let token = token_in(&mail.text(), "https://fest.example/verify");
    assert!(token.starts_with("ev_"), "{token}");

    // A reset token is no verification token, and the other way round.
    let wrong_kind = pb::VerifyEmailRequest { token: token.replacen("ev_", "pr_", 1) };
    assert_eq!(code(c.verify_email(wrong_kind).await), "ERR_2017");
    let verified = c.verify_email(pb::VerifyEmailRequest { token: token.clone() }).await.expect("verify");
    assert_eq!(verified.into_inner().user_id, user.id);
    assert_eq!(code(c.verify_email(pb::VerifyEmailRequest { token }).await), "ERR_2017", "spent");
    let signed_in = login(&mut c, &email).await;
    assert!(me(&mut c, &signed_in.access_token).await.email_verified);
    let again = c.request_email_verification(authed(pb::RequestEmailVerificationRequest {}, &signed_in.access_token));
    assert!(again.await.expect("ask").into_inner().already_verified, "nothing more to send");
    assert_eq!(code(c.verify_email(pb::VerifyEmailRequest { token: String::new() }).await), "ERR_1001");
    assert_eq!(code(c.verify_email(pb::VerifyEmailRequest { token: "x".repeat(500) }).await), "ERR_1002");
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_ends_every_session_and_expires() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_mail(&sink).await;
    let mut c = client(&app);
    let admin = signed_in_admin(&app, &mut c).await;
    let email = new_email();
    let user = register(&mut c, &email).await;
    let laptop = login(&mut c, &email).await;
    let phone = login(&mut c, &email).await;

    let ask = || pb::RequestPasswordResetRequest { email: email.clone() };
    c.request_password_reset(ask()).await.expect("ask");
    let mail = sink.next_to(&email, 1).await; // the first is the verification mail
    assert!(mail.data.contains("Subject: Reset your festival password"), "{}", mail.data);
    let first = token_in(&mail.text(), "https://fest.example/reset");
    // Asking again supersedes the first link.
    c.request_password_reset(ask()).await.expect("ask again");
    let second = token_in(&sink.next_to(&email, 2).await.text(), "https://fest.example/reset");
    assert_ne!(first, second);
    let reset =
        |token: &str, password: &str| pb::ResetPasswordRequest { token: token.into(), new_password: password.into() };
    assert_eq!(code(c.reset_password(reset(&first, "a brand new passphrase")).await), "ERR_2017", "superseded");
    // The password policy holds here too; a refused password spends nothing.
    assert_eq!(code(c.reset_password(reset(&second, "short")).await), "ERR_10003");
    let done = c.reset_password(reset(&second, "a brand new passphrase")).await.expect("reset").into_inner();
    assert_eq!(done.sessions_revoked, 2);
    assert_eq!(code(c.reset_password(reset(&second, "yet another passphrase")).await), "ERR_2017", "spent");
    for session in [&laptop, &phone] {
        assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &session.access_token)).await), "ERR_2005");
    }
    let old = pb::LoginRequest { email: email.clone(), password: PASSWORD.into(), ..Default::default() };
    assert_eq!(code(c.login(old).await), "ERR_2001");
    let new =
        pb::LoginRequest { email: email.clone(), password: "a brand new passphrase".into(), ..Default::default() };
    let signed_in = c.login(new).await.expect("the new password").into_inner();
    assert!(me(&mut c, &signed_in.access_token).await.email_verified, "the link reached the mailbox");

    // A link older than its 30 minutes is refused.
    c.request_password_reset(ask()).await.expect("ask");
    let late = token_in(&sink.next_to(&email, 3).await.text(), "https://fest.example/reset");
    app.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(code(c.reset_password(reset(&late, "too late a passphrase")).await), "ERR_2017");

    let request = pb::ListAuditEntriesRequest { page_size: 200, ..Default::default() };
    let log = c.list_audit_entries(authed(request, &admin.access_token)).await.expect("audit").into_inner().entries;
    let actions: Vec<&str> = log
        .iter()
        .filter(|e| e.subject_id == user.id && e.action.starts_with("PASSWORD_RESET"))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        actions,
        ["PASSWORD_RESET_REQUESTED", "PASSWORD_RESET", "PASSWORD_RESET_REQUESTED", "PASSWORD_RESET_REQUESTED"]
    );
}

#[tokio::test]
async fn asking_for_an_unknown_address_answers_the_same_and_sends_nothing_and_asking_is_throttled() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_mail(&sink).await;
    let mut c = client(&app);
    let nobody = new_email();
    c.request_password_reset(pb::RequestPasswordResetRequest { email: nobody.clone() }).await.expect("same answer");
    let stored: i64 = sqlx::query_scalar("select count(*) from email_tokens").fetch_one(&app.pool).await.expect("n");
    assert_eq!(stored, 0, "no link was made, so none can be mailed");
    assert_eq!(
        code(c.request_password_reset(pb::RequestPasswordResetRequest { email: "not-an-email".into() }).await),
        "ERR_10002"
    );
    let free = app.config.login_throttle.account.free_attempts as usize;
    let mut answers = Vec::new();
    for _ in 0..free + 3 {
        let asked = c.request_password_reset(pb::RequestPasswordResetRequest { email: nobody.clone() }).await;
        answers.push(if asked.is_ok() { "OK".to_owned() } else { code(asked) });
    }
    assert!(answers.iter().any(|a| a == "ERR_2008"), "{answers:?}");
    assert!(answers.iter().all(|a| a == "OK" || a == "ERR_2008"), "{answers:?}");
    assert!(sink.received().iter().all(|m| !m.to.contains(&nobody)));
}

#[tokio::test]
async fn a_reset_ends_sign_ins_waiting_for_their_second_factor_and_a_double_click_is_harmless() {
    use festival_identity::domain::mfa;
    let sink = SmtpSink::start().await;
    let app = spawn_with_mail(&sink).await;
    let mut c = client(&app);
    let email = new_email();
    register(&mut c, &email).await;
    let token = login(&mut c, &email).await.access_token;
    let enrol = pb::EnrolMfaRequest { password: PASSWORD.into() };
    let secret = c.enrol_mfa(authed(enrol, &token)).await.expect("enrol").into_inner().secret;
    let secret = mfa::from_base32(&secret).expect("base32");
    let code_now = |app: &App| mfa::format_code(mfa::code_at_step(&secret, mfa::step_at(app.clock.now())));
    c.confirm_mfa(authed(pb::ConfirmMfaRequest { code: code_now(&app) }, &token)).await.expect("confirm");
    // Someone with the old password got as far as the second factor.
    let pending = login(&mut c, &email).await.mfa_challenge;
    assert!(!pending.is_empty());

    c.request_password_reset(pb::RequestPasswordResetRequest { email: email.clone() }).await.expect("ask");
    let link = token_in(&sink.next_to(&email, 1).await.text(), "https://fest.example/reset");
    // The holder clicks twice: one click resets, the other finds the link spent.
    let clicks = (0..2)
        .map(|_| {
            let (mut c, link) = (c.clone(), link.clone());
            async move {
                c.reset_password(pb::ResetPasswordRequest {
                    token: link,
                    new_password: "a brand new passphrase".into(),
                })
                .await
            }
        })
        .collect();
    let answers = festival_testkit::all_at_once(clicks).await;
    assert_eq!(answers.len(), 2);
    assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 1);
    let refused: Vec<String> = answers.into_iter().filter(|a| a.is_err()).map(code).collect();
    assert_eq!(refused, ["ERR_2017"]);

    app.clock.advance(Duration::from_secs(30));
    let late = pb::VerifyMfaRequest { mfa_challenge: pending, code: code_now(&app) };
    assert_eq!(code(c.verify_mfa(late).await), "ERR_2014", "the old password's sign-in ended with the reset");
}
