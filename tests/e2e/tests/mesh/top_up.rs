//! An online top-up end to end: cashless opens a checkout at payments for the holder's
//! wallet → the test kit's fake Stripe takes the card → Stripe's signed webhook →
//! `payment.completed` → the wallet is credited once; a refund in Stripe's dashboard
//! takes it back and blocks the wallet's bands.

use std::time::Duration;

use festival_cashless::Cashless;
use festival_payments::Payments;
use festival_platform::auth::Role;
use festival_proto::cashless::v1 as cl;
use festival_proto::cashless::v1::cashless_service_client::CashlessServiceClient;
use festival_proto::google::api::HttpBody;
use festival_proto::payments::v1 as pay;
use festival_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use festival_proto::program::v1 as program;
use festival_testkit::fake_stripe::{self, FakeStripe, FakeStripeConfig};
use festival_testkit::{TestApp, TestIssuer, authed, code, eventually};
use uuid::Uuid;

const WEBHOOK_SECRET: &str = "whsec_e2e_top_up";

struct Mesh {
    issuer: TestIssuer,
    /// Between cashless and payments: a test cuts it to take payments away from cashless.
    link: festival_testkit::TcpProxy,
    stripe: FakeStripe,
    payments: TestApp<Payments>,
    cashless: TestApp<Cashless>,
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
    let payments = TestApp::<Payments>::start(config, name.clone()).await;
    let mut config = <Cashless as festival_platform::server::Service>::default_config();
    festival_testkit::isolate(&mut config.common, &name);
    config.common.auth.identity_url = issuer.url();
    let link = festival_testkit::TcpProxy::start(&payments.addr.to_string()).await;
    config.payments.url = format!("http://{}", link.addr);
    config.payments.success_url = "https://shop.example/wallets/{WALLET_ID}/loaded".into();
    let cashless = TestApp::<Cashless>::start(config, name).await;

    let festival = Uuid::now_v7();
    festival_testkit::announce_festival(&cashless.naming(), festival, "Top-ups", program::FestivalStatus::Published)
        .await;
    let (organizer_id, _) = issuer.user();
    let organizer = issuer.member(organizer_id, festival, Role::Organizer);
    let client = CashlessServiceClient::new(cashless.channel.clone());
    let known = eventually(Duration::from_secs(15), || {
        let (mut client, organizer) = (client.clone(), organizer.clone());
        async move {
            client
                .get_settings(authed(cl::GetSettingsRequest { festival_id: festival.to_string() }, &organizer))
                .await
                .is_ok()
        }
    })
    .await;
    assert!(known, "cashless never heard of the festival");
    Mesh { issuer, link, stripe, payments, cashless, festival, organizer }
}

impl Mesh {
    fn cashless(&self) -> CashlessServiceClient<tonic::transport::Channel> {
        CashlessServiceClient::new(self.cashless.channel.clone())
    }

    /// A new fan and their wallet at the festival.
    async fn fan_wallet(&self) -> (String, cl::Wallet) {
        let (_, fan) = self.issuer.user();
        let wallet = self
            .cashless()
            .open_wallet(authed(cl::OpenWalletRequest { festival_id: self.festival.to_string() }, &fan))
            .await
            .expect("open the fan's wallet")
            .into_inner();
        (fan, wallet)
    }

    async fn wallet(&self, token: &str, id: &str) -> cl::Wallet {
        self.cashless()
            .get_wallet(authed(cl::GetWalletRequest { wallet_id: id.into() }, token))
            .await
            .expect("the holder reads the wallet")
            .into_inner()
    }

