//! Face-value resale: a ticket handed back goes to the first in its category's waiting
//! list, who pays the face value and gets a new credential; the seller's is revoked and
//! what they paid (minus the fee) goes back. The counters never move.

use std::time::Duration;

use festival_platform::auth::Role;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

async fn set_policy(env: &Env, f: &Festival, enabled: bool, fixed: i64, bp: i32) {
    env.client()
        .set_resale_policy(authed(
            pb::SetResalePolicyRequest {
                festival_id: f.id.to_string(),
                enabled,
                fee_fixed_minor: fixed,
                fee_basis_points: bp,
            },
            &f.organizer,
        ))
        .await
        .expect("policy");
}

fn resell(ticket_id: &str, key: &str) -> pb::ListTicketForResaleRequest {
    pb::ListTicketForResaleRequest { ticket_id: ticket_id.into(), idempotency_key: key.into() }
}

async fn join(env: &Env, f: &Festival, category: &str, quantity: i32, token: &str) {
    let request = pb::JoinWaitingListRequest { festival_id: f.id.to_string(), category_id: category.into(), quantity };
    env.client().join_waiting_list(authed(request, token)).await.expect("join");
}

async fn listing(env: &Env, seller: &str) -> pb::ResaleListing {
    let mut listings = env
        .client()
        .list_my_resale_listings(authed(pb::ListMyResaleListingsRequest::default(), seller))
        .await
        .expect("listings")
        .into_inner()
        .listings;
    assert!(!listings.is_empty(), "no listing");
    listings.remove(0)
}

/// Waits until the seller's newest listing is in `status`.
async fn listing_becomes(env: &Env, seller: &str, status: pb::ResaleStatus) -> pb::ResaleListing {
    let reached = festival_testkit::eventually(Duration::from_secs(15), || async {
        listing(env, seller).await.status == status as i32
    })
    .await;
    let listing = listing(env, seller).await;
    assert!(reached, "never {status:?}: {listing:?}");
    listing
}

