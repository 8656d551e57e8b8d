//! REST round trips through the gateway against the real identity service.

use serde_json::json;

use crate::helpers::*;

const PASSWORD: &str = "correct horse battery staple";

fn cookie_value<'a>(set_cookies: &'a [&str], name: &str) -> Option<&'a str> {
    set_cookies.iter().find_map(|c| c.strip_prefix(&format!("{name}="))?.split(';').next())
}

#[tokio::test]
async fn partners_get_bearer_tokens_in_the_body_and_no_cookies() {
    let env = spawn().await;
    let email = format!("rest-{}@example.org", env.identity.name);

    let r = post_json(
        &env,
        "/v1/auth/register",
        &json!({"email": email, "password": PASSWORD, "displayName": "Rest Fan", "language": "LANGUAGE_DE"}),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["user"]["email"], email);
    assert_eq!(r.json()["user"]["language"], "LANGUAGE_DE", "enums by name");
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
    assert_eq!(r.header("x-api-version"), Some("1"));

    let login = post_json(&env, "/v1/auth/login", &json!({"email": email, "password": PASSWORD}), &[]).await;
    assert_eq!(login.status, 200);
    let body = login.json();
    let access = body["accessToken"].as_str().expect("access token in the body").to_owned();
    let refresh = body["refreshToken"].as_str().expect("refresh token in the body").to_owned();
    assert_eq!(login.headers_named("set-cookie"), Vec::<&str>::new(), "no cookies for partners");

    let me = http(env.gateway.addr, "GET", "/v1/me", &[("Authorization", &format!("Bearer {access}"))], "").await;
    assert_eq!((me.status, me.json()["email"].as_str()), (200, Some(email.as_str())));
    let anonymous = get(&env, "/v1/me").await;
    assert_eq!((anonymous.status, anonymous.code()), (401, "ERR_2000".to_owned()));

    let refreshed = post_json(&env, "/v1/auth/refresh", &json!({"refreshToken": refresh}), &[]).await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.json());
    assert_ne!(refreshed.json()["refreshToken"].as_str().expect("rotated"), refresh);
    let replay = post_json(&env, "/v1/auth/refresh", &json!({"refreshToken": refresh}), &[]).await;
    assert_eq!((replay.status, replay.code()), (401, "ERR_2004".to_owned()));
}

