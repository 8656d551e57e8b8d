//! Refund requests: a buyer asks, an organizer decides; approved tickets are revoked as
//! REFUNDED, their places freed once, and what each order owes never passes what it paid.

use festival_platform::auth::Role;
use festival_platform::codes;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

fn ask(order: &pb::Order, tickets: &[&pb::Ticket], reason: &str) -> pb::RequestRefundRequest {
    pb::RequestRefundRequest {
        order_id: order.id.clone(),
        ticket_ids: tickets.iter().map(|t| t.id.clone()).collect(),
        reason: reason.into(),
        idempotency_key: format!("refund-{}", Uuid::now_v7()),
    }
}

fn decide(request: &pb::RefundRequest, approve: bool, note: &str) -> pb::DecideRefundRequestRequest {
    pb::DecideRefundRequestRequest {
        request_id: request.id.clone(),
        approve,
        note: note.into(),
        idempotency_key: format!("decide-{}", Uuid::now_v7()),
    }
}

/// A box-office order of `quantity` tickets at 50.00 sold to a fan: (fan's token, order).
async fn bought(env: &Env, f: &Festival, category: &str, quantity: i32) -> (String, pb::Order) {
    let (fan_id, fan) = env.issuer.user();
    let cashier = env.member(f, Role::Cashier);
    let request = pb::CreateOrderRequest { buyer_user_id: fan_id.to_string(), ..box_office(f, category, quantity) };
    let order = env.client().create_order(authed(request, &cashier)).await.expect("order").into_inner();
    (fan, order)
}

#[tokio::test]
async fn an_approved_request_revokes_the_tickets_frees_their_places_and_records_what_is_owed() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let weekend = env.category(&f, "Weekend", 5_000, 10).await;
    let (fan, order) = bought(&env, &f, &weekend.id, 3).await;
    assert_eq!(order.tickets.iter().map(|t| t.price_minor).collect::<Vec<_>>(), vec![5_000; 3]);
    let (t0, t1, t2) = (&order.tickets[0], &order.tickets[1], &order.tickets[2]);

    let request = ask(&order, &[t1, t0], "  I cannot come after all  ");
    let asked = c.request_refund(authed(request.clone(), &fan)).await.expect("request").into_inner();
    let mut both = vec![t0.id.clone(), t1.id.clone()];
    both.sort();
    assert_eq!(
        (asked.status, asked.ticket_ids.clone(), asked.reason.as_str(), asked.amount_minor),
        (pb::RefundRequestStatus::Pending as i32, both.clone(), "I cannot come after all", 0)
    );
    let again = c.request_refund(authed(request, &fan)).await.expect("retry").into_inner();
    assert_eq!(again.id, asked.id, "a retry answers the first request");
    // One open request per ticket; only the buyer asks; a reason is needed.
    assert_eq!(outcome(c.request_refund(authed(ask(&order, &[t1, t2], "again"), &fan)).await), "ERR_4001");
    let (_, stranger) = env.issuer.user();
    assert_eq!(outcome(c.request_refund(authed(ask(&order, &[t2], "mine?"), &stranger)).await), "ERR_4000");
    assert_eq!(outcome(c.request_refund(authed(ask(&order, &[t2], "   "), &fan)).await), codes::REQUIRED_FIELD.code);

    // The buyer sees their request, the organizer every one, a stranger none.
    let list = |token: String| {
        let mut c = env.client();
        let request = pb::ListRefundRequestsRequest { festival_id: f.id.to_string(), status: 0 };
        async move { c.list_refund_requests(authed(request, &token)).await.expect("list").into_inner().requests }
    };
    assert_eq!(list(fan.clone()).await.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![asked.id.clone()]);
    assert_eq!(list(f.organizer.clone()).await.len(), 1);
    assert!(list(stranger.clone()).await.is_empty());

    // Only this festival's organizers decide.
    let other = env.festival(program::FestivalStatus::Published).await;
    assert_eq!(outcome(c.decide_refund_request(authed(decide(&asked, true, ""), &other.organizer)).await), "ERR_3002");
    assert_eq!(outcome(c.decide_refund_request(authed(decide(&asked, true, ""), &fan)).await), "ERR_3002");

    let approval = decide(&asked, true, "Refunded in cash at the box office");
    let approved = c.decide_refund_request(authed(approval.clone(), &f.organizer)).await.expect("approve").into_inner();
    assert_eq!(
        (approved.status, approved.amount_minor, approved.decision_note.as_str()),
        (pb::RefundRequestStatus::Approved as i32, 10_000, "Refunded in cash at the box office")
    );
    let replay = c.decide_refund_request(authed(approval, &f.organizer)).await.expect("replay").into_inner();
    assert_eq!((replay.id, replay.amount_minor), (approved.id.clone(), 10_000));
    assert_eq!(outcome(c.decide_refund_request(authed(decide(&asked, false, "no"), &f.organizer)).await), "ERR_6017");

    // The tickets are refunded and revoked, their places free once, the money owed recorded.
    let get = pb::GetOrderRequest { order_id: order.id.clone() };
    let now = c.get_order(authed(get, &fan)).await.expect("order").into_inner();
    let statuses: Vec<(String, i32)> = now.tickets.iter().map(|t| (t.id.clone(), t.status)).collect();
    assert_eq!(
        statuses,
        vec![
            (t0.id.clone(), pb::TicketStatus::Refunded as i32),
            (t1.id.clone(), pb::TicketStatus::Refunded as i32),
            (t2.id.clone(), pb::TicketStatus::Sold as i32)
        ]
    );
    assert_eq!((now.status, now.refunded_minor), (pb::OrderStatus::Paid as i32, 10_000));
    assert_eq!(env.quotas(&f).await, vec![("Weekend capacity".to_owned(), 10, 0, 1)]);
    let revoked = c
        .list_revoked_tickets(authed(pb::ListRevokedTicketsRequest { festival_id: f.id.to_string() }, &f.organizer))
        .await
        .expect("revoked")
        .into_inner()
        .ticket_ids;
    assert_eq!(revoked, both);
    let security = env.member(&f, Role::Security);
    let scan = pb::RedeemRequest {
        festival_id: f.id.to_string(),
        credential: t0.credential.clone(),
        gate: "main".into(),
        ..Default::default()
    };
    assert_eq!(outcome(c.redeem(authed(scan, &security)).await), "ERR_6009");
    let event = env.app.last_event::<pb::RefundApproved>().await;
    assert_eq!((event.request_id.as_str(), event.amount_minor, event.orders.len()), (approved.id.as_str(), 10_000, 1));
    assert_eq!((event.orders[0].payment_method.as_str(), event.orders[0].amount_minor), ("CASH", 10_000));
    let report = c
        .get_sales_report(authed(pb::GetSalesReportRequest { festival_id: f.id.to_string() }, &f.organizer))
        .await
        .expect("report")
        .into_inner();
    assert_eq!((report.revenue_minor, report.refunded_minor, report.paid_orders), (5_000, 10_000, 1));
    // A refunded ticket is not asked for again.
    assert_eq!(outcome(c.request_refund(authed(ask(&order, &[t0], "twice"), &fan)).await), "ERR_6016");
    // Once the gates may be open (offline scanners hold snapshots), refunds close.
    env.announce(f.id, program::FestivalStatus::Ongoing, 2).await;
    assert_eq!(outcome(c.request_refund(authed(ask(&order, &[t2], "too late"), &fan)).await), "ERR_6016");
}

