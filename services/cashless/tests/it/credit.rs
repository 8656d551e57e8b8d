//! Non-refundable credit: promotional credit and staff drink tokens, granted by an
//! organiser from their own accounts, spent first by connected terminals, given back by a
//! void, never part of the holder's money.

use festival_proto::cashless::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

fn grant(wallet: Uuid, amount: i64, kind: pb::CreditKind, key: &str) -> pb::GrantCreditRequest {
    pb::GrantCreditRequest {
        wallet_id: wallet.to_string(),
        amount_minor: amount,
        currency: "EUR".into(),
        kind: kind as i32,
        reason: "welcome drink".into(),
        idempotency_key: key.into(),
    }
}

/// What the festival's accounts of `kind` hold (debits positive).
async fn account_sum(env: &Env, f: &Festival, kind: &str) -> i64 {
    sqlx::query_scalar(
        "select coalesce(sum(e.amount_minor), 0)::bigint from entries e join accounts a on a.id = e.account_id
         where a.festival_id = $1 and a.kind = $2",
    )
    .bind(f.id)
    .bind(kind)
    .fetch_one(&env.app.pool)
    .await
    .expect("sum")
}

#[tokio::test]
async fn credit_is_spent_before_money_given_back_by_a_void_and_never_becomes_money() {
    let env = spawn().await;
    let f = env.festival().await;
    let bar = env.terminal(&f).await;
    let band = env.band(&f, 1_000).await;
    let mut client = env.client();
    let promo = grant(band.wallet_id, 300, pb::CreditKind::Promotion, "promo-1");
    // Organisers only; a cashier or the holder learns nothing of it.
    assert_eq!(code(client.grant_credit(authed(promo.clone(), &f.cashier)).await), "ERR_4000");
    assert_eq!(code(client.grant_credit(authed(promo.clone(), &band.holder)).await), "ERR_4000");
    for (bad, expected) in [
        (pb::GrantCreditRequest { amount_minor: 0, ..promo.clone() }, "ERR_1000"),
        (pb::GrantCreditRequest { kind: 0, ..promo.clone() }, "ERR_1001"),
        (pb::GrantCreditRequest { reason: String::new(), ..promo.clone() }, "ERR_1001"),
        (pb::GrantCreditRequest { currency: "USD".into(), ..promo.clone() }, "ERR_5005"),
    ] {
        assert_eq!(code(client.grant_credit(authed(bad, &f.organizer)).await), expected);
    }
    let granted = client.grant_credit(authed(promo.clone(), &f.organizer)).await.expect("grant").into_inner();
    assert_eq!(
        (granted.amount_minor, granted.credit_minor, granted.balance_after_minor),
        (0, 300, 1_000),
        "credit, and the money is not touched"
    );
    let again = client.grant_credit(authed(promo, &f.organizer)).await.expect("replay").into_inner();
    assert_eq!(again.id, granted.id, "granted once");
    client
        .grant_credit(authed(grant(band.wallet_id, 200, pb::CreditKind::StaffDrinks, "staff-1"), &f.organizer))
        .await
        .expect("staff drinks");
    let wallet = env.wallet(&band).await;
    assert_eq!((wallet.balance_minor, wallet.credit_minor), (1_000, 500));
    assert_eq!((account_sum(&env, &f, "PROMO").await, account_sum(&env, &f, "STAFF_TOKENS").await), (300, 200));

    // 400: all of it credit. 250: the last 100 of credit, then 150 of money.
    let first = client.charge(authed(charge(&f, &bar, &band.soft, 400, "c1"), &bar.token)).await.expect("c1");
    let first = first.into_inner();
    assert_eq!((first.amount_minor, first.credit_minor, first.balance_after_minor), (0, -400, 1_000));
    let second = client.charge(authed(charge(&f, &bar, &band.soft, 250, "c2"), &bar.token)).await.expect("c2");
    let second = second.into_inner();
    assert_eq!((second.amount_minor, second.credit_minor, second.balance_after_minor), (-150, -100, 850));
    // The statement, read back from the ledger, says the same.
    let statement = client
        .list_transactions(authed(
            pb::ListTransactionsRequest { wallet_id: band.wallet_id.to_string(), ..Default::default() },
            &band.holder,
        ))
        .await
        .expect("statement")
        .into_inner()
        .transactions;
    let lines: Vec<(i64, i64)> = statement.iter().map(|t| (t.amount_minor, t.credit_minor)).collect();
    assert_eq!(lines, vec![(-150, -100), (0, -400), (0, 200), (0, 300), (1_000, 0)], "newest first");
    let wallet = env.wallet(&band).await;
    assert_eq!((wallet.balance_minor, wallet.credit_minor), (850, 0));
    // The vendor is paid in full either way.
    assert_eq!(account_sum(&env, &f, "VENDOR_REVENUE").await, -650);

    // A void gives the credit back as credit, the money as money.
    let void = pb::VoidChargeRequest {
        transaction_id: second.id.clone(),
        reason: "wrong drink".into(),
        idempotency_key: "v1".into(),
    };
    client.void_charge(authed(void, &f.organizer)).await.expect("void");
    let wallet = env.wallet(&band).await;
    assert_eq!((wallet.balance_minor, wallet.credit_minor), (1_000, 100));

    // A wallet holding only credit pays with it, and no more than it.
    let fresh = env.band(&f, 0).await;
    client
        .grant_credit(authed(grant(fresh.wallet_id, 500, pb::CreditKind::Promotion, "promo-2"), &f.organizer))
        .await
        .expect("grant");
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &fresh.soft, 400, "f1")).await, "OK");
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &fresh.soft, 200, "f2")).await, "ERR_8001");
    let wallet = env.wallet(&fresh).await;
    assert_eq!((wallet.balance_minor, wallet.credit_minor), (0, 100));
    // Credit is never transferred: a transfer moves money only.
    let transfer = pb::TransferRequest {
        wallet_id: fresh.wallet_id.to_string(),
        to_wallet_id: band.wallet_id.to_string(),
        amount_minor: 100,
        currency: "EUR".into(),
        idempotency_key: "t1".into(),
    };
    assert_eq!(code(client.transfer(authed(transfer, &fresh.holder)).await), "ERR_8001");
    // Money and credit together stay within the festival's maximum balance.
    let over = grant(band.wallet_id, 100_000, pb::CreditKind::Promotion, "promo-3");
    assert_eq!(code(client.grant_credit(authed(over, &f.organizer)).await), "ERR_8011");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}
