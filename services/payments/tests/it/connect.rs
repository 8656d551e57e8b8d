//! Stripe Connect against the fake: a vendor's account, onboarding, destination charges
//! less the platform's commission, refunds that take the vendor's share back, and the
//! debt a vendor owes when its balance was paid out already.

use festival_proto::payments::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

fn account_request(festival: &Festival, vendor: Uuid, bps: i32, key: &str) -> pb::CreateVendorAccountRequest {
    pb::CreateVendorAccountRequest {
        festival_id: festival.id.to_string(),
        vendor_id: vendor.to_string(),
        display_name: "Crêpes du Sud".into(),
        email: "Owner@Crepes.example".into(),
        country: "FR".into(),
        commission_bps: bps,
        idempotency_key: key.into(),
    }
}

/// A vendor account at `bps`, onboarded (Stripe's `account.updated` delivered).
async fn onboarded(env: &Env, festival: &Festival, bps: i32) -> pb::VendorAccount {
    let request = account_request(festival, Uuid::now_v7(), bps, &Uuid::now_v7().to_string());
    let account =
        env.client().create_vendor_account(authed(request, &festival.organizer)).await.expect("account").into_inner();
    let updated = env.stripe.complete_onboarding(&account.provider_account_id).expect("onboarded");
    env.deliver(&updated).await.expect("account.updated");
    account
}

/// A vendor's sale of `amount`, paid.
async fn sold(env: &Env, festival: &Festival, account: &pb::VendorAccount, amount: i64) -> pb::Payment {
    let request = pb::CreateCheckoutRequest {
        purpose: pb::PaymentPurpose::VendorOrder as i32,
        vendor_account_id: account.id.clone(),
        ..checkout_request(festival, &Uuid::now_v7().to_string(), amount)
    };
    let payment = env.client().create_checkout(authed(request, &env.buyer())).await.expect("checkout").into_inner();
    let event = env.stripe.complete_session(&env.session_id(&payment).await).expect("paid");
    env.deliver(&event).await.expect("webhook");
    env.payment(&payment.id).await
}

async fn refund(env: &Env, festival: &Festival, payment: &pb::Payment, amount: i64) -> pb::Refund {
    let request = pb::RefundPaymentRequest {
        payment_id: payment.id.clone(),
        amount_minor: amount,
        reason: "Sold out of crêpes".into(),
        idempotency_key: Uuid::now_v7().to_string(),
    };
    env.client().refund_payment(authed(request, &festival.organizer)).await.expect("refund").into_inner()
}

async fn report(env: &Env, festival: &Festival) -> pb::VendorReport {
    let request = pb::GetVendorReportRequest { festival_id: festival.id.to_string() };
    env.client().get_vendor_report(authed(request, &festival.organizer)).await.expect("report").into_inner()
}

/// `(charges, gross, fees, fees refunded, refunded, reversed, net, owed)` of a line.
fn figures(line: &pb::VendorReportLine) -> (i64, i64, i64, i64, i64, i64, i64, i64) {
    (
        line.charges,
        line.gross_minor,
        line.fees_minor,
        line.fees_refunded_minor,
        line.refunded_minor,
        line.reversed_minor,
        line.net_minor,
        line.owed_minor,
    )
}

fn intent(env: &Env, id: &str) -> serde_json::Value {
    env.stripe.payment_intents().into_iter().find(|pi| pi["id"] == id).expect("the intent at the fake")
}

