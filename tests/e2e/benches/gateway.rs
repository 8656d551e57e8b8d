//! `scripts/bench gateway`: the same unary call (identity's GetJwks) made directly over
//! gRPC, through the gateway's REST, and through the gateway's gRPC-web, at concurrency
//! 32 on keep-alive connections. Prints p50, p99 and requests/s side by side.

use std::time::{Duration, Instant};

use festival_identity::Identity;
use festival_proto::identity::v1 as pb;
use festival_proto::identity::v1::identity_service_client::IdentityServiceClient;
use festival_testkit::TestApp;
use festival_testkit::http1::Conn;
use prost::Message;

const CONCURRENCY: usize = 32;
const DURATION: Duration = Duration::from_secs(8);

async fn measure<F, Fut>(concurrency: usize, make: F) -> (Vec<Duration>, Duration)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<
            Output = Box<dyn FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>,
        >,
{
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let mut call = make().await;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < DURATION {
                let t = Instant::now();
                call().await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    all.sort();
    (all, elapsed)
}

/// Measures one pre-encoded request replayed on `concurrency` keep-alive HTTP/1.1 connections.
async fn over_http1(concurrency: usize, gw: std::net::SocketAddr, request: Vec<u8>) -> (Vec<Duration>, Duration) {
    measure(concurrency, || {
        let req = request.clone();
        async move {
            let conn = std::sync::Arc::new(tokio::sync::Mutex::new(Conn::open(gw).await));
            Box::new(move || {
                let (conn, req) = (conn.clone(), req.clone());
                Box::pin(async move {
                    assert_eq!(conn.lock().await.roundtrip(&req).await, 200);
                }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
            }) as Box<dyn FnMut() -> _ + Send>
        }
    })
    .await
}

fn row(name: &str, concurrency: usize, (lat, elapsed): &(Vec<Duration>, Duration)) {
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e3;
    println!(
        "| {name} | {concurrency} | {:.3} ms | {:.3} ms | {:.0} |",
        p(0.5),
        p(0.99),
        lat.len() as f64 / elapsed.as_secs_f64()
    );
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let identity = TestApp::<Identity>::spawn().await;
        let mut config = festival_gateway::Config { listen: "127.0.0.1:0".parse()?, ..Default::default() };
        config.upstreams.clear();
        config.upstreams.insert("identity".into(), format!("http://{}", identity.addr));
        config.rate_limit.enabled = false;
        config.redis.url = festival_testkit::redis_url();
        let gateway = festival_gateway::start(config).await?;
        let gw = gateway.addr;

        let payload = pb::GetJwksRequest {}.encode_to_vec();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        let mut web_request = format!(
            "POST /festival.identity.v1.IdentityService/GetJwks HTTP/1.1\r\nHost: {gw}\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\n\r\n",
            frame.len()
        )
        .into_bytes();
        web_request.extend_from_slice(&frame);
        let rest_request = format!("GET /.well-known/jwks.json HTTP/1.1\r\nHost: {gw}\r\n\r\n").into_bytes();

        println!("\n### gateway benchmark: identity GetJwks, {} s per row; load generator, gateway, identity and PostgreSQL share {} cores\n", DURATION.as_secs(), std::thread::available_parallelism().map_or(0, |n| n.get()));
        println!("| path | concurrency | p50 | p99 | requests/s |");
        println!("|---|---|---|---|---|");
        for concurrency in [CONCURRENCY, 1] {
            let channel = identity.channel.clone();
            let direct = measure(concurrency, || {
                let client = IdentityServiceClient::new(channel.clone());
                async move {
                    Box::new(move || {
                        let mut c = client.clone();
                        Box::pin(async move {
                            c.get_jwks(pb::GetJwksRequest {}).await.expect("direct call");
                        }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
                    }) as Box<dyn FnMut() -> _ + Send>
                }
            })
            .await;
            let rest = over_http1(concurrency, gw, rest_request.clone()).await;
            let web = over_http1(concurrency, gw, web_request.clone()).await;
            row("direct gRPC (tonic, h2)", concurrency, &direct);
            row("gateway REST/JSON (HTTP/1.1 keep-alive)", concurrency, &rest);
            row("gateway gRPC-web (HTTP/1.1 keep-alive)", concurrency, &web);
            let p50 = |m: &(Vec<Duration>, Duration)| m.0[m.0.len() / 2].as_secs_f64() * 1e3;
            println!(
                "| added p50 at concurrency {concurrency} | | REST {:+.3} ms | gRPC-web {:+.3} ms | |",
                p50(&rest) - p50(&direct),
                p50(&web) - p50(&direct)
            );
        }
        gateway.shutdown.cancel();
        identity.stop().await;
        anyhow::Ok(())
    })
}
