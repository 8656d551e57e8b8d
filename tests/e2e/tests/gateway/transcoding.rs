//! Every mapping rule and every bad input, on the test-only TranscodingTestService.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn path_variables_nested_fields_and_repeated_query_parameters_bind() {
    let env = spawn().await;
    let q = "tags=a&tags=b%20c&bigNumber=9007199254740993&kind=KIND_POEM&at=2026-07-01T20:00:00Z&wait=1.5s&maybe=7\
             &flag=true&numbers=1&numbers=2&shelf.theme=jazz&blob=aGk%3D&ratio=0.25&book.title=Dune&book_id=ignored";
    let r = get(&env, &format!("/v1/test/shelves/s%201/books/b2?{q}")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let echo = &r.json()["echo"];
    assert_eq!(echo["shelf"], json!({"id": "s 1", "theme": "jazz"}), "nested path field + nested query field");
    assert_eq!(echo["bookId"], "b2", "path wins over the query");
    assert_eq!(echo["tags"], json!(["a", "b c"]));
    assert_eq!(echo["bigNumber"], "9007199254740993", "int64 as a string, exactly");
    assert_eq!(echo["kind"], "KIND_POEM");
    assert_eq!(echo["at"], "2026-07-01T20:00:00Z");
    assert_eq!(echo["wait"], "1.500s");
    assert_eq!(echo["maybe"], 7, "wrapper");
    assert_eq!(echo["flag"], true);
    assert_eq!(echo["numbers"], json!([1, 2]));
    assert_eq!(echo["blob"], "aGk=", "bytes base64");
    assert_eq!(echo["ratio"], 0.25);
    assert_eq!(echo["book"]["title"], "Dune");
    assert_eq!(echo["maybe"], 7);
}