#[tokio::test]
async fn rejections_withdrawals_used_tickets_and_cancelled_orders_refund_nothing() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let day = env.category(&f, "Day", 5_000, 10).await;
    let (fan, order) = bought(&env, &f, &day.id, 2).await;
    let (t0, t1) = (&order.tickets[0], &order.tickets[1]);

    // Rejected: a note is required, the tickets stay valid and may be asked for again.
    let first = c.request_refund(authed(ask(&order, &[t0], "ill"), &fan)).await.expect("request").into_inner();
    assert_eq!(
        outcome(c.decide_refund_request(authed(decide(&first, false, " "), &f.organizer)).await),
        codes::REQUIRED_FIELD.code
    );
    let rejected =
        c.decide_refund_request(authed(decide(&first, false, "No refunds within a week"), &f.organizer)).await;
    assert_eq!(rejected.expect("reject").into_inner().status, pb::RefundRequestStatus::Rejected as i32);
    // Withdrawn by its requester only; a decided one cannot be withdrawn.
    let withdraw = |r: &pb::RefundRequest| pb::WithdrawRefundRequestRequest { request_id: r.id.clone() };
    assert_eq!(outcome(c.withdraw_refund_request(authed(withdraw(&first), &fan)).await), "ERR_6017");
    let second = c.request_refund(authed(ask(&order, &[t0], "really ill"), &fan)).await.expect("again").into_inner();
    assert_eq!(outcome(c.withdraw_refund_request(authed(withdraw(&second), &f.organizer)).await), "ERR_4000");
    let withdrawn = c.withdraw_refund_request(authed(withdraw(&second), &fan)).await.expect("withdraw").into_inner();
    assert_eq!(withdrawn.status, pb::RefundRequestStatus::Withdrawn as i32);
    assert_eq!(outcome(c.decide_refund_request(authed(decide(&second, true, ""), &f.organizer)).await), "ERR_6017");

    // Used after the request: approving refunds nothing (ERR_6001), rejecting does.
    let third = c.request_refund(authed(ask(&order, &[t0], "left early"), &fan)).await.expect("third").into_inner();
    let security = env.member(&f, Role::Security);
    let scan = pb::RedeemRequest {
        festival_id: f.id.to_string(),
        credential: t0.credential.clone(),
        gate: "main".into(),
        ..Default::default()
    };
    c.redeem(authed(scan, &security)).await.expect("admitted");
    assert_eq!(outcome(c.decide_refund_request(authed(decide(&third, true, ""), &f.organizer)).await), "ERR_6001");
    assert_eq!(outcome(c.request_refund(authed(ask(&order, &[t0], "used"), &fan)).await), "ERR_6016");

    // Cancelling the order answers its pending requests; nothing is refunded twice.
    let fourth = c.request_refund(authed(ask(&order, &[t1], "cannot"), &fan)).await.expect("fourth").into_inner();
    env.cancel(&f, &order.id).await;
    let list = pb::ListRefundRequestsRequest {
        festival_id: f.id.to_string(),
        status: pb::RefundRequestStatus::Rejected as i32,
    };
    let rejected: Vec<String> = c
        .list_refund_requests(authed(list, &f.organizer))
        .await
        .expect("list")
        .into_inner()
        .requests
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(rejected, vec![fourth.id.clone(), third.id.clone(), first.id.clone()]);
    assert_eq!(outcome(c.decide_refund_request(authed(decide(&fourth, true, ""), &f.organizer)).await), "ERR_6017");
    let get = pb::GetOrderRequest { order_id: order.id.clone() };
    let now = c.get_order(authed(get, &fan)).await.expect("order").into_inner();
    assert_eq!((now.status, now.refunded_minor), (pb::OrderStatus::Cancelled as i32, 0));
    // The unused ticket's place is free again; the used one's holder came in.
    assert_eq!(env.quotas(&f).await, vec![("Day capacity".to_owned(), 10, 0, 1)]);
}

