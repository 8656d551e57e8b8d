//! A state machine, explored by proptest: random sequences of top-ups, charges online and
//! offline, voids, transfers, corrections, blocks, rebinds, replacements and payouts
//! against the real service, each answer compared with a model of the wallets; every
//! sequence ends with the festival's close-out (what nobody claimed settled after the
//! deadline) and the ledger verified (debits equal credits, every wallet its entries'
//! sum, none below zero, no day above the cap, the journal unbroken).

use ed25519_dalek::SigningKey;
use festival_gate::till::Till;
use festival_platform::auth::DeviceLevel;
use festival_platform::nfc::SoftBand;
use festival_proto::cashless::v1 as pb;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use uuid::Uuid;

use crate::helpers::*;

const WALLETS: usize = 3;
const MAX_BALANCE: i64 = 20_000;
const MAX_TOP_UP: i64 = 10_000;
const MAX_CHARGE: i64 = 5_000;
const DAILY_CAP: i64 = 6_000;
const REPLACEMENT_FEE: i64 = 250;
const PAYOUT_FEE: i64 = 100;

#[derive(Debug, Clone)]
enum Op {
    TopUp(usize, i64),
    Charge(usize, i64),
    Offline(usize, i64),
    Transfer(usize, usize, i64),
    Correct(usize, i64),
    Block(usize),
    Rebind(usize),
    /// Voids the wallet's last online sale.
    Void(usize),
    Replace(usize),
    /// To a bank account (false) or donated (true).
    Payout(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WALLETS;
    prop_oneof![
        3 => (w.clone(), 1i64..12_000).prop_map(|(w, a)| Op::TopUp(w, a)),
        4 => (w.clone(), 1i64..7_000).prop_map(|(w, a)| Op::Charge(w, a)),
        2 => (w.clone(), 1i64..3_000).prop_map(|(w, a)| Op::Offline(w, a)),
        2 => (w.clone(), w.clone(), 1i64..8_000).prop_map(|(a, b, x)| Op::Transfer(a, b, x)),
        1 => (w.clone(), -6_000i64..6_000).prop_map(|(w, x)| Op::Correct(w, x)),
        1 => w.clone().prop_map(Op::Block),
        1 => w.clone().prop_map(Op::Rebind),
        2 => w.clone().prop_map(Op::Void),
        1 => w.clone().prop_map(Op::Replace),
        1 => (w, any::<bool>()).prop_map(|(w, donate)| Op::Payout(w, donate)),
    ]
}

/// What the model expects of a wallet: its balance, what it spent today online, whether
/// its current band is blocked and the wallet closed (paid out), and its last online
/// sale (id, amount, voided).
#[derive(Debug, Clone, Default)]
struct Model {
    balance: i64,
    spent_today: i64,
    blocked: bool,
    closed: bool,
    last_sale: Option<(String, i64, bool)>,
}

struct World {
    f: Festival,
    bar: Terminal,
    till: Till,
    till_token: String,
    wallets: Vec<Band>,
    model: Vec<Model>,
    n: usize,
}

async fn world(env: &Env) -> World {
    let f = env.festival().await;
    env.settings(&f, |s| {
        s.min_top_up_minor = 100;
        s.max_top_up_minor = MAX_TOP_UP;
        s.max_balance_minor = MAX_BALANCE;
        s.max_charge_minor = MAX_CHARGE;
        s.daily_cap_minor = DAILY_CAP;
        s.offline_limit_minor = 1_000_000;
        s.replacement_fee_minor = REPLACEMENT_FEE;
    })
    .await;
    let policy = pb::PayoutPolicy {
        festival_id: f.id.to_string(),
        fee_minor: PAYOUT_FEE,
        deadline: Some(festival_platform::convert::timestamp(env.app.clock.now() + chrono::Duration::days(15))),
        unclaimed: pb::UnclaimedMoney::Donate as i32,
        debtor_name: "Model GmbH".into(),
        debtor_iban: "DE44500105175407324931".into(),
        batch_max: 100,
        ..Default::default()
    };
    let policy = pb::SetPayoutPolicyRequest { festival_id: f.id.to_string(), policy: Some(policy) };
    env.client().set_payout_policy(authed(policy, &f.organizer)).await.expect("payout policy");
    // Payouts open once the festival is over (money still moves then), on the terms set
    // before, until the deadline.
    env.complete(&f).await;
    let bar = env.terminal(&f).await;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let device = Uuid::now_v7();
    let till_token = env.issuer.device(device, f.id, "field", DeviceLevel::Steward, &key);
    let register = pb::RegisterTerminalRequest {
        festival_id: f.id.to_string(),
        device_id: device.to_string(),
        vendor_id: Uuid::now_v7().to_string(),
        label: "Field".into(),
    };
    env.client().register_terminal(authed(register, &f.organizer)).await.expect("register");
    let snapshot = env
        .client()
        .get_terminal_snapshot(authed(pb::GetTerminalSnapshotRequest { festival_id: f.id.to_string() }, &till_token))
        .await
        .expect("snapshot")
        .into_inner();
    let till = Till::from_snapshot(&snapshot, key).expect("till");
    let mut wallets = Vec::new();
    for _ in 0..WALLETS {
        wallets.push(env.band(&f, 0).await);
    }
    World { f, bar, till, till_token, wallets, model: vec![Model::default(); WALLETS], n: 0 }
}

impl World {
    fn key(&mut self) -> String {
        self.n += 1;
        format!("op-{}", self.n)
    }