#[tokio::test]
async fn body_star_accepts_camel_case_and_original_names_and_well_known_types() {
    let env = spawn().await;
    let body = json!({
        "book_id": "b1",
        "bigNumber": "-12",
        "kind": 1,
        "extra": {"stage": "main", "capacity": 40000, "open": true, "acts": ["a", "b"]},
        "maybe": null,
        "at": "2026-07-01T22:30:00.5+02:00",
        "book": {"title": "Ulysses", "pages": 730, "kind": "KIND_NOVEL"}
    });
    let r = post_json(&env, "/v1/test/echo", &body, &[]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let echo = &r.json()["echo"];
    assert_eq!(echo["bookId"], "b1");
    assert_eq!(echo["bigNumber"], "-12");
    assert_eq!(echo["kind"], "KIND_NOVEL", "enum numbers accepted, names emitted");
    assert_eq!(echo["extra"], json!({"stage": "main", "capacity": 40000.0, "open": true, "acts": ["a", "b"]}));
    assert_eq!(echo["at"], "2026-07-01T20:30:00.500Z", "normalised to UTC");
    assert_eq!(echo["book"]["pages"], 730);
    assert_eq!(echo["tags"], json!([]), "defaults are emitted");
}

#[tokio::test]
async fn body_field_additional_bindings_multi_segment_variables_and_response_body() {
    let env = spawn().await;
    let r = http(
        env.gateway.addr,
        "PUT",
        "/v1/test/shelves/1/books/a/b?tags=x",
        &[("Content-Type", "application/json")],
        r#"{"title":"Solaris"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let echo = &r.json()["echo"];
    assert_eq!(echo["name"], "shelves/1/books/a/b");
    assert_eq!(echo["book"]["title"], "Solaris", "body: \"book\"");
    assert_eq!(echo["tags"], json!(["x"]), "the rest from the query");

    let touched = http(env.gateway.addr, "PATCH", "/v1/test/books/42:touch", &[], r#"{"pages":12}"#).await;
    assert_eq!(touched.status, 200);
    let body = touched.json();
    assert_eq!(body["bookId"], "42", "response_body: the echo itself is the body");
    assert_eq!(body["book"]["pages"], 12);
}

#[tokio::test]
async fn bad_input_gets_err_1000_naming_the_field_never_a_500() {
    let env = spawn().await;
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        ("POST", "/v1/test/echo", "{not json", "body"),
        ("POST", "/v1/test/echo", "[1,2]", "body"),
        ("POST", "/v1/test/echo", r#"{"bigNumber": true}"#, "bigNumber"),
        ("POST", "/v1/test/echo", r#"{"nope": 1}"#, "nope"),
        ("POST", "/v1/test/echo", r#"{"kind": "KIND_SONG"}"#, "kind"),
        ("POST", "/v1/test/echo", r#"{"at": "yesterday"}"#, "at"),
        ("POST", "/v1/test/echo", r#"{"book": {"pages": "many"}}"#, "pages"),
        // null is not "the default" for a field the schema types (wrappers and Value take it).
        ("POST", "/v1/test/echo", r#"{"bookId": null}"#, "bookId"),
        ("POST", "/v1/test/echo", r#"{"book": {"title": null}}"#, "book.title"),
        ("POST", "/v1/test/echo", r#"{"tags": ["a", null]}"#, "tags"),
        ("GET", "/v1/test/shelves/s1/books/b1?unknown=1", "", "unknown"),
        ("GET", "/v1/test/shelves/s1/books/b1?flag=maybe", "", "flag"),
        ("GET", "/v1/test/shelves/s1/books/b1?numbers=x", "", "numbers"),
        ("GET", "/v1/test/shelves/s1/books/b1?kind=1", "", "kind"),
        ("GET", "/v1/test/shelves/s1/books/b1?kind=KIND_SONG", "", "kind"),
        ("GET", "/v1/test/shelves//books/b1", "", "shelf.id"),
    ];
    for (method, path, body, field) in cases {
        let r = http(env.gateway.addr, method, path, &[("Content-Type", "application/json")], body).await;
        assert_eq!(r.status, 400, "{method} {path} {body}: {}", String::from_utf8_lossy(&r.body));
        let json = r.json();
        assert_eq!(json["code"], "ERR_1000", "{path} {body}");
        let named = json["details"]["fieldViolations"][0]["field"].as_str().unwrap_or_default().to_owned();
        assert!(named.contains(field), "{path} {body}: field {named:?}, expected {field:?}: {json}");
        assert!(json["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    }
}

#[tokio::test]
async fn routes_methods_limits_and_upstream_errors_map_to_catalogued_http_errors() {
    let env = spawn_with(|c| c.limits.max_body_bytes = 1024).await;
    let missing = get(&env, "/v1/nowhere").await;
    assert_eq!((missing.status, missing.code()), (404, "ERR_4000".to_owned()));
    let wrong_method = http(env.gateway.addr, "DELETE", "/v1/test/echo", &[], "").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    let huge = post_json(&env, "/v1/test/echo", &json!({"name": "x".repeat(4096)}), &[]).await;
    assert_eq!((huge.status, huge.code()), (413, "ERR_1011".to_owned()));
    let sold_out = post_json(&env, "/v1/test/fail", &json!({"code": "ERR_6002"}), &[]).await;
    assert_eq!((sold_out.status, sold_out.code()), (409, "ERR_6002".to_owned()));
    assert_eq!(sold_out.json()["details"]["fieldViolations"][0]["field"], "code");

    let down = spawn_with(|c| {
        c.upstreams.insert("testing".into(), "http://127.0.0.1:1".into());
    })
    .await;
    let r = post_json(&down, "/v1/test/echo", &json!({}), &[]).await;
    assert_eq!((r.status, r.code()), (503, "ERR_1010".to_owned()));
}

#[tokio::test]
async fn metadata_reaches_the_upstream_with_a_deadline_and_the_trace() {
    let env = spawn().await;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = post_json(
        &env,
        "/v1/test/echo",
        &json!({}),
        &[("Authorization", "Bearer partner-token"), ("traceparent", traceparent), ("X-Request-Id", "abc")],
    )
    .await;
    let metadata = &r.json()["metadata"];
    assert_eq!(metadata["authorization"], "Bearer partner-token");
    assert_eq!(metadata["x-request-id"], "abc");
    assert!(
        metadata["traceparent"].as_str().is_some_and(|t| t.contains("0af7651916cd43dd8448eb211c80319c")),
        "{metadata}"
    );
    assert!(metadata["grpc-timeout"].as_str().is_some(), "the REST deadline travels as grpc-timeout: {metadata}");
}

#[tokio::test]
async fn the_rate_limit_answers_429_after_the_budget_and_recovers() {
    let env = spawn_with(|c| {
        c.rate_limit.window_secs = 2;
        c.rate_limit.routes.insert("POST /v1/test/echo".into(), 3);
    })
    .await;
    // The gateway's clock is manual: the window cannot roll over between these calls.
    for _ in 0..3 {
        assert_eq!(post_json(&env, "/v1/test/echo", &json!({}), &[]).await.status, 200);
    }
    let limited = post_json(&env, "/v1/test/echo", &json!({}), &[]).await;
    assert_eq!((limited.status, limited.code()), (429, "ERR_1008".to_owned()));
    let retry_after: u64 = limited.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=2).contains(&retry_after));
    assert_eq!(get(&env, "/v1/test/shelves/a/books/b").await.status, 200, "other routes have their own budget");
    env.clock.advance(std::time::Duration::from_secs(retry_after));
    assert_eq!(post_json(&env, "/v1/test/echo", &json!({}), &[]).await.status, 200, "recovers in the next window");
}

#[tokio::test]
async fn an_http_body_response_is_sent_raw_with_its_own_content_type() {
    let env = spawn().await;
    let r = get(&env, "/v1/test/files/line-up.ics?contentType=text%2Fcalendar%3B%20charset%3Dutf-8").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("text/calendar; charset=utf-8"));
    assert_eq!(r.body, b"BEGIN:VCALENDAR\r\nX-NAME:line-up.ics\r\nEND:VCALENDAR\r\n");
    let untyped = get(&env, "/v1/test/files/blob").await;
    assert_eq!(untyped.header("content-type"), Some("application/octet-stream"), "a missing type is not guessed");
    // Cache headers the service set come through; other metadata does not.
    assert_eq!(r.header("etag"), Some("W/\"v1-line-up.ics\""));
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
    assert_eq!(r.header("x-internal-detail"), None);
    // A client holding the current copy gets 304 and no body.
    let path = "/v1/test/files/line-up.ics";
    let same = http(env.gateway.addr, "GET", path, &[("If-None-Match", "\"v0-old\", \"v1-line-up.ics\"")], "").await;
    assert_eq!((same.status, same.body.len()), (304, 0));
    assert_eq!(same.header("etag"), Some("W/\"v1-line-up.ics\""));
    let stale = http(env.gateway.addr, "GET", path, &[("If-None-Match", "\"v0-old\"")], "").await;
    assert_eq!(stale.status, 200);

    let spec = get(&env, "/openapi.json").await.json();
    let content = &spec["paths"]["/v1/test/files/{name}"]["get"]["responses"]["200"]["content"];
    assert!(content.get("*/*").is_some(), "documented as a raw body: {content}");
}

#[tokio::test]
async fn made_up_tokens_do_not_buy_a_fresh_budget_but_a_real_one_is_its_own_client() {
    use festival_proto::identity::v1 as idpb;
    let env = spawn_with(|c| {
        c.rate_limit.routes.insert("POST /v1/test/echo".into(), 3);
    })
    .await;
    let mut identity = idpb::identity_service_client::IdentityServiceClient::new(env.identity.channel.clone());
    let email = format!("{}@example.org", festival_testkit::unique_name());
    let password = "correct horse battery staple".to_owned();
    identity
        .register(idpb::RegisterRequest { email: email.clone(), password: password.clone(), ..Default::default() })
        .await
        .expect("register");
    let real = identity
        .login(idpb::LoginRequest { email, password, ..Default::default() })
        .await
        .expect("login")
        .into_inner()
        .access_token;

    // Each call with another made-up token: they all count against this address.
    for i in 0..3 {
        let bearer = format!("Bearer made.up.{i}");
        let r = post_json(&env, "/v1/test/echo", &json!({}), &[("Authorization", bearer.as_str())]).await;
        assert_eq!(r.status, 200, "call {i}");
    }
    let limited = post_json(&env, "/v1/test/echo", &json!({}), &[("Authorization", "Bearer made.up.99")]).await;
    assert_eq!(
        (limited.status, limited.code()),
        (429, "ERR_1008".to_owned()),
        "a fourth made-up token is the same client"
    );
    let anonymous = post_json(&env, "/v1/test/echo", &json!({}), &[]).await;
    assert_eq!(anonymous.status, 429, "and so is no token at all");
    // A token identity signed is an account, with a budget of its own.
    let bearer = format!("Bearer {real}");
    let own = post_json(&env, "/v1/test/echo", &json!({}), &[("Authorization", bearer.as_str())]).await;
    assert_eq!(own.status, 200, "{}", String::from_utf8_lossy(&own.body));
}
