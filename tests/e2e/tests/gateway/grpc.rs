//! One address serves all: plain gRPC and gRPC-web pass through to the owning service.

use base64::Engine;
use festival_proto::identity::v1 as pb;
use festival_proto::identity::v1::identity_service_client::IdentityServiceClient;
use prost::Message;

use crate::helpers::*;

#[tokio::test]
async fn plain_grpc_clients_reach_identity_through_the_gateway() {
    let env = spawn().await;
    let mut client = IdentityServiceClient::connect(env.url("")).await.expect("h2c to the gateway");
    let email = format!("grpc-{}@example.org", env.identity.name);
    client
        .register(pb::RegisterRequest {
            email: email.clone(),
            password: "correct horse battery staple".into(),
            ..Default::default()
        })
        .await
        .expect("register through the gateway");
    let tokens = client
        .login(pb::LoginRequest { email, password: "correct horse battery staple".into(), ..Default::default() })
        .await
        .expect("login")
        .into_inner();
    let mut request = tonic::Request::new(pb::GetMeRequest {});
    request.metadata_mut().insert("authorization", format!("Bearer {}", tokens.access_token).parse().expect("header"));
    client.get_me(request).await.expect("me");
    let refused = client.get_me(pb::GetMeRequest {}).await.expect_err("no token");
    assert_eq!(festival_platform::error::reason(&refused).as_deref(), Some("ERR_2000"), "rich errors pass through");
}

fn grpc_web_frame(message: &impl Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

#[tokio::test]
async fn grpc_web_binary_and_text_calls_are_translated() {
    let env = spawn().await;
    let frame = grpc_web_frame(&pb::GetJwksRequest {});

    // Binary: the body is raw frames.
    let mut stream = tokio::net::TcpStream::connect(env.gateway.addr).await.expect("connect");
    let head = format!(
        "POST /festival.identity.v1.IdentityService/GetJwks HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\n\r\n",
        frame.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, &[head.as_bytes(), &frame].concat()).await.expect("send");
    let mut raw = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut raw).await.expect("read");
    let response = parse_response(&raw);
    assert_eq!(response.status, 200);
    assert!(response.header("content-type").is_some_and(|c| c.starts_with("application/grpc-web")));
    let body = response.body;
    assert_eq!(body[0], 0, "first frame is the message");
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let jwks = pb::Jwks::decode(&body[5..5 + len]).expect("Jwks message");
    assert_eq!(jwks.keys.len(), 1);
    let trailers = String::from_utf8_lossy(&body[5 + len + 5..]).to_lowercase();
    assert_eq!(body[5 + len], 0x80, "then the trailer frame");
    assert!(trailers.contains("grpc-status:0"), "{trailers}");

    // Text: the same frames, base64.
    let text = base64::engine::general_purpose::STANDARD.encode(&frame);
    let r = http(
        env.gateway.addr,
        "POST",
        "/festival.identity.v1.IdentityService/GetJwks",
        &[("Content-Type", "application/grpc-web-text"), ("Accept", "application/grpc-web-text")],
        &text,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!r.body.is_empty(), "{:?}", r.headers);
    // Each frame is base64-encoded on its own, so padded chunks follow one another.
    let text = String::from_utf8_lossy(&r.body).trim().to_owned();
    let mut decoded = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let end = rest.find('=').map(|i| i + rest[i..].chars().take_while(|c| *c == '=').count()).unwrap_or(rest.len());
        decoded.extend(base64::engine::general_purpose::STANDARD.decode(&rest[..end]).expect("base64 chunk"));
        rest = &rest[end..];
    }
    assert_eq!(decoded[0], 0, "text responses are base64 frames: {text}");
    let len = u32::from_be_bytes([decoded[1], decoded[2], decoded[3], decoded[4]]) as usize;
    assert_eq!(pb::Jwks::decode(&decoded[5..5 + len]).expect("Jwks").keys.len(), 1);
    assert!(String::from_utf8_lossy(&decoded[5 + len..]).contains("grpc-status:0"));
}

#[tokio::test]
async fn the_gateway_refuses_grpc_methods_no_upstream_declares() {
    let env = spawn().await;
    let channel = tonic::transport::Endpoint::from_shared(env.url("")).expect("url").connect().await.expect("h2c");
    for path in ["/festival.identity.v1.IdentityService/NoSuchMethod", "/festival.identity.v1.IdentityService/x1"] {
        let refused =
            festival_testkit::raw::raw_unary(channel.clone(), path, Vec::new()).await.expect_err("no such method");
        assert_eq!(refused.code(), tonic::Code::NotFound, "{path}: {refused:?}");
        assert_eq!(festival_platform::error::reason(&refused).as_deref(), Some("ERR_4000"));
    }
    // A declared method still passes through.
    let jwks = festival_testkit::raw::raw_unary(channel, "/festival.identity.v1.IdentityService/GetJwks", Vec::new())
        .await
        .expect("a real method");
    assert!(!jwks.is_empty());
}

/// A binary gRPC-web call over HTTP/1.1: the response and its one message, if any.
async fn grpc_web(
    env: &Env,
    method: &str,
    message: &impl Message,
    headers: &[(&str, &str)],
) -> (HttpResponse, Option<Vec<u8>>) {
    let frame = grpc_web_frame(message);
    let mut head = format!(
        "POST /festival.identity.v1.IdentityService/{method} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\n",
        frame.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(env.gateway.addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, &[head.as_bytes(), &frame].concat()).await.expect("send");
    let mut raw = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut raw).await.expect("read");
    let response = parse_response(&raw);
    let message = (response.body.first() == Some(&0)).then(|| {
        let len = u32::from_be_bytes([response.body[1], response.body[2], response.body[3], response.body[4]]) as usize;
        response.body[5..5 + len].to_vec()
    });
    (response, message)
}

