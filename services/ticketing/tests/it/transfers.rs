//! Transfers: a ticket changes hands once, the old credential stops working, and the
//! quota never moves.

use std::time::Duration;

use festival_platform::auth::Role;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

/// A free, transferable category (cut-off in two days) of its own quota of 20.
async fn transferable(env: &Env, f: &Festival, name: &str, max_per_account: i32) -> pb::Category {
    let request = pb::CreateCategoryRequest {
        name: name.into(),
        transferable: true,
        transfer_cutoff_time: Some(festival_platform::convert::timestamp(
            env.app.clock.now() + chrono::Duration::days(2),
        )),
        max_per_account,
        ..Default::default()
    };
    env.category_from(f, request, 20).await
}

/// A fan who holds one ticket of `category`: (token, order, ticket).
async fn holder(env: &Env, f: &Festival, category: &str) -> (String, pb::Order, pb::Ticket) {
    let (_, token) = env.issuer.user();
    holder_with(env, f, category, &token).await
}

async fn holder_with(env: &Env, f: &Festival, category: &str, token: &str) -> (String, pb::Order, pb::Ticket) {
    let mut c = env.client();
    let token = token.to_owned();
    let hold = c.create_hold(authed(hold_request(f, &[(category, 1)]), &token)).await.expect("hold").into_inner();
    let order = c.checkout_hold(authed(checkout(&hold), &token)).await.expect("free order").into_inner();
    let ticket = order.tickets[0].clone();
    (token, order, ticket)
}

fn transfer(ticket: &pb::Ticket, to: &str) -> pb::TransferTicketRequest {
    pb::TransferTicketRequest {
        ticket_id: ticket.id.clone(),
        to_user_id: to.into(),
        idempotency_key: format!("transfer-{}", Uuid::now_v7()),
    }
}

