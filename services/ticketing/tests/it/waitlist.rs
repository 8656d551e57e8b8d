//! The waiting list: freed places go to the first in line as holds that never exceed a
//! quota and never outlive the sale window.

use std::time::Duration;

use festival_platform::auth::Role;
use festival_platform::convert::timestamp;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

fn join(f: &Festival, category: &str, quantity: i32) -> pb::JoinWaitingListRequest {
    pb::JoinWaitingListRequest { festival_id: f.id.to_string(), category_id: category.into(), quantity }
}

#[tokio::test]
async fn freed_places_go_to_the_first_in_line_within_the_quota_and_the_sale_window() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let sale_end = env.app.clock.now() + chrono::Duration::hours(2);
    let ga = c
        .create_category(authed(
            pb::CreateCategoryRequest {
                festival_id: f.id.to_string(),
                name: "GA".into(),
                sale_end_time: Some(timestamp(sale_end)),
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
            name: "GA capacity".into(),
            size: 2,
            category_ids: vec![ga.id.clone()],
        },
        &f.organizer,
    ))
    .await
    .expect("quota");
    let cashier = env.member(&f, Role::Cashier);
    let first = c.create_order(authed(box_office(&f, &ga.id, 1), &cashier)).await.expect("sold").into_inner();
    let second = c.create_order(authed(box_office(&f, &ga.id, 1), &cashier)).await.expect("sold").into_inner();
    assert_eq!(code(c.create_hold(authed(hold_request(&f, &[(&ga.id, 1)]), &env.issuer.user().1)).await), "ERR_6002");

    let (_, ann) = env.issuer.user();
    let (_, ben) = env.issuer.user();
    let (_, cleo) = env.issuer.user();
    for (token, quantity) in [(&ann, 1), (&ben, 1), (&cleo, 2)] {
        c.join_waiting_list(authed(join(&f, &ga.id, quantity), token)).await.expect("join");
    }
    assert_eq!(
        [
            env.waiting_entry(&ann).await.ahead,
            env.waiting_entry(&ben).await.ahead,
            env.waiting_entry(&cleo).await.ahead
        ],
        [0, 1, 2]
    );
    assert_eq!(code(c.join_waiting_list(authed(join(&f, &ga.id, 1), &ann)).await), "ERR_4001", "once per line");
    assert_eq!(code(c.join_waiting_list(authed(join(&f, &ga.id, 0), &ann)).await), "ERR_1000");
    assert_eq!(code(c.join_waiting_list(authed(join(&f, &Uuid::now_v7().to_string(), 1), &ann)).await), "ERR_4000");

    // One place comes free: Ann, first in line, gets it as a hold; Ben waits.
    env.cancel(&f, &first.id).await;
    let offer = env.entry_becomes(&ann, pb::WaitingStatus::Offered).await;
    let offered = env.app.last_event::<pb::WaitingListOffered>().await;
    assert_eq!((offered.hold_id.as_str(), offered.quantity), (offer.hold_id.as_str(), 1));
    assert_eq!(env.waiting_entry(&ben).await.status, pb::WaitingStatus::Waiting as i32);
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".to_owned(), 2, 1, 1)], "an offer takes stock like a hold");
    let hold = c
        .get_hold(authed(pb::GetHoldRequest { hold_id: offer.hold_id.clone() }, &ann))
        .await
        .expect("hold")
        .into_inner();
    assert_eq!(hold.expire_time.map(|t| t.seconds), offer.offer_expire_time.map(|t| t.seconds));
    assert_eq!(
        code(c.extend_hold(authed(pb::ExtendHoldRequest { hold_id: offer.hold_id.clone() }, &ann)).await),
        "ERR_6010",
        "an offer is not extended"
    );

    // Ben leaves; Ann lets her offer lapse. Cleo, now first, wants two: one is free, so
    // the line waits (first come, first served) and nothing is offered.
    c.leave_waiting_list(authed(pb::LeaveWaitingListRequest { entry_id: env.waiting_entry(&ben).await.id }, &ben))
        .await
        .expect("leave");
    env.app.clock.advance(Duration::from_secs(3600 + 1));
    env.entry_becomes(&ann, pb::WaitingStatus::Expired).await;
    assert_eq!(env.waiting_entry(&cleo).await.status, pb::WaitingStatus::Waiting as i32);
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".to_owned(), 2, 0, 1)]);

    // The second place comes free: Cleo gets both, and her offer ends with the sale.
    env.cancel(&f, &second.id).await;
    let offer = env.entry_becomes(&cleo, pb::WaitingStatus::Offered).await;
    assert_eq!(offer.offer_expire_time.map(|t| t.seconds), Some(sale_end.timestamp()), "never past the sale window");
    let hold = c
        .get_hold(authed(pb::GetHoldRequest { hold_id: offer.hold_id.clone() }, &cleo))
        .await
        .expect("hold")
        .into_inner();
    c.checkout_hold(authed(checkout(&hold), &cleo)).await.expect("cleo buys");
    env.entry_becomes(&cleo, pb::WaitingStatus::Bought).await;
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".to_owned(), 2, 0, 2)], "never more than the quota");
}
