//! Cash drawers: a shift's float, its cash top-ups, moves to and from the safe, and the
//! count at its close against the ledger.

use festival_proto::cashless::v1 as pb;

use crate::helpers::*;

fn coins(pieces: &[(i64, i64)]) -> Vec<pb::CashCount> {
    pieces.iter().map(|&(denomination_minor, count)| pb::CashCount { denomination_minor, count }).collect()
}

fn open(f: &Festival, float: &[(i64, i64)], key: &str) -> pb::OpenShiftRequest {
    pb::OpenShiftRequest { festival_id: f.id.to_string(), float: coins(float), idempotency_key: key.into() }
}

/// What the festival's account of `kind` holds (debit-normal).
async fn holds(env: &Env, f: &Festival, kind: &str) -> i64 {
    sqlx::query_scalar(
        "select coalesce(sum(e.amount_minor), 0)::bigint from entries e join accounts a on a.id = e.account_id
         where a.festival_id = $1 and a.kind = $2",
    )
    .bind(f.id)
    .bind(kind)
    .fetch_one(&env.app.pool)
    .await
    .expect("account")
}

#[tokio::test]
async fn a_shift_is_counted_in_and_out_and_its_difference_booked() {
    let env = spawn().await;
    let f = env.festival().await;
    let mut client = env.client();
    // Bad floats: an unknown denomination, the same one twice.
    let bad = open(&f, &[(300, 1)], "s0");
    assert_eq!(code(client.open_shift(authed(bad, &f.cashier)).await), "ERR_1000");
    let twice = open(&f, &[(200, 1), (200, 2)], "s0");
    assert_eq!(code(client.open_shift(authed(twice, &f.cashier)).await), "ERR_1000");
    let fan = env.issuer.user().1;
    assert_eq!(code(client.open_shift(authed(open(&f, &[], "s0"), &fan)).await), "ERR_3002");

    // The festival's cashier works an empty-float shift (the test kit opened it): cash
    // top-ups need one. Closed with nothing in it, it balances.
    let listed = client
        .list_shifts(authed(pb::ListShiftsRequest { festival_id: f.id.to_string() }, &f.organizer))
        .await
        .expect("shifts")
        .into_inner();
    let first = listed.shifts.first().expect("the kit's shift").id.clone();
    let empty = pb::CloseShiftRequest { shift_id: first.clone(), counted: Vec::new(), idempotency_key: "c0".into() };
    let empty = client.close_shift(authed(empty, &f.cashier)).await.expect("close").into_inner();
    assert_eq!((empty.expected_minor, empty.difference_minor), (0, 0));
    let band = env.band(&f, 0).await;
    assert_eq!(code(env.top_up(&f, &band, 1_000).await), "ERR_8021", "no cash outside a shift");

    // 100 € float: five 20 € notes.
    let shift = client.open_shift(authed(open(&f, &[(2_000, 5)], "s1"), &f.cashier)).await.expect("open").into_inner();
    assert_eq!((shift.float_minor, shift.expected_minor), (10_000, 10_000));
    let again = client.open_shift(authed(open(&f, &[(2_000, 5)], "s1"), &f.cashier)).await.expect("retry");
    assert_eq!(again.into_inner().id, shift.id);
    assert_eq!(code(client.open_shift(authed(open(&f, &[], "s2"), &f.cashier)).await), "ERR_4001", "one open shift");

    // Cash top-ups go into the shift's drawer.
    env.top_up(&f, &band, 3_000).await.expect("cash");
    env.top_up(&f, &band, 2_000).await.expect("cash");
    let skim = pb::MoveCashRequest {
        shift_id: shift.id.clone(),
        direction: pb::CashDirection::ToSafe as i32,
        amount_minor: 4_000,
        idempotency_key: "m1".into(),
    };
    let after = client.move_cash(authed(skim.clone(), &f.cashier)).await.expect("skim").into_inner();
    assert_eq!((after.cash_top_ups_minor, after.to_safe_minor, after.expected_minor), (5_000, 4_000, 11_000));
    let too_much = pb::MoveCashRequest { amount_minor: 20_000, idempotency_key: "m2".into(), ..skim.clone() };
    assert_eq!(code(client.move_cash(authed(too_much, &f.cashier)).await), "ERR_8001");
    // Someone else's shift: not theirs to touch.
    let other_cashier = env.issuer.member(env.issuer.user().0, f.id, festival_platform::auth::Role::Cashier);
    let theirs = pb::MoveCashRequest { idempotency_key: "m3".into(), ..skim };
    assert_eq!(code(client.move_cash(authed(theirs, &other_cashier)).await), "ERR_4000");

    // 2.50 € missing at the count: 107.50 € counted of 110 €.
    let close = pb::CloseShiftRequest {
        shift_id: shift.id.clone(),
        counted: coins(&[(5_000, 2), (500, 1), (200, 1), (50, 1)]),
        idempotency_key: "c1".into(),
    };
    let closed = client.close_shift(authed(close.clone(), &f.cashier)).await.expect("close").into_inner();
    assert!(closed.closed_at.is_some());
    assert_eq!((closed.expected_minor, closed.counted_minor, closed.difference_minor), (11_000, 10_750, -250));
    let replay = client.close_shift(authed(close, &f.cashier)).await.expect("retry").into_inner();
    assert_eq!(replay.difference_minor, -250);
    let late = pb::CloseShiftRequest { shift_id: shift.id.clone(), counted: Vec::new(), idempotency_key: "c2".into() };
    assert_eq!(code(client.close_shift(authed(late, &f.cashier)).await), "ERR_1000", "closed already");
    assert_eq!(holds(&env, &f, "CASH_IMBALANCE").await, 250, "the missing cash");
    assert_eq!(holds(&env, &f, "SAFE").await, -10_000 + 4_000 + 10_750, "the float out, the skim and the count in");

    let listed = client
        .list_shifts(authed(pb::ListShiftsRequest { festival_id: f.id.to_string() }, &f.organizer))
        .await
        .expect("list")
        .into_inner();
    let figures: Vec<_> = listed.shifts.iter().map(|s| (s.id.clone(), s.difference_minor)).collect();
    assert_eq!(figures, vec![(shift.id, -250), (first, 0)], "newest first");
    // A new shift may open now.
    let next = client.open_shift(authed(open(&f, &[], "s3"), &f.cashier)).await.expect("next").into_inner();
    assert_eq!(next.expected_minor, 0);
    env.assert_ledger(&f).await;
    env.app.stop().await;
}
