//! The end-to-end purchase: ticketing and payments together with the test kit's fake
//! Stripe. Hold → checkout (payments opens a Stripe Checkout) → Stripe's signed webhook →
//! `payment.completed` → tickets issued; a failed payment gives the hold back; a payment
//! completing after the hold expired is honoured while stock remains and refunded
//! otherwise; a cancelled festival's card orders are refunded at Stripe.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use festival_payments::Payments;
use festival_platform::auth::Role;
use festival_proto::google::api::HttpBody;
use festival_proto::payments::v1 as pay;
use festival_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use festival_proto::ticketing::v1::ticketing_service_client::TicketingServiceClient;
use festival_testkit::fake_stripe::{self, FakeStripe, FakeStripeConfig};
use festival_testkit::{TestApp, TestIssuer, authed};
use festival_ticketing::Ticketing;
use uuid::Uuid;

const WEBHOOK_SECRET: &str = "whsec_e2e_purchase";

struct Mesh {
    issuer: TestIssuer,
    stripe: FakeStripe,
    payments: TestApp<Payments>,
    ticketing: TestApp<Ticketing>,
    festival: Uuid,
    organizer: String,
}

async fn mesh() -> Mesh {
    let issuer = TestIssuer::start().await;
    let stripe =
        FakeStripe::start(FakeStripeConfig { webhook_secret: WEBHOOK_SECRET.into(), ..FakeStripeConfig::default() })
            .await
            .expect("fake Stripe");
    let name = festival_testkit::unique_name();
    let mut config = <Payments as festival_platform::server::Service>::default_config();
    festival_testkit::isolate(&mut config.common, &name);
    config.common.auth.identity_url = issuer.url();
    config.stripe.api_base = stripe.base_url();
    config.stripe.secret_key = festival_platform::config::Secret::new(fake_stripe::DEV_SECRET_KEY);
    config.stripe.webhook_secrets = festival_platform::config::Secret::new(WEBHOOK_SECRET);
    config.sweep.interval_ms = 100;
    let payments = TestApp::<Payments>::start(config, name.clone()).await;
    let mut config = <Ticketing as festival_platform::server::Service>::default_config();
    festival_testkit::isolate(&mut config.common, &name);
    config.common.auth.identity_url = issuer.url();
    config.payments.url = format!("http://{}", payments.addr);
    config.holds.sweep_interval_ms = 50;
    let ticketing = TestApp::<Ticketing>::start_on_manual_clock(config, name).await;

    let festival = Uuid::now_v7();
    festival_testkit::announce_festival(&ticketing.naming(), festival, "Purchase", program::FestivalStatus::Published)
        .await;
    let pool = ticketing.pool.clone();
    let known = festival_testkit::eventually(Duration::from_secs(15), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>("select exists(select 1 from festivals where id = $1)")
                .bind(festival)
                .fetch_one(&pool)
                .await
                .unwrap_or(false)
        }
    })
    .await;
    assert!(known, "ticketing never heard of the festival");
    let (organizer_id, _) = issuer.user();
    let organizer = issuer.member(organizer_id, festival, Role::Organizer);
    Mesh { issuer, stripe, payments, ticketing, festival, organizer }
}

impl Mesh {
    fn tickets(&self) -> TicketingServiceClient<tonic::transport::Channel> {
        TicketingServiceClient::new(self.ticketing.channel.clone())
    }

    /// A category of `price` in a quota of `size`.
    async fn category(&self, price: i64, size: i64) -> String {
        let mut c = self.tickets();
        let category = c
            .create_category(authed(
                pb::CreateCategoryRequest {
                    festival_id: self.festival.to_string(),
                    name: format!("Weekend {}", Uuid::now_v7().simple()),
                    price_minor: price,
                    ..Default::default()
                },
                &self.organizer,
            ))
            .await
            .expect("category")
            .into_inner();
        c.create_quota(authed(
            pb::CreateQuotaRequest {
                festival_id: self.festival.to_string(),
                name: format!("{} capacity", category.name),
                size,
                category_ids: vec![category.id.clone()],
            },
            &self.organizer,
        ))
        .await
        .expect("quota");
        category.id
    }