    /// Waits (at most 15 s) until the wallet holds `balance`.
    async fn holds(&self, token: &str, id: &str, balance: i64) -> bool {
        eventually(Duration::from_secs(15), || async { self.wallet(token, id).await.balance_minor == balance }).await
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

    /// An online top-up of `amount` paid at Stripe and credited: its payment id.
    async fn loaded(&self, fan: &str, wallet: &cl::Wallet, amount: i64) -> String {
        let before = self.wallet(fan, &wallet.id).await.balance_minor;
        let key = Uuid::now_v7().to_string();
        let checkout = self
            .cashless()
            .start_top_up(authed(start(&wallet.id, amount, &key), fan))
            .await
            .expect("checkout")
            .into_inner();
        let session = self.session_of(&checkout.payment_id).await;
        self.webhook(&self.stripe.complete_session(&session).expect("paid")).await;
        assert!(self.holds(fan, &wallet.id, before + amount).await, "the top-up was never credited");
        checkout.payment_id
    }

    async fn payment(&self, id: &str) -> pay::Payment {
        PaymentsServiceClient::new(self.payments.channel.clone())
            .get_payment(authed(pay::GetPaymentRequest { payment_id: id.into() }, &self.organizer))
            .await
            .expect("payment")
            .into_inner()
    }

    async fn session_of(&self, payment_id: &str) -> String {
        sqlx::query_scalar("select provider_session_id from payments where id = $1")
            .bind(Uuid::parse_str(payment_id).expect("payment id"))
            .fetch_one(&self.payments.pool)
            .await
            .expect("payment row")
    }
}

fn start(wallet: &str, amount: i64, key: &str) -> cl::StartTopUpRequest {
    cl::StartTopUpRequest {
        wallet_id: wallet.into(),
        amount_minor: amount,
        currency: "EUR".into(),
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn an_online_top_up_is_credited_once_when_stripe_says_it_is_paid_and_a_refund_takes_it_back() {
    let m = mesh().await;
    let (fan, wallet) = m.fan_wallet().await;
    let mut c = m.cashless();
    let checkout =
        c.start_top_up(authed(start(&wallet.id, 2_500, "load-1"), &fan)).await.expect("checkout").into_inner();
    assert_eq!(
        (checkout.wallet_id.as_str(), checkout.amount_minor, checkout.currency.as_str()),
        (wallet.id.as_str(), 2_500, "EUR")
    );
    assert!(checkout.checkout_url.contains("/pay/cs_"), "{}", checkout.checkout_url);
    assert!(checkout.expire_time.is_some());
    // A retry (a lost answer) is the same checkout; the same key for another amount is not.
    let again = c.start_top_up(authed(start(&wallet.id, 2_500, "load-1"), &fan)).await.expect("retry").into_inner();
    assert_eq!(again.payment_id, checkout.payment_id);
    assert_eq!(code(c.start_top_up(authed(start(&wallet.id, 3_000, "load-1"), &fan)).await), "ERR_1006");

    let session = m.stripe.session(&m.session_of(&checkout.payment_id).await).expect("a Stripe session");
    assert_eq!((session["amount_total"].as_i64(), session["currency"].as_str()), (Some(2_500), Some("eur")));
    assert_eq!(
        session["success_url"].as_str(),
        Some(format!("https://shop.example/wallets/{}/loaded", wallet.id).as_str()),
        "the holder comes back to their wallet's page"
    );
    assert_eq!(m.wallet(&fan, &wallet.id).await.balance_minor, 0, "nothing before the payment");

    let completed = m.stripe.complete_session(session["id"].as_str().expect("id")).expect("paid");
    m.webhook(&completed).await;
    assert!(m.holds(&fan, &wallet.id, 2_500).await, "the wallet was never credited");
    // Stripe repeating itself credits nothing more.
    m.webhook(&completed).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(m.wallet(&fan, &wallet.id).await.balance_minor, 2_500);
    let statement = c
        .list_transactions(authed(
            cl::ListTransactionsRequest { wallet_id: wallet.id.clone(), ..Default::default() },
            &fan,
        ))
        .await
        .expect("statement")
        .into_inner();
    let kinds: Vec<(i32, i64)> = statement.transactions.iter().map(|t| (t.r#type, t.amount_minor)).collect();
    assert_eq!(kinds, vec![(cl::TransactionType::Topup as i32, 2_500)], "one top-up");

    // Refunded in Stripe's dashboard: the wallet gives it back.
    let intent = completed["data"]["object"]["payment_intent"].as_str().expect("intent").to_owned();
    let refund = m.stripe.dashboard_refund(&intent, 2_500).await;
    m.webhook(&m.stripe.refund_event(&refund).expect("event")).await;
    assert!(m.holds(&fan, &wallet.id, 0).await, "the refund was never taken back");
    let payment = PaymentsServiceClient::new(m.payments.channel.clone())
        .get_payment(authed(pay::GetPaymentRequest { payment_id: checkout.payment_id.clone() }, &fan))
        .await
        .expect("payment")
        .into_inner();
    assert_eq!(
        (payment.status, payment.purpose),
        (pay::PaymentStatus::Refunded as i32, pay::PaymentPurpose::WalletTopUp as i32)
    );
    m.cashless.stop().await;
    m.payments.stop().await;
}

#[tokio::test]
async fn an_online_top_up_is_the_holders_own_and_within_the_festivals_limits() {
    let m = mesh().await;
    let (fan, wallet) = m.fan_wallet().await;
    let (_, stranger) = m.issuer.user();
    let mut c = m.cashless();
    let refused = |r: Result<tonic::Response<cl::TopUpCheckout>, tonic::Status>| code(r);
    assert_eq!(
        refused(c.start_top_up(authed(start(&wallet.id, 2_500, "k"), &stranger)).await),
        "ERR_3001",
        "not theirs"
    );
    assert_eq!(
        refused(c.start_top_up(authed(start(&wallet.id, 50, "k"), &fan)).await),
        "ERR_8005",
        "below the minimum"
    );
    assert_eq!(
        refused(c.start_top_up(authed(start(&wallet.id, 50_001, "k"), &fan)).await),
        "ERR_8005",
        "above the maximum"
    );
    assert_eq!(refused(c.start_top_up(authed(start(&wallet.id, 0, "k"), &fan)).await), "ERR_1000");
    let mut usd = start(&wallet.id, 2_500, "k");
    usd.currency = "USD".into();
    assert_eq!(refused(c.start_top_up(authed(usd, &fan)).await), "ERR_5005");
    assert_eq!(refused(c.start_top_up(authed(start(&Uuid::now_v7().to_string(), 2_500, "k"), &fan)).await), "ERR_4000");
    assert_eq!(refused(c.start_top_up(authed(start(&wallet.id, 2_500, ""), &fan)).await), "ERR_1001");
    let opened: i64 =
        sqlx::query_scalar("select count(*) from payments").fetch_one(&m.payments.pool).await.expect("count");
    assert_eq!(opened, 0, "no refused start reached payments");
    m.cashless.stop().await;
    m.payments.stop().await;
}

#[tokio::test]
async fn unspent_online_money_goes_back_to_its_cards_once_when_the_festival_is_over() {
    let m = mesh().await;
    let (fan, wallet) = m.fan_wallet().await;
    let mut c = m.cashless();
    let older = m.loaded(&fan, &wallet, 2_500).await;
    let newer = m.loaded(&fan, &wallet, 1_500).await;
    // 1,000 spent (an organiser's correction stands in for a bar): money loaded online is
    // spent last, so 3,000 of it is left.
    let correction = cl::CorrectRequest {
        wallet_id: wallet.id.clone(),
        amount_minor: -1_000,
        currency: "EUR".into(),
        reason: "bar tab settled by hand".into(),
        idempotency_key: Uuid::now_v7().to_string(),
    };
    c.correct(authed(correction, &m.organizer)).await.expect("correction");
    let run = |token: &str| authed(cl::RefundCardTopUpsRequest { festival_id: m.festival.to_string() }, token);
    assert_eq!(code(c.refund_card_top_ups(run(&m.organizer)).await), "ERR_8015", "not while the festival is on");

    festival_testkit::announce_festival_version(
        &m.cashless.naming(),
        m.festival,
        "Top-ups",
        program::FestivalStatus::Completed,
        2,
    )
    .await;
    let over = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, String>("select status from festivals where id = $1")
            .bind(m.festival)
            .fetch_one(&m.cashless.pool)
            .await
            .is_ok_and(|s| s == "COMPLETED")
    })
    .await;
    assert!(over, "cashless never heard the festival was over");
    assert_eq!(code(c.refund_card_top_ups(run(&fan)).await), "ERR_3002", "organisers only");

    let done = c.refund_card_top_ups(run(&m.organizer)).await.expect("run").into_inner();
    assert_eq!(
        (done.wallets, done.booked_refunds, done.booked_minor, done.sent, done.refused, done.pending),
        (1, 2, 3_000, 2, 0, 0),
        "{done:?}"
    );
    assert_eq!(m.wallet(&fan, &wallet.id).await.balance_minor, 0, "out of the wallet as soon as it is booked");
    // The newest top-up goes back whole, the older one for the rest.
    let confirmed = eventually(Duration::from_secs(15), || async {
        let statuses: Vec<String> = sqlx::query_scalar("select status from card_refunds order by amount_minor")
            .fetch_all(&m.cashless.pool)
            .await
            .unwrap_or_default();
        statuses == ["CONFIRMED", "CONFIRMED"]
    })
    .await;
    assert!(confirmed, "payments' refund events never confirmed the refunds");
    let newer = m.payment(&newer).await;
    assert_eq!((newer.status, newer.refunded_minor), (pay::PaymentStatus::Refunded as i32, 1_500));
    let older = m.payment(&older).await;
    assert_eq!((older.status, older.refunded_minor), (pay::PaymentStatus::Completed as i32, 1_500));
    // The events took nothing more from the wallet, and the ledger holds.
    assert_eq!(m.wallet(&fan, &wallet.id).await.balance_minor, 0);
    let report = c
        .verify_ledger(authed(cl::VerifyLedgerRequest { festival_id: m.festival.to_string() }, &m.organizer))
        .await
        .expect("verify")
        .into_inner();
    assert!(report.ok && report.transactions == 5, "{report:?}");
    let report = c
        .get_close_out_report(authed(
            cl::GetCloseOutReportRequest { festival_id: m.festival.to_string() },
            &m.organizer,
        ))
        .await
        .expect("report")
        .into_inner();
    assert_eq!(
        (report.card_refunds_confirmed_minor, report.card_refunds_booked_minor, report.card_refunds_sent_minor),
        (3_000, 0, 0)
    );
    let again = c.refund_card_top_ups(run(&m.organizer)).await.expect("again").into_inner();
    assert_eq!(again, cl::CardRefundRun::default(), "a second run finds nothing to do");
    m.cashless.stop().await;
    m.payments.stop().await;
}

#[tokio::test]
async fn card_refunds_payments_cannot_take_stay_booked_for_the_next_run_and_are_booked_once() {
    let m = mesh().await;
    let (fan, wallet) = m.fan_wallet().await;
    m.loaded(&fan, &wallet, 2_000).await;
    festival_testkit::announce_festival_version(
        &m.cashless.naming(),
        m.festival,
        "Top-ups",
        program::FestivalStatus::Cancelled,
        2,
    )
    .await;
    let over = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, String>("select status from festivals where id = $1")
            .bind(m.festival)
            .fetch_one(&m.cashless.pool)
            .await
            .is_ok_and(|s| s == "CANCELLED")
    })
    .await;
    assert!(over, "cashless never heard the festival was cancelled");
    let mut c = m.cashless();
    let run = |festival: Uuid, organizer: &str| {
        authed(cl::RefundCardTopUpsRequest { festival_id: festival.to_string() }, organizer)
    };
    let (festival, organizer, cashless) = (m.festival, m.organizer, m.cashless);
    m.payments.stop().await;
    let first = c.refund_card_top_ups(run(festival, &organizer)).await.expect("run").into_inner();
    assert_eq!((first.booked_refunds, first.booked_minor, first.sent, first.pending), (1, 2_000, 0, 1), "{first:?}");
    let second = c.refund_card_top_ups(run(festival, &organizer)).await.expect("run again").into_inner();
    assert_eq!((second.booked_refunds, second.sent, second.pending), (0, 0, 1), "booked once, asked again: {second:?}");
    let held = c
        .get_wallet(authed(cl::GetWalletRequest { wallet_id: wallet.id.clone() }, &fan))
        .await
        .expect("wallet")
        .into_inner()
        .balance_minor;
    assert_eq!(held, 0, "held out of the wallet meanwhile");
    let report = c
        .get_close_out_report(authed(cl::GetCloseOutReportRequest { festival_id: festival.to_string() }, &organizer))
        .await
        .expect("report")
        .into_inner();
    assert_eq!((report.card_refunds_booked_minor, report.card_refunds_confirmed_minor), (2_000, 0));
    cashless.stop().await;
}

/// The festival is over, as program says and cashless heard.
async fn festival_over(m: &Mesh) {
    festival_testkit::announce_festival_version(
        &m.cashless.naming(),
        m.festival,
        "Top-ups",
        program::FestivalStatus::Completed,
        2,
    )
    .await;
    let over = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, String>("select status from festivals where id = $1")
            .bind(m.festival)
            .fetch_one(&m.cashless.pool)
            .await
            .is_ok_and(|s| s == "COMPLETED")
    })
    .await;
    assert!(over, "cashless never heard the festival was over");
}

