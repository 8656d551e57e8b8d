//! Top-ups paid online, as payments reports them: each payment credits once, however
//! often or late its event comes; a refund or dispute takes back what is left and stops
//! the bands.

use std::time::Duration;

use festival_proto::payments::v1 as pay;
use uuid::Uuid;

use crate::helpers::*;

fn completed(f: &Festival, band: &Band, payment: Uuid, amount: i64) -> pay::PaymentCompleted {
    pay::PaymentCompleted {
        payment_id: payment.to_string(),
        festival_id: f.id.to_string(),
        purpose: pay::PaymentPurpose::WalletTopUp as i32,
        reference: band.wallet_id.to_string(),
        payer_user_id: band.holder_id.to_string(),
        amount_minor: amount,
        currency: "EUR".into(),
    }
}

/// Waits until the wallet holds `balance`.
async fn holds(env: &Env, band: &Band, balance: i64) -> bool {
    eventually(Duration::from_secs(10), || async { env.wallet(band).await.balance_minor == balance }).await
}

/// Waits until `consumer` has applied (or skipped) `n` events.
async fn applied(env: &Env, consumer: &str, n: i64) -> bool {
    eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>("select count(*) from inbox where consumer = $1")
            .bind(consumer)
            .fetch_one(&env.app.pool)
            .await
            .expect("inbox")
            == n
    })
    .await
}

/// Events are applied in order by one consumer: once a marker completion after them
/// shows, the completions before it were applied (or skipped).
async fn settled(env: &Env, f: &Festival) {
    let marker = env.band(f, 0).await;
    festival_testkit::publish_event(&env.app.naming(), &completed(f, &marker, Uuid::now_v7(), 100)).await;
    assert!(holds(env, &marker, 100).await, "the marker was never applied");
}

#[tokio::test]
async fn an_online_top_up_credits_once_however_often_it_is_heard() {
    let env = spawn().await;
    let f = env.festival().await;
    let band = env.band(&f, 0).await;
    let other = env.band(&f, 0).await;
    let payment = Uuid::now_v7();
    let naming = env.app.naming();
    // The same payment, announced twice (a redelivery under a new event id).
    festival_testkit::publish_event(&naming, &completed(&f, &band, payment, 5_000)).await;
    festival_testkit::publish_event(&naming, &completed(&f, &band, payment, 5_000)).await;
    // Paid by someone else for this wallet, or in another currency: refused.
    let mut strangers = completed(&f, &band, Uuid::now_v7(), 7_000);
    strangers.payer_user_id = other.holder_id.to_string();
    festival_testkit::publish_event(&naming, &strangers).await;
    let mut dollars = completed(&f, &band, Uuid::now_v7(), 7_000);
    dollars.currency = "USD".into();
    festival_testkit::publish_event(&naming, &dollars).await;
    // A ticket order's payment is not cashless's.
    let mut ticket = completed(&f, &band, Uuid::now_v7(), 9_000);
    ticket.purpose = pay::PaymentPurpose::TicketOrder as i32;
    festival_testkit::publish_event(&naming, &ticket).await;
    settled(&env, &f).await;
    assert_eq!(env.wallet(&band).await.balance_minor, 5_000);
    let refused: i64 = sqlx::query_scalar("select count(*) from online_top_ups where status = 'REFUSED'")
        .fetch_one(&env.app.pool)
        .await
        .expect("count");
    assert_eq!(refused, 2);
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn a_disputed_top_up_takes_back_what_is_left_and_blocks_the_bands() {
    let env = spawn().await;
    let f = env.festival().await;
    let band = env.band(&f, 0).await;
    let bar = env.terminal(&f).await;
    let payment = Uuid::now_v7();
    let naming = env.app.naming();
    festival_testkit::publish_event(&naming, &completed(&f, &band, payment, 5_000)).await;
    assert!(holds(&env, &band, 5_000).await);
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 3_000, "beer")).await, "OK");
    let dispute = pay::PaymentDisputed {
        payment_id: payment.to_string(),
        festival_id: f.id.to_string(),
        purpose: pay::PaymentPurpose::WalletTopUp as i32,
        reference: band.wallet_id.to_string(),
        amount_minor: 5_000,
        currency: "EUR".into(),
        dispute_id: "dp_1".into(),
    };
    festival_testkit::publish_event(&naming, &dispute).await;
    festival_testkit::publish_event(&naming, &dispute).await;
    assert!(applied(&env, "cashless-payment-disputed", 2).await, "both disputes heard");
    assert_eq!(env.wallet(&band).await.balance_minor, 0);
    let lost: i64 = sqlx::query_scalar(
        "select coalesce(sum(e.amount_minor), 0)::bigint from entries e join accounts a on a.id = e.account_id
         where a.festival_id = $1 and a.kind = 'CHARGEBACKS'",
    )
    .bind(f.id)
    .fetch_one(&env.app.pool)
    .await
    .expect("chargebacks");
    assert_eq!(lost, 3_000, "what was spent before the dispute is the festival's loss, once");
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 100, "more")).await, "ERR_8007");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn a_refund_heard_before_its_completion_leaves_nothing_to_credit() {
    let env = spawn().await;
    let f = env.festival().await;
    let band = env.band(&f, 1_000).await;
    let payment = Uuid::now_v7();
    let naming = env.app.naming();
    let refund = pay::PaymentRefunded {
        payment_id: payment.to_string(),
        festival_id: f.id.to_string(),
        purpose: pay::PaymentPurpose::WalletTopUp as i32,
        reference: band.wallet_id.to_string(),
        refund_id: "re_1".into(),
        amount_minor: 4_000,
        currency: "EUR".into(),
        refunded_minor: 4_000,
    };
    festival_testkit::publish_event(&naming, &refund).await;
    assert!(applied(&env, "cashless-payment-refunded", 1).await, "the refund heard");
    festival_testkit::publish_event(&naming, &completed(&f, &band, payment, 4_000)).await;
    settled(&env, &f).await;
    assert_eq!(env.wallet(&band).await.balance_minor, 1_000, "neither credited nor taken back");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}
