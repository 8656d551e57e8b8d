//! `scripts/bench program`: the public timetable of a festival with 20 stages and 600
//! performances read through the gateway's REST (whole, one day, artist search, and as
//! iCalendar; p50, p99, requests/s at concurrency 8),
//! and conflict detection time for 5,000 and 50,000 performances (the sweep is
//! O(n log n + k); the table shows how it scales).

use std::time::{Duration, Instant};

use festival_identity::Identity;
use festival_program::Program;
use festival_program::domain::conflicts::{self, Rules, Slot};
use festival_proto::identity::v1 as idpb;
use festival_proto::identity::v1::identity_service_client::IdentityServiceClient;
use festival_proto::program::v1 as pb;
use festival_proto::program::v1::program_service_client::ProgramServiceClient;
use festival_testkit::TestApp;
use festival_testkit::http1::Conn;
use rand::Rng;

const CONCURRENCY: usize = 8;
const DURATION: Duration = Duration::from_secs(6);

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    request
}

fn ts(secs: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: secs, nanos: 0 }
}

fn detection_ms(n: usize) -> (f64, usize) {
    let mut rng = rand::thread_rng();
    let stages = (n / 50).max(1) as u32;
    let slots: Vec<Slot<u32>> = (0..n as u32)
        .map(|id| {
            let start = rng.gen_range(0..3 * 24 * 3600);
            Slot {
                id,
                stage: rng.gen_range(0..stages),
                artist: rng.gen_range(0..(n as u32 / 2).max(1)),
                start,
                end: start + rng.gen_range(1800..5400),
            }
        })
        .collect();
    let changeover = |_: u32| 20 * 60;
    let rules = Rules { changeover: &changeover, travel: 15 * 60, window: (0, 3 * 24 * 3600) };
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..15 {
        let t = Instant::now();
        found = conflicts::detect(&slots, &rules).len();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], found)
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let identity = TestApp::<Identity>::spawn().await;
        let identity_url = format!("http://{}", identity.addr);
        let program = TestApp::<Program>::spawn_with(|c| c.common.auth.identity_url = identity_url.clone()).await;
        let mut config = festival_gateway::Config { listen: "127.0.0.1:0".parse()?, ..Default::default() };
        config.upstreams.clear();
        config.upstreams.insert("identity".into(), identity_url.clone());
        config.upstreams.insert("program".into(), format!("http://{}", program.addr));
        config.rate_limit.enabled = false;
        config.redis.url = festival_testkit::redis_url();
        let gateway = festival_gateway::start(config).await?;

        let mut id = IdentityServiceClient::new(identity.channel.clone());
        let email = format!("bench-{}@example.org", identity.name);
        let password = "correct horse battery staple".to_owned();
        id.register(idpb::RegisterRequest { email: email.clone(), password: password.clone(), ..Default::default() })
            .await?;
        let token =
            id.login(idpb::LoginRequest { email, password, ..Default::default() }).await?.into_inner().access_token;

        let mut c = ProgramServiceClient::new(program.channel.clone());
        let base = 1_813_500_000; // 2027-06-20T14:00:00Z
        let festival = c
            .create_festival(authed(
                pb::CreateFestivalRequest {
                    name: "Bench Fest".into(),
                    slug: "bench-fest".into(),
                    time_zone: "Europe/Paris".into(),
                    currency: "EUR".into(),
                    start_time: Some(ts(base)),
                    end_time: Some(ts(base + 64 * 3600)),
                    ..Default::default()
                },
                &token,
            ))
            .await?
            .into_inner();
        for s in 0..20 {
            let stage = c
                .create_stage(authed(
                    pb::CreateStageRequest {
                        festival_id: festival.id.clone(),
                        name: format!("Stage {s}"),
                        capacity: 5000,
                        position: s,
                        changeover_minutes: 20,
                    },
                    &token,
                ))
                .await?
                .into_inner();
            for k in 0..30 {
                let artist = c
                    .create_artist(authed(
                        pb::CreateArtistRequest {
                            festival_id: festival.id.clone(),
                            name: format!("Act {s}-{k}"),
                            genres: vec!["rock".into()],
                            ..Default::default()
                        },
                        &token,
                    ))
                    .await?
                    .into_inner();
                let start = base + i64::from(k) * 2 * 3600;
                c.create_performance(authed(
                    pb::CreatePerformanceRequest {
                        festival_id: festival.id.clone(),
                        artist_id: artist.id,
                        stage_id: stage.id.clone(),
                        start_time: Some(ts(start)),
                        end_time: Some(ts(start + 90 * 60)),
                    },
                    &token,
                ))
                .await?;
            }
        }
        c.publish_schedule(authed(pb::PublishScheduleRequest { festival_id: festival.id.clone() }, &token)).await?;
        c.transition_festival(authed(
            pb::TransitionFestivalRequest {
                festival_id: festival.id.clone(),
                status: pb::FestivalStatus::Published as i32,
            },
            &token,
        ))
        .await?;

        let gw = gateway.addr;
        println!(
            "\n### program benchmark ({} cores shared by load generator, gateway, program, identity and PostgreSQL)\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| measurement (REST through the gateway, concurrency {CONCURRENCY}) | p50 | p99 | requests/s |");
        println!("|---|---|---|---|");
        let id = &festival.id;
        for (label, path) in [
            ("public timetable, all 600 performances", format!("/v1/festivals/{id}/schedule?pageSize=1000")),
            ("public timetable, one festival day", format!("/v1/festivals/{id}/schedule?day=2027-06-21")),
            ("public timetable, artist search", format!("/v1/festivals/{id}/schedule?artistQuery=act%2012-")),
            ("line-up as iCalendar (600 events)", format!("/v1/festivals/{id}/schedule.ics")),
            ("raw performance list (600)", format!("/v1/festivals/{id}/performances")),
        ] {
            let (p50, p99, rps) = load(gw, &path).await;
            println!("| {label} | {p50:.2} ms | {p99:.2} ms | {rps:.0} |");
        }
        println!("\n| conflict detection | time |");
        println!("|---|---|");
        for n in [5_000, 50_000] {
            let (ms, found) = detection_ms(n);
            println!("| {n} performances (median of 15) | {ms:.2} ms ({found} conflicts) |");
        }
        gateway.shutdown.cancel();
        program.stop().await;
        identity.stop().await;
        anyhow::Ok(())
    })
}

/// Closed-loop load on one path for [`DURATION`]: (p50 ms, p99 ms, requests/s).
async fn load(gw: std::net::SocketAddr, path: &str) -> (f64, f64, f64) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {gw}\r\n\r\n").into_bytes();
    let started = Instant::now();
    // Spawn every worker before waiting on any (a lazy iterator would run them one by one).
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut conn = Conn::open(gw).await;
                let mut latencies = Vec::new();
                while started.elapsed() < DURATION {
                    let t = Instant::now();
                    assert_eq!(conn.roundtrip(&request).await, 200);
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<Duration> = Vec::new();
    for w in futures_join(workers.into_iter()).await {
        all.extend(w);
    }
    let elapsed = started.elapsed();
    all.sort();
    let p = |q: f64| all[((all.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e3;
    (p(0.5), p(0.99), all.len() as f64 / elapsed.as_secs_f64())
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("worker"));
    }
    out
}
