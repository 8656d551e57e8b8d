//! Promo codes: discounts, limits counted in tickets, stacking, and the last use under a rush.

use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;

use crate::helpers::*;

fn code_request(f: &Festival, code: &str, kind: pb::DiscountKind, value: i64) -> pb::CreatePromoCodeRequest {
    pb::CreatePromoCodeRequest {
        festival_id: f.id.to_string(),
        code: code.into(),
        kind: kind as i32,
        value,
        ..Default::default()
    }
}

fn with_codes(mut request: pb::CreateHoldRequest, codes: &[&str]) -> pb::CreateHoldRequest {
    request.promo_codes = codes.iter().map(|c| (*c).to_owned()).collect();
    request
}

#[tokio::test]
async fn codes_discount_per_ticket_count_tickets_and_refuse_what_they_should() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let weekend = env.category(&f, "Weekend", 20_000, 100).await;
    let day = env.category(&f, "Day", 8_000, 100).await;
    let create = |r: pb::CreatePromoCodeRequest| authed(r, &f.organizer);
    let ten =
        c.create_promo_code(create(code_request(&f, "early10", pb::DiscountKind::Percent, 10))).await.expect("code");
    assert_eq!(ten.into_inner().code, "EARLY10", "stored upper-case");
    c.create_promo_code(create(pb::CreatePromoCodeRequest {
        max_uses: 1,
        ..code_request(&f, "FRIEND", pb::DiscountKind::Percent, 100)
    }))
    .await
    .expect("one-use code");
    c.create_promo_code(create(pb::CreatePromoCodeRequest {
        category_ids: vec![day.id.clone()],
        stackable: true,
        ..code_request(&f, "DAYFIVE", pb::DiscountKind::Fixed, 500)
    }))
    .await
    .expect("day code");
    c.create_promo_code(create(pb::CreatePromoCodeRequest {
        stackable: true,
        min_basket_minor: 25_000,
        ..code_request(&f, "BIGBASKET", pb::DiscountKind::Fixed, 1_000)
    }))
    .await
    .expect("basket code");
    assert_eq!(
        code(c.create_promo_code(create(code_request(&f, "EARLY10", pb::DiscountKind::Percent, 5))).await),
        "ERR_4001"
    );
    assert_eq!(
        code(c.create_promo_code(create(code_request(&f, "X", pb::DiscountKind::Percent, 5))).await),
        "ERR_1000"
    );
    assert_eq!(
        code(c.create_promo_code(create(code_request(&f, "PCT", pb::DiscountKind::Percent, 101))).await),
        "ERR_5006"
    );

    let (_, fan) = env.issuer.user();
    let hold = c
        .create_hold(authed(with_codes(hold_request(&f, &[(&weekend.id, 2), (&day.id, 1)]), &["early10"]), &fan))
        .await
        .expect("discounted")
        .into_inner();
    assert_eq!((hold.discount_minor, hold.total_minor), (2 * 2_000 + 800, 48_000 - 4_800));
    assert_eq!(hold.promo_codes, vec!["EARLY10".to_owned()]);

    // A one-use 100 % code buys one ticket, not two.
    let (_, friend) = env.issuer.user();
    let two = with_codes(hold_request(&f, &[(&weekend.id, 2)]), &["FRIEND"]);
    assert_eq!(code(c.create_hold(authed(two, &friend)).await), "ERR_13003");
    let one = c.create_hold(authed(with_codes(hold_request(&f, &[(&weekend.id, 1)]), &["FRIEND"]), &friend)).await;
    let one = one.expect("one free ticket").into_inner();
    assert_eq!(one.total_minor, 0);
    let order = c.checkout_hold(authed(checkout(&one), &friend)).await.expect("a free order").into_inner();
    assert_eq!(order.total_minor, 0);
    let (_, late) = env.issuer.user();
    let used_up = with_codes(hold_request(&f, &[(&weekend.id, 1)]), &["FRIEND"]);
    assert_eq!(code(c.create_hold(authed(used_up, &late)).await), "ERR_13003");

    // Stacking, categories, minimum basket, unknown codes.
    let (_, other) = env.issuer.user();
    let cases: Vec<(pb::CreateHoldRequest, &str)> = vec![
        (with_codes(hold_request(&f, &[(&weekend.id, 1)]), &["EARLY10", "FRIEND"]), "ERR_13001"),
        (with_codes(hold_request(&f, &[(&weekend.id, 1)]), &["DAYFIVE"]), "ERR_13004"),
        (with_codes(hold_request(&f, &[(&weekend.id, 1)]), &["BIGBASKET"]), "ERR_13005"),
        (with_codes(hold_request(&f, &[(&weekend.id, 1)]), &["NOSUCHCODE"]), "ERR_13004"),
        (with_codes(hold_request(&f, &[(&weekend.id, 1)]), &["a b"]), "ERR_1000"),
    ];
    for (request, expected) in cases {
        assert_eq!(code(c.create_hold(authed(request.clone(), &other)).await), expected, "{:?}", request.promo_codes);
    }
    let stacked = with_codes(hold_request(&f, &[(&weekend.id, 1), (&day.id, 1)]), &["DAYFIVE", "BIGBASKET"]);
    let stacked = c.create_hold(authed(stacked, &other)).await.expect("stacked").into_inner();
    assert_eq!(stacked.discount_minor, 500 + 2 * 1_000, "DAYFIVE on the day ticket, BIGBASKET on both");
    let reversed = with_codes(hold_request(&f, &[(&weekend.id, 1), (&day.id, 1)]), &["BIGBASKET", "DAYFIVE"]);
    let reversed = c.create_hold(authed(reversed, &other)).await.expect("stacked").into_inner();
    assert_eq!(reversed.discount_minor, stacked.discount_minor, "the order typed does not matter");
}