#[tokio::test]
async fn browsers_get_host_cookies_and_no_token_that_script_could_read() {
    let env = spawn().await;
    let email = format!("browser-{}@example.org", env.identity.name);
    // The web app's origin (one of the gateway's CORS origins): it may sign in.
    const ORIGIN: (&str, &str) = ("Origin", "http://localhost:3000");
    let r = post_json(&env, "/v1/auth/register", &json!({"email": email, "password": PASSWORD}), &[ORIGIN]).await;
    assert_eq!(r.status, 200);

    let login = post_json(&env, "/v1/auth/login", &json!({"email": email, "password": PASSWORD}), &[ORIGIN]).await;
    assert_eq!(login.status, 200);
    let body = login.json();
    let token = |body: &serde_json::Value, field: &str| body[field].as_str().unwrap_or_default().to_owned();
    assert_eq!((token(&body, "accessToken"), token(&body, "refreshToken")), (String::new(), String::new()), "{body}");
    assert_eq!(body["user"]["email"], email, "the rest of the answer is there");
    assert!(body["accessTokenExpireTime"].is_string());
    let cookies = login.headers_named("set-cookie");
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for c in &cookies {
        assert!(c.starts_with("__Host-festival_"), "{c}");
        assert!(
            c.contains("; Path=/;") && c.contains("HttpOnly") && c.contains("Secure") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }
    let at = cookie_value(&cookies, "__Host-festival_at").expect("access cookie").to_owned();
    let rt = cookie_value(&cookies, "__Host-festival_rt").expect("refresh cookie").to_owned();

    let me =
        http(env.gateway.addr, "GET", "/v1/me", &[("Cookie", &format!("theme=dark; __Host-festival_at={at}"))], "")
            .await;
    assert_eq!((me.status, me.json()["email"].as_str()), (200, Some(email.as_str())));

    // Refresh from the cookie alone, with rotation, and still no token in the body.
    let jar = format!("__Host-festival_rt={rt}");
    let refreshed = http(env.gateway.addr, "POST", "/v1/auth/refresh", &[("Cookie", &jar), ORIGIN], "").await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.json());
    assert_eq!(token(&refreshed.json(), "refreshToken"), "");
    let new_rt =
        cookie_value(&refreshed.headers_named("set-cookie"), "__Host-festival_rt").expect("rotated cookie").to_owned();
    assert_ne!(new_rt, rt);
    let replay = http(env.gateway.addr, "POST", "/v1/auth/refresh", &[("Cookie", &jar), ORIGIN], "").await;
    assert_eq!((replay.status, replay.code()), (401, "ERR_2004".to_owned()));

    // Logout clears the cookies.
    let login = post_json(&env, "/v1/auth/login", &json!({"email": email, "password": PASSWORD}), &[ORIGIN]).await;
    let rt = cookie_value(&login.headers_named("set-cookie"), "__Host-festival_rt").expect("rt").to_owned();
    let out = http(
        env.gateway.addr,
        "POST",
        "/v1/auth/logout",
        &[("Cookie", &format!("__Host-festival_rt={rt}")), ORIGIN],
        "",
    )
    .await;
    assert_eq!(out.status, 200);
    let cleared = out.headers_named("set-cookie");
    assert!(cleared.iter().any(|c| c.starts_with("__Host-festival_at=;") && c.contains("Max-Age=0")), "{cleared:?}");
    assert!(cleared.iter().any(|c| c.starts_with("__Host-festival_rt=;") && c.contains("Max-Age=0")), "{cleared:?}");
    let after = http(
        env.gateway.addr,
        "POST",
        "/v1/auth/refresh",
        &[("Cookie", &format!("__Host-festival_rt={rt}")), ORIGIN],
        "",
    )
    .await;
    assert_eq!(after.status, 401, "the session ended");
}

