//! Voids of sales and replacements of wristbands.

use std::sync::Arc;
use std::time::Duration;

use festival_platform::auth::DeviceLevel;
use festival_proto::cashless::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

fn void(id: &str, key: &str) -> pb::VoidChargeRequest {
    pb::VoidChargeRequest { transaction_id: id.into(), reason: "wrong drink".into(), idempotency_key: key.into() }
}

#[tokio::test]
async fn a_supervisor_voids_a_sale_once_and_the_money_goes_back_where_it_came_from() {
    let env = spawn().await;
    let f = env.festival().await;
    let bar = env.terminal(&f).await;
    let band = env.band(&f, 5_000).await;
    let mut client = env.client();
    let sale = client.charge(authed(charge(&f, &bar, &band.soft, 1_200, "s1"), &bar.token)).await.expect("sale");
    let sale = sale.into_inner();
    assert_eq!(env.wallet(&band).await.balance_minor, 3_800);

    // The bar's own steward terminal, a cashier, the holder: not supervisors.
    assert_eq!(code(client.void_charge(authed(void(&sale.id, "v0"), &bar.token)).await), "ERR_3001");
    assert_eq!(code(client.void_charge(authed(void(&sale.id, "v0"), &f.cashier)).await), "ERR_3001");
    assert_eq!(code(client.void_charge(authed(void(&sale.id, "v0"), &band.holder)).await), "ERR_4000");
    // Another festival's organiser learns nothing of it.
    let other = env.festival().await;
    assert_eq!(code(client.void_charge(authed(void(&sale.id, "v0"), &other.organizer)).await), "ERR_4000");
    // Bad input.
    let no_reason = pb::VoidChargeRequest { reason: String::new(), ..void(&sale.id, "v0") };
    assert_eq!(code(client.void_charge(authed(no_reason, &f.organizer)).await), "ERR_1001");
    assert_eq!(code(client.void_charge(authed(void("nope", "v0"), &f.organizer)).await), "ERR_1004");
    assert_eq!(env.wallet(&band).await.balance_minor, 3_800, "nothing written by a refusal");

    let voided = client.void_charge(authed(void(&sale.id, "v1"), &f.organizer)).await.expect("void").into_inner();
    assert_eq!(voided.r#type, pb::TransactionType::Refund as i32);
    assert_eq!(voided.amount_minor, 1_200);
    assert_eq!(voided.balance_after_minor, 5_000);
    assert_eq!(voided.counterpart_id, bar.vendor_id.to_string(), "the vendor gives it back");
    // A retry answers the void; a second void of the sale is refused.
    let again = client.void_charge(authed(void(&sale.id, "v1"), &f.organizer)).await.expect("retry").into_inner();
    assert_eq!(again.id, voided.id);
    assert_eq!(code(client.void_charge(authed(void(&sale.id, "v2"), &f.organizer)).await), "ERR_8014");
    // A void is no sale, and a top-up is no sale.
    assert_eq!(code(client.void_charge(authed(void(&voided.id, "v3"), &f.organizer)).await), "ERR_1000");
    let top_up = env.top_up(&f, &band, 500).await.expect("top up");
    assert_eq!(code(client.void_charge(authed(void(&top_up.id, "v4"), &f.organizer)).await), "ERR_1000");
    assert_eq!(env.wallet(&band).await.balance_minor, 5_500);

    let vendor_revenue: i64 = sqlx::query_scalar(
        "select coalesce(-sum(e.amount_minor), 0)::bigint from entries e join accounts a on a.id = e.account_id
         where a.kind = 'VENDOR_REVENUE' and a.owner_id = $1",
    )
    .bind(bar.vendor_id)
    .fetch_one(&env.app.pool)
    .await
    .expect("revenue");
    assert_eq!(vendor_revenue, 0, "the vendor keeps nothing of a voided sale");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn a_bars_supervisor_terminal_voids_its_own_sales_within_the_window() {
    let env = spawn().await;
    let f = env.festival().await;
    env.settings(&f, |s| s.void_window_seconds = 600).await;
    let bar = env.terminal(&f).await;
    let manager = env.device(&f, bar.vendor_id, DeviceLevel::Supervisor).await;
    let elsewhere = env.device(&f, Uuid::now_v7(), DeviceLevel::Supervisor).await;
    let band = env.band(&f, 5_000).await;
    let mut client = env.client();
    let first = client.charge(authed(charge(&f, &bar, &band.soft, 700, "a"), &bar.token)).await.expect("a");
    let second = client.charge(authed(charge(&f, &bar, &band.soft, 300, "b"), &bar.token)).await.expect("b");
    let (first, second) = (first.into_inner(), second.into_inner());

    // Another vendor's supervisor does not see this bar's sales.
    assert_eq!(code(client.void_charge(authed(void(&first.id, "x"), &elsewhere.token)).await), "ERR_4000");
    let voided = client.void_charge(authed(void(&first.id, "y"), &manager.token)).await.expect("void");
    assert_eq!(voided.into_inner().actor_id, manager.device_id.to_string());

    // Ten minutes later the second sale stands.
    env.app.clock.advance(Duration::from_secs(600));
    assert_eq!(code(client.void_charge(authed(void(&second.id, "z"), &manager.token)).await), "ERR_8013");
    assert_eq!(env.wallet(&band).await.balance_minor, 5_000 - 300);
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn a_replaced_band_stops_paying_and_its_wallet_goes_on_with_the_new_one() {
    let env = spawn().await;
    let f = env.festival().await;
    env.settings(&f, |s| s.replacement_fee_minor = 200).await;
    let bar = env.terminal(&f).await;
    let band = env.band(&f, 3_000).await;
    let fresh = env.new_band(&f).await;
    let mut client = env.client();

    // Bad requests first: nothing changes.
    let someone_else = env.band(&f, 0).await;
    let foreign_proof = {
        let mut r = replace(&f, &band.soft, someone_else.wallet_id, &fresh, "r0");
        r.old_uid = band.uid();
        r
    };
    assert_eq!(code(client.replace_wristband(authed(foreign_proof, &f.cashier)).await), "ERR_8008");
    // A band bound to another wallet, tapped for this one: not an unused band.
    let taken = replace(&f, &band.soft, band.wallet_id, &someone_else.soft, "r0");
    assert_eq!(code(client.replace_wristband(authed(taken, &f.cashier)).await), "ERR_8004");
    let same = replace(&f, &band.soft, band.wallet_id, &band.soft, "r0");
    assert_eq!(code(client.replace_wristband(authed(same, &f.cashier)).await), "ERR_1000");
    let stranger = env.issuer.user().1;
    let req = replace(&f, &band.soft, band.wallet_id, &fresh, "r0");
    assert_eq!(code(client.replace_wristband(authed(req, &stranger)).await), "ERR_8003");
    assert_eq!(env.wallet(&band).await.balance_minor, 3_000);

    let req = replace(&f, &band.soft, band.wallet_id, &fresh, "r1");
    let done = client.replace_wristband(authed(req.clone(), &f.cashier)).await.expect("replace").into_inner();
    let old = done.old_wristband.expect("old");
    let new = done.new_wristband.expect("new");
    assert_eq!(old.status, pb::WristbandStatus::Blocked as i32);
    assert_eq!(new.status, pb::WristbandStatus::Active as i32);
    assert_eq!(new.wallet_id, band.wallet_id.to_string());
    let fee = done.fee.expect("a fee");
    assert_eq!((fee.amount_minor, fee.balance_after_minor), (-200, 2_800));
    // A retry answers the replacement and charges no second fee.
    let again = client.replace_wristband(authed(req, &f.cashier)).await.expect("retry").into_inner();
    assert_eq!(again.fee.map(|t| t.id), Some(fee.id));
    assert_eq!(env.wallet(&band).await.balance_minor, 2_800);

    // The old band pays nothing more; the new one pays from the same wallet.
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 100, "old")).await, "ERR_8007");
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &fresh, 100, "new")).await, "OK");
    // A used band cannot be the new band of another replacement.
    let reuse = replace(&f, &fresh, band.wallet_id, &band.soft, "r2");
    assert_eq!(code(client.replace_wristband(authed(reuse, &f.cashier)).await), "ERR_8004");

    // The holder replaces their own; the fee never takes more than the wallet holds.
    let poor = env.band(&f, 150).await;
    let newer = env.new_band(&f).await;
    let mine = replace(&f, &poor.soft, poor.wallet_id, &newer, "r3");
    let done = client.replace_wristband(authed(mine, &poor.holder)).await.expect("own").into_inner();
    assert_eq!(done.fee.map(|t| (t.amount_minor, t.balance_after_minor)), Some((-150, 0)));
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

