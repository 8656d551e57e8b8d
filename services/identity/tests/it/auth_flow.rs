use std::collections::HashSet;

use festival_proto::identity::v1 as pb;

use crate::helpers::*;

#[tokio::test]
async fn a_fan_registers_signs_in_and_sees_their_profile() {
    let app = spawn().await;
    let mut c = client(&app);
    let user = c
        .register(pb::RegisterRequest {
            email: "  Ana.Silva@Example.ORG ".into(),
            password: PASSWORD.into(),
            display_name: "Ana".into(),
            language: pb::Language::Pt as i32,
        })
        .await
        .expect("register")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(user.email, "ana.silva@example.org", "emails are normalised");
    assert_eq!(user.role, pb::Role::User as i32);

    let tokens = login(&mut c, "ANA.SILVA@example.org").await;
    assert_eq!(tokens.token_type, "Bearer");
    assert!(tokens.refresh_token.starts_with("rt_"));
    let me = c.get_me(authed(pb::GetMeRequest {}, &tokens.access_token)).await.expect("me").into_inner();
    assert_eq!(
        (me.id.as_str(), me.display_name.as_str(), me.language),
        (user.id.as_str(), "Ana", pb::Language::Pt as i32)
    );

    let registered = app.last_event::<pb::UserRegistered>().await;
    assert_eq!(registered.user_id, user.id);
}

