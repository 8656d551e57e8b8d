use std::time::{Duration, Instant};

use festival_proto::payments::v1 as pb;

use crate::helpers::*;

#[tokio::test]
async fn a_checkout_opens_one_stripe_session_and_a_retry_answers_the_same() {
    let env = spawn().await;
    let festival = env.festival();
    let buyer = env.buyer();
    let request = checkout_request(&festival, "order-1-attempt-1", 9_000);
    let first = env.client().create_checkout(authed(request.clone(), &buyer)).await.expect("checkout").into_inner();
    assert_eq!(first.status, pb::PaymentStatus::Pending as i32);
    assert_eq!((first.amount_minor, first.currency.as_str()), (9_000, "EUR"));
    assert!(first.checkout_url.contains("/pay/cs_"), "{}", first.checkout_url);
    let again = env.client().create_checkout(authed(request.clone(), &buyer)).await.expect("retry").into_inner();
    assert_eq!(again, first);
    assert_eq!(env.stripe.sessions().len(), 1, "one session at Stripe");
    // Stripe got our key and the amount we asked for.
    let requests = env.stripe.requests();
    let creates: Vec<_> = requests.iter().filter(|r| r.0 == "POST" && r.1 == "/v1/checkout/sessions").collect();
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].2.as_deref(), Some(format!("checkout-{}", first.id).as_str()));
    let session = env.stripe.sessions().pop().expect("a session");
    assert_eq!(session["amount_total"], 9_000);
    assert_eq!(session["metadata"]["payment_id"], first.id.as_str());

    // The same key with other content is refused and opens nothing.
    let mut other = request.clone();
    other.line_items[0].unit_amount_minor = 1;
    assert_eq!(code(env.client().create_checkout(authed(other, &buyer)).await), "ERR_1006");
    assert_eq!(env.stripe.sessions().len(), 1);
    env.app.stop().await;
}

#[tokio::test]
async fn a_new_attempt_after_a_failed_payment_is_a_new_checkout() {
    let env = spawn().await;
    let festival = env.festival();
    let buyer = env.buyer();
    let first = env.checkout(&festival, &buyer, "order-7-attempt-1", 4_500).await.expect("checkout");
    let expired = env.stripe.expire_session(&env.session_id(&first).await).expect("session");
    env.deliver(&expired).await.expect("webhook");
    assert_eq!(env.payment(&first.id).await.status, pb::PaymentStatus::Failed as i32);
    let second = env.checkout(&festival, &buyer, "order-7-attempt-2", 4_500).await.expect("a new attempt");
    assert_ne!(second.id, first.id);
    assert_eq!(second.status, pb::PaymentStatus::Pending as i32);
    assert_eq!(env.stripe.sessions().len(), 2);
    assert_eq!(env.published("festival.payments.payment.failed").await, 1);
    env.app.stop().await;
}

#[tokio::test]
async fn bad_checkouts_are_refused_before_stripe_hears_of_them() {
    let env = spawn().await;
    let festival = env.festival();
    let buyer = env.buyer();
    let base = checkout_request(&festival, "k-1", 1_000);
    type Change = Box<dyn Fn(&mut pb::CreateCheckoutRequest)>;
    let cases: Vec<(&str, Change)> = vec![
        ("ERR_1001", Box::new(|r| r.purpose = 0)),
        ("ERR_5005", Box::new(|r| r.currency = "EURO".into())),
        ("ERR_1000", Box::new(|r| r.line_items.clear())),
        ("ERR_1000", Box::new(|r| r.line_items[0].quantity = 0)),
        ("ERR_5006", Box::new(|r| r.line_items[0].unit_amount_minor = -1)),
        ("ERR_5006", Box::new(|r| r.line_items[0].unit_amount_minor = 0)),
        ("ERR_5006", Box::new(|r| r.line_items[0].unit_amount_minor = i64::MAX)),
        ("ERR_1000", Box::new(|r| r.success_url = "javascript:alert(1)".into())),
        ("ERR_1000", Box::new(|r| r.cancel_url = String::new())),
        ("ERR_1004", Box::new(|r| r.festival_id = "nope".into())),
        ("ERR_1001", Box::new(|r| r.idempotency_key = String::new())),
    ];
    assert!(!cases.is_empty());
    for (i, (expected, change)) in cases.iter().enumerate() {
        let mut request = base.clone();
        request.idempotency_key = format!("bad-{i}");
        change(&mut request);
        let got = code(env.client().create_checkout(authed(request, &buyer)).await);
        assert_eq!(&got, expected, "case {i}");
    }
    // Without a token: refused.
    assert_eq!(code(env.client().create_checkout(tonic::Request::new(base)).await), "ERR_2000");
    assert!(env.stripe.requests().is_empty(), "nothing reached Stripe");
    env.app.stop().await;
}

