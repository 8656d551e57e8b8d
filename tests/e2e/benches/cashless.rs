//! `scripts/bench cashless`: terminals charging wristbands through the real service and
//! the gateway (REST, each charge with its band's tap proof, checked by the service), then
//! the ledger verified; and the journal's chaining and verification over a million
//! transactions.
//!
//! Rows: charges via REST at c=32 over 1,000 wallets, and on one hot wallet; the same
//! over gRPC; VerifyLedger after the charges; a terminal's offline upload of 10,000
//! charges; chaining and verifying 1,000,000 transactions written in bulk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use festival_cashless::Cashless;
use festival_e2e::bench::closed_loop;
use festival_platform::auth::{DeviceLevel, Role};
use festival_platform::nfc::{self, BandKey, SoftBand, Uid};
use festival_proto::cashless::v1 as pb;
use festival_proto::cashless::v1::cashless_service_client::CashlessServiceClient;
use festival_proto::program::v1 as program;
use festival_testkit::authed;
use festival_testkit::http1::{Conn, post_json as post};
use festival_testkit::{TestApp, TestIssuer};
use rand::Rng;
use tokio::sync::Mutex;
use uuid::Uuid;

const PRICE: i64 = 450;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Terminal {
    id: Uuid,
    token: String,
}

/// A charge as a terminal sends it: the band answers the challenge of this very charge.
fn charge_body(festival: Uuid, terminal: &Terminal, band: &SoftBand, key: &str) -> serde_json::Value {
    let challenge = nfc::challenge(festival.as_bytes(), terminal.id.as_bytes(), key, PRICE, "EUR");
    serde_json::json!({
        "uid": band.uid.to_hex(), "amountMinor": PRICE, "currency": "EUR",
        "idempotencyKey": key, "tapProof": hex(&band.tap(&challenge)),
    })
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let issuer = TestIssuer::start().await;
        let identity_url = issuer.url();
        let app = TestApp::<Cashless>::spawn_with(|c| {
            c.common.auth.identity_url = identity_url;
            // Four connections per database core (docs/CONFIGURATION.md).
            c.common.database.max_connections = 8;
        })
        .await;
        let mut config = festival_gateway::Config { listen: "127.0.0.1:0".parse()?, ..Default::default() };
        config.upstreams.clear();
        config.upstreams.insert("cashless".into(), format!("http://{}", app.addr));
        config.rate_limit.enabled = false;
        config.redis.url = festival_testkit::redis_url();
        let gateway = festival_gateway::start(config).await?;
        let gw = gateway.addr;
        let client = CashlessServiceClient::new(app.channel.clone());

        // A published festival, as program announces it, and its rules.
        let festival = Uuid::now_v7();
        festival_testkit::announce_festival(&app.naming(), festival, "Bench", program::FestivalStatus::Published).await;
        let organizer = issuer.member(issuer.user().0, festival, Role::Organizer);
        let cashier = issuer.member(issuer.user().0, festival, Role::Cashier);
        let settings = loop {
            let asked = client
                .clone()
                .get_settings(authed(pb::GetSettingsRequest { festival_id: festival.to_string() }, &organizer))
                .await;
            match asked {
                Ok(s) => break s.into_inner(),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await, // not announced yet
            }
        };
        // Cash top-ups need the cashier's shift open.
        let shift = pb::OpenShiftRequest {
            festival_id: festival.to_string(),
            float: Vec::new(),
            idempotency_key: Uuid::now_v7().to_string(),
        };
        client.clone().open_shift(authed(shift, &cashier)).await.expect("shift");
        let settings = pb::Settings {
            max_top_up_minor: 100_000_000,
            max_balance_minor: 100_000_000,
            max_charge_minor: 10_000,
            daily_cap_minor: 0,
            ..settings
        };
        client
            .clone()
            .update_settings(authed(
                pb::UpdateSettingsRequest { festival_id: festival.to_string(), settings: Some(settings) },
                &organizer,
            ))
            .await?;

        // Eight bars' terminals (paired devices), registered for their vendors.
        let mut terminals = Vec::new();
        for _ in 0..8 {
            let id = Uuid::now_v7();
            let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let token = issuer.device(id, festival, "bar", DeviceLevel::Steward, &key);
            let register = pb::RegisterTerminalRequest {
                festival_id: festival.to_string(),
                device_id: id.to_string(),
                vendor_id: Uuid::now_v7().to_string(),
                label: "Bar".into(),
            };
            client.clone().register_terminal(authed(register, &organizer)).await?;
            terminals.push(Terminal { id, token });
        }
        let terminals = Arc::new(terminals);

        // 1,000 wallets, each with a band personalised as an encoder does and money on it.
        let make_band = |balance: i64| {
            let (mut c, organizer, cashier, issuer_user) = (client.clone(), organizer.clone(), cashier.clone(), issuer.user());
            async move {
                let holder = issuer_user.1;
                let wallet = c
                    .open_wallet(authed(pb::OpenWalletRequest { festival_id: festival.to_string() }, &holder))
                    .await
                    .expect("wallet")
                    .into_inner();
                let uid = Uid::random();
                let key = c
                    .provision_wristband(authed(
                        pb::ProvisionWristbandRequest { festival_id: festival.to_string(), uid: uid.to_hex() },
                        &organizer,
                    ))
                    .await
                    .expect("provision")
                    .into_inner();
                let bytes: Vec<u8> =
                    (0..16).map(|i| u8::from_str_radix(&key.key_hex[2 * i..2 * i + 2], 16).expect("hex")).collect();
                let band = SoftBand::personalised(uid, BandKey::from_bytes(&bytes).expect("key"));
                let wallet_id = Uuid::parse_str(&wallet.id).expect("wallet id");
                let challenge = nfc::bind_challenge(festival.as_bytes(), wallet_id.as_bytes());
                let bind = pb::BindWristbandRequest {
                    wallet_id: wallet.id,
                    uid: band.uid.to_hex(),
                    tap_proof: hex(&band.tap(&challenge)),
                };
                c.bind_wristband(authed(bind, &holder)).await.expect("bind");
                c.top_up(authed(
                    pb::TopUpRequest {
                        festival_id: festival.to_string(),
                        uid: band.uid.to_hex(),
                        amount_minor: balance,
                        currency: "EUR".into(),
                        method: pb::TopUpMethod::Cash as i32,
                        idempotency_key: Uuid::now_v7().to_string(),
                        card_reference: String::new(),
                    },
                    &cashier,
                ))
                .await
                .expect("top up");
                band
            }
        };
        let mut bands = Vec::new();
        for _ in 0..(1_000 / 50) {
            bands.extend(futures::future::join_all((0..50).map(|_| make_band(10_000_000))).await);
        }
        let bands = Arc::new(bands);
        let hot = Arc::new(make_band(100_000_000).await);

        println!(
            "\n### cashless benchmark ({} cores shared by the load generator, gateway, cashless and PostgreSQL)\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| row | p50 | p99 | rate |");
        println!("|---|---|---|---|");

        // 1. Charges via REST over 1,000 wallets, c=32, each a tap proof the service checks.
        let conns: Arc<Vec<Mutex<Conn>>> =
            Arc::new(futures::future::join_all((0..32).map(|_| async { Mutex::new(Conn::open(gw).await) })).await);
        let path = format!("/v1/festivals/{festival}/charges");
        let (c1, t1, b1, p1) = (conns.clone(), terminals.clone(), bands.clone(), path.clone());
        closed_loop("charge via REST with a tap proof, 1,000 wallets, c=32", "charges/s", 32, move |w| {
            let terminal = &t1[w % t1.len()];
            let band = &b1[rand::thread_rng().gen_range(0..b1.len())];
            let key = Uuid::now_v7().to_string();
            let request = post(gw, &p1, &terminal.token, &charge_body(festival, terminal, band, &key));
            let conns = c1.clone();
            async move { assert_eq!(conns[w].lock().await.roundtrip(&request).await, 200) }
        })
        .await
        .print();

        // 2. The same on one wallet: every charge waits for the one before on its row.
        let (c2, t2, h2, p2) = (conns.clone(), terminals.clone(), hot.clone(), path.clone());
        closed_loop("charge via REST with a tap proof, one hot wallet, c=32", "charges/s", 32, move |w| {
            let terminal = &t2[w % t2.len()];
            let key = Uuid::now_v7().to_string();
            let request = post(gw, &p2, &terminal.token, &charge_body(festival, terminal, &h2, &key));
            let conns = c2.clone();
            async move { assert_eq!(conns[w].lock().await.roundtrip(&request).await, 200) }
        })
        .await
        .print();

        // 3. Over gRPC (no gateway), 1,000 wallets, c=32.
        let (t3, b3, cl3) = (terminals.clone(), bands.clone(), client.clone());
        closed_loop("charge via gRPC with a tap proof, 1,000 wallets, c=32", "charges/s", 32, move |w| {
            let terminal = &t3[w % t3.len()];
            let band = &b3[rand::thread_rng().gen_range(0..b3.len())];
            let key = Uuid::now_v7().to_string();
            let challenge = nfc::challenge(festival.as_bytes(), terminal.id.as_bytes(), &key, PRICE, "EUR");
            let request = pb::ChargeRequest {
                festival_id: festival.to_string(),
                uid: band.uid.to_hex(),
                amount_minor: PRICE,
                currency: "EUR".into(),
                idempotency_key: key,
                tap_proof: hex(&band.tap(&challenge)),
                min_age: 0,
            };
            let (mut c, token) = (cl3.clone(), terminal.token.clone());
            async move {
                c.charge(authed(request, &token)).await.expect("charge");
            }
        })
        .await
        .print();

        // 4. The ledger verified after the storm: every wallet equals its entries.
        let verify = |festival: Uuid, organizer: String| {
            let mut c = client.clone();
            async move {
                c.verify_ledger(authed(pb::VerifyLedgerRequest { festival_id: festival.to_string() }, &organizer))
                    .await
                    .expect("verify")
                    .into_inner()
            }
        };
        let report = loop {
            let report = verify(festival, organizer.clone()).await;
            if report.chained == report.transactions {
                break report;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(report.ok, "the ledger must verify after the storm: {:?}", report.problems);
        let started = Instant::now();
        let again = verify(festival, organizer.clone()).await;
        let took = started.elapsed();
        assert!(again.ok);
        println!(
            "| VerifyLedger after the charges ({} transactions, {} wallets) | {:.0} ms | | {:.0} transactions/s |",
            again.transactions,
            again.wallets,
            took.as_secs_f64() * 1e3,
            again.transactions as f64 / took.as_secs_f64()
        );

        // 5. A terminal back online uploads 10,000 charges it made offline (its till
        //    checked each tap; the service checks them again, books each once).
        let till_key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let till_device = Uuid::now_v7();
        let till_token = issuer.device(till_device, festival, "field-bar", DeviceLevel::Steward, &till_key);
        client
            .clone()
            .register_terminal(authed(
                pb::RegisterTerminalRequest {
                    festival_id: festival.to_string(),
                    device_id: till_device.to_string(),
                    vendor_id: Uuid::now_v7().to_string(),
                    label: "Field bar".into(),
                },
                &organizer,
            ))
            .await?;
        let snapshot = client
            .clone()
            .get_terminal_snapshot(authed(pb::GetTerminalSnapshotRequest { festival_id: festival.to_string() }, &till_token))
            .await?
            .into_inner();
        let mut till = festival_gate::till::Till::from_snapshot(&snapshot, till_key).expect("till");
        let now = chrono::Utc::now();
        for i in 0..10_000 {
            let band = &bands[i % bands.len()];
            let proof = band.tap(&till.challenge(PRICE / 3));
            till.charge(&band.uid, PRICE / 3, &proof, now + chrono::TimeDelta::milliseconds(i as i64)).expect("offline charge");
        }
        let batch = till.upload(10_000);
        let started = Instant::now();
        let applied = client.clone().upload_offline_charges(authed(batch.clone(), &till_token)).await?.into_inner();
        let took = started.elapsed();
        assert_eq!(applied.applied, 10_000, "every offline charge booked once");
        println!(
            "| offline upload of 10,000 charges (signature, 10,000 tap proofs, booking) | {:.0} ms | | {:.0} transactions/s |",
            took.as_secs_f64() * 1e3,
            10_000.0 / took.as_secs_f64()
        );
        let started = Instant::now();
        let replayed = client.clone().upload_offline_charges(authed(batch, &till_token)).await?.into_inner();
        let took = started.elapsed();
        assert_eq!(replayed.duplicates, 10_000, "a replayed upload books nothing");
        println!(
            "| the same upload replayed (all duplicates) | {:.0} ms | | {:.0} transactions/s |",
            took.as_secs_f64() * 1e3,
            10_000.0 / took.as_secs_f64()
        );

        // 6. A million transactions (top-ups of one wallet from the card clearing account,
        //    written in bulk), chained by the journal worker, then verified.
        let big = Uuid::now_v7();
        festival_testkit::announce_festival(&app.naming(), big, "Million", program::FestivalStatus::Published).await;
        let big_organizer = issuer.member(issuer.user().0, big, Role::Organizer);
        while client
            .clone()
            .get_settings(authed(pb::GetSettingsRequest { festival_id: big.to_string() }, &big_organizer))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        const N: i64 = 1_000_000;
        let (wallet, clearing) = (Uuid::now_v7(), Uuid::now_v7());
        let pool = &app.pool;
        let started = Instant::now();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "begin;
             insert into accounts (id, festival_id, kind, currency, owner_id) values
                 ('{wallet}', '{big}', 'WALLET', 'EUR', '{wallet}'), ('{clearing}', '{big}', 'CARD_CLEARING', 'EUR', null);
             insert into wallets (id, festival_id, currency, balance_minor, created_at)
                 values ('{wallet}', '{big}', 'EUR', {N} * 100, now());
             create temporary table bulk on commit drop as
                 select gen_random_uuid() as id, n from generate_series(1, {N}) n;
             insert into transactions (id, festival_id, kind, currency, amount_minor, wallet_id, wallet_change_minor,
                 balance_after_minor, actor_id, created_at)
             select id, '{big}', 'TOPUP', 'EUR', 100, '{wallet}', 100, 100 * n, '{clearing}',
                 timestamptz '2026-07-09 12:00:00+00' + n * interval '1 millisecond'
             from bulk;
             insert into entries (transaction_id, account_id, festival_id, currency, amount_minor)
             select id, '{clearing}'::uuid, '{big}'::uuid, 'EUR', 100 from bulk
             union all select id, '{wallet}'::uuid, '{big}'::uuid, 'EUR', -100 from bulk;
             insert into journal_queue (transaction_id, festival_id, created_at)
             select id, '{big}', timestamptz '2026-07-09 12:00:00+00' + n * interval '1 millisecond' from bulk;
             commit;"
        )))
        .execute(pool)
        .await?;
        let written = started.elapsed();
        let started = Instant::now();
        while festival_cashless::journal::chain_festival(pool, big, 10_000).await? > 0 {}
        let chained = started.elapsed();
        // The verifier itself (the RPC answers within the server's request deadline, 10 s
        // by default, which a million transactions exceed: docs/ARCHITECTURE.md).
        let _ = &big_organizer;
        let journal_key = {
            let row: Vec<u8> = sqlx::query_scalar("select journal_public_key from festival_keys where festival_id = $1")
                .bind(big)
                .fetch_optional(pool)
                .await?
                .unwrap_or_default();
            <[u8; 32]>::try_from(row.as_slice()).ok().and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
        };
        let started = Instant::now();
        let report = festival_cashless::audit::verify(&mut *pool.acquire().await?, big, journal_key).await?;
        let verified = started.elapsed();
        assert!(report.problems.is_empty() && report.chained == N, "{report:?}");
        println!(
            "| {N} transactions written in bulk (balanced-at-commit trigger included) | {:.1} s | | {:.0} transactions/s |",
            written.as_secs_f64(),
            N as f64 / written.as_secs_f64()
        );
        println!(
            "| journal: chaining {N} transactions | {:.1} s | | {:.0} transactions/s |",
            chained.as_secs_f64(),
            N as f64 / chained.as_secs_f64()
        );
        println!(
            "| VerifyLedger over {N} transactions (ledger rules and the whole chain) | {:.1} s | | {:.0} transactions/s |",
            verified.as_secs_f64(),
            N as f64 / verified.as_secs_f64()
        );

        gateway.shutdown.cancel();
        app.stop().await;
        anyhow::Ok(())
    })
}