#[tokio::test]
async fn a_taken_email_is_refused_whatever_its_case() {
    let app = spawn().await;
    let mut c = client(&app);
    register(&mut c, "dup@example.org").await;
    let again = c
        .register(pb::RegisterRequest {
            email: "DUP@example.org".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(again), "ERR_10001");
    assert_eq!(count(&app, "users").await, 1);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = spawn().await;
    let mut c = client(&app);
    let email = new_email();
    register(&mut c, &email).await;
    let wrong = c
        .login(pb::LoginRequest {
            email: email.clone(),
            password: "not the password at all".into(),
            ..Default::default()
        })
        .await;
    let unknown =
        c.login(pb::LoginRequest { email: new_email(), password: PASSWORD.into(), ..Default::default() }).await;
    let (wrong, unknown) = (wrong.expect_err("refused"), unknown.expect_err("refused"));
    assert_eq!(wrong.code(), unknown.code());
    assert_eq!(wrong.message(), unknown.message());
    assert_eq!(code::<()>(Err(wrong)), "ERR_2001");
    assert_eq!(count(&app, "sessions").await, 0);
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let app = spawn().await;
    let mut c = client(&app);
    let (_, first) = signed_in(&mut c).await;
    let second = c
        .refresh(pb::RefreshRequest { refresh_token: first.refresh_token.clone() })
        .await
        .expect("refresh")
        .into_inner();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    let third =
        c.refresh(pb::RefreshRequest { refresh_token: second.refresh_token.clone() }).await.expect("refresh again");
    c.get_me(authed(pb::GetMeRequest {}, &third.into_inner().access_token)).await.expect("new access token works");
}

#[tokio::test]
async fn replaying_a_spent_refresh_token_revokes_the_whole_family() {
    let app = spawn().await;
    let mut c = client(&app);
    let (user, first) = signed_in(&mut c).await;
    let second = c
        .refresh(pb::RefreshRequest { refresh_token: first.refresh_token.clone() })
        .await
        .expect("refresh")
        .into_inner();

    // An attacker (or a confused client) presents the spent token.
    assert_eq!(code(c.refresh(pb::RefreshRequest { refresh_token: first.refresh_token.clone() }).await), "ERR_2004");
    // The legitimate holder's newer token is dead too, and so is its access token.
    assert_eq!(code(c.refresh(pb::RefreshRequest { refresh_token: second.refresh_token.clone() }).await), "ERR_2003");
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &second.access_token)).await), "ERR_2005");

    let revoked = app.last_event::<pb::SessionRevoked>().await;
    assert_eq!((revoked.user_id.as_str(), revoked.reason.as_str()), (user.id.as_str(), "refresh_token_reuse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_token_let_exactly_one_through() {
    const ROUNDS: i64 = 5;
    let app = spawn().await;
    let mut c = client(&app);
    let mut raced_rounds = 0;
    for round in 1..=ROUNDS {
        let (_, tokens) = signed_in(&mut c).await;
        let attempts = (0..8)
            .map(|_| {
                let mut c = c.clone();
                let token = tokens.refresh_token.clone();
                async move { c.refresh(pb::RefreshRequest { refresh_token: token }).await }
            })
            .collect();
        let results = festival_testkit::all_at_once(attempts).await;
        assert_eq!(results.len(), 8);
        let winners = results.iter().filter(|r| r.is_ok()).count();
        let live_tokens: i64 = sqlx::query_scalar("select count(*) from refresh_tokens where used_at is null")
            .fetch_one(&app.pool)
            .await
            .expect("count");
        if winners > 1 {
            raced_rounds += 1;
            continue;
        }
        assert_eq!(winners, 1, "round {round}: one rotation wins; the rest are reuse");
        let codes: HashSet<String> = results.into_iter().filter(|r| r.is_err()).map(code).collect();
        assert!(codes.is_subset(&HashSet::from(["ERR_2004".to_owned(), "ERR_2003".to_owned()])), "{codes:?}");
        assert_eq!(live_tokens, round, "one new token per round was issued, no more");
    }
    if cfg!(feature = "race-hooks") {
        assert!(raced_rounds > 0, "negative control: without the lock a token must rotate twice");
    } else {
        assert_eq!(raced_rounds, 0, "a refresh token was rotated more than once");
    }
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn().await;
    let mut c = client(&app);
    let (_, tokens) = signed_in(&mut c).await;
    c.logout(pb::LogoutRequest { refresh_token: tokens.refresh_token.clone() }).await.expect("logout");
    c.logout(pb::LogoutRequest { refresh_token: tokens.refresh_token.clone() })
        .await
        .expect("logging out twice is harmless");
    assert_eq!(code(c.refresh(pb::RefreshRequest { refresh_token: tokens.refresh_token.clone() }).await), "ERR_2003");
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &tokens.access_token)).await), "ERR_2005");
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_of_the_user_only() {
    let app = spawn().await;
    let mut c = client(&app);
    let email = new_email();
    register(&mut c, &email).await;
    let (phone, laptop) = (login(&mut c, &email).await, login(&mut c, &email).await);
    let (_, someone_else) = signed_in(&mut c).await;

    let ended =
        c.logout_all(authed(pb::LogoutAllRequest {}, &phone.access_token)).await.expect("logout all").into_inner();
    assert_eq!(ended.sessions_revoked, 2);
    for session in [&phone, &laptop] {
        assert_eq!(
            code(c.refresh(pb::RefreshRequest { refresh_token: session.refresh_token.clone() }).await),
            "ERR_2003"
        );
        assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &session.access_token)).await), "ERR_2005");
    }
    c.get_me(authed(pb::GetMeRequest {}, &someone_else.access_token)).await.expect("other users keep their sessions");
    app.assert_outbox_drained().await;
}

