//! Top-ups at a cashier's desk, transfers between wallets, organisers' corrections and
//! a wallet's statement.

use festival_proto::cashless::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn a_cashier_tops_up_within_the_festivals_limits_once_per_key() {
    let env = spawn().await;
    let f = env.festival().await;
    let other = env.festival().await;
    env.settings(&f, |s| {
        s.min_top_up_minor = 500;
        s.max_top_up_minor = 20_000;
        s.max_balance_minor = 30_000;
    })
    .await;
    let band = env.band(&f, 0).await;
    let mut client = env.client();
    let top_up = |amount: i64, key: &str, method: pb::TopUpMethod| pb::TopUpRequest {
        festival_id: f.id.to_string(),
        uid: band.uid(),
        amount_minor: amount,
        currency: "EUR".into(),
        method: method as i32,
        idempotency_key: key.into(),
        card_reference: if method == pb::TopUpMethod::Card { format!("receipt-{key}") } else { String::new() },
    };
    let first = client
        .top_up(authed(top_up(20_000, "t1", pb::TopUpMethod::Cash), &f.cashier))
        .await
        .expect("top up")
        .into_inner();
    assert_eq!((first.amount_minor, first.balance_after_minor), (20_000, 20_000));
    assert_eq!(first.r#type, pb::TransactionType::Topup as i32);
    assert_eq!(first.actor_id, f.cashier_id.to_string());
    let replay = client
        .top_up(authed(top_up(20_000, "t1", pb::TopUpMethod::Cash), &f.cashier))
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(replay, first);
    assert_eq!(code(client.top_up(authed(top_up(600, "t1", pb::TopUpMethod::Cash), &f.cashier)).await), "ERR_1006");

    assert_eq!(code(client.top_up(authed(top_up(499, "t2", pb::TopUpMethod::Cash), &f.cashier)).await), "ERR_8005");
    assert_eq!(code(client.top_up(authed(top_up(20_001, "t3", pb::TopUpMethod::Card), &f.cashier)).await), "ERR_8005");
    assert_eq!(code(client.top_up(authed(top_up(10_001, "t4", pb::TopUpMethod::Card), &f.cashier)).await), "ERR_8011");
    let mut no_receipt = top_up(10_000, "t9", pb::TopUpMethod::Card);
    no_receipt.card_reference.clear();
    assert_eq!(code(client.top_up(authed(no_receipt, &f.cashier)).await), "ERR_1001");
    let mut receipt_for_cash = top_up(10_000, "t10", pb::TopUpMethod::Cash);
    receipt_for_cash.card_reference = "receipt".into();
    assert_eq!(code(client.top_up(authed(receipt_for_cash, &f.cashier)).await), "ERR_1000");
    let card = client
        .top_up(authed(top_up(10_000, "t5", pb::TopUpMethod::Card), &f.cashier))
        .await
        .expect("card")
        .into_inner();
    assert_eq!((card.balance_after_minor, card.reason.as_str()), (30_000, "receipt-t5"));
    // The UID spelt in lower case is the same request: replayed, not refused.
    let mut lower = top_up(10_000, "t5", pb::TopUpMethod::Card);
    lower.uid = lower.uid.to_lowercase();
    assert_eq!(client.top_up(authed(lower, &f.cashier)).await.expect("replay").into_inner(), card);
    assert_eq!(
        code(client.top_up(authed(top_up(500, "t6", pb::TopUpMethod::Unspecified), &f.cashier)).await),
        "ERR_1001"
    );

    // Only this festival's cashiers and organisers load money.
    assert_eq!(code(client.top_up(authed(top_up(500, "t7", pb::TopUpMethod::Cash), &band.holder)).await), "ERR_3002");
    assert_eq!(code(client.top_up(authed(top_up(500, "t8", pb::TopUpMethod::Cash), &other.cashier)).await), "ERR_3002");
    assert_eq!(env.wallet(&band).await.balance_minor, 30_000);
    // A cashier does not load their own wallet.
    let opened = client
        .open_wallet(authed(pb::OpenWalletRequest { festival_id: f.id.to_string() }, &f.cashier))
        .await
        .expect("cashier's wallet")
        .into_inner();
    let cashiers_band = env.new_band(&f).await;
    client.bind_wristband(authed(bind(&f, &opened.id, &cashiers_band), &f.cashier)).await.expect("bind");
    let own = pb::TopUpRequest { uid: cashiers_band.uid.to_hex(), ..top_up(500, "t11", pb::TopUpMethod::Cash) };
    assert_eq!(code(client.top_up(authed(own, &f.cashier)).await), "ERR_3001");
    let report = env.assert_ledger(&f).await;
    assert_eq!(report.transactions, 2);
    env.app.stop().await;
}

#[tokio::test]
async fn holders_transfer_between_wallets_and_both_statements_show_it() {
    let env = spawn().await;
    let f = env.festival().await;
    let other = env.festival().await;
    let ann = env.band(&f, 5_000).await;
    let ben = env.band(&f, 1_000).await;
    let abroad = env.band(&other, 1_000).await;
    let mut client = env.client();
    let transfer = |from: &Band, to: Uuid, amount: i64, key: &str| pb::TransferRequest {
        wallet_id: from.wallet_id.to_string(),
        to_wallet_id: to.to_string(),
        amount_minor: amount,
        currency: "EUR".into(),
        idempotency_key: key.into(),
    };
    let sent = client
        .transfer(authed(transfer(&ann, ben.wallet_id, 1_500, "x1"), &ann.holder))
        .await
        .expect("transfer")
        .into_inner();
    assert_eq!((sent.amount_minor, sent.balance_after_minor), (-1_500, 3_500));
    assert_eq!(sent.counterpart_id, ben.wallet_id.to_string());
    let again = client.transfer(authed(transfer(&ann, ben.wallet_id, 1_500, "x1"), &ann.holder)).await.expect("replay");
    assert_eq!(again.into_inner(), sent);

    assert_eq!(
        code(client.transfer(authed(transfer(&ann, ben.wallet_id, 3_501, "x2"), &ann.holder)).await),
        "ERR_8001"
    );
    // Only from one's own wallet, only within the festival, never to itself.
    assert_eq!(code(client.transfer(authed(transfer(&ann, ben.wallet_id, 100, "x3"), &ben.holder)).await), "ERR_4000");
    assert_eq!(
        code(client.transfer(authed(transfer(&ann, abroad.wallet_id, 100, "x4"), &ann.holder)).await),
        "ERR_4000"
    );
    assert_eq!(code(client.transfer(authed(transfer(&ann, ann.wallet_id, 100, "x5"), &ann.holder)).await), "ERR_1000");

    let statement = |band: &Band| pb::ListTransactionsRequest {
        wallet_id: band.wallet_id.to_string(),
        page_size: 10,
        ..Default::default()
    };
    let bens = client.list_transactions(authed(statement(&ben), &ben.holder)).await.expect("list").into_inner();
    let received: Vec<_> =
        bens.transactions.iter().filter(|t| t.r#type == pb::TransactionType::Transfer as i32).collect();
    assert_eq!(received.len(), 1);
    assert_eq!((received[0].amount_minor, received[0].balance_after_minor), (1_500, 2_500));
    assert_eq!(received[0].counterpart_id, ann.wallet_id.to_string());
    let anns = client.list_transactions(authed(statement(&ann), &ann.holder)).await.expect("list").into_inner();
    assert_eq!(
        anns.transactions.iter().map(|t| t.amount_minor).collect::<Vec<_>>(),
        vec![-1_500, 5_000],
        "newest first"
    );
    assert_eq!(code(client.list_transactions(authed(statement(&ann), &ben.holder)).await), "ERR_4000");
    env.assert_ledger(&f).await;
    env.assert_ledger(&other).await;
    env.app.stop().await;
}

#[tokio::test]
async fn an_organiser_corrects_a_wallet_with_a_reason_on_record() {
    let env = spawn().await;
    let f = env.festival().await;
    let band = env.band(&f, 2_000).await;
    let mut client = env.client();
    let correct = |amount: i64, reason: &str, key: &str| pb::CorrectRequest {
        wallet_id: band.wallet_id.to_string(),
        amount_minor: amount,
        currency: "EUR".into(),
        reason: reason.into(),
        idempotency_key: key.into(),
    };
    let credited = client
        .correct(authed(correct(350, "Beer tap poured foam, refunded at the bar", "c1"), &f.organizer))
        .await
        .expect("credit")
        .into_inner();
    assert_eq!((credited.amount_minor, credited.balance_after_minor), (350, 2_350));
    assert_eq!(credited.reason, "Beer tap poured foam, refunded at the bar");
    let debited =
        client.correct(authed(correct(-2_350, "Double top-up", "c2"), &f.organizer)).await.expect("debit").into_inner();
    assert_eq!(debited.balance_after_minor, 0);
    assert_eq!(code(client.correct(authed(correct(-1, "More", "c3"), &f.organizer)).await), "ERR_8001");
    assert_eq!(code(client.correct(authed(correct(100, "", "c4"), &f.organizer)).await), "ERR_1001");
    assert_eq!(code(client.correct(authed(correct(0, "Nothing", "c5"), &f.organizer)).await), "ERR_1000");
    // A cashier is no organiser.
    assert_eq!(code(client.correct(authed(correct(100, "Tip", "c6"), &f.cashier)).await), "ERR_4000");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}
