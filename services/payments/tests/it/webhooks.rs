//! The webhook matrix: signatures, redeliveries, duplicates under other ids, and every
//! order of one payment's events, each with exactly one effect (database and events).

use festival_proto::payments::v1 as pb;
use serde_json::json;

use crate::helpers::*;

/// A pending payment and its session id.
async fn pending(env: &Env, amount: i64) -> (pb::Payment, String) {
    let festival = env.festival();
    let payment =
        env.checkout(&festival, &env.buyer(), &uuid::Uuid::now_v7().to_string(), amount).await.expect("checkout");
    let session = env.session_id(&payment).await;
    (payment, session)
}

#[tokio::test]
async fn forged_stale_and_malformed_signatures_are_refused_and_change_nothing() {
    let env = spawn().await;
    let (payment, session) = pending(&env, 5_000).await;
    let event = env.stripe.complete_session(&session).expect("session");
    let body = serde_json::to_vec(&event).expect("json");
    let now = chrono::Utc::now().timestamp();
    let good = fake_stripe::sign(WEBHOOK_SECRET, now, &body);
    let mut one_byte = body.clone();
    let last = one_byte.len() - 2;
    one_byte[last] ^= 0x01;
    let v1_of = |h: &str| h.split_once(',').map(|(_, v1)| v1.to_owned()).unwrap_or_default();
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("no header", body.clone(), None),
        ("garbage header", body.clone(), Some("garbage".into())),
        ("body changed by one byte", one_byte, Some(good.clone())),
        ("wrong secret", body.clone(), Some(fake_stripe::sign("whsec_someone_else", now, &body))),
        ("301 s old", body.clone(), Some(fake_stripe::sign(WEBHOOK_SECRET, now - 301, &body))),
        ("301 s in the future", body.clone(), Some(fake_stripe::sign(WEBHOOK_SECRET, now + 301, &body))),
        ("only v0", body.clone(), Some(good.replace("v1=", "v0="))),
    ];
    assert_eq!(cases.len(), 7);
    for (name, body, header) in cases {
        let got = code(env.deliver_raw(body, header.as_deref()).await);
        assert_eq!(got, "ERR_5004", "{name}");
    }
    assert_eq!(env.payment(&payment.id).await.status, pb::PaymentStatus::Pending as i32);
    let seen: i64 =
        sqlx::query_scalar("select count(*) from webhook_events").fetch_one(&env.app.pool).await.expect("count");
    assert_eq!(seen, 0);

    // Two v1 signatures (the old secret's and the new one's, during a rotation): accepted.
    let old = fake_stripe::sign(OLD_WEBHOOK_SECRET, now, &body);
    let both = format!("{old},{}", v1_of(&good));
    let receipt = env.deliver_raw(body.clone(), Some(&both)).await.expect("rotation signature");
    assert!(!receipt.duplicate);
    assert_eq!(env.payment(&payment.id).await.status, pb::PaymentStatus::Completed as i32);
    // Signed with the old secret alone: still accepted while both are configured (a replay here).
    let receipt = env.deliver_raw(body, Some(&old)).await.expect("old secret");
    assert!(receipt.duplicate);
    assert_eq!(env.published("festival.payments.payment.completed").await, 1);
    env.app.stop().await;
}

#[tokio::test]
async fn the_same_event_five_times_at_once_has_one_effect() {
    let env = spawn().await;
    let (payment, session) = pending(&env, 7_000).await;
    let event = env.stripe.complete_session(&session).expect("session");
    let deliveries: Vec<_> = (0..5)
        .map(|_| {
            let client = env.client();
            let body = serde_json::to_vec(&event).expect("json");
            let header = fake_stripe::sign(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &body);
            async move {
                let mut request = tonic::Request::new(festival_proto::google::api::HttpBody {
                    content_type: "application/json".into(),
                    data: body,
                    extensions: vec![],
                });
                request.metadata_mut().insert("stripe-signature", header.parse().expect("header"));
                client.clone().receive_stripe_webhook(request).await.map(|r| r.into_inner().duplicate)
            }
        })
        .collect();
    let answers = all_at_once(deliveries).await;
    assert_eq!(answers.len(), 5);
    let fresh = answers.iter().filter(|a| matches!(a, Ok(false))).count();
    let duplicates = answers.iter().filter(|a| matches!(a, Ok(true))).count();
    assert_eq!((fresh, duplicates), (1, 4), "{answers:?}");
    let done = env.payment(&payment.id).await;
    assert_eq!(done.status, pb::PaymentStatus::Completed as i32);
    assert_eq!(env.published("festival.payments.payment.completed").await, 1);
    let completed = env.app.last_event::<pb::PaymentCompleted>().await;
    assert_eq!((completed.payment_id.as_str(), completed.amount_minor), (payment.id.as_str(), 7_000));
    assert_eq!(completed.reference, payment.reference);
    env.app.stop().await;
}

#[tokio::test]
async fn one_change_under_two_event_ids_has_one_effect() {
    let env = spawn().await;
    let (payment, session) = pending(&env, 3_000).await;
    let event = env.stripe.complete_session(&session).expect("session");
    let mut twin = event.clone();
    twin["id"] = json!(format!("evt_twin_{}", uuid::Uuid::now_v7().simple()));
    assert!(!env.deliver(&event).await.expect("first").duplicate);
    // A new id: recorded, but the change was applied already.
    assert!(!env.deliver(&twin).await.expect("twin").duplicate);
    assert_eq!(env.payment(&payment.id).await.status, pb::PaymentStatus::Completed as i32);
    assert_eq!(env.published("festival.payments.payment.completed").await, 1);
    let outcomes: Vec<String> = sqlx::query_scalar("select outcome from webhook_events order by received_at")
        .fetch_all(&env.app.pool)
        .await
        .expect("events");
    assert_eq!(outcomes, vec!["APPLIED", "IGNORED"]);
    env.app.stop().await;
}

