//! Terminals charging wristbands: the proof, the rules, idempotency, and who may charge.

use festival_platform::auth::DeviceLevel;
use festival_proto::cashless::v1 as pb;
use festival_proto::identity::v1 as identity;
use std::time::Duration;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn a_tap_pays_the_vendor_and_a_retry_pays_nothing_more() {
    let env = spawn().await;
    let f = env.festival().await;
    env.settings(&f, |s| s.low_balance_minor = 1_000).await;
    let bar = env.terminal(&f).await;
    let band = env.band(&f, 5_000).await;

    let req = charge(&f, &bar, &band.soft, 4_200, "sale-1");
    let paid = env.client().charge(authed(req.clone(), &bar.token)).await.expect("charge").into_inner();
    assert_eq!(paid.r#type, pb::TransactionType::Payment as i32);
    assert_eq!(paid.amount_minor, -4_200);
    assert_eq!(paid.balance_after_minor, 800);
    assert_eq!(paid.counterpart_id, bar.vendor_id.to_string());
    assert_eq!(paid.actor_id, bar.device_id.to_string());
    assert_eq!(paid.wallet_id, band.wallet_id.to_string());

    // The terminal lost the answer and retries: the same charge, nothing moves.
    let again = env.client().charge(authed(req, &bar.token)).await.expect("retry").into_inner();
    assert_eq!(again, paid);
    // The UID and the proof spelt in another case are the same request.
    let mut shouted = charge(&f, &bar, &band.soft, 4_200, "sale-1");
    shouted.uid = shouted.uid.to_lowercase();
    shouted.tap_proof = shouted.tap_proof.to_uppercase();
    assert_eq!(env.client().charge(authed(shouted, &bar.token)).await.expect("retry").into_inner(), paid);
    // The same key for another amount is refused.
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 100, "sale-1")).await, "ERR_1006");
    let wallet = env.wallet(&band).await;
    assert_eq!(wallet.balance_minor, 800);
    assert_eq!(wallet.spent_today_minor, 4_200);

    let recorded = env.app.published::<pb::TransactionRecorded>().await;
    let payments: Vec<_> = recorded.iter().filter(|e| e.r#type == pb::TransactionType::Payment as i32).collect();
    assert_eq!(payments.len(), 1, "{recorded:?}");
    assert_eq!(payments[0].transaction_id, paid.id);
    assert_eq!(payments[0].amount_minor, -4_200);
    // 5,000 → 800 crossed the 1,000 threshold once.
    let low = env.app.published::<pb::WalletLow>().await;
    assert_eq!(low.len(), 1);
    assert_eq!(low[0].wallet_id, band.wallet_id.to_string());
    assert_eq!(low[0].user_id, band.holder_id.to_string());
    assert_eq!(low[0].threshold_minor, 1_000);
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn a_uid_without_the_bands_key_pays_nothing() {
    let env = spawn().await;
    let f = env.festival().await;
    let bar = env.terminal(&f).await;
    let band = env.band(&f, 5_000).await;

    // A clone that copied the UID but not the key: another band's key under this UID.
    let stranger = env.new_band(&f).await;
    let mut forged = charge(&f, &bar, &stranger, 500, "forged");
    forged.uid = band.uid();
    assert_eq!(charge_code(&env, &bar, forged).await, "ERR_8008");
    // A genuine proof, replayed for another amount or under another key.
    let genuine = charge(&f, &bar, &band.soft, 500, "genuine");
    let mut more = genuine.clone();
    more.amount_minor = 4_500;
    assert_eq!(charge_code(&env, &bar, more).await, "ERR_8008");
    let mut other_key = genuine.clone();
    other_key.idempotency_key = "another".into();
    assert_eq!(charge_code(&env, &bar, other_key).await, "ERR_8008");
    // …or by another terminal.
    let other_bar = env.terminal(&f).await;
    assert_eq!(charge_code(&env, &other_bar, genuine.clone()).await, "ERR_8008");
    let mut garbled = genuine.clone();
    garbled.tap_proof = "zz".repeat(16);
    assert_eq!(charge_code(&env, &bar, garbled).await, "ERR_8008");
    let mut short = genuine.clone();
    short.tap_proof.truncate(16);
    assert_eq!(charge_code(&env, &bar, short).await, "ERR_8008");

    assert_eq!(env.wallet(&band).await.balance_minor, 5_000, "no forged tap moved money");
    assert_eq!(charge_code(&env, &bar, genuine).await, "OK");
    assert_eq!(env.wallet(&band).await.balance_minor, 4_500);
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn the_festivals_rules_refuse_a_charge_and_write_nothing() {
    let env = spawn().await;
    let f = env.festival().await;
    env.settings(&f, |s| {
        s.max_charge_minor = 3_000;
        s.daily_cap_minor = 5_000;
    })
    .await;
    let bar = env.terminal(&f).await;
    let band = env.band(&f, 10_000).await;
    let poor = env.band(&f, 1_000).await;
    let key = || Uuid::now_v7().to_string();

    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &poor.soft, 1_001, &key())).await, "ERR_8001");
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 3_001, &key())).await, "ERR_8009");
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 3_000, &key())).await, "OK");
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 2_000, &key())).await, "OK");
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 1, &key())).await, "ERR_8002", "5,000 spent today");
    // The cap starts over on the festival's next day.
    env.app.clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 1_000, &key())).await, "OK");
    assert_eq!(env.wallet(&band).await.spent_today_minor, 1_000);

    // A charge whose festival day is behind the wallet's (another replica's clock a
    // little ahead at midnight booked one on the next day) is refused, not counted in a
    // day already closed: the terminal taps again.
    sqlx::query("update wallets set spent_day = spent_day + 1 where id = $1")
        .bind(band.wallet_id)
        .execute(&env.app.pool)
        .await
        .expect("a later day");
    let late = charge(&f, &bar, &band.soft, 500, &key());
    assert_eq!(charge_code(&env, &bar, late.clone()).await, "ERR_1007");
    sqlx::query("update wallets set spent_day = spent_day - 1 where id = $1")
        .bind(band.wallet_id)
        .execute(&env.app.pool)
        .await
        .expect("back");
    assert_eq!(charge_code(&env, &bar, late).await, "OK", "tapped again");
    assert_eq!(env.wallet(&band).await.spent_today_minor, 1_500);

    // Bad input: each its code, nothing written.
    let mut zero = charge(&f, &bar, &band.soft, 0, &key());
    assert_eq!(charge_code(&env, &bar, zero.clone()).await, "ERR_1000");
    zero.amount_minor = -500;
    assert_eq!(charge_code(&env, &bar, zero).await, "ERR_1000");
    let mut dollars = charge(&f, &bar, &band.soft, 100, &key());
    dollars.currency = "USD".into();
    assert_eq!(charge_code(&env, &bar, dollars).await, "ERR_5005");
    let unknown = env.new_band(&f).await;
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &unknown, 100, &key())).await, "ERR_8003");
    let mut bad_uid = charge(&f, &bar, &band.soft, 100, &key());
    bad_uid.uid = "04ABC".into();
    assert_eq!(charge_code(&env, &bar, bad_uid).await, "ERR_1000");
    let mut no_key = charge(&f, &bar, &band.soft, 100, "k");
    no_key.idempotency_key.clear();
    assert_eq!(charge_code(&env, &bar, no_key).await, "ERR_1001");

    // A blocked band pays nothing.
    env.client()
        .block_wristband(authed(
            pb::BlockWristbandRequest { festival_id: f.id.to_string(), uid: band.uid(), reason: "lost".into() },
            &band.holder,
        ))
        .await
        .expect("block");
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 100, &key())).await, "ERR_8007");

    let report = env.assert_ledger(&f).await;
    // Two top-ups and four charges: nothing else was written.
    assert_eq!(report.transactions, 6);
    assert_eq!(env.wallet(&band).await.balance_minor, 10_000 - 6_500);
    env.app.stop().await;
}