#[tokio::test]
async fn a_ticket_handed_back_goes_to_the_first_in_line_with_a_new_credential_and_the_counters_stay() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let pass = env.category(&f, "Free pass", 0, 1).await;
    set_policy(&env, &f, true, 0, 0).await;
    let (seller, order) = env.free_ticket(&f, &pass.id).await;
    let old = order.tickets[0].clone();
    let (_, ann) = env.issuer.user();
    let (_, ben) = env.issuer.user();
    join(&env, &f, &pass.id, 2, &ann).await;
    join(&env, &f, &pass.id, 1, &ben).await;

    let listed = c.list_ticket_for_resale(authed(resell(&old.id, "r-1"), &seller)).await.expect("listed").into_inner();
    assert_eq!(listed.status, pb::ResaleStatus::Listed as i32);
    assert_eq!((listed.price_minor, listed.fee_minor, listed.payout_minor), (0, 0, 0));
    let again = c.list_ticket_for_resale(authed(resell(&old.id, "r-1"), &seller)).await.expect("replay").into_inner();
    assert_eq!(again.id, listed.id, "the same key answers the same listing");
    assert_eq!(code(c.list_ticket_for_resale(authed(resell(&old.id, "r-2"), &seller)).await), "ERR_4001");
    assert_eq!(code(c.list_ticket_for_resale(authed(resell(&old.id, "r-3"), &ann)).await), "ERR_4000", "not hers");
    let transfer = pb::TransferTicketRequest {
        ticket_id: old.id.clone(),
        to_user_id: Uuid::now_v7().to_string(),
        idempotency_key: "give".into(),
    };
    assert_eq!(code(c.transfer_ticket(authed(transfer, &seller)).await), "ERR_6006", "listed: no transfer");

    // Ann, first in line, is offered it (one ticket of the two she wants).
    let offered = festival_testkit::eventually(Duration::from_secs(15), || async {
        env.waiting_entry(&ann).await.status == pb::WaitingStatus::Offered as i32
    })
    .await;
    // If not, say where the listing stands too: the worker's view of it.
    assert!(offered, "never offered: {:?}; listing {:?}", env.waiting_entry(&ann).await, listing(&env, &seller).await);
    let offer = env.waiting_entry(&ann).await;
    assert_eq!(env.waiting_entry(&ben).await.status, pb::WaitingStatus::Waiting as i32);
    let on_offer = listing_becomes(&env, &seller, pb::ResaleStatus::Offered).await;
    assert_eq!(on_offer.offer_expire_time.map(|t| t.seconds), offer.offer_expire_time.map(|t| t.seconds));
    let withdraw = pb::WithdrawResaleListingRequest { listing_id: listed.id.clone() };
    assert_eq!(code(c.withdraw_resale_listing(authed(withdraw, &seller)).await), "ERR_6021", "on offer");

    let hold = c.get_hold(authed(pb::GetHoldRequest { hold_id: offer.hold_id.clone() }, &ann)).await.expect("hold");
    let hold = hold.into_inner();
    assert_eq!(hold.items.iter().map(|i| i.quantity).sum::<i32>(), 1);
    let bought = c.checkout_hold(authed(checkout(&hold), &ann)).await.expect("ann buys").into_inner();
    assert_eq!(bought.status, pb::OrderStatus::Paid as i32);
    assert_eq!(bought.tickets.len(), 1);
    let new = &bought.tickets[0];
    assert_ne!((new.id.as_str(), new.credential.as_str()), (old.id.as_str(), old.credential.as_str()));
    assert_eq!(env.quotas(&f).await, vec![("Free pass capacity".to_owned(), 1, 0, 1)], "the counters did not move");

    // The seller's ticket is revoked; the listing is sold; the hand-over is announced.
    let seller_order = c
        .get_order(authed(pb::GetOrderRequest { order_id: order.id.clone() }, &seller))
        .await
        .expect("seller's order")
        .into_inner();
    assert_eq!(seller_order.tickets[0].status, pb::TicketStatus::Cancelled as i32);
    assert_eq!(listing(&env, &seller).await.status, pb::ResaleStatus::Sold as i32);
    let organisers = |status: pb::ResaleStatus| pb::ListResaleListingsRequest {
        festival_id: f.id.to_string(),
        status: status as i32,
    };
    let sold = c
        .list_resale_listings(authed(organisers(pb::ResaleStatus::Sold), &f.organizer))
        .await
        .expect("organisers' list")
        .into_inner();
    assert_eq!((sold.listings.len(), sold.sold), (1, 1));
    assert_eq!(sold.listings[0].seller_user_id, listed.seller_user_id);
    let listed_now = c
        .list_resale_listings(authed(organisers(pb::ResaleStatus::Listed), &f.organizer))
        .await
        .expect("organisers' list")
        .into_inner();
    assert!(listed_now.listings.is_empty());
    let other = env.festival(program::FestivalStatus::Published).await;
    let theirs = authed(organisers(pb::ResaleStatus::Unspecified), &other.organizer);
    assert_eq!(code(c.list_resale_listings(theirs).await), "ERR_3002", "another festival's organisers");
    let mine = authed(organisers(pb::ResaleStatus::Unspecified), &seller);
    assert_eq!(code(c.list_resale_listings(mine).await), "ERR_3002", "a seller is not an organiser");
    let moved = env.app.last_event::<pb::TicketTransferred>().await;
    assert_eq!(
        (moved.old_ticket_id.as_str(), moved.new_ticket_id.as_str(), moved.resale_listing_id.as_str()),
        (old.id.as_str(), new.id.as_str(), listed.id.as_str())
    );
    // Ann wanted two: she keeps her place for the second; Ben is still behind her.
    let ann_now = env.entry_becomes(&ann, pb::WaitingStatus::Waiting).await;
    assert_eq!((ann_now.quantity, ann_now.ahead), (1, 0));
    assert_eq!(env.waiting_entry(&ben).await.ahead, 1);
}