#[tokio::test]
async fn a_refund_payments_took_before_a_run_was_cut_is_not_asked_again_by_another_organiser() {
    let m = mesh().await;
    let (fan, wallet) = m.fan_wallet().await;
    let payment = m.loaded(&fan, &wallet, 2_000).await;
    festival_over(&m).await;
    let mut c = m.cashless();
    let run = |token: &str| authed(cl::RefundCardTopUpsRequest { festival_id: m.festival.to_string() }, token);

    // Organiser A's run books the refund; payments takes it but the answer is lost (as
    // when the run is cut by its deadline): here payments is out of reach for cashless,
    // and the request cashless would have made is made by hand.
    m.link.cut();
    let first = c.refund_card_top_ups(run(&m.organizer)).await.expect("run").into_inner();
    assert_eq!((first.booked_refunds, first.sent, first.pending), (1, 0, 1), "{first:?}");
    let booking: Uuid =
        sqlx::query_scalar("select id from card_refunds").fetch_one(&m.cashless.pool).await.expect("booked");
    let payments = PaymentsServiceClient::new(m.payments.channel.clone());
    let taken = payments
        .clone()
        .refund_payment(authed(
            pay::RefundPaymentRequest {
                payment_id: payment.clone(),
                amount_minor: 2_000,
                reason: format!(
                    "Festival close-out: unspent online top-up paid back to the card [card-refund {booking}]"
                ),
                idempotency_key: format!("card-refund-{booking}"),
            },
            &m.organizer,
        ))
        .await
        .expect("payments takes it")
        .into_inner();
    // Its refund event comes while the booking still waits for its answer: parked.
    let parked = eventually(Duration::from_secs(15), || async {
        sqlx::query_scalar::<_, i64>("select count(*) from parked_reversals")
            .fetch_one(&m.cashless.pool)
            .await
            .is_ok_and(|n| n == 1)
    })
    .await;
    assert!(parked, "the refund was not parked");
    assert_eq!(m.wallet(&fan, &wallet.id).await.balance_minor, 0, "nothing taken twice meanwhile");

    // Organiser B runs again: payments already has it (under A's key), so it is not asked
    // again; the parked refund is recognised as this booking's.
    m.link.restore().await;
    let (organizer_b_id, _) = m.issuer.user();
    let organizer_b = m.issuer.member(organizer_b_id, m.festival, Role::Organizer);
    let second = c.refund_card_top_ups(run(&organizer_b)).await.expect("run again").into_inner();
    assert_eq!((second.booked_refunds, second.sent, second.pending, second.refused), (0, 1, 0, 0), "{second:?}");
    let refunds = payments
        .clone()
        .list_refunds(authed(pay::ListRefundsRequest { payment_id: payment.clone() }, &m.organizer))
        .await
        .expect("refunds")
        .into_inner()
        .refunds;
    assert_eq!(
        refunds.iter().map(|r| (r.id.as_str(), r.amount_minor)).collect::<Vec<_>>(),
        vec![(taken.id.as_str(), 2_000)]
    );
    let status: String =
        sqlx::query_scalar("select status from card_refunds").fetch_one(&m.cashless.pool).await.expect("status");
    assert_eq!(status, "CONFIRMED");
    let left: i64 =
        sqlx::query_scalar("select count(*) from parked_reversals").fetch_one(&m.cashless.pool).await.expect("n");
    assert_eq!(left, 0);
    assert_eq!(m.wallet(&fan, &wallet.id).await.balance_minor, 0);
    let report = c
        .verify_ledger(authed(cl::VerifyLedgerRequest { festival_id: m.festival.to_string() }, &m.organizer))
        .await
        .expect("verify")
        .into_inner();
    assert!(report.ok, "{report:?}");
    m.cashless.stop().await;
    m.payments.stop().await;
}