    /// Applies `op` to the service and to the model; fails on the first disagreement.
    async fn apply(&mut self, env: &Env, op: &Op) -> Result<(), TestCaseError> {
        let mut client = env.client();
        let (got, want) = match *op {
            Op::TopUp(w, amount) => {
                let m = &self.model[w];
                let want = if m.blocked {
                    "ERR_8007"
                } else if !(100..=MAX_TOP_UP).contains(&amount) {
                    "ERR_8005"
                } else if m.balance + amount > MAX_BALANCE {
                    "ERR_8011"
                } else {
                    "OK"
                };
                let got = festival_testkit::outcome(env.top_up(&self.f, &self.wallets[w], amount).await);
                if got == "OK" {
                    self.model[w].balance += amount;
                }
                (got, want)
            }
            Op::Charge(w, amount) => {
                let m = &self.model[w];
                let want = if m.blocked {
                    "ERR_8007"
                } else if amount > MAX_CHARGE {
                    "ERR_8009"
                } else if amount > m.balance {
                    "ERR_8001"
                } else if m.spent_today + amount > DAILY_CAP {
                    "ERR_8002"
                } else {
                    "OK"
                };
                let key = self.key();
                let req = charge(&self.f, &self.bar, &self.wallets[w].soft, amount, &key);
                let answer = client.charge(authed(req, &self.bar.token)).await;
                if let Ok(sale) = &answer {
                    self.model[w].balance -= amount;
                    self.model[w].spent_today += amount;
                    self.model[w].last_sale = Some((sale.get_ref().id.clone(), amount, false));
                }
                (festival_testkit::outcome(answer), want)
            }
            Op::Offline(w, amount) => {
                // Offline the till does not know the balance: the band pays what it
                // can, the rest is an exception and the band is blocked.
                if self.model[w].blocked {
                    return Ok(()); // the till's snapshot may not know yet; not modelled
                }
                let band = &self.wallets[w].soft;
                let proof = band.tap(&self.till.challenge(amount));
                self.till
                    .charge(&band.uid, amount, &proof, env.app.clock.now())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let answer = client
                    .upload_offline_charges(authed(self.till.upload(10), &self.till_token))
                    .await
                    .map_err(|e| TestCaseError::fail(format!("upload: {e}")))?
                    .into_inner();
                self.till.settle(&answer);
                let m = &mut self.model[w];
                let shortfall = (amount - m.balance).max(0);
                m.balance -= amount - shortfall;
                m.blocked |= shortfall > 0;
                let outcome = answer.results.first().map(|r| (r.outcome, r.shortfall_minor));
                let expected = if shortfall > 0 { pb::OfflineOutcome::Overdrawn } else { pb::OfflineOutcome::Applied };
                prop_assert_eq!(outcome, Some((expected as i32, shortfall)), "offline {:?}", op);
                ("OK".to_owned(), "OK")
            }
            Op::Transfer(a, b, amount) => {
                let want = if a == b {
                    "ERR_1000"
                } else if self.model[a].closed {
                    "ERR_8006"
                } else if amount > self.model[a].balance {
                    "ERR_8001"
                } else if self.model[b].closed || self.model[b].balance + amount > MAX_BALANCE {
                    "ERR_1000"
                } else {
                    "OK"
                };
                let req = pb::TransferRequest {
                    wallet_id: self.wallets[a].wallet_id.to_string(),
                    to_wallet_id: self.wallets[b].wallet_id.to_string(),
                    amount_minor: amount,
                    currency: "EUR".into(),
                    idempotency_key: self.key(),
                };
                let got = festival_testkit::outcome(client.transfer(authed(req, &self.wallets[a].holder)).await);
                if got == "OK" {
                    self.model[a].balance -= amount;
                    self.model[b].balance += amount;
                }
                (got, want)
            }
            Op::Correct(w, change) => {
                let want = if change == 0 {
                    "ERR_1000"
                } else if self.model[w].closed {
                    "ERR_8006"
                } else if self.model[w].balance + change < 0 {
                    "ERR_8001"
                } else {
                    "OK"
                };
                let req = pb::CorrectRequest {
                    wallet_id: self.wallets[w].wallet_id.to_string(),
                    amount_minor: change,
                    currency: "EUR".into(),
                    reason: "model".into(),
                    idempotency_key: self.key(),
                };
                let got = festival_testkit::outcome(client.correct(authed(req, &self.f.organizer)).await);
                if got == "OK" {
                    self.model[w].balance += change;
                }
                (got, want)
            }
            Op::Block(w) => {
                let req = pb::BlockWristbandRequest {
                    festival_id: self.f.id.to_string(),
                    uid: self.wallets[w].uid(),
                    reason: "lost".into(),
                };
                let got = festival_testkit::outcome(client.block_wristband(authed(req, &self.wallets[w].holder)).await);
                self.model[w].blocked = true;
                (got, "OK")
            }
            Op::Rebind(w) => {
                // A new band on the same wallet: the balance goes on, the old band stays blocked.
                let fresh: SoftBand = env.new_band(&self.f).await;
                let req = bind(&self.f, &self.wallets[w].wallet_id.to_string(), &fresh);
                let got = festival_testkit::outcome(client.bind_wristband(authed(req, &self.wallets[w].holder)).await);
                if got == "OK" {
                    self.wallets[w].soft = fresh;
                    self.model[w].blocked = false;
                }
                (got, if self.model[w].closed { "ERR_8006" } else { "OK" })
            }
            Op::Void(w) => {
                let Some((sale, amount, voided)) = self.model[w].last_sale.clone() else {
                    return Ok(());
                };
                let want = if self.model[w].closed {
                    "ERR_8006"
                } else if voided {
                    "ERR_8014"
                } else {
                    "OK"
                };
                let req = pb::VoidChargeRequest {
                    transaction_id: sale.clone(),
                    reason: "model".into(),
                    idempotency_key: self.key(),
                };
                let got = festival_testkit::outcome(client.void_charge(authed(req, &self.f.organizer)).await);
                if got == "OK" {
                    // The daily counter keeps the voided sale: a void gives no new allowance.
                    self.model[w].balance += amount;
                    self.model[w].last_sale = Some((sale, amount, true));
                }
                (got, want)
            }
            Op::Replace(w) => {
                let fresh: SoftBand = env.new_band(&self.f).await;
                let key = self.key();
                let req = replace(&self.f, &self.wallets[w].soft, self.wallets[w].wallet_id, &fresh, &key);
                let got = festival_testkit::outcome(client.replace_wristband(authed(req, &self.f.cashier)).await);
                if got == "OK" {
                    self.wallets[w].soft = fresh;
                    let m = &mut self.model[w];
                    m.blocked = false;
                    m.balance -= REPLACEMENT_FEE.min(m.balance);
                }
                (got, if self.model[w].closed { "ERR_8006" } else { "OK" })
            }
            Op::Payout(w, donate) => {
                let m = &self.model[w];
                let want = if m.closed {
                    "ERR_8006"
                } else if donate && m.balance == 0 {
                    "ERR_8001"
                } else if !donate && m.balance <= PAYOUT_FEE {
                    "ERR_8016"
                } else {
                    "OK"
                };
                let req = pb::RequestPayoutRequest {
                    wallet_id: self.wallets[w].wallet_id.to_string(),
                    iban: if donate { String::new() } else { "DE89370400440532013000".into() },
                    account_holder: if donate { String::new() } else { "Model Holder".into() },
                    donate,
                    idempotency_key: self.key(),
                };
                let got = festival_testkit::outcome(client.request_payout(authed(req, &self.wallets[w].holder)).await);
                if got == "OK" {
                    let m = &mut self.model[w];
                    (m.balance, m.closed, m.blocked) = (0, true, true);
                }
                (got, want)
            }
        };
        prop_assert_eq!(got.as_str(), want, "{:?} with {:?}", op, self.model);
        for (w, band) in self.wallets.iter().enumerate() {
            let balance = env.wallet(band).await.balance_minor;
            prop_assert_eq!(balance, self.model[w].balance, "wallet {} after {:?}", w, op);
        }
        Ok(())
    }
}

impl World {
    /// The festival's end: the deadline passes, and every wallet still holding money is
    /// emptied (donated, as the policy says) and closed.
    async fn close_out(&mut self, env: &Env) -> Result<(), TestCaseError> {
        let mut client = env.client();
        env.app.clock.advance(std::time::Duration::from_secs(15 * 24 * 3600 + 1));
        let settled = client
            .settle_unclaimed(authed(
                pb::SettleUnclaimedRequest { festival_id: self.f.id.to_string() },
                &self.f.organizer,
            ))
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .into_inner();
        let open: Vec<&Model> = self.model.iter().filter(|m| !m.closed && m.balance > 0).collect();
        prop_assert_eq!(settled.wallets as usize, open.len());
        prop_assert_eq!(settled.total_minor, open.iter().map(|m| m.balance).sum::<i64>());
        for band in &self.wallets {
            prop_assert_eq!(env.wallet(band).await.balance_minor, 0);
        }
        Ok(())
    }
}

#[test]
fn random_sequences_of_operations_keep_every_invariant() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let env = rt.block_on(spawn());
    let mut runner = TestRunner::new(Config { cases: 24, max_shrink_iters: 64, ..Config::default() });
    let result = runner.run(&proptest::collection::vec(op(), 10..40), |ops| {
        rt.block_on(async {
            let mut world = world(&env).await;
            for op in &ops {
                world.apply(&env, op).await?;
            }
            world.close_out(&env).await?;
            env.assert_ledger(&world.f).await;
            Ok(())
        })
    });
    rt.block_on(env.app.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
}