#[tokio::test]
async fn a_vendor_onboards_and_is_paid_by_destination_charges_less_the_commission() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival();
    let vendor = Uuid::now_v7();
    let request = account_request(&f, vendor, 800, "vendor-1");
    let account = c.create_vendor_account(authed(request.clone(), &f.organizer)).await.expect("account").into_inner();
    assert!(account.provider_account_id.starts_with("acct_"), "{account:?}");
    assert_eq!((account.commission_bps, account.charges_enabled), (800, false));
    let at_stripe = env.stripe.account(&account.provider_account_id).expect("made at Stripe");
    assert_eq!(
        (at_stripe["type"].as_str(), at_stripe["email"].as_str()),
        (Some("express"), Some("owner@crepes.example"))
    );
    // A retry answers the same account; another key for the same vendor is refused.
    let again = c.create_vendor_account(authed(request, &f.organizer)).await.expect("retry").into_inner();
    assert_eq!(again.id, account.id);
    let twice = c.create_vendor_account(authed(account_request(&f, vendor, 800, "vendor-2"), &f.organizer)).await;
    assert_eq!(code(twice), "ERR_4001");
    let fresh = |key: &str| account_request(&f, Uuid::now_v7(), 1, key);
    for (bad, expected) in [
        (pb::CreateVendorAccountRequest { country: "France".into(), ..fresh("k-1") }, "ERR_1000"),
        (account_request(&f, Uuid::now_v7(), 10_001, "k-2"), "ERR_1000"),
        (pb::CreateVendorAccountRequest { email: "not-an-address".into(), ..fresh("k-3") }, "ERR_10002"),
        (pb::CreateVendorAccountRequest { display_name: "  ".into(), ..fresh("k-4") }, "ERR_1001"),
    ] {
        let refused = c.create_vendor_account(authed(bad.clone(), &f.organizer)).await;
        assert_eq!(code(refused), expected, "{bad:?}");
    }
    let other = env.festival();
    let foreign =
        c.create_vendor_account(authed(account_request(&f, Uuid::now_v7(), 1, "k-5"), &other.organizer)).await;
    assert_eq!(code(foreign), "ERR_3002");
    let read = c
        .get_vendor_account(authed(pb::GetVendorAccountRequest { account_id: account.id.clone() }, &other.organizer))
        .await;
    assert_eq!(code(read), "ERR_4000", "another festival's organiser learns nothing");

    // Not onboarded yet: no checkout for the vendor.
    let early = pb::CreateCheckoutRequest {
        purpose: pb::PaymentPurpose::VendorOrder as i32,
        vendor_account_id: account.id.clone(),
        ..checkout_request(&f, "early", 10_000)
    };
    assert_eq!(code(c.create_checkout(authed(early, &env.buyer())).await), "ERR_5007");

    // The organiser sends the vendor Stripe's onboarding link; the vendor finishes it.
    let link = c
        .create_vendor_onboarding_link(authed(
            pb::CreateVendorOnboardingLinkRequest {
                account_id: account.id.clone(),
                return_url: "https://festival.example/vendors/done".into(),
                refresh_url: "https://festival.example/vendors/again".into(),
            },
            &f.organizer,
        ))
        .await
        .expect("link")
        .into_inner();
    assert!(link.url.ends_with(&format!("/connect/onboard/{}", account.provider_account_id)), "{}", link.url);
    let older = env.stripe.complete_onboarding(&account.provider_account_id).expect("onboarded");
    let mut stale = older.clone();
    env.deliver(&older).await.expect("account.updated");
    let now = c
        .get_vendor_account(authed(pb::GetVendorAccountRequest { account_id: account.id.clone() }, &f.organizer))
        .await
        .expect("account")
        .into_inner();
    assert_eq!((now.charges_enabled, now.payouts_enabled, now.details_submitted), (true, true, true));
    // An older state delivered late changes nothing.
    stale["id"] = serde_json::json!(format!("evt_stale_{}", Uuid::now_v7().simple()));
    stale["created"] = serde_json::json!(older["created"].as_i64().expect("created") - 3_600);
    stale["data"]["object"]["charges_enabled"] = serde_json::json!(false);
    env.deliver(&stale).await.expect("stale event answered");
    let enabled: bool = sqlx::query_scalar("select charges_enabled from vendor_accounts where id = $1")
        .bind(Uuid::parse_str(&account.id).expect("id"))
        .fetch_one(&env.app.pool)
        .await
        .expect("account row");
    assert!(enabled);

    // A sale: the buyer pays 100.00, the vendor gets 92.00, the platform keeps 8 %.
    let sale = sold(&env, &f, &account, 10_000).await;
    assert_eq!(sale.status, pb::PaymentStatus::Completed as i32);
    assert_eq!((sale.vendor_account_id.as_str(), sale.application_fee_minor), (account.id.as_str(), 800));
    let pi = intent(&env, &env.intent_of(&sale).await);
    assert_eq!(pi["application_fee_amount"], 800);
    assert_eq!(pi["transfer_data"]["destination"], account.provider_account_id.as_str());
    assert_eq!(env.stripe.account_balance(&account.provider_account_id), Some(9_200));
    let lines = report(&env, &f).await.vendors;
    assert_eq!(lines.len(), 1);
    assert_eq!(figures(&lines[0]), (1, 10_000, 800, 0, 0, 0, 9_200, 0));
    // A vendor order names its vendor, and nothing else does.
    let nameless = pb::CreateCheckoutRequest {
        purpose: pb::PaymentPurpose::VendorOrder as i32,
        ..checkout_request(&f, "nameless", 1_000)
    };
    assert_eq!(code(c.create_checkout(authed(nameless, &env.buyer())).await), "ERR_1001");
    let mixed =
        pb::CreateCheckoutRequest { vendor_account_id: account.id.clone(), ..checkout_request(&f, "mixed", 1_000) };
    assert_eq!(code(c.create_checkout(authed(mixed, &env.buyer())).await), "ERR_1000");
    // An account event signed for the platform but sent from another connected account.
    let mut forged = env.stripe.complete_onboarding(&account.provider_account_id).expect("event");
    forged["id"] = serde_json::json!(format!("evt_forged_{}", Uuid::now_v7().simple()));
    forged["account"] = serde_json::json!("acct_someone_else");
    assert_ne!(code(env.deliver(&forged).await), "OK", "refused");
    env.app.stop().await;
}

