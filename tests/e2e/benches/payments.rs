//! `scripts/bench payments`: the payments service with the test kit's fake Stripe (the
//! real async-stripe client over loopback HTTP), and the gateway for the webhook route.
//!
//! Rows: checkout creations (gRPC `CreateCheckout`, each a Stripe call with its
//! idempotency key), Stripe's webhooks through the gateway (`POST /webhooks/stripe`:
//! signature, dedupe by event id and effect, the status change and its outbox event, one
//! transaction each), the same webhooks sent again (duplicates answered without an
//! effect), and the purchase end to end through the gateway (hold → checkout → signed
//! webhook → order paid with its ticket). Afterwards the completed count is checked
//! against the webhooks sent, and every paid order against its ticket.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use festival_e2e::bench::{Row, closed_loop};
use festival_payments::Payments;
use festival_platform::auth::Role;
use festival_proto::payments::v1 as pay;
use festival_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use festival_proto::ticketing::v1::ticketing_service_client::TicketingServiceClient;
use festival_testkit::fake_stripe::{self, FakeStripe, FakeStripeConfig};
use festival_testkit::http1::Conn;
use festival_testkit::{TestApp, TestIssuer};
use festival_ticketing::Ticketing;
use tokio::sync::Mutex;
use uuid::Uuid;

const WEBHOOK_SECRET: &str = "whsec_bench";
const CONCURRENCY: usize = 32;

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    request
}

