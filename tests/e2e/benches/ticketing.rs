//! `scripts/bench ticketing`: selling and scanning through the real service (and the
//! gateway for REST), each row measured in the same run, with the sold count checked
//! against the quota afterwards.
//!
//! Rows: a one-ticket box-office order via REST (the pretix-API shape), hold → free order
//! via gRPC and via REST, an oversell storm (500 buyers at once on a quota of 100),
//! online redeems via REST, offline credential verifications on one core, one by one and
//! in batches (an offline scanner's upload).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use festival_e2e::bench::{DURATION, Row, closed_loop};
use festival_platform::auth::Role;
use festival_platform::credential::Keyring;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use festival_proto::ticketing::v1::ticketing_service_client::TicketingServiceClient;
use festival_testkit::authed;
use festival_testkit::http1::{Conn, post_json as post};
use festival_testkit::{TestApp, TestIssuer};
use festival_ticketing::Ticketing;
use tokio::sync::Mutex;
use uuid::Uuid;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let issuer = TestIssuer::start().await;
        let identity_url = issuer.url();
        let app = TestApp::<Ticketing>::spawn_with(|c| {
            c.common.auth.identity_url = identity_url;
            // Four connections per database core, as docs/CONFIGURATION.md advises: more
            // make PostgreSQL's backends queue on the hot quota row and wait for CPU
            // holding its lock (40 here: about 20 % fewer orders/s and 3× the p99).
            c.common.database.max_connections = 8;
            c.limits.quota_size = 1_000_000;
        })
        .await;
        let mut config = festival_gateway::Config { listen: "127.0.0.1:0".parse()?, ..Default::default() };
        config.upstreams.clear();
        config.upstreams.insert("ticketing".into(), format!("http://{}", app.addr));
        config.rate_limit.enabled = false;
        config.redis.url = festival_testkit::redis_url();
        let gateway = festival_gateway::start(config).await?;
        let gw = gateway.addr;

        // A published festival, as program announces it.
        let festival = Uuid::now_v7();
        let facts = program::FestivalFacts {
            name: "Bench".into(),
            time_zone: "Europe/Paris".into(),
            currency: "EUR".into(),
            status: program::FestivalStatus::Published as i32,
            version: 1,
            ..Default::default()
        };
        let announced = program::FestivalStatusChanged {
            festival_id: festival.to_string(),
            to: program::FestivalStatus::Published as i32,
            facts: Some(facts),
            ..Default::default()
        };
        festival_testkit::publish_event(&app.naming(), &announced).await;
        let (organizer_id, _) = issuer.user();
        let organizer = issuer.member(organizer_id, festival, Role::Organizer);
        let cashier = issuer.member(issuer.user().0, festival, Role::Cashier);
        let security = issuer.member(issuer.user().0, festival, Role::Security);
        let client = TicketingServiceClient::new(app.channel.clone());
        let category = |name: &str, price: i64, size: i64| {
            let (mut c, organizer) = (client.clone(), organizer.clone());
            let name = name.to_owned();
            async move {
                let category = loop {
                    let request = pb::CreateCategoryRequest {
                        festival_id: festival.to_string(),
                        name: name.clone(),
                        price_minor: price,
                        max_per_order: 100,
                        ..Default::default()
                    };
                    match c.create_category(authed(request, &organizer)).await {
                        Ok(r) => break r.into_inner(),
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await, // not announced yet
                    }
                };
                let quota = pb::CreateQuotaRequest {
                    festival_id: festival.to_string(),
                    name: format!("{name} quota"),
                    size,
                    category_ids: vec![category.id.clone()],
                };
                c.create_quota(authed(quota, &organizer)).await.expect("quota");
                category.id
            }
        };
        let paid = category("Weekend", 18_900, 1_000_000).await;
        let free = category("Community", 0, 1_000_000).await;
        let storm = category("Storm", 0, 100).await;

        println!(
            "\n### ticketing benchmark ({} cores shared by the load generator, gateway, ticketing and PostgreSQL)\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| row | p50 | p99 | rate |");
        println!("|---|---|---|---|");

        // 1. One-ticket orders via REST, c=32.
        let conns: Arc<Vec<Mutex<Conn>>> =
            Arc::new(futures::future::join_all((0..32).map(|_| async { Mutex::new(Conn::open(gw).await) })).await);
        let orders_path = format!("/v1/festivals/{festival}/orders");
        let (c1, p1, t1) = (conns.clone(), paid.clone(), cashier.clone());
        closed_loop("order of 1 ticket via REST through the gateway, c=32", "orders/s", 32, move |w| {
            let (conns, request) = (
                c1.clone(),
                post(
                    gw,
                    &orders_path,
                    &t1,
                    &serde_json::json!({"categoryId": p1, "quantity": 1, "paymentMethod": "PAYMENT_METHOD_CASH",
                                        "idempotencyKey": format!("bench-{}", Uuid::now_v7())}),
                ),
            );
            async move { assert_eq!(conns[w].lock().await.roundtrip(&request).await, 200) }
        })
        .await
        .print();

        // 2. Hold then free order, two calls, via gRPC and via REST, c=32.
        let buyers: Arc<Vec<String>> = Arc::new((0..32).map(|_| issuer.user().1).collect());
        let (b2, f2, c2) = (buyers.clone(), free.clone(), client.clone());
        closed_loop("hold → free order (two calls) via gRPC, c=32", "orders/s", 32, move |w| {
            let (mut c, token, category) = (c2.clone(), b2[w].clone(), f2.clone());
            async move {
                let hold = pb::CreateHoldRequest {
                    festival_id: festival.to_string(),
                    items: vec![pb::HoldItem { category_id: category, quantity: 1, ..Default::default() }],
                    idempotency_key: format!("bench-{}", Uuid::now_v7()),
                    promo_codes: Vec::new(),
                    for_ticket_id: String::new(),
                    access_code: String::new(),
                    voucher_code: String::new(),
                };
                let hold = c.create_hold(authed(hold, &token)).await.expect("hold").into_inner();
                let checkout =
                    pb::CheckoutHoldRequest { hold_id: hold.id, idempotency_key: format!("bench-{}", Uuid::now_v7()) };
                c.checkout_hold(authed(checkout, &token)).await.expect("order");
            }
        })
        .await
        .print();
        let (c3, b3, f3) = (conns.clone(), buyers.clone(), free.clone());
        let holds_path = format!("/v1/festivals/{festival}/holds");
        closed_loop("hold → free order (two calls) via REST, c=32", "orders/s", 32, move |w| {
            let (conns, token, category, holds_path) = (c3.clone(), b3[w].clone(), f3.clone(), holds_path.clone());
            async move {
                let mut conn = conns[w].lock().await;
                let hold = post(
                    gw,
                    &holds_path,
                    &token,
                    &serde_json::json!({"items": [{"categoryId": category, "quantity": 1}],
                                        "idempotencyKey": format!("bench-{}", Uuid::now_v7())}),
                );
                let (status, body) = conn.roundtrip_body(&hold).await;
                assert_eq!(status, 200);
                let id = serde_json::from_slice::<serde_json::Value>(&body).expect("json")["id"]
                    .as_str()
                    .expect("id")
                    .to_owned();
                let checkout = post(
                    gw,
                    &format!("/v1/holds/{id}:checkout"),
                    &token,
                    &serde_json::json!({"idempotencyKey": format!("bench-{}", Uuid::now_v7())}),
                );
                assert_eq!(conn.roundtrip(&checkout).await, 200);
            }
        })
        .await
        .print();

        // 3. The oversell storm: 500 buyers at once on a quota of 100.
        let started = Instant::now();
        let attempts: Vec<_> = (0..500)
            .map(|_| {
                let (mut c, token, category) = (client.clone(), issuer.user().1, storm.clone());
                tokio::spawn(async move {
                    let hold = pb::CreateHoldRequest {
                        festival_id: festival.to_string(),
                        items: vec![pb::HoldItem { category_id: category, quantity: 1, ..Default::default() }],
                        idempotency_key: format!("bench-{}", Uuid::now_v7()),
                        promo_codes: Vec::new(),
                        for_ticket_id: String::new(),
                        access_code: String::new(),
                        voucher_code: String::new(),
                    };
                    let t = Instant::now();
                    let ok = c.create_hold(authed(hold, &token)).await.is_ok();
                    (ok, t.elapsed())
                })
            })
            .collect();
        let mut storm_latencies = Vec::new();
        let mut held = 0;
        for a in attempts {
            let (ok, latency) = a.await?;
            held += usize::from(ok);
            storm_latencies.push(latency);
        }
        let storm_elapsed = started.elapsed();
        let quotas = client
            .clone()
            .list_quotas(authed(pb::ListQuotasRequest { festival_id: festival.to_string() }, &organizer))
            .await?
            .into_inner();
        let storm_quota = quotas.quotas.iter().find(|q| q.name == "Storm quota").expect("storm quota");
        let oversold = (storm_quota.held + storm_quota.sold - storm_quota.size).max(0);
        Row {
            label: format!("oversell storm, quota 100, 500 concurrent attempts ({held} held, {oversold} oversold)"),
            latencies: storm_latencies,
            elapsed: storm_elapsed,
            unit: "attempts answered/s",
        }
        .print();
        assert_eq!((held, oversold), (100, 0), "the storm must sell exactly the quota");

        // 4. Online redeems via REST, c=8, each scan a ticket of its own.
        let mut credentials = Vec::new();
        while credentials.len() < 40_000 {
            let order = pb::CreateOrderRequest {
                festival_id: festival.to_string(),
                category_id: paid.clone(),
                quantity: 100,
                payment_method: pb::PaymentMethod::Cash as i32,
                idempotency_key: format!("bench-{}", Uuid::now_v7()),
                ..Default::default()
            };
            let order = client.clone().create_order(authed(order, &cashier)).await?.into_inner();
            credentials.extend(order.tickets.into_iter().map(|t| t.credential));
        }
        let pool = Arc::new(credentials.clone());
        let next = Arc::new(AtomicUsize::new(0));
        let check_ins = format!("/v1/festivals/{festival}/check-ins");
        let (c4, s4) = (conns.clone(), security.clone());
        closed_loop("online redeems via REST, c=8", "scans/s", 8, move |w| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let request = post(gw, &check_ins, &s4, &serde_json::json!({"credential": pool[i], "gate": "bench"}));
            let conns = c4.clone();
            async move { assert_eq!(conns[w].lock().await.roundtrip(&request).await, 200) }
        })
        .await
        .print();

        // 5. Offline verification: what a scanner does with the public key alone.
        let keys = client
            .clone()
            .get_ticket_keys(pb::GetTicketKeysRequest { festival_id: festival.to_string() })
            .await?
            .into_inner();
        let mut keyring = Keyring::default();
        for key in &keys.keys {
            let bytes: [u8; 32] =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&key.public_key)?.try_into().expect("32 bytes");
            keyring.insert(ed25519_dalek::VerifyingKey::from_bytes(&bytes)?);
        }
        // As a scanner's offline gate (`festival_gate::offline::Gate`) holds them.
        keyring.precompute();
        let started = Instant::now();
        let mut verified = 0usize;
        while started.elapsed() < DURATION {
            for credential in credentials.iter().take(10_000) {
                keyring.verify(credential).expect("verifies");
                verified += 1;
            }
        }
        let rate = verified as f64 / started.elapsed().as_secs_f64();
        println!(
            "| offline credential verifications, one core | {:.1} µs each | | {rate:.0} verifications/s |",
            1e6 / rate
        );

        // 6. The same, batched: an offline scanner's upload of 250 scans, verified at once.
        let started = Instant::now();
        let mut verified = 0usize;
        while started.elapsed() < DURATION {
            for chunk in credentials[..10_000].chunks(250) {
                let answers = keyring.verify_many(chunk.iter().map(String::as_str));
                assert!(answers.iter().all(Result::is_ok), "verifies");
                verified += answers.len();
            }
        }
        let rate = verified as f64 / started.elapsed().as_secs_f64();
        println!(
            "| offline credential verifications, one core, batches of 250 | {:.1} µs each | | {rate:.0} verifications/s |",
            1e6 / rate
        );

        gateway.shutdown.cancel();
        app.stop().await;
        anyhow::Ok(())
    })
}
