//! Organisers' takings: over a period, and live.

use std::time::Duration;

use festival_platform::convert::timestamp;
use festival_proto::cashless::v1 as pb;

use crate::helpers::*;

/// The next report a watch sends, within 10 s.
async fn next(stream: &mut tonic::Streaming<pb::TakingsReport>) -> pb::TakingsReport {
    use futures::StreamExt as _;
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a change within 10 s")
        .expect("the stream goes on")
        .expect("a report")
}

#[tokio::test]
async fn takings_show_money_in_by_method_and_sales_per_vendor_less_voids() {
    let env = spawn().await;
    let f = env.festival().await;
    let (north, south) = (env.terminal(&f).await, env.terminal(&f).await);
    let band = env.band(&f, 5_000).await;
    let mut client = env.client();
    let card = pb::TopUpRequest {
        festival_id: f.id.to_string(),
        uid: band.uid(),
        amount_minor: 2_000,
        currency: "EUR".into(),
        method: pb::TopUpMethod::Card as i32,
        idempotency_key: "card".into(),
        card_reference: "SUMUP-1".into(),
    };
    client.top_up(authed(card, &f.cashier)).await.expect("card top-up");
    for (bar, amount, key) in [(&north, 1_200, "n1"), (&north, 300, "n2"), (&south, 700, "s1")] {
        client.charge(authed(charge(&f, bar, &band.soft, amount, key), &bar.token)).await.expect("sale");
    }
    let sales = client
        .list_transactions(authed(
            pb::ListTransactionsRequest { wallet_id: band.wallet_id.to_string(), ..Default::default() },
            &band.holder,
        ))
        .await
        .expect("statement")
        .into_inner();
    let small = sales.transactions.iter().find(|t| t.amount_minor == -300).expect("the 3.00 sale");
    let void =
        pb::VoidChargeRequest { transaction_id: small.id.clone(), reason: "spilt".into(), idempotency_key: "v".into() };
    client.void_charge(authed(void, &f.organizer)).await.expect("void");

    let today = pb::GetTakingsReportRequest { festival_id: f.id.to_string(), ..Default::default() };
    let report = client.get_takings_report(authed(today.clone(), &f.organizer)).await.expect("report").into_inner();
    let top_ups: Vec<_> = report.top_ups.iter().map(|t| (t.method.as_str(), t.count, t.total_minor)).collect();
    assert_eq!(top_ups, vec![("CARD", 1, 2_000), ("CASH", 1, 5_000)]);
    let vendors: Vec<_> =
        report.vendors.iter().map(|v| (v.vendor_id.clone(), v.sales, v.total_minor, v.voided_minor)).collect();
    assert_eq!(
        vendors,
        vec![(north.vendor_id.to_string(), 2, 1_200, 300), (south.vendor_id.to_string(), 1, 700, 0)],
        "highest takings first, the void deducted"
    );
    assert!(!report.hours.is_empty());
    assert_eq!(report.hours.iter().map(|h| h.total_minor).sum::<i64>(), 1_900);
    assert_eq!((report.outstanding_minor, report.outstanding_wallets), (5_100, 1));

    // Another period: nothing sold then, the wallets hold what they hold now.
    let now = env.app.clock.now();
    let last_week = pb::GetTakingsReportRequest {
        festival_id: f.id.to_string(),
        from: Some(timestamp(now - chrono::Duration::days(8))),
        to: Some(timestamp(now - chrono::Duration::days(7))),
    };
    let old = client.get_takings_report(authed(last_week, &f.organizer)).await.expect("old").into_inner();
    assert!(old.vendors.is_empty() && old.top_ups.is_empty() && old.hours.is_empty(), "{old:?}");
    assert_eq!(old.outstanding_minor, 5_100);

    // Bad periods, other people.
    let bad = |from: i64, to: i64| pb::GetTakingsReportRequest {
        festival_id: f.id.to_string(),
        from: Some(timestamp(now + chrono::Duration::days(from))),
        to: Some(timestamp(now + chrono::Duration::days(to))),
    };
    assert_eq!(code(client.get_takings_report(authed(bad(0, -1), &f.organizer)).await), "ERR_1000");
    assert_eq!(code(client.get_takings_report(authed(bad(-40, 0), &f.organizer)).await), "ERR_1000");
    let half = pb::GetTakingsReportRequest { to: None, ..bad(-1, 0) };
    assert_eq!(code(client.get_takings_report(authed(half, &f.organizer)).await), "ERR_1000");
    let other = env.festival().await;
    for token in [f.cashier.clone(), other.organizer.clone(), band.holder.clone()] {
        let got = code(client.get_takings_report(authed(today.clone(), &token)).await);
        assert!(["ERR_3001", "ERR_3002"].contains(&got.as_str()), "{got}");
    }
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn the_live_takings_send_the_day_then_each_change() {
    let env = spawn().await;
    let f = env.festival().await;
    let bar = env.terminal(&f).await;
    let band = env.band(&f, 3_000).await;
    let mut client = env.client();
    let watch = || pb::WatchTakingsRequest { festival_id: f.id.to_string() };
    assert_eq!(code(client.watch_takings(authed(watch(), &f.cashier)).await), "ERR_3001");
    let mut stream = client.watch_takings(authed(watch(), &f.organizer)).await.expect("watch").into_inner();
    let first = next(&mut stream).await;
    assert!(first.vendors.is_empty());
    assert_eq!(first.outstanding_minor, 3_000);
    client.charge(authed(charge(&f, &bar, &band.soft, 450, "a"), &bar.token)).await.expect("sale");
    let after = next(&mut stream).await;
    assert_eq!(after.vendors.iter().map(|v| (v.sales, v.total_minor)).collect::<Vec<_>>(), vec![(1, 450)]);
    assert_eq!(after.outstanding_minor, 2_550);
    // A bounded number per festival (5 by default); a closed one frees its place.
    let mut open = Vec::new();
    for _ in 1..5 {
        open.push(client.watch_takings(authed(watch(), &f.organizer)).await.expect("watch"));
    }
    assert_eq!(code(client.watch_takings(authed(watch(), &f.organizer)).await), "ERR_4005");
    drop(open);
    drop(stream);
    let reopened = eventually(Duration::from_secs(10), || {
        let (mut c, token) = (env.client(), f.organizer.clone());
        async move { c.watch_takings(authed(watch(), &token)).await.is_ok() }
    })
    .await;
    assert!(reopened, "closed streams give their places back");
    env.app.stop().await;
}

#[tokio::test]
async fn the_live_takings_end_once_the_watchers_session_ends() {
    let env = spawn().await;
    let f = env.festival().await;
    let mut client = env.client();
    let watch = pb::WatchTakingsRequest { festival_id: f.id.to_string() };
    let mut stream = client.watch_takings(authed(watch.clone(), &f.organizer)).await.expect("watch").into_inner();
    next(&mut stream).await;
    // The organiser signs out (identity lists the session as ended): the open stream
    // ends at cashless's next poll of the list, and a new one is refused.
    env.issuer.end_session_of(&f.organizer);
    let ended =
        tokio::time::timeout(Duration::from_secs(30), async { while let Ok(Some(_)) = stream.message().await {} })
            .await;
    assert!(ended.is_ok(), "the stream went on after its session ended");
    assert_eq!(code(client.watch_takings(authed(watch, &f.organizer)).await), "ERR_2005");
    env.app.stop().await;
}