#[tokio::test]
async fn online_money_moved_in_from_another_wallet_goes_to_no_card() {
    let m = mesh().await;
    let (fan, wallet) = m.fan_wallet().await;
    let (friend, friends) = m.fan_wallet().await;
    // The friend's card loads 1,500 and the friend passes it on; the fan's own card 500.
    m.loaded(&friend, &friends, 1_500).await;
    let own = m.loaded(&fan, &wallet, 500).await;
    let transfer = cl::TransferRequest {
        wallet_id: friends.id.clone(),
        to_wallet_id: wallet.id.clone(),
        amount_minor: 1_500,
        currency: "EUR".into(),
        idempotency_key: Uuid::now_v7().to_string(),
    };
    m.cashless().transfer(authed(transfer, &friend)).await.expect("transfer");
    festival_over(&m).await;
    let done = m
        .cashless()
        .refund_card_top_ups(authed(cl::RefundCardTopUpsRequest { festival_id: m.festival.to_string() }, &m.organizer))
        .await
        .expect("run")
        .into_inner();
    // Only the fan's own 500 goes to the fan's card: the 1,500 the friend's card loaded
    // (a stolen card's, perhaps) is not the fan's to get back on their card.
    assert_eq!((done.wallets, done.booked_refunds, done.booked_minor, done.sent), (1, 1, 500, 1), "{done:?}");
    assert_eq!(m.wallet(&fan, &wallet.id).await.balance_minor, 1_500, "the rest stays, to be donated or settled");
    let refunded = eventually(Duration::from_secs(15), || async { m.payment(&own).await.refunded_minor == 500 }).await;
    assert!(refunded, "the fan's own top-up was not refunded");
    m.cashless.stop().await;
    m.payments.stop().await;
}