/// The catalogued code of a trailers-only gRPC-web refusal.
fn reason_of(response: &HttpResponse) -> Option<String> {
    let mut headers = tonic::codegen::http::HeaderMap::new();
    for (name, value) in &response.headers {
        if let (Ok(name), Ok(value)) = (
            tonic::codegen::http::HeaderName::from_bytes(name.as_bytes()),
            tonic::codegen::http::HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    festival_platform::error::reason(&tonic::Status::from_header_map(&headers)?)
}

fn cookie_of<'a>(response: &'a HttpResponse, name: &str) -> Option<&'a str> {
    response
        .headers_named("set-cookie")
        .into_iter()
        .find_map(|c| c.strip_prefix(&format!("{name}="))?.split(';').next())
}

#[tokio::test]
async fn browsers_on_grpc_web_get_cookies_and_never_a_token_in_the_message() {
    let env = spawn().await;
    let email = format!("web-{}@example.org", env.identity.name);
    let password = "correct horse battery staple".to_owned();
    let origin = ("Origin", "http://localhost:3000");
    let register = pb::RegisterRequest { email: email.clone(), password: password.clone(), ..Default::default() };
    let (registered, _) = grpc_web(&env, "Register", &register, &[origin]).await;
    assert_eq!(registered.status, 200);
    // Another site's page cannot sign this browser in (login CSRF).
    let login = pb::LoginRequest { email: email.clone(), password: password.clone(), ..Default::default() };
    let (refused, message) = grpc_web(&env, "Login", &login, &[("Origin", "https://evil.example")]).await;
    assert_eq!((message, reason_of(&refused).as_deref()), (None, Some("ERR_3001")));
    assert_eq!(refused.headers_named("set-cookie"), Vec::<&str>::new());

    let (login, message) = grpc_web(
        &env,
        "Login",
        &pb::LoginRequest { email: email.clone(), password: password.clone(), ..Default::default() },
        &[origin],
    )
    .await;
    let pair = pb::TokenPair::decode(message.expect("a message").as_slice()).expect("TokenPair");
    assert_eq!((pair.access_token.as_str(), pair.refresh_token.as_str()), ("", ""), "no token for script");
    assert_eq!(pair.user.expect("user").email, email);
    let at = cookie_of(&login, "__Host-festival_at").expect("access cookie").to_owned();
    let rt = cookie_of(&login, "__Host-festival_rt").expect("refresh cookie").to_owned();
    assert!(login.headers_named("set-cookie").iter().all(|c| c.contains("HttpOnly") && c.contains("SameSite=Strict")));

    // The access cookie authenticates gRPC-web calls; Refresh reads the refresh cookie.
    let (me, message) =
        grpc_web(&env, "GetMe", &pb::GetMeRequest {}, &[origin, ("Cookie", &format!("__Host-festival_at={at}"))]).await;
    assert_eq!(me.status, 200);
    assert_eq!(pb::User::decode(message.expect("user").as_slice()).expect("User").email, email);
    let jar = format!("__Host-festival_rt={rt}");
    let (refreshed, message) =
        grpc_web(&env, "Refresh", &pb::RefreshRequest::default(), &[origin, ("Cookie", &jar)]).await;
    let pair = pb::TokenPair::decode(message.expect("a message").as_slice()).expect("TokenPair");
    assert_eq!((pair.access_token.as_str(), pair.refresh_token.as_str()), ("", ""));
    let new_rt = cookie_of(&refreshed, "__Host-festival_rt").expect("rotated").to_owned();
    assert_ne!(new_rt, rt);
    let (replayed, message) =
        grpc_web(&env, "Refresh", &pb::RefreshRequest::default(), &[origin, ("Cookie", &jar)]).await;
    assert_eq!(message, None, "a refusal carries no message");
    assert_eq!(reason_of(&replayed).as_deref(), Some("ERR_2004"), "{replayed:?}");
    assert_eq!(replayed.headers_named("set-cookie"), Vec::<&str>::new());

    // Logout ends the session and clears both cookies.
    let jar = format!("__Host-festival_rt={new_rt}");
    let (out, _) = grpc_web(&env, "Logout", &pb::LogoutRequest::default(), &[origin, ("Cookie", &jar)]).await;
    assert_eq!(out.status, 200);
    let cleared = out.headers_named("set-cookie");
    assert!(cleared.iter().any(|c| c.starts_with("__Host-festival_rt=;") && c.contains("Max-Age=0")), "{cleared:?}");
    let (_, message) = grpc_web(&env, "Refresh", &pb::RefreshRequest::default(), &[origin, ("Cookie", &jar)]).await;
    assert_eq!(message, None, "the session ended");

    // Without a browser's headers (a partner's gRPC-web client): tokens in the message, no cookies.
    let (partner, message) =
        grpc_web(&env, "Login", &pb::LoginRequest { email, password, ..Default::default() }, &[]).await;
    let pair = pb::TokenPair::decode(message.expect("a message").as_slice()).expect("TokenPair");
    assert!(!pair.access_token.is_empty() && !pair.refresh_token.is_empty());
    assert_eq!(partner.headers_named("set-cookie"), Vec::<&str>::new());
}