#[tokio::test]
async fn a_refund_takes_the_vendor_s_share_back_and_when_its_balance_is_paid_out_the_vendor_owes_it() {
    let env = spawn().await;
    let f = env.festival();
    let account = onboarded(&env, &f, 800).await;
    let big = sold(&env, &f, &account, 10_000).await;
    let small = sold(&env, &f, &account, 5_000).await;
    assert_eq!(env.stripe.account_balance(&account.provider_account_id), Some(9_200 + 4_600));

    // Half of the big sale back: 46.00 from the vendor, the platform's 4.00 fee with it.
    let half = refund(&env, &f, &big, 5_000).await;
    assert_eq!(half.status, pb::RefundStatus::Succeeded as i32);
    let pi = intent(&env, &env.intent_of(&big).await);
    assert_eq!((pi["fake_reversed"].as_i64(), pi["fake_fee_refunded"].as_i64()), (Some(4_600), Some(400)));
    assert_eq!(env.stripe.account_balance(&account.provider_account_id), Some(9_200));

    // Stripe pays the vendor out; then the small sale is refunded in full. Its 46.00 can
    // no longer be reversed: the buyer is refunded from the platform's balance and the
    // vendor owes it.
    env.stripe.pay_out(&account.provider_account_id);
    let full = refund(&env, &f, &small, 0).await;
    assert_eq!((full.status, full.amount_minor), (pb::RefundStatus::Succeeded as i32, 5_000));
    assert_eq!(env.payment(&small.id).await.status, pb::PaymentStatus::Refunded as i32);
    let pi = intent(&env, &env.intent_of(&small).await);
    // Neither reversed nor the fee given back: the vendor keeps what it got, and owes its share.
    assert_eq!((pi["fake_reversed"].as_i64(), pi["fake_fee_refunded"].as_i64()), (Some(0), Some(0)));
    let refund_keys = || -> Vec<Option<String>> {
        env.stripe.requests().into_iter().filter(|r| r.1 == "/v1/refunds").map(|r| r.2).collect()
    };
    assert_eq!(
        refund_keys(),
        vec![Some(format!("refund-{}", half.id)), Some(format!("refund-{}-unreversed", full.id))],
        "the vendor's balance was read first: no reversal asked of an empty balance"
    );

    let line = report(&env, &f).await.vendors.pop().expect("the vendor's line");
    assert_eq!(figures(&line), (2, 15_000, 1_200, 400, 10_000, 4_600, 9_200, 4_600));
    assert_eq!(line.debts.len(), 1);
    let debt = &line.debts[0];
    assert_eq!((debt.refund_id.as_str(), debt.amount_minor, debt.currency.as_str()), (full.id.as_str(), 4_600, "EUR"));
    assert!(debt.settle_time.is_none());

    // Sending the refund again (a sweep) makes no second refund and no second debt.
    env.sweep().await;
    assert_eq!(report(&env, &f).await.vendors[0].debts.len(), 1);

    // The vendor paid its debt: only this festival's organisers record it.
    let mut c = env.client();
    let other = env.festival();
    let settle = |token: &str| authed(pb::SettleVendorDebtRequest { debt_id: debt.id.clone() }, token);
    assert_eq!(code(c.settle_vendor_debt(settle(&other.organizer)).await), "ERR_4000");
    let settled = c.settle_vendor_debt(settle(&f.organizer)).await.expect("settled").into_inner();
    assert!(settled.settle_time.is_some());
    let line = report(&env, &f).await.vendors.pop().expect("line");
    assert_eq!((line.owed_minor, line.debts.len()), (0, 1));

    // The rest of the big sale refunded in Stripe's dashboard without reversing the
    // transfer: recorded, and the vendor owes its share of it.
    let dashboard = env.stripe.dashboard_refund(&env.intent_of(&big).await, 5_000).await;
    env.deliver(&env.stripe.refund_event(&dashboard).expect("event")).await.expect("refund event");
    let line = report(&env, &f).await.vendors.pop().expect("line");
    assert_eq!((line.owed_minor, line.debts.len(), line.refunded_minor), (4_600, 2, 15_000));

    // The balance covers the share, but Stripe refuses the reversal anyway: the refund
    // goes through from the platform's balance under its own key, and the vendor owes.
    let third = sold(&env, &f, &account, 2_000).await;
    env.stripe.refuse_reversals(true);
    let refused = refund(&env, &f, &third, 0).await;
    assert_eq!(refused.status, pb::RefundStatus::Succeeded as i32);
    let keys = refund_keys();
    assert_eq!(
        keys[keys.len() - 2..].to_vec(),
        vec![Some(format!("refund-{}", refused.id)), Some(format!("refund-{}-unreversed", refused.id))]
    );
    let line = report(&env, &f).await.vendors.pop().expect("line");
    assert_eq!((line.owed_minor, line.debts.len()), (4_600 + 1_840, 3));
    env.app.stop().await;
}