    /// A new fan's hold of one ticket of `category`, checked out: (token, hold, order).
    async fn checked_out(&self, category: &str) -> (String, pb::Hold, pb::Order) {
        let (_, fan) = self.issuer.user();
        let mut c = self.tickets();
        let hold = c
            .create_hold(authed(
                pb::CreateHoldRequest {
                    festival_id: self.festival.to_string(),
                    items: vec![pb::HoldItem { category_id: category.into(), quantity: 1, ..Default::default() }],
                    idempotency_key: format!("hold-{}", Uuid::now_v7()),
                    ..Default::default()
                },
                &fan,
            ))
            .await
            .expect("hold")
            .into_inner();
        let order = c
            .checkout_hold(authed(
                pb::CheckoutHoldRequest { hold_id: hold.id.clone(), idempotency_key: format!("co-{}", Uuid::now_v7()) },
                &fan,
            ))
            .await
            .expect("checkout")
            .into_inner();
        (fan, hold, order)
    }

    /// The provider's session of a payment.
    async fn session_of(&self, payment_id: &str) -> String {
        sqlx::query_scalar("select provider_session_id from payments where id = $1")
            .bind(Uuid::parse_str(payment_id).expect("payment id"))
            .fetch_one(&self.payments.pool)
            .await
            .expect("payment row")
    }

    /// Stripe's signed webhook for `event`, as the gateway hands it to payments.
    async fn webhook(&self, event: &serde_json::Value) {
        let body = serde_json::to_vec(event).expect("json");
        let header = fake_stripe::sign(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &body);
        let mut request =
            tonic::Request::new(HttpBody { content_type: "application/json".into(), data: body, extensions: vec![] });
        request.metadata_mut().insert("stripe-signature", header.parse().expect("header"));
        PaymentsServiceClient::new(self.payments.channel.clone())
            .receive_stripe_webhook(request)
            .await
            .expect("webhook");
    }

