//! Holds, orders, tickets: the life of a sale.

use std::time::Duration;

use base64::Engine as _;
use festival_platform::auth::Role;
use festival_platform::credential::{Keyring, Kind};
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;

use crate::helpers::*;

#[tokio::test]
async fn a_free_hold_checks_out_into_tickets_whose_credentials_verify_with_the_public_key_alone() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let free = env.category(&f, "Community", 0, 50).await;
    let (fan_id, fan) = env.issuer.user();

    let hold = c.create_hold(authed(hold_request(&f, &[(&free.id, 2)]), &fan)).await.expect("hold").into_inner();
    assert_eq!((hold.status, hold.total_minor, hold.currency.as_str()), (pb::HoldStatus::Active as i32, 0, "EUR"));
    assert_eq!(env.quotas(&f).await, vec![("Community capacity".into(), 50, 2, 0)]);
    let request = checkout(&hold);
    let order = c.checkout_hold(authed(request.clone(), &fan)).await.expect("checkout").into_inner();
    assert_eq!((order.status, order.payment_method), (pb::OrderStatus::Paid as i32, pb::PaymentMethod::Free as i32));
    assert_eq!(order.tickets.len(), 2);
    let retried = c.checkout_hold(authed(request, &fan)).await.expect("retry").into_inner();
    assert_eq!(retried, order, "a retry answers the same order");
    assert_eq!(env.quotas(&f).await, vec![("Community capacity".into(), 50, 0, 2)]);

    // A scanner holding only the published keys verifies each ticket offline.
    let keys =
        c.get_ticket_keys(pb::GetTicketKeysRequest { festival_id: f.id.to_string() }).await.expect("keys").into_inner();
    assert_eq!(keys.keys.len(), 1);
    let mut keyring = Keyring::default();
    for key in &keys.keys {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&key.public_key).expect("base64");
        keyring.insert(ed25519_dalek::VerifyingKey::from_bytes(&bytes.try_into().expect("32 bytes")).expect("key"));
    }
    for ticket in &order.tickets {
        let claims = keyring.verify(&ticket.credential).expect("verifies offline");
        assert_eq!((claims.kind, claims.festival, claims.subject.to_string()), (Kind::Ticket, f.id, ticket.id.clone()));
        assert_eq!(ticket.holder_user_id, fan_id.to_string());
    }
    let mine = c.list_my_tickets(authed(pb::ListMyTicketsRequest::default(), &fan)).await.expect("mine").into_inner();
    assert_eq!(mine.tickets.len(), 2);
    let paid = env.app.last_event::<pb::OrderPaid>().await;
    assert_eq!((paid.order_id, paid.ticket_ids.len()), (order.id.clone(), 2));

    // Someone else's hold and order are not theirs to see.
    let (_, stranger) = env.issuer.user();
    assert_eq!(
        code(c.get_order(authed(pb::GetOrderRequest { order_id: order.id.clone() }, &stranger)).await),
        "ERR_4000"
    );
    assert_eq!(code(c.get_hold(authed(pb::GetHoldRequest { hold_id: hold.id.clone() }, &stranger)).await), "ERR_4000");
    env.app.stop().await;
}

#[tokio::test]
async fn paid_holds_wait_for_the_payments_service_and_the_box_office_sells_for_cash() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let weekend = env.category(&f, "Weekend", 18_950, 10).await;
    let (_, fan) = env.issuer.user();
    let hold = c.create_hold(authed(hold_request(&f, &[(&weekend.id, 2)]), &fan)).await.expect("hold").into_inner();
    assert_eq!(hold.total_minor, 37_900);
    assert_eq!(code(c.checkout_hold(authed(checkout(&hold), &fan)).await), "ERR_5002");
    assert_eq!(env.quotas(&f).await, vec![("Weekend capacity".into(), 10, 2, 0)], "still held, nothing sold");

    let cashier = env.member(&f, Role::Cashier);
    let cash = box_office(&f, &weekend.id, 3);
    let sold = c.create_order(authed(cash.clone(), &cashier)).await.expect("cash sale").into_inner();
    assert_eq!((sold.total_minor, sold.buyer_user_id.as_str(), sold.tickets.len()), (56_850, "", 3));
    assert_eq!(code(c.create_order(authed(box_office(&f, &weekend.id, 1), &fan)).await), "ERR_3002", "fans cannot");
    let free_of_charge =
        pb::CreateOrderRequest { payment_method: pb::PaymentMethod::Free as i32, ..box_office(&f, &weekend.id, 1) };
    assert_eq!(code(c.create_order(authed(free_of_charge, &cashier)).await), "ERR_1000");
    let too_many = box_office(&f, &weekend.id, 6);
    assert_eq!(code(c.create_order(authed(too_many, &cashier)).await), "ERR_6002", "5 left");
    assert_eq!(env.quotas(&f).await, vec![("Weekend capacity".into(), 10, 2, 3)]);
    // The buyer's order is the cashier's to read too, as it was answered.
    let read = c.get_order(authed(pb::GetOrderRequest { order_id: sold.id.clone() }, &cashier)).await.expect("read");
    assert_eq!(read.into_inner(), sold);

    // Sold out now: a retry of the first sale still answers with its order, and sells
    // nothing; its key with another request is refused.
    c.create_order(authed(box_office(&f, &weekend.id, 5), &cashier)).await.expect("the last five");
    assert_eq!(code(c.create_order(authed(box_office(&f, &weekend.id, 1), &cashier)).await), "ERR_6002");
    let retried = c.create_order(authed(cash.clone(), &cashier)).await.expect("a retry").into_inner();
    assert_eq!(retried, sold);
    let other = pb::CreateOrderRequest { quantity: 2, ..cash };
    assert_eq!(code(c.create_order(authed(other, &cashier)).await), "ERR_1006");
    assert_eq!(env.quotas(&f).await, vec![("Weekend capacity".into(), 10, 2, 8)]);
}