#[tokio::test]
async fn profiles_update_and_deleted_accounts_free_their_email() {
    let app = spawn().await;
    let mut c = client(&app);
    let email = new_email();
    let user = register(&mut c, &email).await;
    let login = pb::LoginRequest { email: email.clone(), password: PASSWORD.into(), device_name: "Ana's phone".into() };
    let tokens = c.login(login).await.expect("login").into_inner();
    let updated = c
        .update_me(authed(
            pb::UpdateMeRequest { display_name: "DJ Ana".into(), language: pb::Language::Fr as i32 },
            &tokens.access_token,
        ))
        .await
        .expect("update")
        .into_inner();
    assert_eq!((updated.display_name.as_str(), updated.language), ("DJ Ana", pb::Language::Fr as i32));

    // A stolen access token alone deletes nothing: the password is asked again.
    let delete = |password: &str| authed(pb::DeleteMeRequest { password: password.into() }, &tokens.access_token);
    assert_eq!(code(c.delete_me(delete("")).await), "ERR_1001");
    assert_eq!(code(c.delete_me(delete("not the password at all")).await), "ERR_2001");
    c.delete_me(delete(PASSWORD)).await.expect("delete");
    assert_eq!(
        code(c.login(pb::LoginRequest { email: email.clone(), password: PASSWORD.into(), ..Default::default() }).await),
        "ERR_2001"
    );
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &tokens.access_token)).await), "ERR_2005");
    let refused = c.refresh(pb::RefreshRequest { refresh_token: tokens.refresh_token.clone() }).await;
    assert_eq!(code(refused), "ERR_2003", "its refresh tokens are gone");
    let deleted = app.last_event::<pb::UserDeleted>().await;
    assert_eq!(deleted.user_id, user.id);

    // Only the pseudonymous id and dates stay: no email, password hash or name.
    let id = uuid::Uuid::parse_str(&user.id).expect("id");
    let (stored_email, hash, name): (String, String, String) =
        sqlx::query_as("select email, password_hash, display_name from users where id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert_eq!((stored_email, hash, name), (format!("deleted-{id}@invalid"), String::new(), String::new()));
    let tokens_left: i64 = sqlx::query_scalar(
        "select count(*) from refresh_tokens where session_id in (select id from sessions where user_id = $1)",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(tokens_left, 0);
    let (device, network): (String, String) =
        sqlx::query_as("select device_name, ip_prefix from sessions where user_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .expect("session");
    assert_eq!((device, network), (String::new(), String::new()), "what its sessions said of it is gone");

    let again = register(&mut c, &email).await;
    assert_ne!(again.id, user.id, "the address is free again, for a new account");
}

#[tokio::test]
async fn a_user_exports_what_identity_holds_about_them_and_no_secret() {
    let app = spawn().await;
    let mut c = client(&app);
    let email = new_email();
    let user = register(&mut c, &email).await;
    let phone = login(&mut c, &email).await;
    let laptop = login(&mut c, &email).await;
    c.logout(pb::LogoutRequest { refresh_token: phone.refresh_token.clone() }).await.expect("logout");
    let admin = signed_in_admin(&app, &mut c).await;
    let festival = uuid::Uuid::now_v7().to_string();
    c.grant_membership(authed(
        pb::GrantMembershipRequest {
            festival_id: festival.clone(),
            user_id: user.id.clone(),
            role: pb::Role::Staff as i32,
        },
        &admin.access_token,
    ))
    .await
    .expect("grant");

    let export =
        c.export_my_data(authed(pb::ExportMyDataRequest {}, &laptop.access_token)).await.expect("export").into_inner();
    let account = export.account.expect("account");
    assert_eq!((account.id.as_str(), account.email.as_str()), (user.id.as_str(), email.as_str()));
    assert_eq!(export.sessions.len(), 2);
    let ended: Vec<&str> = export.sessions.iter().map(|s| s.revoke_reason.as_str()).collect();
    assert!(ended.contains(&"logout") && ended.contains(&""), "{ended:?}");
    assert_eq!(
        export.memberships.iter().map(|m| (m.festival_id.as_str(), m.role)).collect::<Vec<_>>(),
        vec![(festival.as_str(), pb::Role::Staff as i32)]
    );
    let everything = format!(
        "{export:?}",
        export = c
            .export_my_data(authed(pb::ExportMyDataRequest {}, &laptop.access_token))
            .await
            .expect("export")
            .into_inner()
    );
    for secret in [&laptop.access_token, &laptop.refresh_token, &phone.refresh_token] {
        assert!(!everything.contains(secret.as_str()), "no token in an export");
    }
    assert!(!everything.contains("argon2"), "no password hash in an export");
    assert_eq!(code(c.export_my_data(pb::ExportMyDataRequest {}).await), "ERR_2000");
}

#[tokio::test]
async fn the_callers_trace_continues_into_the_published_event() {
    festival_testkit::init_tracing();
    let app = spawn().await;
    let mut c = client(&app);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = tonic::Request::new(pb::RegisterRequest {
        email: new_email(),
        password: PASSWORD.into(),
        ..Default::default()
    });
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().expect("header"));
    c.register(request).await.expect("register");

    let message = app.last_message::<pb::UserRegistered>().await;
    let traceparent =
        message.headers.get("traceparent").map(|v| v.to_string()).expect("traceparent header on the event");
    assert!(traceparent.starts_with(&format!("00-{trace_id}-")), "{traceparent}");
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_one_account() {
    let app = spawn().await;
    let c = client(&app);
    let email = new_email();
    let attempts = (0..8).map(|_| {
        let mut c = c.clone();
        let email = email.clone();
        tokio::spawn(async move {
            c.register(pb::RegisterRequest { email, password: PASSWORD.into(), ..Default::default() }).await
        })
    });
    let results: Vec<_> = futures::future::join_all(attempts).await.into_iter().map(|r| r.expect("task")).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    let refused: Vec<String> = results.into_iter().filter(|r| r.is_err()).map(code).collect();
    assert_eq!(refused.len(), 7, "every other attempt was refused");
    assert!(refused.iter().all(|c| c == "ERR_10001"), "{refused:?}");
    assert_eq!(count(&app, "users").await, 1);
    assert_eq!(published(&app).await, 1, "one user.registered event, not eight");
}

/// Events already relayed to the app's stream.
async fn published(app: &App) -> i64 {
    app.assert_outbox_drained().await;
    let js = async_nats::jetstream::new(async_nats::connect(festival_testkit::nats_url()).await.expect("nats"));
    let mut stream = js.get_stream(app.naming().stream("identity")).await.expect("stream");
    stream.info().await.expect("info").state.messages as i64
}

#[tokio::test]
async fn refreshing_never_keeps_a_session_alive_past_its_absolute_lifetime() {
    use std::time::Duration;
    let app = App::spawn_on_manual_clock(|c| {
        c.tokens.refresh_ttl_secs = 3600;
        c.tokens.session_max_secs = 2 * 3600;
    })
    .await;
    let mut c = client(&app);
    let email = new_email();
    register(&mut c, &email).await;
    let first = login(&mut c, &email).await;
    let started = first.access_token_expire_time.expect("exp").seconds - app.config.tokens.access_ttl_secs;

    app.clock.advance(Duration::from_secs(50 * 60));
    let second =
        c.refresh(pb::RefreshRequest { refresh_token: first.refresh_token }).await.expect("refresh").into_inner();
    app.clock.advance(Duration::from_secs(50 * 60));
    let third =
        c.refresh(pb::RefreshRequest { refresh_token: second.refresh_token }).await.expect("refresh").into_inner();
    assert_eq!(
        third.refresh_token_expire_time.expect("exp").seconds,
        started + 2 * 3600,
        "the last token ends with the session, not an hour after it was issued"
    );
    app.clock.advance(Duration::from_secs(25 * 60));
    let refused = c.refresh(pb::RefreshRequest { refresh_token: third.refresh_token }).await;
    assert_eq!(code(refused), "ERR_2005", "two hours after sign-in: sign in again");
    login(&mut c, &email).await;
    app.stop().await;
}

#[tokio::test]
async fn a_password_hashed_at_an_older_cost_is_rehashed_at_the_next_sign_in() {
    let cheap = App::spawn_with(|c| {
        c.password.memory_kib = 8 * 1024;
        c.password.iterations = 1;
    })
    .await;
    let mut c = client(&cheap);
    let email = new_email();
    register(&mut c, &email).await;
    let (mut config, name) = (cheap.config.clone(), cheap.name.clone());
    cheap.stop().await;
    let stored = |app: &App| {
        let (pool, email) = (app.pool.clone(), email.clone());
        async move {
            sqlx::query_scalar::<_, String>("select password_hash from users where email = $1")
                .bind(email)
                .fetch_one(&pool)
                .await
                .expect("hash")
        }
    };

    // The same database, served with today's cost.
    config.password = festival_identity::Config::default().password;
    let app = App::start(config, name).await;
    assert!(stored(&app).await.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
    let mut c = client(&app);
    login(&mut c, &email).await;
    assert!(stored(&app).await.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "upgraded at sign-in");
    login(&mut c, &email).await;
    app.stop().await;
}