#[tokio::test]
async fn a_late_expiry_never_undoes_a_completed_payment() {
    let env = spawn().await;
    let (payment, session) = pending(&env, 3_000).await;
    let completed = env.stripe.complete_session(&session).expect("session");
    let mut expired = fake_stripe::event("checkout.session.expired", completed["data"]["object"].clone());
    expired["data"]["object"]["status"] = json!("expired");
    env.deliver(&completed).await.expect("completed");
    env.deliver(&expired).await.expect("expired, answered");
    let now = env.payment(&payment.id).await;
    assert_eq!(now.status, pb::PaymentStatus::Completed as i32);
    assert_eq!(env.published("festival.payments.payment.failed").await, 0);
    env.app.stop().await;
}

#[tokio::test]
async fn a_delayed_payment_settles_whichever_order_its_events_arrive_in() {
    let env = spawn().await;
    // In order: completed (unpaid) → async succeeded.
    let (a, session_a) = pending(&env, 2_000).await;
    let completed_a = env.stripe.complete_session_async(&session_a).expect("session");
    let succeeded_a = env.stripe.async_succeed(&session_a).expect("session");
    env.deliver(&completed_a).await.expect("completed");
    assert_eq!(env.payment(&a.id).await.status, pb::PaymentStatus::Processing as i32);
    env.deliver(&succeeded_a).await.expect("succeeded");
    assert_eq!(env.payment(&a.id).await.status, pb::PaymentStatus::Completed as i32);
    // Reversed: async succeeded first, then the completion (unpaid) is too late to matter.
    let (b, session_b) = pending(&env, 2_000).await;
    let completed_b = env.stripe.complete_session_async(&session_b).expect("session");
    let succeeded_b = env.stripe.async_succeed(&session_b).expect("session");
    env.deliver(&succeeded_b).await.expect("succeeded");
    env.deliver(&completed_b).await.expect("completed");
    assert_eq!(env.payment(&b.id).await.status, pb::PaymentStatus::Completed as i32);
    // Failed: never completed.
    let (c, session_c) = pending(&env, 2_000).await;
    let completed_c = env.stripe.complete_session_async(&session_c).expect("session");
    let failed_c = env.stripe.async_fail(&session_c).expect("session");
    env.deliver(&failed_c).await.expect("failed");
    env.deliver(&completed_c).await.expect("completed");
    assert_eq!(env.payment(&c.id).await.status, pb::PaymentStatus::Failed as i32);
    assert_eq!(env.published("festival.payments.payment.completed").await, 2);
    assert_eq!(env.published("festival.payments.payment.failed").await, 1);
    env.app.stop().await;
}

#[tokio::test]
async fn a_refund_or_dispute_seen_before_the_completion_waits_for_it() {
    let env = spawn().await;
    let (payment, session) = pending(&env, 6_000).await;
    let completed = env.stripe.complete_session(&session).expect("session");
    let intent = completed["data"]["object"]["payment_intent"].as_str().expect("intent").to_owned();
    // A refund made in Stripe's dashboard, and a dispute, both arrive first.
    let refund = fake_stripe::event(
        "refund.updated",
        json!({"id": "re_dashboard_1", "object": "refund", "payment_intent": intent, "amount": 1_000,
               "currency": "eur", "status": "succeeded", "metadata": {}}),
    );
    let dispute = env.stripe.dispute_event(&intent, 6_000);
    env.deliver(&refund).await.expect("refund parked");
    env.deliver(&dispute).await.expect("dispute parked");
    assert_eq!(env.payment(&payment.id).await.refunded_minor, 0);
    env.deliver(&completed).await.expect("completed");
    let settled = env.payment(&payment.id).await;
    assert_eq!(settled.status, pb::PaymentStatus::Completed as i32);
    assert_eq!(settled.refunded_minor, 1_000);
    assert!(settled.disputed);
    assert_eq!(env.published("festival.payments.payment.refunded").await, 1);
    assert_eq!(env.published("festival.payments.payment.disputed").await, 1);
    let disputed = env.app.last_event::<pb::PaymentDisputed>().await;
    assert_eq!((disputed.payment_id.as_str(), disputed.amount_minor), (payment.id.as_str(), 6_000));
    // Applied once: delivering the refund again changes nothing.
    assert!(env.deliver(&refund).await.expect("again").duplicate);
    assert_eq!(env.payment(&payment.id).await.refunded_minor, 1_000);
    env.app.stop().await;
}

#[tokio::test]
async fn a_webhook_that_failed_once_completes_the_payment_when_stripe_sends_it_again() {
    let env = spawn().await;
    let (payment, session) = pending(&env, 4_000).await;
    let event = env.stripe.complete_session(&session).expect("session");
    // The first delivery fails on our side (the database refuses writes for a moment).
    sqlx::query("alter table payments add constraint payments_frozen check (status <> 'COMPLETED') not valid")
        .execute(&env.app.pool)
        .await
        .expect("freeze");
    let failed = env.deliver(&event).await;
    assert_eq!(code(failed), "ERR_1500");
    assert_eq!(env.payment(&payment.id).await.status, pb::PaymentStatus::Pending as i32);
    sqlx::query("alter table payments drop constraint payments_frozen").execute(&env.app.pool).await.expect("thaw");
    // Stripe's retry: the same event, recorded nowhere yet, now applies.
    assert!(!env.deliver(&event).await.expect("retry").duplicate);
    assert_eq!(env.payment(&payment.id).await.status, pb::PaymentStatus::Completed as i32);
    assert_eq!(env.published("festival.payments.payment.completed").await, 1);
    env.app.stop().await;
}
