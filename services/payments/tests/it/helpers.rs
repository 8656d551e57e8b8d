use festival_payments::Payments;
use festival_platform::auth::Role;
use festival_proto::google::api::HttpBody;
use festival_proto::payments::v1 as pb;
use festival_proto::payments::v1::payments_service_client::PaymentsServiceClient;
pub use festival_testkit::fake_stripe::{self, FakeStripe, FakeStripeConfig, Mode};
pub use festival_testkit::{TestApp, TestIssuer, all_at_once, authed, code};
use tonic::transport::Channel;
use uuid::Uuid;

pub type Client = PaymentsServiceClient<Channel>;

pub const SECRET_KEY: &str = "sk_test_payments_it";
pub const WEBHOOK_SECRET: &str = "whsec_payments_it";
/// A second signing secret, as during a rotation.
pub const OLD_WEBHOOK_SECRET: &str = "whsec_payments_it_old";

/// Payments under test with its fake Stripe and the token issuer.
pub struct Env {
    pub issuer: TestIssuer,
    pub stripe: FakeStripe,
    pub app: TestApp<Payments>,
}

pub async fn spawn() -> Env {
    spawn_with(|_| {}).await
}

/// Payments on a manual clock (`env.app.clock.advance(..)` moves its time).
pub async fn spawn_on_manual_clock() -> Env {
    spawn_inner(|_| {}, true).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut festival_payments::Config)) -> Env {
    spawn_inner(adjust, false).await
}

async fn spawn_inner(adjust: impl FnOnce(&mut festival_payments::Config), manual_clock: bool) -> Env {
    let issuer = TestIssuer::start().await;
    let stripe = FakeStripe::start(FakeStripeConfig {
        secret_key: SECRET_KEY.into(),
        webhook_secret: WEBHOOK_SECRET.into(),
        webhook_url: None,
        addr: None,
    })
    .await
    .expect("fake Stripe starts");
    let identity_url = issuer.url();
    let api_base = stripe.base_url();
    let configure = |c: &mut festival_payments::Config| {
        c.common.auth.identity_url = identity_url;
        c.stripe.secret_key = festival_platform::config::Secret::new(SECRET_KEY);
        c.stripe.webhook_secrets =
            festival_platform::config::Secret::new(format!("{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}"));
        c.stripe.api_base = api_base;
        c.stripe.timeout_ms = 1_000;
        // The tests sweep when they mean to (`Env::sweep`): the worker's own rounds
        // would race them.
        c.sweep.interval_ms = 3_600_000;
        adjust(c);
    };
    let app = if manual_clock {
        TestApp::<Payments>::spawn_on_manual_clock(configure).await
    } else {
        TestApp::<Payments>::spawn_with(configure).await
    };
    Env { issuer, stripe, app }
}

/// A festival's id and its organizer's token.
pub struct Festival {
    pub id: Uuid,
    pub organizer: String,
}

impl Env {
    pub fn client(&self) -> Client {
        PaymentsServiceClient::new(self.app.channel.clone())
    }

    pub fn festival(&self) -> Festival {
        let id = Uuid::now_v7();
        let (organizer_id, _) = self.issuer.user();
        Festival { id, organizer: self.issuer.member(organizer_id, id, Role::Organizer) }
    }

    /// A buyer's token.
    pub fn buyer(&self) -> String {
        self.issuer.user().1
    }

    /// Opens a checkout of `amount` for `buyer` with `key`.
    pub async fn checkout(
        &self,
        festival: &Festival,
        buyer: &str,
        key: &str,
        amount: i64,
    ) -> Result<pb::Payment, tonic::Status> {
        self.client()
            .create_checkout(authed(checkout_request(festival, key, amount), buyer))
            .await
            .map(|r| r.into_inner())
    }

    /// A completed payment of `amount` (checkout, then Stripe's signed webhook).
    pub async fn paid(&self, festival: &Festival, amount: i64) -> pb::Payment {
        let buyer = self.buyer();
        let payment = self.checkout(festival, &buyer, &Uuid::now_v7().to_string(), amount).await.expect("checkout");
        let session = self.session_id(&payment).await;
        let event = self.stripe.complete_session(&session).expect("the fake knows the session");
        self.deliver(&event).await.expect("webhook accepted");
        self.payment(&payment.id).await
    }