#[tokio::test]
async fn only_a_registered_terminal_of_the_festival_charges() {
    let env = spawn().await;
    let f = env.festival().await;
    let other = env.festival().await;
    let bar = env.terminal(&f).await;
    let band = env.band(&f, 5_000).await;
    let key = || Uuid::now_v7().to_string();
    let mut client = env.client();

    // People are not terminals, whatever their role.
    for token in [&f.cashier, &f.organizer, &band.holder] {
        let req = charge(&f, &bar, &band.soft, 100, &key());
        assert_eq!(festival_testkit::outcome(client.charge(authed(req, token)).await), "ERR_8010");
    }
    // A terminal of festival B charges nothing at festival A.
    let foreign = env.terminal(&other).await;
    assert_eq!(charge_code(&env, &foreign, charge(&f, &foreign, &band.soft, 100, &key())).await, "ERR_3002");
    // B's organiser registering A's bar at B changes nothing for A, and gives B nothing:
    // the bar's tokens are A's.
    client
        .register_terminal(authed(
            pb::RegisterTerminalRequest {
                festival_id: other.id.to_string(),
                device_id: bar.device_id.to_string(),
                vendor_id: Uuid::now_v7().to_string(),
                label: "Hijacked".into(),
            },
            &other.organizer,
        ))
        .await
        .expect("registered at B");
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 100, &key())).await, "OK");
    let b_band = env.band(&other, 1_000).await;
    assert_eq!(charge_code(&env, &bar, charge(&other, &bar, &b_band.soft, 100, &key())).await, "ERR_3002");
    // A paired device that is no terminal.
    let device_id = Uuid::now_v7();
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let stray = Terminal {
        device_id,
        vendor_id: Uuid::nil(),
        token: env.issuer.device(device_id, f.id, "bar", DeviceLevel::Steward, &signing),
    };
    assert_eq!(charge_code(&env, &stray, charge(&f, &stray, &band.soft, 100, &key())).await, "ERR_8010");
    // Identity revokes the bar's device: refused at once, though its token is still valid.
    festival_testkit::publish_event(
        &env.app.naming(),
        &identity::DeviceRevoked {
            device_id: bar.device_id.to_string(),
            festival_id: f.id.to_string(),
            ..Default::default()
        },
    )
    .await;
    let charged_meanwhile = std::sync::atomic::AtomicI64::new(0);
    let (env_ref, bar_ref) = (&env, &bar);
    let revoked = eventually(Duration::from_secs(10), || {
        let req = charge(&f, bar_ref, &band.soft, 100, &Uuid::now_v7().to_string());
        let charged = &charged_meanwhile;
        async move {
            match charge_code(env_ref, bar_ref, req).await.as_str() {
                "ERR_2010" => true,
                "OK" => {
                    charged.fetch_add(100, std::sync::atomic::Ordering::Relaxed);
                    false
                }
                other => panic!("unexpected {other}"),
            }
        }
    })
    .await;
    assert!(revoked, "a revoked terminal kept charging");
    let charged = charged_meanwhile.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(env.wallet(&band).await.balance_minor, 5_000 - 100 - charged);
    env.assert_ledger(&f).await;
    env.assert_ledger(&other).await;
    env.app.stop().await;
}