#[tokio::test]
async fn a_dispute_heard_while_a_card_refund_was_under_way_is_taken_when_that_refund_fails() {
    let m = mesh().await;
    let (fan, wallet) = m.fan_wallet().await;
    let payment = m.loaded(&fan, &wallet, 2_000).await;
    festival_over(&m).await;
    let mut c = m.cashless();
    let run = || authed(cl::RefundCardTopUpsRequest { festival_id: m.festival.to_string() }, &m.organizer);
    // The refund is booked (out of the wallet) but payments cannot be reached yet.
    m.link.cut();
    let first = c.refund_card_top_ups(run()).await.expect("run").into_inner();
    assert_eq!((first.booked_minor, first.pending), (2_000, 1), "{first:?}");
    // Meanwhile the cardholder disputes the top-up: it is on its way back already, so
    // nothing more is taken now; what was left out is kept.
    let intent: String = sqlx::query_scalar("select provider_intent_id from payments where id = $1")
        .bind(Uuid::parse_str(&payment).expect("id"))
        .fetch_one(&m.payments.pool)
        .await
        .expect("intent");
    m.webhook(&m.stripe.dispute_event(&intent, 2_000)).await;
    let capped = eventually(Duration::from_secs(15), || async {
        sqlx::query_scalar::<_, i64>("select capped_minor from online_top_ups")
            .fetch_one(&m.cashless.pool)
            .await
            .is_ok_and(|c| c == 2_000)
    })
    .await;
    assert!(capped, "the dispute was not held back");
    assert_eq!(m.wallet(&fan, &wallet.id).await.balance_minor, 0, "not taken twice");

    // Payments is back: the refund is sent and confirmed; then the card's bank returns it.
    m.link.restore().await;
    let second = c.refund_card_top_ups(run()).await.expect("run").into_inner();
    assert_eq!((second.sent, second.pending), (1, 0), "{second:?}");
    let confirmed = eventually(Duration::from_secs(15), || async {
        sqlx::query_scalar::<_, String>("select status from card_refunds")
            .fetch_one(&m.cashless.pool)
            .await
            .is_ok_and(|s| s == "CONFIRMED")
    })
    .await;
    assert!(confirmed, "the refund was never confirmed");
    let refund = m.stripe.refunds().last().and_then(|r| r["id"].as_str().map(str::to_owned)).expect("a Stripe refund");
    m.webhook(&m.stripe.fail_refund(&refund).expect("failed")).await;
    let failed_at_payments = eventually(Duration::from_secs(15), || async {
        sqlx::query_scalar::<_, String>("select status from refunds")
            .fetch_one(&m.payments.pool)
            .await
            .is_ok_and(|s| s == "FAILED")
    })
    .await;
    assert!(failed_at_payments, "payments never heard the refund failed");

    // The next run books the refund back into the wallet, and the dispute takes it: the
    // holder does not keep the disputed money, and no loss is booked.
    let third = c.refund_card_top_ups(run()).await.expect("run").into_inner();
    assert_eq!(third.refused, 1, "{third:?}");
    assert_eq!(m.wallet(&fan, &wallet.id).await.balance_minor, 0);
    let (reversed, capped, uncollected): (i64, i64, i64) =
        sqlx::query_as("select reversed_minor, capped_minor, uncollected_minor from online_top_ups")
            .fetch_one(&m.cashless.pool)
            .await
            .expect("top-up");
    assert_eq!((reversed, capped, uncollected), (2_000, 0, 0));
    let report = c
        .verify_ledger(authed(cl::VerifyLedgerRequest { festival_id: m.festival.to_string() }, &m.organizer))
        .await
        .expect("verify")
        .into_inner();
    assert!(report.ok, "{report:?}");
    m.cashless.stop().await;
    m.payments.stop().await;
}
