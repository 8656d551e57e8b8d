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
}