    /// Waits (at most 15 s) until the buyer's order is in `status`; the order.
    async fn order_becomes(&self, fan: &str, order_id: &str, status: pb::OrderStatus) -> pb::Order {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let order = self
                .tickets()
                .get_order(authed(pb::GetOrderRequest { order_id: order_id.into() }, fan))
                .await
                .expect("the buyer reads the order")
                .into_inner();
            if order.status == status as i32 {
                return order;
            }
            assert!(std::time::Instant::now() < deadline, "order never became {status:?}: {order:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most 10 s, the worker sweeping on the test's clock) until the hold is
    /// EXPIRED; whether it was.
    async fn hold_expires(&self, hold_id: &str) -> bool {
        let (pool, id) = (self.ticketing.pool.clone(), Uuid::parse_str(hold_id).expect("hold id"));
        festival_testkit::eventually(Duration::from_secs(10), || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, String>("select status from holds where id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .is_ok_and(|s| s == "EXPIRED")
            }
        })
        .await
    }

    /// `(held, sold)` of the festival's quotas together.
    async fn stock(&self) -> (i64, i64) {
        sqlx::query_as(
            "select coalesce(sum(held), 0)::bigint, coalesce(sum(sold), 0)::bigint from quotas where festival_id = $1",
        )
        .bind(self.festival)
        .fetch_one(&self.ticketing.pool)
        .await
        .expect("quotas")
    }

    /// Waits (at most 15 s, payments' sweep sending the booked refund) until the payment
    /// is REFUNDED; whether it became so.
    async fn payment_becomes_refunded(&self, id: &str) -> bool {
        festival_testkit::eventually(Duration::from_secs(15), || async move {
            self.payment(id).await.status == pay::PaymentStatus::Refunded as i32
        })
        .await
    }

    async fn payment(&self, id: &str) -> pay::Payment {
        PaymentsServiceClient::new(self.payments.channel.clone())
            .get_payment(authed(pay::GetPaymentRequest { payment_id: id.into() }, &self.issuer.admin()))
            .await
            .expect("payment")
            .into_inner()
    }
}

#[tokio::test]
async fn a_paid_hold_becomes_an_order_with_signed_tickets_once_stripe_says_it_is_paid() {
    let m = mesh().await;
    let category = m.category(4_500, 10).await;
    let (fan, _, order) = m.checked_out(&category).await;
    assert_eq!(order.status, pb::OrderStatus::AwaitingPayment as i32);
    assert_eq!(order.payment_method, pb::PaymentMethod::Card as i32);
    assert!(order.tickets.is_empty(), "no ticket before the payment");
    assert!(order.checkout_url.contains("/pay/cs_"), "{}", order.checkout_url);
    let session = m.stripe.session(&m.session_of(&order.payment_id).await).expect("a Stripe session");
    assert_eq!(session["amount_total"], 4_500);
    assert_eq!(session["currency"], "eur");
    assert_eq!((m.stock().await), (1, 0), "held while the buyer pays");

    let completed = m.stripe.complete_session(session["id"].as_str().expect("id")).expect("paid");
    m.webhook(&completed).await;
    let paid = m.order_becomes(&fan, &order.id, pb::OrderStatus::Paid).await;
    assert_eq!(paid.tickets.len(), 1);
    let ticket = &paid.tickets[0];
    assert_eq!((ticket.status, ticket.price_minor), (pb::TicketStatus::Sold as i32, 4_500));
    assert!(!ticket.credential.is_empty());
    assert_eq!(m.stock().await, (0, 1));
    // The QR credential verifies offline with the festival's published keys.
    let keys = m
        .tickets()
        .get_ticket_keys(pb::GetTicketKeysRequest { festival_id: m.festival.to_string() })
        .await
        .expect("keys")
        .into_inner();
    assert_eq!(keys.keys.len(), 1);
    let mut keyring = festival_platform::credential::Keyring::default();
    for key in &keys.keys {
        let bytes = URL_SAFE_NO_PAD.decode(&key.public_key).expect("base64");
        keyring.insert(ed25519_dalek::VerifyingKey::from_bytes(&bytes.try_into().expect("32 bytes")).expect("key"));
    }
    let claims = keyring.verify(&ticket.credential).expect("the credential verifies offline");
    assert_eq!((claims.festival, claims.subject.to_string()), (m.festival, ticket.id.clone()));
    // Stripe repeating itself changes nothing.
    m.webhook(&completed).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(m.stock().await, (0, 1));
    assert_eq!(m.order_becomes(&fan, &order.id, pb::OrderStatus::Paid).await.tickets.len(), 1);

    // An organiser refunds it all in Stripe's dashboard: the ticket stops being valid.
    let intent = completed["data"]["object"]["payment_intent"].as_str().expect("intent").to_owned();
    let refund = m.stripe.dashboard_refund(&intent, 4_500).await;
    m.webhook(&m.stripe.refund_event(&refund).expect("event")).await;
    let cancelled = m.order_becomes(&fan, &order.id, pb::OrderStatus::Cancelled).await;
    assert_eq!(cancelled.tickets.iter().map(|t| t.status).collect::<Vec<_>>(), vec![pb::TicketStatus::Refunded as i32]);
    assert_eq!(m.stock().await, (0, 0), "its place is free again");
    assert_eq!(m.payment(&order.payment_id).await.status, pay::PaymentStatus::Refunded as i32);
    m.ticketing.stop().await;
    m.payments.stop().await;
}

#[tokio::test]
async fn a_failed_payment_gives_the_hold_back_and_a_retry_of_checkout_answers_the_same_order() {
    let m = mesh().await;
    let category = m.category(2_000, 5).await;
    let (fan, hold, order) = m.checked_out(&category).await;
    // A second click on "pay" (another key): the same order and checkout.
    let again = m
        .tickets()
        .checkout_hold(authed(
            pb::CheckoutHoldRequest { hold_id: hold.id.clone(), idempotency_key: "second-click".into() },
            &fan,
        ))
        .await
        .expect("again")
        .into_inner();
    assert_eq!((again.id.as_str(), again.checkout_url.as_str()), (order.id.as_str(), order.checkout_url.as_str()));
    assert_eq!(m.stripe.sessions().len(), 1);
    // While it is being paid, the hold cannot be given up (and bought again around a limit).
    let release = m.tickets().release_hold(authed(pb::ReleaseHoldRequest { hold_id: hold.id.clone() }, &fan)).await;
    assert_eq!(festival_testkit::code(release), "ERR_6011");
    let expired = m.stripe.expire_session(&m.session_of(&order.payment_id).await).expect("expired");
    m.webhook(&expired).await;
    let failed = m.order_becomes(&fan, &order.id, pb::OrderStatus::PaymentFailed).await;
    assert!(failed.tickets.is_empty());
    assert!(failed.checkout_url.is_empty());
    assert_eq!(m.stock().await, (0, 0), "the hold gave its ticket back");
    m.ticketing.stop().await;
    m.payments.stop().await;
}

#[tokio::test]
async fn a_payment_after_the_hold_expired_is_honoured_while_stock_remains_and_refunded_once_it_is_gone() {
    let m = mesh().await;
    let category = m.category(3_000, 1).await;
    // A pays, but only after the hold expired: the place is still free, so A gets it.
    let (a, hold_a, order_a) = m.checked_out(&category).await;
    m.ticketing.clock.advance(Duration::from_secs(16 * 60));
    assert!(m.hold_expires(&hold_a.id).await, "A's hold expired");
    assert_eq!(m.stock().await, (0, 0));
    let done = m.stripe.complete_session(&m.session_of(&order_a.payment_id).await).expect("paid");
    m.webhook(&done).await;
    let paid = m.order_becomes(&a, &order_a.id, pb::OrderStatus::Paid).await;
    assert_eq!(paid.tickets.len(), 1);
    assert_eq!(m.stock().await, (0, 1));

    // Another category of one place: B's hold expires, C buys the place, then B's payment
    // arrives. B is refunded in full, automatically; nobody holds a ticket unpaid.
    let category = m.category(3_000, 1).await;
    let (b, hold_b, order_b) = m.checked_out(&category).await;
    m.ticketing.clock.advance(Duration::from_secs(16 * 60));
    assert!(m.hold_expires(&hold_b.id).await, "B's hold expired");
    let (c, _, order_c) = m.checked_out(&category).await;
    let paid_c = m.stripe.complete_session(&m.session_of(&order_c.payment_id).await).expect("paid");
    m.webhook(&paid_c).await;
    m.order_becomes(&c, &order_c.id, pb::OrderStatus::Paid).await;
    let late = m.stripe.complete_session(&m.session_of(&order_b.payment_id).await).expect("paid");
    m.webhook(&late).await;
    let refused = m.order_becomes(&b, &order_b.id, pb::OrderStatus::Cancelled).await;
    assert!(refused.tickets.is_empty(), "no ticket without a payment kept");
    let reason: String = sqlx::query_scalar("select cancel_reason from orders where id = $1")
        .bind(Uuid::parse_str(&order_b.id).expect("id"))
        .fetch_one(&m.ticketing.pool)
        .await
        .expect("order");
    assert_eq!(reason, "sold out after the reservation ended");
    // Payments refunds B's payment in full at Stripe (the sweep sends the booked refund).
    let refunded = m.payment_becomes_refunded(&order_b.payment_id).await;
    assert!(refunded, "B's payment was refunded");
    let intent = late["data"]["object"]["payment_intent"].as_str().expect("intent").to_owned();
    let at_stripe: Vec<i64> = m
        .stripe
        .refunds()
        .iter()
        .filter(|r| r["payment_intent"] == intent.as_str())
        .map(|r| r["amount"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(at_stripe, vec![3_000]);
    assert_eq!(m.stock().await, (0, 2), "one place each, sold once");
    m.ticketing.stop().await;
    m.payments.stop().await;
}

#[tokio::test]
async fn a_payment_for_an_order_the_organiser_cancelled_meanwhile_is_refunded_in_full() {
    let m = mesh().await;
    let category = m.category(5_000, 3).await;
    let (fan, _, order) = m.checked_out(&category).await;
    m.tickets()
        .cancel_order(authed(
            pb::CancelOrderRequest {
                order_id: order.id.clone(),
                reason: "Duplicate".into(),
                idempotency_key: "cancel-1".into(),
            },
            &m.organizer,
        ))
        .await
        .expect("cancel");
    assert_eq!(m.stock().await, (0, 0), "the hold gave its ticket back");
    let done = m.stripe.complete_session(&m.session_of(&order.payment_id).await).expect("paid");
    m.webhook(&done).await;
    let refunded = m.payment_becomes_refunded(&order.payment_id).await;
    assert!(refunded, "the payment was refunded");
    let cancelled = m.order_becomes(&fan, &order.id, pb::OrderStatus::Cancelled).await;
    assert!(cancelled.tickets.is_empty());
    assert!(cancelled.checkout_url.is_empty(), "a cancelled order offers no payment page");
    assert_eq!(m.stock().await, (0, 0));
    let at_stripe: i64 = m.stripe.refunds().iter().map(|r| r["amount"].as_i64().unwrap_or(0)).sum();
    assert_eq!(at_stripe, 5_000);
    m.ticketing.stop().await;
    m.payments.stop().await;
}

#[tokio::test]
async fn a_cancelled_festival_refunds_its_card_orders_at_stripe_and_reports_it() {
    let m = mesh().await;
    let category = m.category(4_000, 10).await;
    let mut paid = Vec::new();
    for _ in 0..2 {
        let (fan, _, order) = m.checked_out(&category).await;
        let done = m.stripe.complete_session(&m.session_of(&order.payment_id).await).expect("paid");
        m.webhook(&done).await;
        m.order_becomes(&fan, &order.id, pb::OrderStatus::Paid).await;
        let intent = done["data"]["object"]["payment_intent"].as_str().expect("intent").to_owned();
        paid.push((fan, order, intent));
    }
    // One buyer is still on the payment page when the festival is cancelled.
    let (late_fan, _, late) = m.checked_out(&category).await;
    assert_eq!(m.stock().await, (1, 2));

    festival_testkit::announce_festival_version(
        &m.ticketing.naming(),
        m.festival,
        "Purchase",
        program::FestivalStatus::Cancelled,
        2,
    )
    .await;
    for (fan, order, _) in &paid {
        let cancelled = m.order_becomes(fan, &order.id, pb::OrderStatus::Cancelled).await;
        assert_eq!(
            cancelled.tickets.iter().map(|t| t.status).collect::<Vec<_>>(),
            vec![pb::TicketStatus::Refunded as i32]
        );
    }
    m.order_becomes(&late_fan, &late.id, pb::OrderStatus::Cancelled).await;
    assert_eq!(m.stock().await, (0, 0), "every place given back");
    // Payments refunds each card order at Stripe, and ticketing hears it was.
    let progress = || async {
        m.tickets()
            .get_cancellation_progress(authed(
                pb::GetCancellationProgressRequest { festival_id: m.festival.to_string() },
                &m.organizer,
            ))
            .await
            .expect("progress")
            .into_inner()
    };
    let confirmed = festival_testkit::eventually(Duration::from_secs(15), || async {
        progress().await.by_method.iter().any(|b| b.payment_method == "CARD" && b.confirmed == 2)
    })
    .await;
    assert!(confirmed, "both card refunds confirmed: {:?}", progress().await);
    let report = progress().await;
    assert_eq!((report.orders, report.settled, report.refunded_minor), (3, 3, 8_000));
    assert!(report.finish_time.is_some());
    for (_, order, intent) in &paid {
        assert_eq!(m.payment(&order.payment_id).await.status, pay::PaymentStatus::Refunded as i32);
        let at_stripe: Vec<i64> = m
            .stripe
            .refunds()
            .iter()
            .filter(|r| r["payment_intent"] == intent.as_str())
            .map(|r| r["amount"].as_i64().unwrap_or(0))
            .collect();
        assert_eq!(at_stripe, vec![4_000], "one refund of what was paid");
    }
    // The buyer who was still paying pays after all: refused, and refunded in full.
    let done = m.stripe.complete_session(&m.session_of(&late.payment_id).await).expect("paid");
    m.webhook(&done).await;
    let refunded = m.payment_becomes_refunded(&late.payment_id).await;
    assert!(refunded, "the late payment was refunded");
    let late_order = m.order_becomes(&late_fan, &late.id, pb::OrderStatus::Cancelled).await;
    assert!(late_order.tickets.is_empty(), "no ticket for a cancelled festival");
    let refunded_at_stripe: i64 = m.stripe.refunds().iter().map(|r| r["amount"].as_i64().unwrap_or(0)).sum();
    assert_eq!(refunded_at_stripe, 3 * 4_000);
    m.ticketing.stop().await;
    m.payments.stop().await;
}

#[tokio::test]
async fn a_ticket_handed_back_is_bought_from_the_waiting_list_and_its_seller_refunded_minus_the_fee() {
    let m = mesh().await;
    let mut c = m.tickets();
    let category = m.category(5_000, 1).await;
    c.set_resale_policy(authed(
        pb::SetResalePolicyRequest {
            festival_id: m.festival.to_string(),
            enabled: true,
            fee_fixed_minor: 200,
            fee_basis_points: 500,
        },
        &m.organizer,
    ))
    .await
    .expect("resale on");
    // The seller pays by card: the festival is sold out.
    let (seller, _, order) = m.checked_out(&category).await;
    let session = m.stripe.session(&m.session_of(&order.payment_id).await).expect("session");
    m.webhook(&m.stripe.complete_session(session["id"].as_str().expect("id")).expect("paid")).await;
    let paid = m.order_becomes(&seller, &order.id, pb::OrderStatus::Paid).await;
    let old_ticket = paid.tickets[0].clone();
    let (_, fan) = m.issuer.user();
    c.join_waiting_list(authed(
        pb::JoinWaitingListRequest { festival_id: m.festival.to_string(), category_id: category.clone(), quantity: 1 },
        &fan,
    ))
    .await
    .expect("the fan waits");

    let listing = c
        .list_ticket_for_resale(authed(
            pb::ListTicketForResaleRequest { ticket_id: old_ticket.id.clone(), idempotency_key: "resell-1".into() },
            &seller,
        ))
        .await
        .expect("listed")
        .into_inner();
    // 5 % of 50.00 plus 2.00 kept; 45.50 goes back once sold.
    assert_eq!((listing.price_minor, listing.fee_minor, listing.payout_minor), (5_000, 450, 4_550));

    // The worker offers it to the fan, who pays the face value by card.
    let offered = festival_testkit::eventually(Duration::from_secs(15), || {
        let mut c = m.tickets();
        let fan = fan.clone();
        async move {
            let entries = c
                .list_my_waiting_list(authed(pb::ListMyWaitingListRequest::default(), &fan))
                .await
                .map(|r| r.into_inner().entries)
                .unwrap_or_default();
            entries.first().is_some_and(|e| e.status == pb::WaitingStatus::Offered as i32)
        }
    })
    .await;
    assert!(offered, "the fan never got an offer");
    let entry = c
        .list_my_waiting_list(authed(pb::ListMyWaitingListRequest::default(), &fan))
        .await
        .expect("entries")
        .into_inner()
        .entries
        .remove(0);
    let buy = c
        .checkout_hold(authed(
            pb::CheckoutHoldRequest { hold_id: entry.hold_id.clone(), idempotency_key: "buy-resold".into() },
            &fan,
        ))
        .await
        .expect("checkout")
        .into_inner();
    let session = m.stripe.session(&m.session_of(&buy.payment_id).await).expect("session");
    assert_eq!(session["amount_total"], 5_000, "the face value");
    m.webhook(&m.stripe.complete_session(session["id"].as_str().expect("id")).expect("paid")).await;
    let bought = m.order_becomes(&fan, &buy.id, pb::OrderStatus::Paid).await;
    assert_eq!(bought.tickets.len(), 1);
    assert_ne!(bought.tickets[0].credential, old_ticket.credential, "a new credential");
    assert_eq!(m.stock().await, (0, 1), "the place changed hands; the counters did not move");

    // The seller's ticket is revoked and 45.50 goes back to their card.
    let seller_order = m.order_becomes(&seller, &order.id, pb::OrderStatus::Paid).await;
    assert_eq!(seller_order.tickets[0].status, pb::TicketStatus::Cancelled as i32);
    let refunded = festival_testkit::eventually(Duration::from_secs(15), || async {
        m.payment(&order.payment_id).await.refunded_minor == 4_550
    })
    .await;
    assert!(refunded, "seller's payment: {:?}", m.payment(&order.payment_id).await);
    let amounts = || m.stripe.refunds().iter().filter_map(|r| r["amount"].as_i64()).collect::<Vec<_>>();
    let sent = festival_testkit::eventually(Duration::from_secs(15), || async { !amounts().is_empty() }).await;
    assert!(sent, "payments never sent the seller's refund");
    assert_eq!(amounts(), vec![4_550], "one refund, of the payout");
    let listings = c
        .list_my_resale_listings(authed(pb::ListMyResaleListingsRequest::default(), &seller))
        .await
        .expect("listings")
        .into_inner()
        .listings;
    assert_eq!(listings.iter().map(|l| l.status).collect::<Vec<_>>(), vec![pb::ResaleStatus::Sold as i32]);
    // The organisers' view: what resale moved in all.
    let report = c
        .list_resale_listings(authed(
            pb::ListResaleListingsRequest { festival_id: m.festival.to_string(), status: 0 },
            &m.organizer,
        ))
        .await
        .expect("organisers' list")
        .into_inner();
    assert_eq!((report.listings.len(), report.sold, report.payout_minor, report.fee_minor), (1, 1, 4_550, 450));
    m.ticketing.stop().await;
    m.payments.stop().await;
}