#[tokio::test]
async fn holds_expire_on_the_clock_and_give_their_tickets_back() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let free = env.category(&f, "Free", 0, 5).await;
    let (_, first) = env.issuer.user();
    let (_, second) = env.issuer.user();
    let hold = c.create_hold(authed(hold_request(&f, &[(&free.id, 5)]), &first)).await.expect("hold").into_inner();
    assert_eq!(code(c.create_hold(authed(hold_request(&f, &[(&free.id, 1)]), &second)).await), "ERR_6002");

    // Extending once adds the hold's time; a second time is refused.
    let extended = c
        .extend_hold(authed(pb::ExtendHoldRequest { hold_id: hold.id.clone() }, &first))
        .await
        .expect("extend")
        .into_inner();
    assert_eq!(extended.expire_time.expect("t").seconds - hold.expire_time.expect("t").seconds, 15 * 60);
    assert_eq!(
        code(c.extend_hold(authed(pb::ExtendHoldRequest { hold_id: hold.id.clone() }, &first)).await),
        "ERR_6010"
    );

    env.app.clock.advance(Duration::from_secs(30 * 60));
    let released = env.held_becomes(&f, 0).await;
    assert!(released, "the expired hold's tickets came back");
    let expired = c.get_hold(authed(pb::GetHoldRequest { hold_id: hold.id.clone() }, &first)).await.expect("hold");
    assert_eq!(expired.into_inner().status, pb::HoldStatus::Expired as i32);
    assert_eq!(code(c.checkout_hold(authed(checkout(&hold), &first)).await), "ERR_6003");
    c.create_hold(authed(hold_request(&f, &[(&free.id, 5)]), &second)).await.expect("the stock is back");

    // Releasing gives tickets back at once.
    let (_, third) = env.issuer.user();
    let freed =
        c.release_hold(authed(pb::ReleaseHoldRequest { hold_id: hold.id }, &first)).await.expect("release (again)");
    assert_eq!(freed.into_inner().status, pb::HoldStatus::Expired as i32, "releasing an expired hold changes nothing");
    assert_eq!(code(c.create_hold(authed(hold_request(&f, &[(&free.id, 1)]), &third)).await), "ERR_6002");
}

#[tokio::test]
async fn bad_requests_are_refused_with_catalogued_codes_and_nothing_is_held() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 5_000, 100).await;
    let mut closed = pb::CreateCategoryRequest {
        festival_id: f.id.to_string(),
        name: "Early bird".into(),
        price_minor: 3_000,
        max_per_account: 2,
        ..Default::default()
    };
    let past = chrono::Utc::now() - chrono::Duration::days(1);
    closed.sale_end_time = Some(prost_types::Timestamp { seconds: past.timestamp(), nanos: 0 });
    let early = c.create_category(authed(closed, &f.organizer)).await.expect("early bird").into_inner();
    c.create_quota(authed(
        pb::CreateQuotaRequest {
            festival_id: f.id.to_string(),
            name: "EB".into(),
            size: 10,
            category_ids: vec![early.id.clone()],
        },
        &f.organizer,
    ))
    .await
    .expect("quota");
    let (_, fan) = env.issuer.user();
    let cases: Vec<(pb::CreateHoldRequest, &str)> = vec![
        (hold_request(&f, &[(&ga.id, 0)]), "ERR_1000"),
        (hold_request(&f, &[(&ga.id, -3)]), "ERR_1000"),
        (hold_request(&f, &[(&ga.id, 11)]), "ERR_6007"),
        (hold_request(&f, &[(&ga.id, 1_000_000)]), "ERR_1000"),
        (hold_request(&f, &[(&uuid::Uuid::now_v7().to_string(), 1)]), "ERR_4000"),
        (hold_request(&f, &[("garbage", 1)]), "ERR_1004"),
        (hold_request(&f, &[(&ga.id, 1), (&ga.id, 1)]), "ERR_1000"),
        (hold_request(&f, &[]), "ERR_1001"),
        (hold_request(&f, &[(&early.id, 1)]), "ERR_6008"),
        (pb::CreateHoldRequest { idempotency_key: String::new(), ..hold_request(&f, &[(&ga.id, 1)]) }, "ERR_1001"),
    ];
    for (request, expected) in cases {
        assert_eq!(code(c.create_hold(authed(request.clone(), &fan)).await), expected, "{request:?}");
    }
    assert_eq!(env.quotas(&f).await.iter().map(|q| (q.2, q.3)).collect::<Vec<_>>(), vec![(0, 0), (0, 0)]);
}

