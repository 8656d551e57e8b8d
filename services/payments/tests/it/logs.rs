//! What the shipped binary writes to its logs while it works (checkouts, Stripe failing,
//! forged and real webhooks carrying card-like numbers, refunds): never the Stripe secret
//! key, never a webhook secret, never a card number.

use std::process::Stdio;
use std::time::Duration;

use festival_proto::payments::v1 as pb;
use festival_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use festival_testkit::fake_stripe::{self, FakeStripe, FakeStripeConfig, Mode};
use festival_testkit::{TestIssuer, authed};
use tokio::io::AsyncReadExt;

const SECRET_KEY: &str = "sk_test_LEAKCHECK_51Hx0123456789abcdef";
const WEBHOOK_SECRET: &str = "whsec_LEAKCHECK_9f8e7d6c5b4a";
const CARD: &str = "4242424242424242";

#[tokio::test]
async fn the_binary_s_logs_carry_no_secret_and_no_card_number() {
    let issuer = TestIssuer::start().await;
    let stripe = FakeStripe::start(FakeStripeConfig {
        secret_key: SECRET_KEY.into(),
        webhook_secret: WEBHOOK_SECRET.into(),
        webhook_url: None,
        addr: None,
    })
    .await
    .expect("fake Stripe");
    let name = festival_testkit::unique_name();
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_payments"))
        .arg("serve")
        .env("PAYMENTS__GRPC__LISTEN", format!("127.0.0.1:{port}"))
        .env("PAYMENTS__GRPC__DRAIN_GRACE_MS", "0")
        .env("PAYMENTS__METRICS__ENABLED", "false")
        .env("PAYMENTS__DATABASE__URL", festival_testkit::database_url(&format!("festival_test_payments_{name}")))
        .env("PAYMENTS__DATABASE__CREATE_IF_MISSING", "true")
        .env("PAYMENTS__NATS__URL", festival_testkit::nats_url())
        .env("PAYMENTS__NATS__SUBJECT_PREFIX", &name)
        .env("PAYMENTS__REDIS__URL", festival_testkit::redis_url())
        .env("PAYMENTS__AUTH__IDENTITY_URL", issuer.url())
        .env("PAYMENTS__STRIPE__SECRET_KEY", SECRET_KEY)
        .env("PAYMENTS__STRIPE__WEBHOOK_SECRETS", format!("whsec_other_one,{WEBHOOK_SECRET}"))
        .env("PAYMENTS__STRIPE__API_BASE", stripe.base_url())
        .env("PAYMENTS__STRIPE__TIMEOUT_MS", "500")
        .env("PAYMENTS__TELEMETRY__LOG_LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the payments binary starts");
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..200 {
        if let Ok(c) = PaymentsServiceClient::connect(endpoint.clone()).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = client.expect("payments answers");
    let buyer = issuer.user().1;
    let request = |key: &str| pb::CreateCheckoutRequest {
        festival_id: uuid::Uuid::now_v7().to_string(),
        purpose: pb::PaymentPurpose::TicketOrder as i32,
        reference: format!("card {CARD}"),
        currency: "EUR".into(),
        line_items: vec![pb::LineItem { name: format!("Pass {CARD}"), quantity: 1, unit_amount_minor: 1_000 }],
        success_url: format!("https://shop.example/ok?card={CARD}"),
        cancel_url: "https://shop.example/cart".into(),
        idempotency_key: key.into(),
        expire_time: None,
        vendor_account_id: String::new(),
    };
    // Stripe failing, then working.
    stripe.set_mode(Mode::Fail500);
    let failed = client.create_checkout(authed(request("leak-1"), &buyer)).await;
    assert_eq!(festival_testkit::code(failed), "ERR_5002");
    stripe.set_mode(Mode::Normal);
    let payment = client.create_checkout(authed(request("leak-2"), &buyer)).await.expect("checkout").into_inner();
    // A forged webhook and a real one, both with a card number in them.
    let session = stripe.sessions().pop().expect("a session");
    let mut event = stripe.complete_session(session["id"].as_str().expect("id")).expect("completed");
    event["data"]["object"]["customer_details"] = serde_json::json!({"name": format!("Card {CARD}")});
    let body = serde_json::to_vec(&event).expect("json");
    for (secret, expect_ok) in [("whsec_forged", false), (WEBHOOK_SECRET, true)] {
        let signature = fake_stripe::sign(secret, chrono::Utc::now().timestamp(), &body);
        let mut hook = tonic::Request::new(festival_proto::google::api::HttpBody {
            content_type: "application/json".into(),
            data: body.clone(),
            extensions: vec![],
        });
        hook.metadata_mut().insert("stripe-signature", signature.parse().expect("header"));
        assert_eq!(client.receive_stripe_webhook(hook).await.is_ok(), expect_ok);
    }
    // A refund the fake refuses (more than was captured is asked at Stripe by nobody: so
    // make Stripe fail instead) and one that goes through.
    let organizer = issuer.member(
        issuer.user().0,
        payment.festival_id.parse().expect("uuid"),
        festival_platform::auth::Role::Organizer,
    );
    stripe.set_mode(Mode::Fail500);
    let refund = pb::RefundPaymentRequest {
        payment_id: payment.id.clone(),
        amount_minor: 100,
        reason: format!("card {CARD}"),
        idempotency_key: "leak-refund".into(),
    };
    client.refund_payment(authed(refund, &organizer)).await.expect("booked");
    stripe.set_mode(Mode::Normal);

    // Stop it and read everything it wrote.
    let pid = child.id().expect("pid");
    std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("kill");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("stops").expect("status");
    assert!(status.success(), "{status:?}");
    let mut logs = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut logs).await.expect("stdout");
    child.stderr.take().expect("stderr").read_to_string(&mut logs).await.expect("stderr");
    assert!(logs.contains("payment provider call failed"), "the outage was logged:\n{logs}");
    assert!(logs.contains("webhook refused"), "the forged webhook was logged:\n{logs}");
    for secret in [SECRET_KEY, WEBHOOK_SECRET, "LEAKCHECK", CARD, "4242 4242 4242 4242"] {
        assert!(!logs.contains(secret), "{secret} appears in the logs:\n{logs}");
    }
}