#[tokio::test]
async fn an_offer_that_lapses_goes_to_the_next_in_line_and_a_cancelled_order_ends_the_listing() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 5_000, 1).await;
    let (seller_id, seller) = env.issuer.user();
    let order = pb::CreateOrderRequest {
        buyer_user_id: seller_id.to_string(),
        payment_method: pb::PaymentMethod::External as i32,
        ..box_office(&f, &ga.id, 1)
    };
    let order = c.create_order(authed(order, &f.organizer)).await.expect("sold").into_inner();
    let ticket = order.tickets[0].id.clone();
    assert_eq!(code(c.list_ticket_for_resale(authed(resell(&ticket, "r-0"), &seller)).await), "ERR_6021", "off");

    // Validation, and only organisers set the terms.
    let policy = |bp: i32| pb::SetResalePolicyRequest {
        festival_id: f.id.to_string(),
        enabled: true,
        fee_fixed_minor: 200,
        fee_basis_points: bp,
    };
    assert_eq!(code(c.set_resale_policy(authed(policy(10_001), &f.organizer)).await), "ERR_1000");
    assert_eq!(code(c.set_resale_policy(authed(policy(500), &seller)).await), "ERR_3002", "not a member");
    let staff = env.member(&f, Role::Staff);
    assert_eq!(code(c.set_resale_policy(authed(policy(500), &staff)).await), "ERR_3001");
    set_policy(&env, &f, true, 200, 500).await;
    let terms = c
        .get_resale_policy(pb::GetResalePolicyRequest { festival_id: f.id.to_string() })
        .await
        .expect("public terms")
        .into_inner();
    assert_eq!((terms.fee_fixed_minor, terms.fee_basis_points, terms.currency.as_str()), (200, 500, "EUR"));

    let listed = c.list_ticket_for_resale(authed(resell(&ticket, "r-1"), &seller)).await.expect("listed").into_inner();
    assert_eq!((listed.price_minor, listed.fee_minor, listed.payout_minor), (5_000, 450, 4_550));
    let refund = pb::RequestRefundRequest {
        order_id: order.id.clone(),
        reason: "cannot come".into(),
        idempotency_key: "refund".into(),
        ..Default::default()
    };
    assert_eq!(code(c.request_refund(authed(refund, &seller)).await), "ERR_6016", "listed: no refund request");

    // Ann is offered it and lets the offer lapse: Ben gets it next.
    let (_, ann) = env.issuer.user();
    let (_, ben) = env.issuer.user();
    join(&env, &f, &ga.id, 1, &ann).await;
    join(&env, &f, &ga.id, 1, &ben).await;
    env.entry_becomes(&ann, pb::WaitingStatus::Offered).await;
    env.app.clock.advance(Duration::from_secs(3_600 + 1));
    env.entry_becomes(&ann, pb::WaitingStatus::Expired).await;
    let offer = env.entry_becomes(&ben, pb::WaitingStatus::Offered).await;
    // Ben gives it back: listed again, and nobody else waits.
    c.release_hold(authed(pb::ReleaseHoldRequest { hold_id: offer.hold_id }, &ben)).await.expect("released");
    listing_becomes(&env, &seller, pb::ResaleStatus::Listed).await;
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".to_owned(), 1, 0, 1)], "offers take no stock");

    // Withdrawn, listed again, then the organiser cancels the order: the listing ends.
    let withdraw = pb::WithdrawResaleListingRequest { listing_id: listed.id.clone() };
    let withdrawn = c.withdraw_resale_listing(authed(withdraw, &seller)).await.expect("withdrawn").into_inner();
    assert_eq!(withdrawn.status, pb::ResaleStatus::Withdrawn as i32);
    c.list_ticket_for_resale(authed(resell(&ticket, "r-2"), &seller)).await.expect("listed again");
    let (_, cleo) = env.issuer.user();
    join(&env, &f, &ga.id, 1, &cleo).await;
    let offer = env.entry_becomes(&cleo, pb::WaitingStatus::Offered).await;
    env.cancel(&f, &order.id).await;
    let ended = listing_becomes(&env, &seller, pb::ResaleStatus::Ended).await;
    assert_eq!(ended.end_reason, "The ticket is no longer valid or was used");
    // Cleo's offer went with it, and she keeps her place; the cancelled place itself
    // goes to her as a plain offer, taken from the quota.
    let hold = c.get_hold(authed(pb::GetHoldRequest { hold_id: offer.hold_id.clone() }, &cleo)).await.expect("hold");
    assert_eq!(hold.into_inner().status, pb::HoldStatus::Released as i32);
    let again = env.entry_becomes(&cleo, pb::WaitingStatus::Offered).await;
    assert_ne!(again.hold_id, offer.hold_id);
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".to_owned(), 1, 1, 0)]);
    // A staff member's token does not list anything of the seller's either.
    assert_eq!(code(c.list_ticket_for_resale(authed(resell(&ticket, "r-3"), &staff)).await), "ERR_4000");
}