#[tokio::test]
async fn a_per_account_limit_counts_held_and_bought_tickets() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let limited = c
        .create_category(authed(
            pb::CreateCategoryRequest {
                festival_id: f.id.to_string(),
                name: "Limited".into(),
                max_per_account: 2,
                ..Default::default()
            },
            &f.organizer,
        ))
        .await
        .expect("category")
        .into_inner();
    c.create_quota(authed(
        pb::CreateQuotaRequest {
            festival_id: f.id.to_string(),
            name: "L".into(),
            size: 50,
            category_ids: vec![limited.id.clone()],
        },
        &f.organizer,
    ))
    .await
    .expect("quota");
    let (_, fan) = env.issuer.user();
    let hold = c.create_hold(authed(hold_request(&f, &[(&limited.id, 1)]), &fan)).await.expect("first").into_inner();
    c.checkout_hold(authed(checkout(&hold), &fan)).await.expect("bought");
    c.create_hold(authed(hold_request(&f, &[(&limited.id, 1)]), &fan)).await.expect("second, held");
    assert_eq!(code(c.create_hold(authed(hold_request(&f, &[(&limited.id, 1)]), &fan)).await), "ERR_6007");
}

#[tokio::test]
async fn cancelling_an_order_revokes_its_tickets_and_frees_their_stock_exactly_once() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 5_000, 10).await;
    let cashier = env.member(&f, Role::Cashier);
    let order = c.create_order(authed(box_office(&f, &ga.id, 3), &cashier)).await.expect("order").into_inner();
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".into(), 10, 0, 3)]);
    let cancel = |key: &str| {
        authed(
            pb::CancelOrderRequest {
                order_id: order.id.clone(),
                reason: "duplicate".into(),
                idempotency_key: key.into(),
            },
            &f.organizer,
        )
    };
    assert_eq!(
        code(
            c.cancel_order(authed(
                pb::CancelOrderRequest {
                    order_id: order.id.clone(),
                    idempotency_key: "k-cashier-1".into(),
                    ..Default::default()
                },
                &cashier
            ))
            .await
        ),
        "ERR_3001"
    );
    let cancelled = c.cancel_order(cancel("cancel-1")).await.expect("cancel").into_inner();
    assert_eq!(cancelled.status, pb::OrderStatus::Cancelled as i32);
    assert!(cancelled.tickets.iter().all(|t| t.status == pb::TicketStatus::Cancelled as i32));
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".into(), 10, 0, 0)]);
    c.cancel_order(cancel("cancel-2")).await.expect("cancelled again: nothing more");
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".into(), 10, 0, 0)], "freed once, not twice");
    let revoked = c
        .list_revoked_tickets(authed(
            pb::ListRevokedTicketsRequest { festival_id: f.id.to_string() },
            &env.member(&f, Role::Security),
        ))
        .await
        .expect("revoked")
        .into_inner();
    assert_eq!(revoked.ticket_ids.len(), 3);
    let event = env.app.last_event::<pb::OrderCancelled>().await;
    assert_eq!((event.order_id, event.ticket_ids.len()), (order.id, 3));
}

#[tokio::test]
async fn a_quota_added_later_is_never_charged_for_stock_it_did_not_give() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 0, 10).await;
    let (_, fan) = env.issuer.user();
    let early = c.create_hold(authed(hold_request(&f, &[(&ga.id, 3)]), &fan)).await.expect("hold").into_inner();
    c.create_quota(authed(
        pb::CreateQuotaRequest {
            festival_id: f.id.to_string(),
            name: "Later".into(),
            size: 5,
            category_ids: vec![ga.id.clone()],
        },
        &f.organizer,
    ))
    .await
    .expect("a second quota over the same category");
    let (_, other) = env.issuer.user();
    let late = c.create_hold(authed(hold_request(&f, &[(&ga.id, 2)]), &other)).await.expect("hold").into_inner();
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".into(), 10, 5, 0), ("Later".into(), 5, 2, 0)]);
    // The early hold gives back to the quota it took from, and only that one.
    c.release_hold(authed(pb::ReleaseHoldRequest { hold_id: early.id }, &fan)).await.expect("release");
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".into(), 10, 2, 0), ("Later".into(), 5, 2, 0)]);
    c.checkout_hold(authed(checkout(&late), &other)).await.expect("checkout");
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".into(), 10, 0, 2), ("Later".into(), 5, 0, 2)]);
}