/// Age levels, per band (a family's wallet has children's bands): a product's level
/// against the date of birth staff read from the wearer's identity document, on the
/// festival's day; a cashier cannot make a minor older afterwards, nobody verifies their
/// own wallet's bands, and a replacement band keeps its wearer's date.
#[tokio::test]
async fn age_levels_are_checked_per_band_against_a_verified_date_of_birth() {
    use chrono::Months;
    let env = spawn().await;
    let f = env.festival().await;
    let bar = env.terminal(&f).await;
    let band = env.band(&f, 5_000).await;
    let child = env.new_band(&f).await;
    let mut client = env.client();
    client.bind_wristband(authed(bind(&f, &band.wallet_id.to_string(), &child), &band.holder)).await.expect("child");
    let sale = |soft: &festival_platform::nfc::SoftBand, key: &str, level: i32| pb::ChargeRequest {
        min_age: level,
        ..charge(&f, &bar, soft, 450, key)
    };
    // Not verified: water, but no beer.
    assert_eq!(charge_code(&env, &bar, sale(&band.soft, "beer-1", 16)).await, "ERR_8019");
    assert_eq!(charge_code(&env, &bar, sale(&band.soft, "water", 0)).await, "OK");
    assert_eq!(charge_code(&env, &bar, sale(&band.soft, "odd", 22)).await, "ERR_1000");

    let today = env.app.clock.now().with_timezone(&chrono_tz::Europe::Paris).date_naive();
    let years = |n: u32| today.checked_sub_months(Months::new(n * 12)).expect("date").to_string();
    let verify = |soft: &festival_platform::nfc::SoftBand, birth: String| pb::VerifyAgeRequest {
        festival_id: f.id.to_string(),
        uid: soft.uid.to_hex(),
        birth_date: birth,
    };
    // The holder does not vouch for their own bands; nonsense dates are refused.
    assert_eq!(code(client.verify_age(authed(verify(&band.soft, years(40)), &band.holder)).await), "ERR_3002");
    for bad in ["2999-01-01", "1850-01-01", "17/07/2009", ""] {
        assert_eq!(code(client.verify_age(authed(verify(&band.soft, bad.into()), &f.cashier)).await), "ERR_1000");
    }
    let adult = client.verify_age(authed(verify(&band.soft, years(40)), &f.cashier)).await.expect("adult");
    assert_eq!(adult.into_inner().age_level, 18);
    let minor = client.verify_age(authed(verify(&child, years(17)), &f.cashier)).await.expect("minor");
    assert_eq!(minor.into_inner().age_level, 16);
    // The parent's verification does not make the child's band an adult's.
    assert_eq!(charge_code(&env, &bar, sale(&band.soft, "spirits-1", 18)).await, "OK");
    assert_eq!(charge_code(&env, &bar, sale(&child, "spirits-2", 18)).await, "ERR_8019");
    assert_eq!(charge_code(&env, &bar, sale(&child, "beer-2", 16)).await, "OK");
    // A cashier cannot change a recorded date (whatever it is); an organiser corrects it.
    assert_eq!(code(client.verify_age(authed(verify(&child, years(18)), &f.cashier)).await), "ERR_3001");
    assert_eq!(code(client.verify_age(authed(verify(&child, years(17)), &f.cashier)).await), "ERR_3001");
    let fixed = client.verify_age(authed(verify(&child, years(18)), &f.organizer)).await.expect("correct");
    assert_eq!(fixed.into_inner().age_level, 18);
    // A replacement band is the same wearer's.
    let fresh = env.new_band(&f).await;
    let swap = replace(&f, &child, band.wallet_id, &fresh, "swap");
    let swapped = client.replace_wristband(authed(swap, &f.cashier)).await.expect("replace").into_inner();
    assert_eq!(swapped.new_wristband.map(|b| b.age_level), Some(18));
    assert_eq!(charge_code(&env, &bar, sale(&fresh, "spirits-3", 18)).await, "OK");
    assert_eq!(env.wallet(&band).await.balance_minor, 5_000 - 4 * 450, "refused sales wrote nothing");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}