#[tokio::test]
async fn an_add_on_follows_its_ticket_into_the_refund_and_a_pending_request_blocks_a_transfer() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let cutoff = festival_platform::convert::timestamp(env.app.clock.now() + chrono::Duration::days(2));
    let pass = env
        .category_from(
            &f,
            pb::CreateCategoryRequest {
                name: "Weekend".into(),
                transferable: true,
                transfer_cutoff_time: Some(cutoff),
                ..Default::default()
            },
            10,
        )
        .await;
    let parking = env
        .category_from(&f, pb::CreateCategoryRequest { name: "Parking".into(), addon: true, ..Default::default() }, 5)
        .await;
    let (_, fan) = env.issuer.user();
    let hold = c
        .create_hold(authed(hold_request(&f, &[(&pass.id, 1), (&parking.id, 1)]), &fan))
        .await
        .expect("hold")
        .into_inner();
    let order = c.checkout_hold(authed(checkout(&hold), &fan)).await.expect("order").into_inner();
    let ticket = order.tickets.iter().find(|t| t.category_id == pass.id).expect("admission");
    let car = order.tickets.iter().find(|t| t.category_id == parking.id).expect("add-on");

    let asked = c.request_refund(authed(ask(&order, &[ticket], "sick"), &fan)).await.expect("request").into_inner();
    let (bob_id, _) = env.issuer.user();
    let transfer = pb::TransferTicketRequest {
        ticket_id: ticket.id.clone(),
        to_user_id: bob_id.to_string(),
        idempotency_key: format!("transfer-{}", Uuid::now_v7()),
    };
    assert_eq!(outcome(c.transfer_ticket(authed(transfer, &fan)).await), "ERR_6006");
    c.decide_refund_request(authed(decide(&asked, true, ""), &f.organizer)).await.expect("approve");
    let get = pb::GetOrderRequest { order_id: order.id.clone() };
    let now = c.get_order(authed(get, &fan)).await.expect("order").into_inner();
    let refunded: Vec<&str> =
        now.tickets.iter().filter(|t| t.status == pb::TicketStatus::Refunded as i32).map(|t| t.id.as_str()).collect();
    let mut expected = vec![ticket.id.as_str(), car.id.as_str()];
    expected.sort();
    assert_eq!(refunded, expected, "the parking pass went with its ticket");
    assert_eq!(
        env.quotas(&f).await,
        vec![("Parking capacity".to_owned(), 5, 0, 0), ("Weekend capacity".to_owned(), 10, 0, 0)]
    );
}