fn post(gw: std::net::SocketAddr, path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {gw}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// A webhook request as Stripe sends it, signed now.
fn webhook(gw: std::net::SocketAddr, event: &serde_json::Value) -> Vec<u8> {
    let body = serde_json::to_vec(event).expect("json");
    let signature = fake_stripe::sign(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &body);
    post(gw, "/webhooks/stripe", &format!("Stripe-Signature: {signature}\r\n"), &body)
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let issuer = TestIssuer::start().await;
        let stripe = Arc::new(
            FakeStripe::start(FakeStripeConfig {
                webhook_secret: WEBHOOK_SECRET.into(),
                ..FakeStripeConfig::default()
            })
            .await?,
        );
        let name = festival_testkit::unique_name();
        let mut config = <Payments as festival_platform::server::Service>::default_config();
        festival_testkit::isolate(&mut config.common, &name);
        config.common.auth.identity_url = issuer.url();
        config.common.database.max_connections = 40;
        config.stripe.api_base = stripe.base_url();
        config.stripe.secret_key = festival_platform::config::Secret::new(fake_stripe::DEV_SECRET_KEY);
        config.stripe.webhook_secrets = festival_platform::config::Secret::new(WEBHOOK_SECRET);
        let payments = TestApp::<Payments>::start(config, name.clone()).await;
        let mut config = <Ticketing as festival_platform::server::Service>::default_config();
        festival_testkit::isolate(&mut config.common, &name);
        config.common.auth.identity_url = issuer.url();
        config.common.database.max_connections = 40;
        config.payments.url = format!("http://{}", payments.addr);
        let ticketing = TestApp::<Ticketing>::start(config, name).await;
        let mut config = festival_gateway::Config { listen: "127.0.0.1:0".parse()?, ..Default::default() };
        config.upstreams.clear();
        config.upstreams.insert("payments".into(), format!("http://{}", payments.addr));
        config.upstreams.insert("ticketing".into(), format!("http://{}", ticketing.addr));
        config.rate_limit.enabled = false;
        config.redis.url = festival_testkit::redis_url();
        let gateway = festival_gateway::start(config).await?;
        let gw = gateway.addr;
        let festival = Uuid::now_v7();
        let buyer = issuer.user().1;

        println!("| row | p50 | p99 | rate |");
        println!("|---|---|---|---|");

        // 1. Checkout creations against the fake (camping bookings: no owner answers them
        // here; a ticket order naming no order would be refused by ticketing and refunded).
        let client = PaymentsServiceClient::new(payments.channel.clone());
        let created = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, token, made) = (client.clone(), buyer.clone(), created.clone());
        closed_loop(
            "checkout creations via gRPC against the fake Stripe, c=32",
            "checkouts/s",
            CONCURRENCY,
            move |_| {
                let (mut c, token, made) = (c.clone(), token.clone(), made.clone());
                async move {
                    let request = pay::CreateCheckoutRequest {
                        festival_id: festival.to_string(),
                        purpose: pay::PaymentPurpose::CampingBooking as i32,
                        reference: Uuid::now_v7().to_string(),
                        currency: "EUR".into(),
                        line_items: vec![pay::LineItem {
                            name: "Weekend".into(),
                            quantity: 1,
                            unit_amount_minor: 18_900,
                        }],
                        success_url: "https://shop.example/ok".into(),
                        cancel_url: "https://shop.example/cart".into(),
                        idempotency_key: Uuid::now_v7().to_string(),
                        expire_time: None,
                        vendor_account_id: String::new(),
                    };
                    let payment = c.create_checkout(authed(request, &token)).await.expect("checkout").into_inner();
                    made.lock().expect("lock").push(payment.id);
                }
            },
        )
        .await
        .print();

        // 2. Their completions, delivered by "Stripe" through the gateway.
        let ids = std::mem::take(&mut *created.lock().expect("lock"));
        let sessions: Vec<String> =
            sqlx::query_scalar("select provider_session_id from payments where status = 'PENDING'")
                .fetch_all(&payments.pool)
                .await?;
        let events: Arc<Vec<serde_json::Value>> =
            Arc::new(sessions.iter().filter_map(|s| stripe.complete_session(s)).collect());
        assert_eq!(events.len(), ids.len(), "every checkout has its session");
        let conns: Arc<Vec<Mutex<Conn>>> = Arc::new(
            futures::future::join_all((0..CONCURRENCY).map(|_| async { Mutex::new(Conn::open(gw).await) })).await,
        );
        let next = Arc::new(AtomicUsize::new(0));
        let sent = events.len();
        let started = std::time::Instant::now();
        let workers: Vec<_> = (0..CONCURRENCY)
            .map(|w| {
                let (events, conns, next) = (events.clone(), conns.clone(), next.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut conn = conns[w].lock().await;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(event) = events.get(i) else { break };
                        let t = std::time::Instant::now();
                        let (status, body) = conn.roundtrip_body(&webhook(gw, event)).await;
                        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for w in workers {
            latencies.extend(w.await?);
        }
        let label = format!("webhooks applied via REST through the gateway ({sent} completions), c=32");
        Row { label, latencies, elapsed: started.elapsed(), unit: "webhooks/s" }.print();
        let completed: i64 = sqlx::query_scalar("select count(*) from payments where status = 'COMPLETED'")
            .fetch_one(&payments.pool)
            .await?;
        assert_eq!(completed as usize, sent, "each webhook completed one payment");

        // 3. Stripe's retries: the same events again, each answered as a duplicate.
        let (events_again, conns_again) = (events.clone(), conns.clone());
        closed_loop("the same webhooks again (duplicates, no effect), c=32", "webhooks/s", CONCURRENCY, move |w| {
            let (events, conns) = (events_again.clone(), conns_again.clone());
            async move {
                let event = &events[w % events.len()];
                let (status, body) = conns[w].lock().await.roundtrip_body(&webhook(gw, event)).await;
                assert_eq!(status, 200);
                assert!(String::from_utf8_lossy(&body).contains("\"duplicate\":true"));
            }
        })
        .await
        .print();
        payments.assert_outbox_drained().await;

        // 4. The purchase end to end through the gateway, as a shop and Stripe drive it.
        festival_testkit::announce_festival(&ticketing.naming(), festival, "Bench", program::FestivalStatus::Published)
            .await;
        let organizer = issuer.member(issuer.user().0, festival, Role::Organizer);
        let mut tickets = TicketingServiceClient::new(ticketing.channel.clone());
        let category = loop {
            let request = pb::CreateCategoryRequest {
                festival_id: festival.to_string(),
                name: "Weekend".into(),
                price_minor: 18_900,
                max_per_account: 0,
                ..Default::default()
            };
            match tickets.create_category(authed(request, &organizer)).await {
                Ok(c) => break c.into_inner(),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        tickets
            .create_quota(authed(
                pb::CreateQuotaRequest {
                    festival_id: festival.to_string(),
                    name: "Site".into(),
                    size: 1_000_000,
                    category_ids: vec![category.id.clone()],
                },
                &organizer,
            ))
            .await?;
        let buyers: Arc<Vec<String>> = Arc::new((0..CONCURRENCY).map(|_| issuer.user().1).collect());
        let orders = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stripe_e2e, conns_e2e, buyers_e2e, orders_e2e) =
            (stripe.clone(), conns.clone(), buyers.clone(), orders.clone());
        let holds_path = format!("/v1/festivals/{festival}/holds");
        closed_loop(
            "purchase via REST: hold → checkout → signed webhook, c=32",
            "purchases/s",
            CONCURRENCY,
            move |w| {
                let (stripe, conns, buyers, orders) =
                    (stripe_e2e.clone(), conns_e2e.clone(), buyers_e2e.clone(), orders_e2e.clone());
                let (holds_path, category) = (holds_path.clone(), category.id.clone());
                async move {
                    let auth = format!("Authorization: Bearer {}\r\n", buyers[w]);
                    let mut conn = conns[w].lock().await;
                    let hold = serde_json::json!({"items": [{"categoryId": category, "quantity": 1}],
                                              "idempotencyKey": Uuid::now_v7().to_string()});
                    let (status, body) =
                        conn.roundtrip_body(&post(gw, &holds_path, &auth, hold.to_string().as_bytes())).await;
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    let hold: serde_json::Value = serde_json::from_slice(&body).expect("json");
                    let checkout = serde_json::json!({"idempotencyKey": Uuid::now_v7().to_string()});
                    let path = format!("/v1/holds/{}:checkout", hold["id"].as_str().expect("id"));
                    let (status, body) =
                        conn.roundtrip_body(&post(gw, &path, &auth, checkout.to_string().as_bytes())).await;
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    let order: serde_json::Value = serde_json::from_slice(&body).expect("json");
                    let url = order["checkoutUrl"].as_str().expect("checkout url");
                    let session = url.rsplit_once("/pay/").map(|(_, s)| s.to_owned()).expect("session in the url");
                    let event = stripe.complete_session(&session).expect("session");
                    let (status, _) = conn.roundtrip_body(&webhook(gw, &event)).await;
                    assert_eq!(status, 200);
                    orders.lock().expect("lock").push(order["id"].as_str().expect("id").to_owned());
                }
            },
        )
        .await
        .print();
        // Every order paid, with its ticket (the consumer delivers within moments).
        let orders = std::mem::take(&mut *orders.lock().expect("lock"));
        let expected = orders.len() as i64;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (paid, tickets): (i64, i64) = sqlx::query_as(
                "select (select count(*) from orders where status = 'PAID' and payment_method = 'CARD'), \
                 (select count(*) from tickets)",
            )
            .fetch_one(&ticketing.pool)
            .await?;
            if paid == expected && tickets == expected {
                println!("\n{expected} purchases: {expected} orders paid, {expected} tickets, none without a payment");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{paid} of {expected} orders paid, {tickets} tickets");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        gateway.shutdown.cancel();
        ticketing.stop().await;
        payments.stop().await;
        anyhow::Ok(())
    })
}
