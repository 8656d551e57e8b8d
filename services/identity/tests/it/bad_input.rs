//! Bad input gets a catalogued code, names the field, and writes nothing.

use festival_platform::error::violations;
use festival_proto::identity::v1 as pb;
use tonic_types::StatusExt;

use crate::helpers::*;

fn reg(email: &str, password: &str) -> pb::RegisterRequest {
    pb::RegisterRequest { email: email.into(), password: password.into(), ..Default::default() }
}

#[tokio::test]
async fn bad_registrations_are_refused_with_catalogued_codes_and_write_nothing() {
    let app = spawn().await;
    let mut c = client(&app);
    let long = "x".repeat(10_000);
    let cases: Vec<(pb::RegisterRequest, &str, &str)> = vec![
        (pb::RegisterRequest::default(), "ERR_1001", "email"),
        (reg("not-an-email", PASSWORD), "ERR_10002", "email"),
        (reg("ana@", PASSWORD), "ERR_10002", "email"),
        (reg(&format!("{long}@example.org"), PASSWORD), "ERR_1002", "email"),
        (reg("ana@example.org", ""), "ERR_1001", "password"),
        (reg("ana@example.org", "short"), "ERR_10003", "password"),
        (reg("ana@example.org", "password1234"), "ERR_10003", "password"),
        (reg("ana@example.org", &long), "ERR_1002", "password"),
        (
            pb::RegisterRequest { display_name: long.clone(), ..reg("ana@example.org", PASSWORD) },
            "ERR_1002",
            "display_name",
        ),
        (
            pb::RegisterRequest { display_name: "bell\u{7}".into(), ..reg("ana@example.org", PASSWORD) },
            "ERR_10004",
            "display_name",
        ),
        (pb::RegisterRequest { language: 99, ..reg("ana@example.org", PASSWORD) }, "ERR_1003", "language"),
    ];
    for (request, expected, field) in cases {
        let status = c.register(request.clone()).await.expect_err("refused");
        assert_eq!(code::<()>(Err(status.clone())), expected, "{request:.60?}");
        assert_eq!(violations(&status).first().map(|v| v.field.as_str()), Some(field), "{request:.60?}");
    }
    assert_eq!(count(&app, "users").await, 0);
    assert_eq!(count(&app, "outbox").await, 0);
}

#[tokio::test]
async fn a_weak_password_is_refused_naming_the_rule() {
    let app = spawn().await;
    let mut c = client(&app);
    let status = c.register(reg("ana.silva@example.org", "my-ana.silva-secret")).await.expect_err("refused");
    let info = status.get_details_error_info().expect("error info");
    assert_eq!(info.reason, "ERR_10003");
    assert_eq!(info.metadata.get("rule").map(String::as_str), Some("contains_email"));
    assert!(violations(&status)[0].description.contains("email"));
}

#[tokio::test]
async fn bad_logins_and_tokens_get_catalogued_codes() {
    let app = spawn().await;
    let mut c = client(&app);
    assert_eq!(code(c.login(pb::LoginRequest::default()).await), "ERR_1001");
    assert_eq!(
        code(
            c.login(pb::LoginRequest {
                email: "a@example.org".into(),
                password: "x".repeat(500),
                ..Default::default()
            })
            .await
        ),
        "ERR_1002"
    );
    assert_eq!(code(c.refresh(pb::RefreshRequest::default()).await), "ERR_1001");
    assert_eq!(code(c.refresh(pb::RefreshRequest { refresh_token: "y".repeat(600) }).await), "ERR_1002");
    assert_eq!(
        code(c.refresh(pb::RefreshRequest { refresh_token: "eyJhbGciOiJFZERTQSJ9.e30.sig".into() }).await),
        "ERR_2003"
    );
    assert_eq!(code(c.refresh(pb::RefreshRequest { refresh_token: "rt_unknown".into() }).await), "ERR_2003");
    assert_eq!(code(c.get_me(pb::GetMeRequest {}).await), "ERR_2000");
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, "garbage")).await), "ERR_2002");
    let (_, tokens) = signed_in(&mut c).await;
    // A refresh token presented as an access token.
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &tokens.refresh_token)).await), "ERR_2002");
    // An empty profile update changes nothing.
    assert_eq!(code(c.update_me(authed(pb::UpdateMeRequest::default(), &tokens.access_token)).await), "ERR_1001");
    assert_eq!(
        code(
            c.update_me(authed(pb::UpdateMeRequest { language: 77, ..Default::default() }, &tokens.access_token)).await
        ),
        "ERR_1003"
    );
}

#[tokio::test]
async fn oversized_messages_are_refused_before_decoding() {
    let app = spawn().await;
    let mut c = client(&app).max_encoding_message_size(64 * 1024 * 1024);
    let huge = "x".repeat(5 * 1024 * 1024);
    let status = c.register(reg(&huge, PASSWORD)).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert_eq!(festival_platform::error::reason(&status).as_deref(), Some("ERR_1011"), "a catalogued refusal");
    assert_eq!(count(&app, "users").await, 0);
}

#[tokio::test]
async fn bytes_that_are_not_the_message_get_err_1000_not_internal() {
    let app = spawn().await;
    // Field 1 (email) announced as 100 bytes long, then the message ends: prost cannot decode it.
    for garbage in [vec![0x0a, 0x64, b'x'], vec![0xff; 16], vec![0x08]] {
        let status = festival_testkit::raw::raw_unary(
            app.channel.clone(),
            "/festival.identity.v1.IdentityService/Register",
            garbage.clone(),
        )
        .await
        .expect_err("undecodable");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{garbage:?}: {status:?}");
        assert_eq!(festival_platform::error::reason(&status).as_deref(), Some("ERR_1000"), "{status:?}");
    }
    assert_eq!(count(&app, "users").await, 0, "nothing was written");
    // A real message through the same raw path still works.
    let good = prost::Message::encode_to_vec(&pb::RegisterRequest {
        email: new_email(),
        password: PASSWORD.into(),
        ..Default::default()
    });
    festival_testkit::raw::raw_unary(app.channel.clone(), "/festival.identity.v1.IdentityService/Register", good)
        .await
        .expect("a valid message is served");
}