#[tokio::test]
async fn a_reversing_refund_whose_answer_was_lost_is_sent_again_under_the_same_key() {
    let env = spawn().await;
    let f = env.festival();
    let account = onboarded(&env, &f, 800).await;
    let sale = sold(&env, &f, &account, 10_000).await;
    // Stripe makes the refund (and the reversal) but its answer is lost: the refund
    // stays PENDING here, and the vendor's balance is now below another share.
    env.stripe.set_mode(Mode::LoseAnswers);
    let lost = refund(&env, &f, &sale, 6_000).await;
    assert_eq!(lost.status, pb::RefundStatus::Pending as i32);
    env.stripe.set_mode(Mode::Normal);
    assert_eq!(env.stripe.account_balance(&account.provider_account_id), Some(9_200 - 5_520));
    // The sweep sends it again under the same key (no balance check any more: the key
    // is fixed once Stripe may have it), and Stripe answers the refund it made.
    env.sweep().await;
    let refunds = env.refunds(&sale.id, &f.organizer).await;
    assert_eq!(
        refunds.iter().map(|r| (r.status, r.amount_minor)).collect::<Vec<_>>(),
        vec![(pb::RefundStatus::Succeeded as i32, 6_000)]
    );
    let keys: Vec<Option<String>> =
        env.stripe.requests().into_iter().filter(|r| r.1 == "/v1/refunds").map(|r| r.2).collect();
    assert_eq!(keys, vec![Some(format!("refund-{}", lost.id)); 2]);
    let pi = intent(&env, &env.intent_of(&sale).await);
    assert_eq!((pi["fake_reversed"].as_i64(), pi["fake_fee_refunded"].as_i64()), (Some(5_520), Some(480)));
    let at_stripe = env.stripe.refunds().iter().filter(|r| r["payment_intent"] == pi["id"]).count();
    assert_eq!(at_stripe, 1, "one refund at Stripe");
    let line = report(&env, &f).await.vendors.pop().expect("line");
    assert_eq!((line.reversed_minor, line.owed_minor), (5_520, 0), "reversed, so nothing owed");
    env.app.stop().await;
}

#[tokio::test]
async fn a_vendor_without_commission_is_refunded_too() {
    let env = spawn().await;
    let f = env.festival();
    let account = onboarded(&env, &f, 0).await;
    let sale = sold(&env, &f, &account, 3_000).await;
    assert_eq!(sale.application_fee_minor, 0);
    assert_eq!(intent(&env, &env.intent_of(&sale).await)["application_fee_amount"], serde_json::Value::Null);
    // No fee to give back: none is asked for (Stripe refuses to refund a fee that does
    // not exist), and the whole amount comes back from the vendor.
    let back = refund(&env, &f, &sale, 0).await;
    assert_eq!(back.status, pb::RefundStatus::Succeeded as i32);
    assert_eq!(env.stripe.account_balance(&account.provider_account_id), Some(0));
    let line = report(&env, &f).await.vendors.pop().expect("line");
    assert_eq!(figures(&line), (1, 3_000, 0, 0, 3_000, 3_000, 0, 0));
    env.app.stop().await;
}