/// The balance belongs to the wallet, so a replacement racing charges on the old band
/// moves no money: every charge booked is paid once, from the same wallet.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn charges_racing_a_replacement_are_each_paid_once_from_the_same_wallet() {
    const PRICE: i64 = 300;
    let env = Arc::new(spawn().await);
    let f = Arc::new(env.festival().await);
    env.settings(&f, |s| s.replacement_fee_minor = 100).await;
    let bar = Arc::new(env.terminal(&f).await);
    for round in 0..3 {
        let band = Arc::new(env.band(&f, 10 * PRICE).await);
        let fresh = env.new_band(&f).await;
        let swap = replace(&f, &band.soft, band.wallet_id, &fresh, &format!("swap-{round}"));
        let mut calls: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>> = (0..12)
            .map(|i| {
                let (env, f, bar, band) = (env.clone(), f.clone(), bar.clone(), band.clone());
                Box::pin(async move {
                    let req = charge(&f, &bar, &band.soft, PRICE, &format!("{round}-{i}"));
                    charge_code(&env, &bar, req).await
                }) as _
            })
            .collect();
        let (env2, cashier) = (env.clone(), f.cashier.clone());
        calls.push(Box::pin(async move {
            match env2.client().replace_wristband(authed(swap, &cashier)).await {
                Ok(done) => format!("fee:{}", done.into_inner().fee.map_or(0, |t| -t.amount_minor)),
                Err(status) => format!("replace failed: {status:?}"),
            }
        }));
        let outcomes = all_at_once(calls).await;
        let fee: i64 = outcomes
            .iter()
            .find_map(|o| o.strip_prefix("fee:"))
            .unwrap_or_else(|| panic!("the replacement failed: {outcomes:?}"))
            .parse()
            .expect("fee");
        assert!((0..=100).contains(&fee));
        let paid = outcomes.iter().filter(|o| *o == "OK").count() as i64;
        assert!(
            outcomes.iter().all(|o| ["OK", "ERR_8007", "ERR_8001"].contains(&o.as_str()) || o.starts_with("fee:")),
            "{outcomes:?}"
        );
        assert_eq!(env.wallet(&band).await.balance_minor, 10 * PRICE - paid * PRICE - fee, "{outcomes:?}");
        assert_eq!(
            charge_code(&env, &bar, charge(&f, &bar, &band.soft, PRICE, &format!("late-{round}"))).await,
            "ERR_8007"
        );
    }
    env.assert_ledger(&f).await;
}
