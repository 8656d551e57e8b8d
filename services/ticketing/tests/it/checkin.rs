//! Check-in at the gates: each ticket admits once, and every refusal says why.

use festival_platform::auth::Role;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use tonic_types::StatusExt;

use crate::helpers::*;

async fn sold_ticket(env: &Env, f: &Festival, category: &str) -> (pb::Order, String) {
    let cashier = env.member(f, Role::Cashier);
    let order =
        env.client().create_order(authed(box_office(f, category, 1), &cashier)).await.expect("sold").into_inner();
    let credential = order.tickets[0].credential.clone();
    (order, credential)
}

fn redeem(f: &Festival, credential: &str, gate: &str) -> pb::RedeemRequest {
    pb::RedeemRequest {
        festival_id: f.id.to_string(),
        credential: credential.into(),
        gate: gate.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_ticket_admits_once_and_each_refusal_has_its_own_code() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 5_000, 10).await;
    let (_, credential) = sold_ticket(&env, &f, &ga.id).await;
    let security = env.member(&f, Role::Security);

    let (_, fan) = env.issuer.user();
    assert_eq!(code(c.redeem(authed(redeem(&f, &credential, "north-1"), &fan)).await), "ERR_3002", "fans do not scan");
    let admitted =
        c.redeem(authed(redeem(&f, &credential, "north-1"), &security)).await.expect("admitted").into_inner();
    assert_eq!((admitted.category_id.as_str(), admitted.gate.as_str()), (ga.id.as_str(), "north-1"));
    let again = c.redeem(authed(redeem(&f, &credential, "south-2"), &security)).await.expect_err("used");
    let info = again.get_error_details().error_info().cloned().expect("error info");
    assert_eq!(info.reason, "ERR_6001");
    assert_eq!(info.metadata.get("first_used_gate").map(String::as_str), Some("north-1"), "says where it was used");
    assert!(info.metadata.get("first_used_time").is_some_and(|t| !t.is_empty()));
    let event = env.app.last_event::<pb::TicketAdmitted>().await;
    assert_eq!((event.ticket_id, event.gate), (admitted.ticket_id, "north-1".to_owned()));

    // Forged, damaged, of another festival, revoked: each its own code.
    let mut flipped = credential.clone().into_bytes();
    flipped[60] = if flipped[60] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for forged in [flipped.as_str(), "not a ticket", &credential[..100], &"A".repeat(142)] {
        assert_eq!(code(c.redeem(authed(redeem(&f, forged, "north-1"), &security)).await), "ERR_6004", "{forged:.20}");
    }
    let other = env.festival(program::FestivalStatus::Published).await;
    let theirs = env.category(&other, "GA", 5_000, 10).await;
    let (_, their_ticket) = sold_ticket(&env, &other, &theirs.id).await;
    assert_eq!(code(c.redeem(authed(redeem(&f, &their_ticket, "north-1"), &security)).await), "ERR_6005");
    let their_security = env.member(&other, Role::Security);
    assert_eq!(
        code(c.redeem(authed(redeem(&f, &credential, "north-1"), &their_security)).await),
        "ERR_3002",
        "not at A"
    );

    let (order, revoked) = sold_ticket(&env, &f, &ga.id).await;
    c.cancel_order(authed(
        pb::CancelOrderRequest { order_id: order.id, reason: String::new(), idempotency_key: "cancel-for-scan".into() },
        &f.organizer,
    ))
    .await
    .expect("cancel");
    assert_eq!(code(c.redeem(authed(redeem(&f, &revoked, "north-1"), &security)).await), "ERR_6009");
    assert_eq!(code(c.redeem(authed(redeem(&f, &credential, ""), &security)).await), "ERR_1001", "a gate is named");
}

/// 50 scans of one ticket at once: exactly one admission. The negative control
/// (race-hooks: no conditional update) must see it admitted more than once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_scans_of_one_ticket_admit_it_once() {
    let env = spawn_with(|c| c.common.database.max_connections = 40).await;
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 5_000, 100).await;
    let security = env.member(&f, Role::Security);
    let mut doubled_rounds = 0;
    for round in 0..3 {
        let (_, credential) = sold_ticket(&env, &f, &ga.id).await;
        let calls: Vec<_> = (0..50)
            .map(|i| {
                let (mut c, request, token) =
                    (env.client(), redeem(&f, &credential, &format!("gate-{i}")), security.clone());
                async move { tally(c.redeem(authed(request, &token)).await) }
            })
            .collect();
        let answers = all_at_once(calls).await;
        let admitted = answers.iter().filter(|a| a.as_str() == "OK").count();
        let used = answers.iter().filter(|a| a.as_str() == "ERR_6001").count();
        if cfg!(feature = "race-hooks") {
            doubled_rounds += usize::from(admitted > 1);
        } else {
            assert_eq!((admitted, used), (1, 49), "round {round}: {answers:?}");
        }
    }
    if cfg!(feature = "race-hooks") {
        assert!(doubled_rounds > 0, "negative control: without the guard a ticket must get in twice");
    }
}

#[tokio::test]
async fn a_credential_of_the_right_shape_signed_by_an_unknown_key_is_forged() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 5_000, 10).await;
    let (order, _) = sold_ticket(&env, &f, &ga.id).await;
    let stranger = festival_platform::credential::Issuer::new(ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
    let claims = festival_platform::credential::Claims {
        kind: festival_platform::credential::Kind::Ticket,
        festival: f.id,
        subject: uuid::Uuid::parse_str(&order.tickets[0].id).expect("id"),
        issued_at: 1_800_000_000,
    };
    let security = env.member(&f, Role::Security);
    for _ in 0..3 {
        let forged = stranger.issue(&claims);
        assert_eq!(code(c.redeem(authed(redeem(&f, &forged, "north-1"), &security)).await), "ERR_6004");
    }
}

#[tokio::test]
async fn cancelling_an_order_after_its_ticket_was_used_revokes_it_without_reselling_the_place() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 5_000, 10).await;
    let cashier = env.member(&f, Role::Cashier);
    let order = c.create_order(authed(box_office(&f, &ga.id, 2), &cashier)).await.expect("order").into_inner();
    let security = env.member(&f, Role::Security);
    c.redeem(authed(redeem(&f, &order.tickets[0].credential, "north-1"), &security)).await.expect("admitted");
    c.cancel_order(authed(
        pb::CancelOrderRequest {
            order_id: order.id.clone(),
            reason: "ejected".into(),
            idempotency_key: "eject-1".into(),
        },
        &f.organizer,
    ))
    .await
    .expect("cancel");
    assert_eq!(env.quotas(&f).await, vec![("GA capacity".into(), 10, 0, 1)], "only the unused ticket's place is free");
    assert_eq!(
        code(c.redeem(authed(redeem(&f, &order.tickets[0].credential, "north-1"), &security)).await),
        "ERR_6009"
    );
}