fn scan(f: &Festival, credential: &str) -> pb::RedeemRequest {
    pb::RedeemRequest {
        festival_id: f.id.to_string(),
        credential: credential.into(),
        gate: "main".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_ticket_changes_hands_once_and_only_the_new_holder_s_credential_opens_the_gate() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let pass = transferable(&env, &f, "Weekend", 0).await;
    let (alice, order, ticket) = holder(&env, &f, &pass.id).await;
    let (bob_id, bob) = env.issuer.user();
    let security = env.member(&f, Role::Security);

    let request = transfer(&ticket, &bob_id.to_string());
    let done = c.transfer_ticket(authed(request.clone(), &alice)).await.expect("transfer").into_inner();
    assert_eq!(
        (done.status, done.to_user_id.as_str(), done.claim_code.as_str()),
        (pb::TransferStatus::Completed as i32, bob_id.to_string().as_str(), "")
    );
    // A retry answers the same; the ticket moved once.
    let again = c.transfer_ticket(authed(request, &alice)).await.expect("retry").into_inner();
    assert_eq!(again.id, done.id);

    let bobs =
        c.list_my_tickets(authed(pb::ListMyTicketsRequest::default(), &bob)).await.expect("bob's").into_inner().tickets;
    assert_eq!(bobs.len(), 1);
    assert_ne!((bobs[0].id.as_str(), bobs[0].credential.as_str()), (ticket.id.as_str(), ticket.credential.as_str()));
    assert_eq!((bobs[0].order_id.as_str(), bobs[0].status), (order.id.as_str(), pb::TicketStatus::Sold as i32));
    let alices = c
        .list_my_tickets(authed(pb::ListMyTicketsRequest::default(), &alice))
        .await
        .expect("alice's")
        .into_inner()
        .tickets;
    assert_eq!(
        alices.iter().map(|t| (t.status, t.transferred)).collect::<Vec<_>>(),
        vec![(pb::TicketStatus::Cancelled as i32, true)]
    );
    // Alice's order still lists both, but Bob's credential is Bob's.
    let seen_by_alice = c
        .get_order(authed(pb::GetOrderRequest { order_id: order.id.clone() }, &alice))
        .await
        .expect("order")
        .into_inner();
    let bobs_in_order = seen_by_alice.tickets.iter().find(|t| t.id == bobs[0].id).expect("bob's ticket in the order");
    assert_eq!(bobs_in_order.credential, "", "not shown to the old holder");
    let event = env.app.last_event::<pb::TicketTransferred>().await;
    assert_eq!((event.old_ticket_id.as_str(), event.new_ticket_id.as_str()), (ticket.id.as_str(), bobs[0].id.as_str()));

    // The old credential is revoked (online and in the offline list); Bob's gets in.
    assert_eq!(code(c.redeem(authed(scan(&f, &ticket.credential), &security)).await), "ERR_6009");
    let revoked = c
        .list_revoked_tickets(authed(pb::ListRevokedTicketsRequest { festival_id: f.id.to_string() }, &security))
        .await
        .expect("revoked")
        .into_inner()
        .ticket_ids;
    assert_eq!(revoked, vec![ticket.id.clone()]);
    c.redeem(authed(scan(&f, &bobs[0].credential), &security)).await.expect("bob gets in");
    assert_eq!(env.quotas(&f).await, vec![("Weekend capacity".to_owned(), 20, 0, 1)], "the quota never moved");

    // A used ticket does not change hands; nor does someone else's, or one to oneself.
    assert_eq!(
        code(c.transfer_ticket(authed(transfer(&bobs[0], &Uuid::now_v7().to_string()), &bob)).await),
        "ERR_6006"
    );
    let (carol_id, carol) = env.issuer.user();
    let (_, _, carols) = holder_with(&env, &f, &pass.id, &carol).await;
    assert_eq!(code(c.transfer_ticket(authed(transfer(&carols, &bob_id.to_string()), &alice)).await), "ERR_4000");
    assert_eq!(code(c.transfer_ticket(authed(transfer(&carols, &carol_id.to_string()), &carol)).await), "ERR_1000");

    // Cancelling the order revokes what the new holder got and frees its place once.
    env.cancel(&f, &order.id).await;
    let after = c
        .get_order(authed(pb::GetOrderRequest { order_id: order.id }, &f.organizer))
        .await
        .expect("order")
        .into_inner();
    assert!(after.tickets.iter().all(|t| t.status == pb::TicketStatus::Cancelled as i32), "{:?}", after.tickets);
    // Bob had come in: his place is not sold again; Carol still holds hers.
    assert_eq!(env.quotas(&f).await, vec![("Weekend capacity".to_owned(), 20, 0, 2)]);
}

#[tokio::test]
async fn a_claim_code_transfers_to_whoever_claims_it_first_within_the_rules() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let pass = transferable(&env, &f, "Weekend", 1).await;
    let (alice, _, ticket) = holder(&env, &f, &pass.id).await;

    let opening = transfer(&ticket, "");
    let open = c.transfer_ticket(authed(opening.clone(), &alice)).await.expect("open").into_inner();
    assert_eq!((open.status, open.claim_code.len()), (pb::TransferStatus::Pending as i32, 32));
    let retried = c.transfer_ticket(authed(opening, &alice)).await.expect("retry").into_inner();
    assert_eq!(
        (retried.id.as_str(), retried.claim_code.as_str()),
        (open.id.as_str(), ""),
        "the code is kept only hashed"
    );
    let (someone, _) = env.issuer.user();
    assert_eq!(
        code(c.transfer_ticket(authed(transfer(&ticket, &someone.to_string()), &alice)).await),
        "ERR_4001",
        "not given directly while a claim is open"
    );
    assert_eq!(code(c.transfer_ticket(authed(transfer(&ticket, ""), &alice)).await), "ERR_4001", "one open transfer");
    let claim = |code: &str| pb::ClaimTicketTransferRequest {
        claim_code: code.into(),
        idempotency_key: format!("claim-{}", Uuid::now_v7()),
    };
    assert_eq!(
        code(c.claim_ticket_transfer(authed(claim(&open.claim_code), &alice)).await),
        "ERR_1000",
        "not to oneself"
    );
    // Until claimed, the ticket is still Alice's and still valid.
    let security = env.member(&f, Role::Security);
    // Dave already holds one (the limit is one per account): refused, and nothing moves.
    let (dave, _, _) = holder(&env, &f, &pass.id).await;
    assert_eq!(code(c.claim_ticket_transfer(authed(claim(&open.claim_code), &dave)).await), "ERR_6007");
    let (_, bob) = env.issuer.user();
    let got = c.claim_ticket_transfer(authed(claim(&open.claim_code), &bob)).await.expect("claim").into_inner();
    assert_eq!(got.status, pb::TicketStatus::Sold as i32);
    assert_eq!(
        code(c.claim_ticket_transfer(authed(claim(&open.claim_code), &bob)).await),
        "ERR_4000",
        "a code works once"
    );
    assert_eq!(code(c.redeem(authed(scan(&f, &ticket.credential), &security)).await), "ERR_6009");
    assert_eq!(
        code(
            c.cancel_ticket_transfer(authed(pb::CancelTicketTransferRequest { transfer_id: open.id.clone() }, &alice))
                .await
        ),
        "ERR_6006",
        "completed"
    );

    // A withdrawn transfer's code is dead; so is every transfer after the cut-off.
    let (erin, _, erins) = holder(&env, &f, &pass.id).await;
    let withdrawn = c.transfer_ticket(authed(transfer(&erins, ""), &erin)).await.expect("open").into_inner();
    let cancelled = c
        .cancel_ticket_transfer(authed(pb::CancelTicketTransferRequest { transfer_id: withdrawn.id.clone() }, &erin))
        .await
        .expect("withdraw")
        .into_inner();
    assert_eq!(cancelled.status, pb::TransferStatus::Cancelled as i32);
    let (_, frank) = env.issuer.user();
    assert_eq!(code(c.claim_ticket_transfer(authed(claim(&withdrawn.claim_code), &frank)).await), "ERR_4000");
    let late = c.transfer_ticket(authed(transfer(&erins, ""), &erin)).await.expect("open again").into_inner();
    env.app.clock.advance(Duration::from_secs(2 * 24 * 3600));
    assert_eq!(
        code(c.claim_ticket_transfer(authed(claim(&late.claim_code), &frank)).await),
        "ERR_6006",
        "past the cut-off"
    );
    assert_eq!(code(c.transfer_ticket(authed(transfer(&erins, ""), &erin)).await), "ERR_6006");

    // A category that is not transferable keeps its tickets with their buyers.
    let named = env.category(&f, "Named", 0, 10).await;
    let (george, _, georges) = holder(&env, &f, &named.id).await;
    assert_eq!(code(c.transfer_ticket(authed(transfer(&georges, ""), &george)).await), "ERR_6006");
    let cut_off_without_transfer = pb::CreateCategoryRequest {
        festival_id: f.id.to_string(),
        name: "Odd".into(),
        transfer_cutoff_time: Some(festival_platform::convert::timestamp(env.app.clock.now())),
        ..Default::default()
    };
    assert_eq!(code(c.create_category(authed(cut_off_without_transfer, &f.organizer)).await), "ERR_1000");
}

#[tokio::test]
async fn tickets_stay_put_once_the_festival_is_under_way_and_an_account_sends_a_bounded_number() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let pass = transferable(&env, &f, "Weekend", 0).await;
    let (_, alice) = env.issuer.user();
    let mut tickets = Vec::new();
    for _ in 0..11 {
        tickets.push(holder_with(&env, &f, &pass.id, &alice).await.2);
    }
    // Ten transfers go out; the eleventh is refused (each adds to every scanner's list).
    for ticket in &tickets[..10] {
        c.transfer_ticket(authed(transfer(ticket, &Uuid::now_v7().to_string()), &alice)).await.expect("transfer");
    }
    assert_eq!(
        code(c.transfer_ticket(authed(transfer(&tickets[10], &Uuid::now_v7().to_string()), &alice)).await),
        "ERR_4005"
    );

    let (bob, _, bobs) = holder(&env, &f, &pass.id).await;
    env.announce(f.id, program::FestivalStatus::Ongoing, 2).await;
    assert_eq!(code(c.transfer_ticket(authed(transfer(&bobs, &Uuid::now_v7().to_string()), &bob)).await), "ERR_6006");
}
