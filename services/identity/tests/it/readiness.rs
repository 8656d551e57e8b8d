use std::time::Duration;

use festival_identity::Identity;
use festival_testkit::{NatsServer, TestApp, eventually};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn status(client: &mut HealthClient<tonic::transport::Channel>, service: &str) -> Option<ServingStatus> {
    let response = client.check(HealthCheckRequest { service: service.into() }).await.ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

#[tokio::test]
async fn health_says_not_serving_until_nats_is_reachable_then_serving() {
    let mut nats = NatsServer::reserve();
    let url = nats.url();
    let app = TestApp::<Identity>::spawn_with(|c| c.common.nats.url = url).await;
    let mut health = HealthClient::new(app.channel.clone());

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(&mut health, "").await, Some(ServingStatus::NotServing));
    assert_eq!(status(&mut health, "festival.identity.v1.IdentityService").await, Some(ServingStatus::NotServing));

    nats.start().await;
    let serving = eventually(Duration::from_secs(20), || {
        let mut health = health.clone();
        async move { status(&mut health, "festival.identity.v1.IdentityService").await == Some(ServingStatus::Serving) }
    })
    .await;
    assert!(serving, "SERVING once PostgreSQL and NATS both answer");

    // NATS going away flips it back.
    nats.stop().await;
    let not_serving = eventually(Duration::from_secs(20), || {
        let mut health = health.clone();
        async move { status(&mut health, "").await == Some(ServingStatus::NotServing) }
    })
    .await;
    assert!(not_serving, "NOT_SERVING while NATS is unreachable");
    app.stop().await;
}

#[tokio::test]
async fn health_flips_when_postgresql_goes_away_and_comes_back() {
    let target = {
        let url = festival_testkit::database_base_url();
        let authority = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, r)| r);
        host_port.split('/').next().unwrap_or(host_port).to_owned()
    };
    let proxy = festival_testkit::TcpProxy::start(&target).await;
    let app = TestApp::<Identity>::spawn_with(|c| {
        let through = proxy.url_through(c.common.database.url.expose());
        c.common.database.url = festival_platform::config::Secret::new(through);
        c.common.database.acquire_timeout_ms = 500;
    })
    .await;
    let health = HealthClient::new(app.channel.clone());
    let reaches = |want: ServingStatus| {
        let health = health.clone();
        eventually(Duration::from_secs(20), move || {
            let mut health = health.clone();
            async move { status(&mut health, "festival.identity.v1.IdentityService").await == Some(want) }
        })
    };
    assert!(reaches(ServingStatus::Serving).await, "SERVING with its database");
    proxy.cut();
    assert!(reaches(ServingStatus::NotServing).await, "NOT_SERVING while PostgreSQL is unreachable");
    proxy.restore().await;
    assert!(reaches(ServingStatus::Serving).await, "SERVING again once PostgreSQL is back");
    app.stop().await;
}

#[tokio::test]
async fn a_draining_service_reports_not_serving_and_finishes() {
    let app = TestApp::<Identity>::spawn_with(|c| c.common.grpc.drain_grace_ms = 300).await;
    let mut health = HealthClient::new(app.channel.clone());
    let serving = eventually(Duration::from_secs(10), || {
        let mut health = health.clone();
        async move { status(&mut health, "").await == Some(ServingStatus::Serving) }
    })
    .await;
    assert!(serving);
    app.assert_outbox_drained().await;
    // Shut down through a clone of the token so the app value stays usable.
    let pool = app.pool.clone();
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status(&mut health, "").await, Some(ServingStatus::NotServing), "drain starts by flipping health");
    stopping.await.expect("stops cleanly");
    assert!(festival_platform::db::ping(&pool).await, "the database outlives the service");
}

#[tokio::test]
async fn metrics_count_calls_by_method_and_code() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::<Identity>::spawn_with(|c| {
        c.common.metrics.enabled = true;
        c.common.metrics.listen = "127.0.0.1:0".parse().expect("addr");
    })
    .await;
    let mut client = crate::helpers::client(&app);
    let _ = client.login(festival_proto::identity::v1::LoginRequest::default()).await;
    client.get_jwks(festival_proto::identity::v1::GetJwksRequest {}).await.expect("jwks");
    // Made-up methods are counted, under one label: random paths cannot grow the label set.
    for path in ["/festival.identity.v1.IdentityService/NoSuchMethod", "/made.Up/Method1", "/made.Up/Method2"] {
        let refused = festival_testkit::raw::raw_unary(app.channel.clone(), path, Vec::new()).await;
        assert_eq!(refused.expect_err("no such method").code(), tonic::Code::Unimplemented);
    }

    let addr = app.metrics_addr.expect("metrics enabled");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").await.expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    assert!(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"), "{body:.200}");
    let login_line = body
        .lines()
        .find(|l| l.starts_with("festival_grpc_requests_total") && l.contains("Login") && l.contains("code=\"3\""))
        .unwrap_or_else(|| panic!("no counter for the refused login in:\n{body}"));
    assert!(login_line.ends_with(" 1"), "{login_line}");
    assert!(body.contains("festival_grpc_request_duration_seconds"), "latency histogram exported");
    assert!(!body.contains("NoSuchMethod") && !body.contains("made.Up"), "raw paths never become labels:\n{body}");
    let unknown = body
        .lines()
        .find(|l| l.starts_with("festival_grpc_requests_total") && l.contains("method=\"unknown\""))
        .unwrap_or_else(|| panic!("no counter for unknown methods in:\n{body}"));
    assert!(unknown.ends_with(" 3"), "{unknown}");
}

#[tokio::test]
async fn a_call_in_flight_when_the_service_is_told_to_stop_still_gets_its_answer() {
    let app = TestApp::<Identity>::spawn_with(|c| c.common.grpc.drain_grace_ms = 1_000).await;
    let mut c = crate::helpers::client(&app);
    let (_, tokens) = crate::helpers::signed_in(&mut c).await;
    let health = HealthClient::new(app.channel.clone());

    // Hold the refresh token's row, so the Refresh call waits inside the server.
    let mut blocker = app.pool.begin().await.expect("tx");
    sqlx::query("select 1 from refresh_tokens for update").execute(&mut *blocker).await.expect("lock");
    let refresh = festival_proto::identity::v1::RefreshRequest { refresh_token: tokens.refresh_token.clone() };
    let call = tokio::spawn(async move { c.refresh(refresh).await });
    let pool = app.pool.clone();
    let waiting = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .is_ok_and(|n| n > 0)
    })
    .await;
    assert!(waiting, "the Refresh call is in flight, waiting for the row");

    let addr = app.addr;
    let stopping = tokio::spawn(app.stop());
    let draining = eventually(Duration::from_secs(10), || {
        let mut health = health.clone();
        async move { status(&mut health, "").await == Some(ServingStatus::NotServing) }
    })
    .await;
    assert!(draining, "the drain has started");
    // Past the grace period the listener closes: the call is still waiting for its row.
    let closed =
        eventually(Duration::from_secs(10), || async { tokio::net::TcpStream::connect(addr).await.is_err() }).await;
    assert!(closed, "the service stopped accepting connections");
    assert!(!call.is_finished(), "the call is still in flight");
    blocker.commit().await.expect("release the row");

    let answer = call.await.expect("task").expect("the in-flight call is answered, not cut off").into_inner();
    assert_ne!(answer.refresh_token, tokens.refresh_token, "and it did its work: the token rotated");
    stopping.await.expect("stops cleanly once the call is done");
}