#[tokio::test]
async fn when_stripe_fails_or_hangs_checkout_answers_within_its_deadline_and_writes_nothing() {
    let env = spawn_with(|c| {
        c.stripe.timeout_ms = 300;
        c.stripe.breaker_failures = 3;
        c.stripe.breaker_cooldown_ms = 60_000;
    })
    .await;
    let festival = env.festival();
    let buyer = env.buyer();
    env.stripe.set_mode(Mode::Fail500);
    assert_eq!(code(env.checkout(&festival, &buyer, "outage-1", 1_000).await), "ERR_5002");
    env.stripe.set_mode(Mode::Hang);
    let started = Instant::now();
    assert_eq!(code(env.checkout(&festival, &buyer, "outage-2", 1_000).await), "ERR_5002");
    assert!(started.elapsed() < Duration::from_secs(5), "answered at the deadline, not when Stripe gave up");
    assert_eq!(code(env.checkout(&festival, &buyer, "outage-3", 1_000).await), "ERR_5002");
    // The circuit is open: the next call fails at once without reaching Stripe.
    let reached = env.stripe.requests().len();
    assert_eq!(code(env.checkout(&festival, &buyer, "outage-4", 1_000).await), "ERR_5002");
    assert_eq!(env.stripe.requests().len(), reached);
    let rows: i64 = sqlx::query_scalar("select count(*) from payments").fetch_one(&env.app.pool).await.expect("count");
    assert_eq!(rows, 0, "nothing half-written");
    let keys: i64 =
        sqlx::query_scalar("select count(*) from idempotency_keys").fetch_one(&env.app.pool).await.expect("count");
    assert_eq!(keys, 0, "the keys are free for the retries");
    env.app.stop().await;
}

#[tokio::test]
async fn after_an_outage_a_retry_with_the_same_key_succeeds_without_any_manual_step() {
    let env = spawn_with(|c| {
        c.stripe.timeout_ms = 300;
        c.stripe.breaker_failures = 100;
    })
    .await;
    let festival = env.festival();
    let buyer = env.buyer();
    let request = checkout_request(&festival, "recover-1", 2_000);
    env.stripe.set_mode(Mode::Fail500);
    assert_eq!(code(env.client().create_checkout(authed(request.clone(), &buyer)).await), "ERR_5002");
    env.stripe.set_mode(Mode::Normal);
    let payment = env.client().create_checkout(authed(request, &buyer)).await.expect("recovered").into_inner();
    assert_eq!(payment.status, pb::PaymentStatus::Pending as i32);
    assert_eq!(env.stripe.sessions().len(), 1);
    env.app.stop().await;
}

#[tokio::test]
async fn a_payment_is_visible_to_its_payer_and_its_festival_s_organisers_only() {
    let env = spawn().await;
    let festival = env.festival();
    let buyer = env.buyer();
    let payment = env.checkout(&festival, &buyer, "vis-1", 1_000).await.expect("checkout");
    let get = |token: String| {
        let client = env.client();
        let id = payment.id.clone();
        async move { client.clone().get_payment(authed(pb::GetPaymentRequest { payment_id: id }, &token)).await }
    };
    assert_eq!(get(buyer.clone()).await.expect("payer").into_inner().id, payment.id);
    assert_eq!(get(festival.organizer.clone()).await.expect("organizer").into_inner().id, payment.id);
    assert_eq!(code(get(env.buyer()).await), "ERR_4000");
    let other = env.festival();
    assert_eq!(code(get(other.organizer.clone()).await), "ERR_4000");
    // Listing: organisers of that festival only.
    let list = env
        .client()
        .list_payments(authed(
            pb::ListPaymentsRequest { festival_id: festival.id.to_string(), ..Default::default() },
            &festival.organizer,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.payments.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), vec![payment.id.as_str()]);
    let refused = env
        .client()
        .list_payments(authed(
            pb::ListPaymentsRequest { festival_id: festival.id.to_string(), ..Default::default() },
            &other.organizer,
        ))
        .await;
    assert_eq!(code(refused), "ERR_3002");
    env.app.stop().await;
}

#[tokio::test]
async fn the_sweep_settles_a_checkout_whose_webhook_never_came() {
    let env = spawn_on_manual_clock().await;
    let festival = env.festival();
    let paid = env.checkout(&festival, &env.buyer(), "lost-1", 2_500).await.expect("checkout");
    let unpaid = env.checkout(&festival, &env.buyer(), "lost-2", 2_500).await.expect("checkout");
    let open = env.checkout(&festival, &env.buyer(), "lost-3", 2_500).await.expect("checkout");
    // Paid and expired at Stripe, but the webhooks were lost.
    env.stripe.complete_session(&env.session_id(&paid).await).expect("session");
    env.stripe.expire_session(&env.session_id(&unpaid).await).expect("session");
    // Before the checkouts' expiry the sweep leaves them to their webhooks.
    assert_eq!(env.sweep().await.payments_settled, 0);
    env.app.clock.advance(std::time::Duration::from_secs(40 * 60));
    let swept = env.sweep().await;
    assert_eq!(swept.payments_settled, 2, "{swept:?}");
    assert_eq!(env.payment(&paid.id).await.status, pb::PaymentStatus::Completed as i32);
    assert_eq!(env.payment(&unpaid.id).await.status, pb::PaymentStatus::Failed as i32);
    assert_eq!(env.payment(&open.id).await.status, pb::PaymentStatus::Pending as i32, "still open at Stripe");
    assert_eq!(env.published("festival.payments.payment.completed").await, 1);
    assert_eq!(env.published("festival.payments.payment.failed").await, 1);
    let completed = env.app.last_event::<pb::PaymentCompleted>().await;
    assert_eq!((completed.payment_id.as_str(), completed.amount_minor), (paid.id.as_str(), 2_500));
    env.app.stop().await;
}