#[tokio::test]
async fn browsers_sign_in_only_from_the_platforms_own_pages() {
    let env = spawn().await;
    let email = format!("csrf-{}@example.org", env.identity.name);
    let credentials = json!({"email": email, "password": PASSWORD});
    assert_eq!(post_json(&env, "/v1/auth/register", &credentials, &[]).await.status, 200);
    // Login CSRF: another site's page posting its own credentials into the victim's
    // browser would leave the victim signed in as the attacker.
    for headers in [
        vec![("Origin", "https://evil.example")],
        vec![("Origin", "null")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Sec-Fetch-Site", "same-site"), ("Origin", "https://blog.localhost:3000")],
    ] {
        let refused = post_json(&env, "/v1/auth/login", &credentials, &headers).await;
        assert_eq!((refused.status, refused.code()), (403, "ERR_3001".to_owned()), "{headers:?}");
        assert_eq!(refused.headers_named("set-cookie"), Vec::<&str>::new(), "{headers:?}");
        let provider = json!({"state": "os_x", "code": "c", "binding": "ob_x"});
        let oauth = post_json(&env, "/v1/auth/oauth/google:complete", &provider, &headers).await;
        assert_eq!((oauth.status, oauth.code()), (403, "ERR_3001".to_owned()), "{headers:?}");
        // Nor the attacker's own refresh token, rotated into the victim's cookies.
        let refresh = post_json(&env, "/v1/auth/refresh", &json!({"refreshToken": "rt_attackers"}), &headers).await;
        assert_eq!((refresh.status, refresh.code()), (403, "ERR_3001".to_owned()), "{headers:?}");
    }
    // The web app's pages and the gateway's own origin sign in; so do non-browsers.
    for headers in [
        vec![("Origin", "http://localhost:3000")],
        vec![("Sec-Fetch-Site", "same-origin"), ("Origin", "https://api.festival.example")],
        vec![],
    ] {
        let signed_in = post_json(&env, "/v1/auth/login", &credentials, &headers).await;
        assert_eq!(signed_in.status, 200, "{headers:?}");
    }
}

#[tokio::test]
async fn errors_come_from_the_catalogue_with_a_request_id() {
    let env = spawn().await;
    let bad = post_json(
        &env,
        "/v1/auth/login",
        &json!({"email": "nobody@example.org", "password": "wrong password here"}),
        &[("X-Request-Id", "req-123")],
    )
    .await;
    assert_eq!(bad.status, 401);
    let body = bad.json();
    assert_eq!(body["code"], "ERR_2001");
    assert_eq!(body["request_id"], "req-123");
    assert_eq!(bad.header("x-request-id"), Some("req-123"));

    let weak = post_json(&env, "/v1/auth/register", &json!({"email": "a@example.org", "password": "short"}), &[]).await;
    assert_eq!((weak.status, weak.code()), (400, "ERR_10003".to_owned()));
    assert_eq!(weak.json()["details"]["fieldViolations"][0]["field"], "password");
    assert_eq!(weak.json()["details"]["metadata"]["rule"], "min_length");

    let jwks = get(&env, "/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.json()["keys"][0]["kty"], "OKP");
}

#[tokio::test]
async fn health_endpoints_report_each_upstream_by_name() {
    let env = spawn().await;
    assert_eq!(get(&env, "/healthz").await.status, 200);
    let ready = festival_testkit::eventually(std::time::Duration::from_secs(15), || async {
        get(&env, "/readyz").await.status == 200
    })
    .await;
    assert!(ready, "identity becomes SERVING");
    let body = get(&env, "/readyz").await.json();
    assert_eq!(body["upstreams"]["identity"], "SERVING");

    let down = spawn_with(|c| {
        c.upstreams.insert("ticketing".into(), "http://127.0.0.1:1".into());
    })
    .await;
    let r = get(&down, "/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["upstreams"]["ticketing"], "UNREACHABLE");
}

#[tokio::test]
async fn openapi_documents_the_annotated_routes_and_the_error_shape() {
    let env = spawn().await;
    let doc = get(&env, "/openapi.json").await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let login = &doc["paths"]["/v1/auth/login"]["post"];
    assert!(login["summary"].as_str().is_some_and(|s| s.contains("Exchanges email and password")), "{login}");
    assert_eq!(
        login["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/festival.identity.v1.LoginRequest"
    );
    assert!(
        doc["paths"]["/v1/festivals/{festival_id}/members"]["get"]["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "pageSize"))
    );
    assert!(doc["components"]["schemas"]["Error"]["properties"]["code"].is_object());
    let docs = get(&env, "/docs").await;
    assert_eq!(docs.status, 200);
    assert!(String::from_utf8_lossy(&docs.body).contains("/openapi.json"));
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let env = spawn_with(|c| c.cors.allowed_origins = vec!["https://app.festival.example".into()]).await;
    let preflight = |origin: &'static str| {
        let addr = env.gateway.addr;
        async move {
            http(
                addr,
                "OPTIONS",
                "/v1/auth/login",
                &[
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "POST"),
                    ("Access-Control-Request-Headers", "content-type"),
                ],
                "",
            )
            .await
        }
    };
    let allowed = preflight("https://app.festival.example").await;
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://app.festival.example"));
    assert_eq!(allowed.header("access-control-allow-credentials"), Some("true"));
    let other = preflight("https://evil.example").await;
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn control_characters_and_undecodable_bodies_are_400_err_1000_through_the_gateway() {
    let env = spawn().await;
    let body = json!({"refreshToken": "rt_\u{0}abc"});
    let r = post_json(&env, "/v1/auth/refresh", &body, &[]).await;
    assert_eq!((r.status, r.code()), (400, "ERR_1000".to_owned()), "{}", String::from_utf8_lossy(&r.body));
    let field = r.json()["details"]["fieldViolations"][0]["field"].as_str().unwrap_or_default().to_owned();
    assert_eq!(field, "refresh_token");
    // A display name keeps its own, more telling code for the same mistake.
    let body =
        json!({"email": "nul@example.org", "password": "correct horse battery staple", "displayName": "a\u{0}b"});
    let r = post_json(&env, "/v1/auth/register", &body, &[]).await;
    assert_eq!((r.status, r.code()), (400, "ERR_10004".to_owned()), "{}", String::from_utf8_lossy(&r.body));
    // gRPC-web carrying bytes that are not a RegisterRequest: the upstream's ERR_1000, not INTERNAL.
    let frame = [&[0u8, 0, 0, 0, 2][..], &[0x0a, 0x64]].concat();
    let mut stream = tokio::net::TcpStream::connect(env.gateway.addr).await.expect("connect");
    let head = format!(
        "POST /festival.identity.v1.IdentityService/Register HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\n\r\n",
        frame.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, &[head.as_bytes(), &frame].concat()).await.expect("send");
    let mut raw = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut raw).await.expect("read");
    let response = parse_response(&raw);
    assert_eq!(response.status, 200, "gRPC-web answers errors in its own framing");
    let trailers = String::from_utf8_lossy(&response.body).to_lowercase();
    let status = response.header("grpc-status").map(str::to_owned).unwrap_or_else(|| {
        trailers
            .split("grpc-status:")
            .nth(1)
            .map(|s| s.trim().chars().take_while(char::is_ascii_digit).collect())
            .unwrap_or_default()
    });
    assert_eq!(status, "3", "INVALID_ARGUMENT: {:?} {trailers}", response.headers);
}

#[tokio::test]
async fn identity_throttles_guessing_behind_the_gateway_by_the_address_the_gateway_saw() {
    use festival_proto::identity::v1 as pb;
    let strict = festival_platform::throttle::Policy {
        free_attempts: 3,
        first_lock_secs: 2,
        max_lock_secs: 60,
        window_secs: 3600,
    };
    let env = spawn_configured(
        |identity| {
            identity.login_throttle.address = strict;
            identity.common.grpc.trusted_proxy_hops = 1; // the gateway
        },
        |gateway| gateway.rate_limit.enabled = false, // identity's own throttle, alone
    )
    .await;
    let email = format!("victim-{}@example.org", env.identity.name);
    let r = post_json(&env, "/v1/auth/register", &json!({"email": email, "password": PASSWORD}), &[]).await;
    assert_eq!(r.status, 200);

    // A guesser over gRPC through the gateway, writing a new X-Forwarded-For each time.
    let mut grpc = pb::identity_service_client::IdentityServiceClient::connect(env.url("")).await.expect("h2c");
    for i in 0..4 {
        let mut request = tonic::Request::new(pb::LoginRequest {
            email: format!("guess-{i}@example.org"),
            password: "not the password at all".into(),
            ..Default::default()
        });
        request.metadata_mut().insert("x-forwarded-for", format!("192.0.2.{i}").parse().expect("value"));
        let refused = grpc.login(request).await.expect_err("wrong password");
        assert_eq!(festival_platform::error::reason(&refused).as_deref(), Some("ERR_2001"));
    }

    // Its address is locked, whatever it writes, on REST and gRPC alike.
    let rest = post_json(
        &env,
        "/v1/auth/login",
        &json!({"email": email, "password": PASSWORD}),
        &[("X-Forwarded-For", "198.51.100.99")],
    )
    .await;
    assert_eq!((rest.status, rest.code()), (429, "ERR_2008".to_owned()));
    assert_eq!(rest.header("retry-after"), Some("2"));
    assert_eq!(rest.json()["details"]["metadata"]["retry_after_secs"], "2");
    let refused = grpc
        .login(pb::LoginRequest { email: email.clone(), password: PASSWORD.into(), ..Default::default() })
        .await
        .expect_err("locked address");
    assert_eq!(festival_platform::error::reason(&refused).as_deref(), Some("ERR_2008"));
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
}