    /// The provider's session id of a payment.
    pub async fn session_id(&self, payment: &pb::Payment) -> String {
        sqlx::query_scalar("select provider_session_id from payments where id = $1")
            .bind(Uuid::parse_str(&payment.id).expect("id"))
            .fetch_one(&self.app.pool)
            .await
            .expect("payment row")
    }

    /// A payment as stored, read by an admin.
    pub async fn payment(&self, id: &str) -> pb::Payment {
        self.client()
            .get_payment(authed(pb::GetPaymentRequest { payment_id: id.into() }, &self.issuer.admin()))
            .await
            .expect("get payment")
            .into_inner()
    }

    /// Sends an event to the webhook RPC as the gateway would, freshly signed.
    pub async fn deliver(&self, event: &serde_json::Value) -> Result<pb::WebhookReceipt, tonic::Status> {
        let body = serde_json::to_vec(event).expect("json");
        let header = fake_stripe::sign(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &body);
        self.deliver_raw(body, Some(&header)).await
    }

    /// Sends `body` with this `Stripe-Signature` (or none).
    pub async fn deliver_raw(
        &self,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> Result<pb::WebhookReceipt, tonic::Status> {
        let mut request =
            tonic::Request::new(HttpBody { content_type: "application/json".into(), data: body, extensions: vec![] });
        if let Some(signature) = signature {
            request.metadata_mut().insert("stripe-signature", signature.parse().expect("ascii header"));
        }
        self.client().receive_stripe_webhook(request).await.map(|r| r.into_inner())
    }

    /// One sweep round, as the worker runs it.
    pub async fn sweep(&self) -> festival_payments::sweep::Swept {
        let provider = festival_payments::provider(&self.app.config, self.app.clock.clone()).expect("provider");
        festival_payments::sweep::once(&self.app.pool, provider.as_ref(), &self.app.clock).await.expect("sweep")
    }

    /// A payment's refunds, as `token` reads them.
    pub async fn refunds(&self, payment_id: &str, token: &str) -> Vec<pb::Refund> {
        self.client()
            .list_refunds(authed(pb::ListRefundsRequest { payment_id: payment_id.into() }, token))
            .await
            .expect("refunds")
            .into_inner()
            .refunds
    }

    /// The payment intent Stripe made for a completed payment.
    pub async fn intent_of(&self, payment: &pb::Payment) -> String {
        sqlx::query_scalar("select provider_intent_id from payments where id = $1")
            .bind(Uuid::parse_str(&payment.id).expect("id"))
            .fetch_one(&self.app.pool)
            .await
            .expect("intent")
    }

    /// How many events of `subject` (`festival.payments.payment.completed`) were published.
    pub async fn published(&self, subject: &str) -> usize {
        self.app.assert_outbox_drained().await;
        let naming = self.app.naming();
        let stream = festival_testkit::jetstream().await.get_stream(naming.stream("payments")).await;
        let Ok(mut stream) = stream else { return 0 };
        let info = stream.info().await.expect("stream info");
        if info.state.messages == 0 {
            return 0;
        }
        let full = naming.subject(subject);
        let mut count = 0;
        let mut subjects = stream.info_with_subjects(&full).await.expect("subjects");
        use futures::StreamExt;
        while let Some(Ok((s, n))) = subjects.next().await {
            if s == full {
                count += n;
            }
        }
        count
    }
}

pub fn checkout_request(festival: &Festival, key: &str, amount: i64) -> pb::CreateCheckoutRequest {
    pb::CreateCheckoutRequest {
        festival_id: festival.id.to_string(),
        purpose: pb::PaymentPurpose::TicketOrder as i32,
        reference: Uuid::now_v7().to_string(),
        currency: "EUR".into(),
        line_items: vec![pb::LineItem { name: "Weekend ticket".into(), quantity: 1, unit_amount_minor: amount }],
        success_url: "https://shop.example/paid".into(),
        cancel_url: "https://shop.example/cart".into(),
        idempotency_key: key.into(),
        expire_time: None,
        vendor_account_id: String::new(),
    }
}
