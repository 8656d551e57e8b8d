//! Charges racing each other. A wallet's row is the guard: every charge moves its balance
//! under the row's lock, with the balance and the daily cap checked in the same
//! statement. The `race-hooks` build reads the balance first, pauses and writes it back
//! blind: its negative control must see a wallet overdrawn.

use std::sync::Arc;

use rand::Rng;
use uuid::Uuid;

use crate::helpers::*;

const PRICE: i64 = 450;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_charges_on_one_wallet_never_overdraw() {
    let env = Arc::new(spawn().await);
    let f = Arc::new(env.festival().await);
    let bars: Arc<Vec<Terminal>> =
        Arc::new(vec![env.terminal(&f).await, env.terminal(&f).await, env.terminal(&f).await]);
    let mut raced_rounds = 0;
    for round in 0..3 {
        let band = Arc::new(env.band(&f, 10 * PRICE).await);
        let outcomes = all_at_once(
            (0..100)
                .map(|i| {
                    let (env, f, bars, band) = (env.clone(), f.clone(), bars.clone(), band.clone());
                    async move {
                        let bar = &bars[i % bars.len()];
                        let req = charge(&f, bar, &band.soft, PRICE, &format!("r{round}-{i}"));
                        charge_code(&env, bar, req).await
                    }
                })
                .collect(),
        )
        .await;
        let paid = outcomes.iter().filter(|o| *o == "OK").count();
        if !cfg!(feature = "race-hooks") {
            assert!(outcomes.iter().all(|o| o == "OK" || o == "ERR_8001"), "{outcomes:?}");
        }
        let balance = env.wallet(&band).await.balance_minor;
        let ledger_balance: i64 =
            sqlx::query_scalar("select -sum(amount_minor)::bigint from entries where account_id = $1")
                .bind(band.wallet_id)
                .fetch_one(&env.app.pool)
                .await
                .expect("ledger");
        if paid != 10 || ledger_balance != balance || ledger_balance < 0 {
            raced_rounds += 1;
        } else {
            assert_eq!(balance, 0);
        }
    }
    if cfg!(feature = "race-hooks") {
        assert!(raced_rounds > 0, "negative control: without the guard a wallet must be overdrawn");
    } else {
        assert_eq!(raced_rounds, 0);
        env.assert_ledger(&f).await;
    }
}

/// 32 workers charge 1,000 wallets at random, many beyond their balance or the daily
/// cap: afterwards the ledger balances, every wallet equals its entries, none is below
/// zero and none spent more than the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_over_a_thousand_wallets_keeps_every_invariant() {
    if cfg!(feature = "race-hooks") {
        return; // the guard is off: the invariants cannot hold
    }
    let env = Arc::new(spawn().await);
    let f = Arc::new(env.festival().await);
    env.settings(&f, |s| s.daily_cap_minor = 4 * PRICE).await;
    let bars: Arc<Vec<Terminal>> = Arc::new({
        let mut bars = Vec::new();
        for _ in 0..8 {
            bars.push(env.terminal(&f).await);
        }
        bars
    });
    // 1,000 wallets holding 1 to 6 prices, opened 32 at a time.
    let bands: Vec<Band> = {
        let mut bands = Vec::new();
        for chunk in 0..(1_000 / 40) {
            let made = all_at_once(
                (0..40)
                    .map(|i| {
                        let (env, f) = (env.clone(), f.clone());
                        async move { env.band(&f, PRICE * (1 + ((chunk * 40 + i) % 6) as i64)).await }
                    })
                    .collect(),
            )
            .await;
            bands.extend(made);
        }
        bands
    };
    assert_eq!(bands.len(), 1_000);
    let bands = Arc::new(bands);
    let outcomes = all_at_once(
        (0..32)
            .map(|worker| {
                let (env, f, bars, bands) = (env.clone(), f.clone(), bars.clone(), bands.clone());
                async move {
                    let mut outcomes = Vec::new();
                    for n in 0..100 {
                        let band = &bands[rand::thread_rng().gen_range(0..bands.len())];
                        let bar = &bars[worker % bars.len()];
                        let req = charge(&f, bar, &band.soft, PRICE, &format!("w{worker}-{n}-{}", Uuid::now_v7()));
                        outcomes.push(charge_code(&env, bar, req).await);
                    }
                    outcomes
                }
            })
            .collect(),
    )
    .await;
    let outcomes: Vec<String> = outcomes.into_iter().flatten().collect();
    assert_eq!(outcomes.len(), 3_200);
    let paid = outcomes.iter().filter(|o| *o == "OK").count();
    assert!(paid > 0 && paid < 3_200, "some paid, some were refused: {paid}");
    assert!(outcomes.iter().all(|o| matches!(o.as_str(), "OK" | "ERR_8001" | "ERR_8002")), "{outcomes:?}");
    // No wallet below zero by its entries (its stored balance cannot be: a CHECK).
    let overdrawn: i64 = sqlx::query_scalar(
        "select count(*) from (select e.account_id from entries e join wallets w on w.id = e.account_id
         where w.festival_id = $1 group by e.account_id having sum(e.amount_minor) > 0) x",
    )
    .bind(f.id)
    .fetch_one(&env.app.pool)
    .await
    .expect("count");
    assert_eq!(overdrawn, 0);
    let report = env.assert_ledger(&f).await;
    assert_eq!(report.wallets, 1_000);
    assert_eq!(report.transactions, 1_000 + paid as i64, "a top-up per wallet and each paid charge");
}

/// A terminal that sends the same charge twice at once (a retry racing the original):
/// one booking, both answered with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twin_charges_with_one_key_book_once() {
    let env = Arc::new(spawn().await);
    let f = Arc::new(env.festival().await);
    let bar = Arc::new(env.terminal(&f).await);
    let band = Arc::new(env.band(&f, 100 * PRICE).await);
    for round in 0..5 {
        let key = format!("twin-{round}");
        let answers = all_at_once(
            (0..8)
                .map(|_| {
                    let (env, f, bar, band, key) = (env.clone(), f.clone(), bar.clone(), band.clone(), key.clone());
                    async move {
                        env.client()
                            .charge(authed(charge(&f, &bar, &band.soft, PRICE, &key), &bar.token))
                            .await
                            .expect("charge")
                            .into_inner()
                    }
                })
                .collect(),
        )
        .await;
        assert_eq!(answers.len(), 8);
        assert!(answers.iter().all(|a| *a == answers[0]), "every twin gets the one booking: {answers:?}");
    }
    assert_eq!(env.wallet(&band).await.balance_minor, 95 * PRICE);
    let report = env.assert_ledger(&f).await;
    assert_eq!(report.transactions, 6, "a top-up and five charges");
}
