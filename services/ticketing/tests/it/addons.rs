//! Add-ons: each belongs to an admission ticket, is bought with it or later for it,
//! opens its own gate, follows it through a transfer and is revoked with it.

use festival_platform::auth::Role;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

async fn category(env: &Env, f: &Festival, name: &str, addon: bool, size: i64) -> pb::Category {
    let request = pb::CreateCategoryRequest { name: name.into(), addon, transferable: !addon, ..Default::default() };
    env.category_from(f, request, size).await
}

#[tokio::test]
async fn an_add_on_belongs_to_an_admission_ticket_opens_its_own_gate_and_follows_it() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = category(&env, &f, "GA", false, 10).await;
    let parking = category(&env, &f, "Parking", true, 5).await;
    assert!(parking.addon);
    let (_, ann) = env.issuer.user();

    // Regression: an add-on is never held without an admission ticket for it.
    for items in [vec![(parking.id.as_str(), 1)], vec![(ga.id.as_str(), 1), (parking.id.as_str(), 2)]] {
        assert_eq!(code(c.create_hold(authed(hold_request(&f, &items), &ann)).await), "ERR_6015", "{items:?}");
    }
    let cashier = env.member(&f, Role::Cashier);
    assert_eq!(code(c.create_order(authed(box_office(&f, &parking.id, 1), &cashier)).await), "ERR_6015");
    assert_eq!(
        env.quotas(&f).await,
        vec![("GA capacity".to_owned(), 10, 0, 0), ("Parking capacity".to_owned(), 5, 0, 0)]
    );

    // Bought together: the add-on belongs to one of the admission tickets.
    let hold = c
        .create_hold(authed(hold_request(&f, &[(&ga.id, 2), (&parking.id, 1)]), &ann))
        .await
        .expect("hold")
        .into_inner();
    let order = c.checkout_hold(authed(checkout(&hold), &ann)).await.expect("order").into_inner();
    let admissions: Vec<&pb::Ticket> = order.tickets.iter().filter(|t| t.category_id == ga.id).collect();
    let first_parking = order.tickets.iter().find(|t| t.category_id == parking.id).expect("parking");
    assert_eq!(admissions.len(), 2);
    assert!(admissions.iter().any(|t| t.id == first_parking.parent_ticket_id), "{first_parking:?}");
    let bare = admissions.iter().find(|t| t.id != first_parking.parent_ticket_id).expect("the other");

    // Bought later for the other ticket; once per ticket and category; only for one's own
    // admission ticket.
    let mut later = hold_request(&f, &[(&parking.id, 1)]);
    later.for_ticket_id = bare.id.clone();
    let hold = c.create_hold(authed(later.clone(), &ann)).await.expect("later hold").into_inner();
    let addon_order = c.checkout_hold(authed(checkout(&hold), &ann)).await.expect("later order").into_inner();
    let second_parking = addon_order.tickets[0].clone();
    assert_eq!(second_parking.parent_ticket_id, bare.id);
    later.idempotency_key = format!("again-{}", Uuid::now_v7());
    assert_eq!(code(c.create_hold(authed(later.clone(), &ann)).await), "ERR_4001");
    let (_, stranger) = env.issuer.user();
    later.idempotency_key = format!("stranger-{}", Uuid::now_v7());
    assert_eq!(code(c.create_hold(authed(later.clone(), &stranger)).await), "ERR_4000");
    later.for_ticket_id = second_parking.id.clone();
    later.idempotency_key = format!("on-addon-{}", Uuid::now_v7());
    assert_eq!(code(c.create_hold(authed(later, &ann)).await), "ERR_6015");

    // Its own gate: the car park admits parking tickets, not admission tickets.
    let car_park = c
        .create_check_in_list(authed(
            pb::CreateCheckInListRequest {
                festival_id: f.id.to_string(),
                name: "Car park".into(),
                category_ids: vec![parking.id.clone()],
                zone: String::new(),
            },
            &f.organizer,
        ))
        .await
        .expect("list")
        .into_inner();
    let security = env.member(&f, Role::Security);
    let at_car_park = |credential: &str| pb::RedeemRequest {
        festival_id: f.id.to_string(),
        credential: credential.into(),
        gate: "car-park".into(),
        list_id: car_park.id.clone(),
        ..Default::default()
    };
    c.redeem(authed(at_car_park(&second_parking.credential), &security)).await.expect("the car gets in");
    assert_eq!(code(c.redeem(authed(at_car_park(&bare.credential), &security)).await), "ERR_6013");

    // An add-on is not transferred alone; its admission ticket takes it along.
    let give = |ticket: &str, to: Uuid| pb::TransferTicketRequest {
        ticket_id: ticket.into(),
        to_user_id: to.to_string(),
        idempotency_key: format!("give-{}", Uuid::now_v7()),
    };
    let (bob_id, bob) = env.issuer.user();
    assert_eq!(code(c.transfer_ticket(authed(give(&first_parking.id, bob_id), &ann)).await), "ERR_6006");
    c.transfer_ticket(authed(give(&first_parking.parent_ticket_id, bob_id), &ann)).await.expect("transfer");
    let bobs =
        c.list_my_tickets(authed(pb::ListMyTicketsRequest::default(), &bob)).await.expect("bob's").into_inner().tickets;
    let bobs_ga = bobs.iter().find(|t| t.category_id == ga.id).expect("bob's admission ticket");
    let bobs_parking = bobs.iter().find(|t| t.category_id == parking.id).expect("bob's parking");
    assert_eq!(bobs_parking.parent_ticket_id, bobs_ga.id);
    assert_eq!(code(c.redeem(authed(at_car_park(&first_parking.credential), &security)).await), "ERR_6009");

    // Cancelling the first order revokes everything hanging from it, the add-on bought
    // later in its own order included, and frees each unused place once (the parked car's
    // place stays taken).
    env.cancel(&f, &order.id).await;
    let after = c
        .get_order(authed(pb::GetOrderRequest { order_id: addon_order.id }, &f.organizer))
        .await
        .expect("order")
        .into_inner();
    assert_eq!(after.tickets[0].status, pb::TicketStatus::Cancelled as i32, "the later add-on went with its ticket");
    assert_eq!(
        env.quotas(&f).await,
        vec![("GA capacity".to_owned(), 10, 0, 0), ("Parking capacity".to_owned(), 5, 0, 1)]
    );
}