#[tokio::test]
async fn a_released_hold_gives_its_code_uses_back_and_bulk_codes_are_single_use() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 10_000, 100).await;
    let generated = c
        .generate_promo_codes(authed(
            pb::GeneratePromoCodesRequest {
                festival_id: f.id.to_string(),
                prefix: "crew".into(),
                count: 25,
                kind: pb::DiscountKind::Percent as i32,
                value: 50,
                ..Default::default()
            },
            &f.organizer,
        ))
        .await
        .expect("generated")
        .into_inner();
    assert_eq!(generated.codes.len(), 25);
    assert!(generated.codes.iter().all(|c| c.starts_with("CREW-") && c.len() == 15), "{:?}", generated.codes);
    let (_, fan) = env.issuer.user();
    let code_used = generated.codes[0].as_str();
    let hold = c
        .create_hold(authed(with_codes(hold_request(&f, &[(&ga.id, 1)]), &[code_used]), &fan))
        .await
        .expect("hold")
        .into_inner();
    assert_eq!(hold.total_minor, 5_000);
    let (_, other) = env.issuer.user();
    assert_eq!(
        code(c.create_hold(authed(with_codes(hold_request(&f, &[(&ga.id, 1)]), &[code_used]), &other)).await),
        "ERR_13003"
    );
    c.release_hold(authed(pb::ReleaseHoldRequest { hold_id: hold.id }, &fan)).await.expect("release");
    c.create_hold(authed(with_codes(hold_request(&f, &[(&ga.id, 1)]), &[code_used]), &other))
        .await
        .expect("back in use");
    let listed = c
        .list_promo_codes(authed(pb::ListPromoCodesRequest { festival_id: f.id.to_string() }, &f.organizer))
        .await
        .expect("list")
        .into_inner();
    let used: i64 = listed.promo_codes.iter().map(|p| p.used).sum();
    assert_eq!((listed.promo_codes.len(), used), (25, 1));
}

/// 100 buyers at once for the last use of a code: exactly one gets it. The negative
/// control (race-hooks: no conditional update) must see it used more than once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_buyers_take_the_last_use_of_a_code_once() {
    let env = spawn_with(|c| c.common.database.max_connections = 40).await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 10_000, 10_000).await;
    let mut overused_rounds = 0;
    for round in 0..3 {
        let name = format!("LAST{round}");
        c.create_promo_code(authed(
            pb::CreatePromoCodeRequest { max_uses: 1, ..code_request(&f, &name, pb::DiscountKind::Percent, 100) },
            &f.organizer,
        ))
        .await
        .expect("code");
        let calls: Vec<_> = (0..100)
            .map(|_| {
                let (mut c, (_, token)) = (env.client(), env.issuer.user());
                let request = with_codes(hold_request(&f, &[(&ga.id, 1)]), &[&name]);
                async move { tally(c.create_hold(authed(request, &token)).await) }
            })
            .collect();
        let answers = all_at_once(calls).await;
        let got = answers.iter().filter(|a| a.as_str() == "OK").count();
        let refused = answers.iter().filter(|a| a.as_str() == "ERR_13003").count();
        if cfg!(feature = "race-hooks") {
            overused_rounds += usize::from(got > 1);
        } else {
            assert_eq!((got, refused), (1, 99), "round {round}: {answers:?}");
        }
    }
    if cfg!(feature = "race-hooks") {
        assert!(overused_rounds > 0, "negative control: without the guard the last use must go twice");
    }
}