#[tokio::test]
async fn only_the_buyer_resells_and_a_listed_ticket_gets_no_add_on() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let request = pb::CreateCategoryRequest { name: "Weekend".into(), transferable: true, ..Default::default() };
    let weekend = env.category_from(&f, request, 5).await;
    let request = pb::CreateCategoryRequest { name: "Parking".into(), addon: true, ..Default::default() };
    let parking = env.category_from(&f, request, 5).await;
    set_policy(&env, &f, true, 0, 0).await;
    let (giver, order) = env.free_ticket(&f, &weekend.id).await;
    let (receiver_id, receiver) = env.issuer.user();
    let transfer = pb::TransferTicketRequest {
        ticket_id: order.tickets[0].id.clone(),
        to_user_id: receiver_id.to_string(),
        idempotency_key: "gift".into(),
    };
    let moved = c.transfer_ticket(authed(transfer, &giver)).await.expect("transferred").into_inner();
    let received = c
        .list_my_tickets(authed(pb::ListMyTicketsRequest::default(), &receiver))
        .await
        .expect("tickets")
        .into_inner()
        .tickets;
    assert_eq!(received.len(), 1, "{moved:?}");
    // Its payout would refund the giver's order: only a buyer resells.
    assert_eq!(code(c.list_ticket_for_resale(authed(resell(&received[0].id, "r"), &receiver)).await), "ERR_6021");

    // A listed ticket gets no add-on (it would stay with the seller when sold).
    let (seller, order) = env.free_ticket(&f, &weekend.id).await;
    let ticket = order.tickets[0].id.clone();
    c.list_ticket_for_resale(authed(resell(&ticket, "r-1"), &seller)).await.expect("listed");
    let parking_hold = pb::CreateHoldRequest { for_ticket_id: ticket.clone(), ..hold_request(&f, &[(&parking.id, 1)]) };
    assert_eq!(code(c.create_hold(authed(parking_hold, &seller)).await), "ERR_6021");
}

/// The buyer pays for a resold ticket while an organiser cancels the seller's order, at
/// once, over several rounds: whichever wins, one place is one live ticket (the quota's
/// `sold` counts exactly the live tickets). Negative control: without the guard (the
/// seller's order and ticket locked, the ticket replaced only while unused) the
/// cancellation frees the place the buyer is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_resale_and_cancellation_leave_one_live_ticket_per_place() {
    let env = spawn_with(|c| c.holds.sweep_interval_ms = 3_600_000).await;
    let pool = env.app.pool.clone();
    let mut broken_rounds = 0;
    for round in 0..8 {
        let f = env.festival(program::FestivalStatus::Published).await;
        let pass = env.category(&f, "Pass", 0, 1).await;
        set_policy(&env, &f, true, 0, 0).await;
        let (seller, order) = env.free_ticket(&f, &pass.id).await;
        let (_, buyer) = env.issuer.user();
        join(&env, &f, &pass.id, 1, &buyer).await;
        let mut c = env.client();
        c.list_ticket_for_resale(authed(resell(&order.tickets[0].id, "r"), &seller)).await.expect("listed");
        let offered = festival_ticketing::resale::offer_listed(&pool, &env.app.clock, chrono::Duration::hours(1))
            .await
            .expect("offer");
        assert_eq!(offered, 1, "round {round}");
        let hold_id = env.waiting_entry(&buyer).await.hold_id;
        let (mut c1, mut c2) = (env.client(), env.client());
        let buy = pb::CheckoutHoldRequest { hold_id, idempotency_key: format!("buy-{round}") };
        let cancel = pb::CancelOrderRequest {
            order_id: order.id.clone(),
            reason: String::new(),
            idempotency_key: format!("cancel-{round}"),
        };
        let organizer = f.organizer.clone();
        let answers = all_at_once(vec![
            Box::pin(async move { tally(c1.checkout_hold(authed(buy, &buyer)).await) })
                as std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>,
            Box::pin(async move { tally(c2.cancel_order(authed(cancel, &organizer)).await) }),
        ])
        .await;
        let (sold, live): (i64, i64) = sqlx::query_as(
            "select (select coalesce(sum(sold), 0)::bigint from quotas where festival_id = $1),
                    (select count(*) from tickets where festival_id = $1 and status in ('SOLD', 'USED'))",
        )
        .bind(f.id)
        .fetch_one(&pool)
        .await
        .expect("counts");
        if cfg!(feature = "race-hooks") {
            if sold != live {
                broken_rounds += 1;
            }
        } else {
            assert_eq!(answers[1], "OK", "round {round}: the cancellation always goes through");
            assert!(matches!(answers[0].as_str(), "OK" | "ERR_6022"), "round {round}: {answers:?}");
            let expected = i64::from(answers[0] == "OK");
            assert_eq!((sold, live), (expected, expected), "round {round}: {answers:?}");
        }
    }
    if cfg!(feature = "race-hooks") {
        assert!(broken_rounds > 0, "negative control: without the guard a cancelled place is sold again");
    }
}