#[tokio::test]
async fn nobody_acts_on_someone_elses_hold_or_another_festivals_orders() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let other = env.festival(program::FestivalStatus::Published).await;
    let free = env.category(&f, "Free", 0, 10).await;
    let (_, fan) = env.issuer.user();
    let (_, stranger) = env.issuer.user();
    let hold = c.create_hold(authed(hold_request(&f, &[(&free.id, 1)]), &fan)).await.expect("hold").into_inner();
    assert_eq!(
        code(c.extend_hold(authed(pb::ExtendHoldRequest { hold_id: hold.id.clone() }, &stranger)).await),
        "ERR_4000"
    );
    assert_eq!(
        code(c.release_hold(authed(pb::ReleaseHoldRequest { hold_id: hold.id.clone() }, &stranger)).await),
        "ERR_4000"
    );
    assert_eq!(code(c.checkout_hold(authed(checkout(&hold), &stranger)).await), "ERR_4000");
    assert_eq!(env.quotas(&f).await, vec![("Free capacity".into(), 10, 1, 0)], "untouched");

    // The same idempotency key from two callers: two holds, not one replayed to the other.
    let mut same_key = hold_request(&f, &[(&free.id, 1)]);
    same_key.idempotency_key = "shared-key-123".into();
    let mine = c.create_hold(authed(same_key.clone(), &fan)).await.expect("mine").into_inner();
    let theirs = c.create_hold(authed(same_key, &stranger)).await.expect("theirs").into_inner();
    assert_ne!(mine.id, theirs.id);

    let order = c.create_order(authed(box_office(&f, &free.id, 1), &env.member(&f, Role::Cashier))).await;
    let order = order.expect("order").into_inner();
    let get = || pb::GetOrderRequest { order_id: order.id.clone() };
    assert_eq!(code(c.get_order(authed(get(), &other.organizer)).await), "ERR_4000");
    let cancel = pb::CancelOrderRequest {
        order_id: order.id.clone(),
        reason: String::new(),
        idempotency_key: "x-festival".into(),
    };
    assert_eq!(code(c.cancel_order(authed(cancel, &other.organizer)).await), "ERR_3002");
    let revoked = pb::ListRevokedTicketsRequest { festival_id: f.id.to_string() };
    assert_eq!(code(c.list_revoked_tickets(authed(revoked, &env.member(&other, Role::Security))).await), "ERR_3002");
}

#[tokio::test]
async fn the_sales_report_adds_up_orders_holds_and_check_ins() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 5_000, 10).await;
    let cashier = env.member(&f, Role::Cashier);
    let kept = c.create_order(authed(box_office(&f, &ga.id, 2), &cashier)).await.expect("sold").into_inner();
    let cancelled = c.create_order(authed(box_office(&f, &ga.id, 1), &cashier)).await.expect("sold").into_inner();
    env.cancel(&f, &cancelled.id).await;
    let (_, fan) = env.issuer.user();
    c.create_hold(authed(hold_request(&f, &[(&ga.id, 1)]), &fan)).await.expect("hold");
    let security = env.member(&f, Role::Security);
    c.redeem(authed(
        pb::RedeemRequest {
            festival_id: f.id.to_string(),
            credential: kept.tickets[0].credential.clone(),
            gate: "main".into(),
            ..Default::default()
        },
        &security,
    ))
    .await
    .expect("in");

    let request = || pb::GetSalesReportRequest { festival_id: f.id.to_string() };
    let report = c.get_sales_report(authed(request(), &f.organizer)).await.expect("report").into_inner();
    assert_eq!(
        (
            report.currency.as_str(),
            report.revenue_minor,
            report.paid_orders,
            report.cancelled_orders,
            report.cancelled_minor
        ),
        ("EUR", 10_000, 1, 1, 5_000)
    );
    let row = &report.categories[0];
    assert_eq!(report.categories.len(), 1);
    assert_eq!((row.name.as_str(), row.sold, row.held, row.checked_in, row.available), ("GA", 2, 1, 1, 7));
    assert_eq!(code(c.get_sales_report(authed(request(), &cashier)).await), "ERR_3001");
}
