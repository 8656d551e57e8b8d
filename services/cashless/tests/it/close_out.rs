//! The end of the festival: payouts to bank accounts and donations, the SEPA files that
//! pay them, and unclaimed balances after the deadline. Every file written is also kept
//! in `$FESTIVAL_SEPA_DIR` when set: `scripts/test` validates each against the official
//! pain.001.001.09 schema.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use festival_platform::convert::timestamp;
use festival_proto::cashless::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

const DEBTOR_IBAN: &str = "DE44500105175407324931";

fn policy(f: &Festival, change: impl FnOnce(&mut pb::PayoutPolicy)) -> pb::SetPayoutPolicyRequest {
    let mut policy = pb::PayoutPolicy {
        festival_id: f.id.to_string(),
        fee_minor: 150,
        min_payout_minor: 500,
        deadline: None,
        unclaimed: pb::UnclaimedMoney::Keep as i32,
        debtor_name: "Sommerfest Veranstaltungs GmbH".into(),
        debtor_iban: "DE44 5001 0517 5407 3249 31".into(),
        debtor_bic: String::new(),
        batch_max: 1_000,
    };
    change(&mut policy);
    pb::SetPayoutPolicyRequest { festival_id: f.id.to_string(), policy: Some(policy) }
}

fn to_bank(band: &Band, iban: &str, holder: &str, key: &str) -> pb::RequestPayoutRequest {
    pb::RequestPayoutRequest {
        wallet_id: band.wallet_id.to_string(),
        iban: iban.into(),
        account_holder: holder.into(),
        donate: false,
        idempotency_key: key.into(),
    }
}

fn export(f: &Festival) -> pb::ExportPayoutsRequest {
    pb::ExportPayoutsRequest { festival_id: f.id.to_string(), execution_date: String::new() }
}

/// Keeps the file for the schema check of `scripts/test`.
fn keep(batch: &pb::PayoutBatch) {
    if batch.payouts == 0 {
        return;
    }
    if let Ok(dir) = std::env::var("FESTIVAL_SEPA_DIR") {
        std::fs::create_dir_all(&dir).expect("sepa dir");
        std::fs::write(format!("{dir}/{}.xml", batch.id), &batch.xml).expect("write sepa file");
    }
}

/// The EndToEndIds of a file: its payouts' ids.
fn end_to_end_ids(xml: &str) -> Vec<String> {
    xml.split("<EndToEndId>").skip(1).filter_map(|s| s.split('<').next()).map(str::to_owned).collect()
}

#[tokio::test]
async fn a_holder_is_paid_out_once_and_the_bank_file_pays_them() {
    let env = spawn().await;
    let f = env.festival().await;
    let mut client = env.client();
    let set = client.set_payout_policy(authed(policy(&f, |_| {}), &f.organizer)).await.expect("policy");
    assert_eq!(set.into_inner().debtor_iban, DEBTOR_IBAN, "stored in its electronic form");
    let bar = env.terminal(&f).await;
    let band = env.band(&f, 2_000).await;
    // Not while the festival runs: bars still charge, offline terminals still sync.
    let early = to_bank(&band, "DE89370400440532013000", "Ann", "p0");
    assert_eq!(code(client.request_payout(authed(early, &band.holder)).await), "ERR_8015");
    env.complete(&f).await;

    let req = to_bank(&band, "de89 3704 0044 0532 0130 00", "Jürgen Weiß", "p1");
    let payout = client.request_payout(authed(req.clone(), &band.holder)).await.expect("payout").into_inner();
    assert_eq!(payout.status, pb::PayoutStatus::Pending as i32);
    assert_eq!((payout.balance_minor, payout.fee_minor, payout.payout_minor), (2_000, 150, 1_850));
    assert_eq!(payout.iban_masked, "DE****************3000");
    // A retry answers the same payout; another request finds the wallet closed.
    let again = client.request_payout(authed(req, &band.holder)).await.expect("retry").into_inner();
    assert_eq!(again.id, payout.id);
    let twice = to_bank(&band, "DE89370400440532013000", "Juergen Weiss", "p2");
    assert_eq!(code(client.request_payout(authed(twice, &band.holder)).await), "ERR_8006");

    // The wallet is empty and closed, its band blocked: nothing is spent twice.
    let wallet = env.wallet(&band).await;
    assert_eq!(wallet.balance_minor, 0);
    assert_eq!(wallet.status, pb::WalletStatus::Closed as i32);
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &band.soft, 100, "late")).await, "ERR_8007");
    assert_eq!(code(env.top_up(&f, &band, 500).await), "ERR_8007");

    let batch = client.export_payouts(authed(export(&f), &f.organizer)).await.expect("export").into_inner();
    keep(&batch);
    // An export whose answer was lost is found in the list.
    let listed = client
        .list_payout_batches(authed(
            pb::ListPayoutBatchesRequest { festival_id: f.id.to_string(), ..Default::default() },
            &f.organizer,
        ))
        .await
        .expect("list")
        .into_inner();
    let listed: Vec<_> = listed.batches.iter().map(|b| (b.id.as_str(), b.payouts, b.xml.len())).collect();
    assert_eq!(listed, vec![(batch.id.as_str(), 1, 0)]);
    assert_eq!((batch.payouts, batch.total_minor, batch.currency.as_str()), (1, 1_850, "EUR"));
    assert_eq!(end_to_end_ids(&batch.xml), vec![Uuid::parse_str(&payout.id).expect("id").simple().to_string()]);
    assert!(batch.xml.contains("<Nm>Juergen Weiss</Nm>"), "{}", batch.xml);
    assert!(batch.xml.contains("<IBAN>DE89370400440532013000</IBAN>"));
    assert!(batch.xml.contains("<InstdAmt Ccy=\"EUR\">18.50</InstdAmt>"));
    // Nothing is exported twice; the file can be fetched again, byte for byte.
    let empty = client.export_payouts(authed(export(&f), &f.organizer)).await.expect("again").into_inner();
    assert_eq!((empty.payouts, empty.id.as_str(), empty.xml.as_str()), (0, "", ""));
    let fetched = client
        .get_payout_batch(authed(
            pb::GetPayoutBatchRequest { festival_id: f.id.to_string(), batch_id: batch.id.clone() },
            &f.organizer,
        ))
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(fetched.xml, batch.xml);

    let report = client
        .get_close_out_report(authed(pb::GetCloseOutReportRequest { festival_id: f.id.to_string() }, &f.organizer))
        .await
        .expect("report")
        .into_inner();
    assert_eq!((report.exported_payouts, report.exported_minor, report.fees_minor), (1, 1_850, 150));
    assert_eq!((report.pending_payouts, report.outstanding_wallets, report.outstanding_minor), (0, 0, 0));

    // The bank executed the file: confirmed once, refunds payable settled from the bank.
    let confirm = || pb::ConfirmPayoutBatchRequest { festival_id: f.id.to_string(), batch_id: batch.id.clone() };
    let confirmed = client.confirm_payout_batch(authed(confirm(), &f.organizer)).await.expect("confirm").into_inner();
    assert!(confirmed.confirmed_at.is_some());
    let again = client.confirm_payout_batch(authed(confirm(), &f.organizer)).await.expect("again").into_inner();
    assert_eq!(again.confirmed_at, confirmed.confirmed_at);
    assert_eq!(code(client.confirm_payout_batch(authed(confirm(), &f.cashier)).await), "ERR_3001");
    // Then it came back (a closed account): the money is the holder's again, to ask anew.
    let back = |key: &str| pb::ReturnPayoutRequest {
        festival_id: f.id.to_string(),
        payout_id: payout.id.clone(),
        reason: format!("AC04 closed account {key}"),
    };
    let returned = client.return_payout(authed(back("1"), &f.organizer)).await.expect("return").into_inner();
    assert_eq!(returned.status, pb::PayoutStatus::Returned as i32);
    assert_eq!(code(client.return_payout(authed(back("2"), &f.organizer)).await), "ERR_1000", "once");
    let wallet = env.wallet(&band).await;
    assert_eq!((wallet.balance_minor, wallet.status), (1_850, pb::WalletStatus::Active as i32));
    let anew = to_bank(&band, "FR14 2004 1010 0505 0001 3M02 606", "Juergen Weiss", "p3");
    let anew = client.request_payout(authed(anew, &band.holder)).await.expect("again").into_inner();
    assert_eq!((anew.payout_minor, anew.fee_minor), (1_700, 150));
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn bad_bank_details_and_small_balances_are_refused_and_nothing_moves() {
    let env = spawn().await;
    let f = env.festival().await;
    let mut client = env.client();
    client.set_payout_policy(authed(policy(&f, |_| {}), &f.organizer)).await.expect("policy");
    let band = env.band(&f, 600).await;
    env.complete(&f).await;
    let cases = [
        (to_bank(&band, "DE88 3704 0044 0532 0130 00", "Ann", "k1"), "ERR_8017"), // check digits
        (to_bank(&band, "BR15 0000 0000 0000 1093 2840 814P 2", "Ann", "k2"), "ERR_8017"), // not SEPA
        (to_bank(&band, "", "Ann", "k3"), "ERR_1001"),
        (to_bank(&band, "DE89370400440532013000", "", "k4"), "ERR_1001"),
        (to_bank(&band, "DE89370400440532013000", "李小龍", "k5"), "ERR_1000"),
        (
            pb::RequestPayoutRequest { donate: true, ..to_bank(&band, "DE89370400440532013000", "Ann", "k6") },
            "ERR_1000",
        ),
        // 600 less the fee of 150 is below the minimum of 500.
        (to_bank(&band, "DE89370400440532013000", "Ann", "k7"), "ERR_8016"),
    ];
    for (req, want) in cases {
        let iban = req.iban.clone();
        assert_eq!(code(client.request_payout(authed(req, &band.holder)).await), want, "{iban}");
    }
    // Not the holder: nobody else learns of the wallet, organisers included.
    for stranger in [env.issuer.user().1, f.organizer.clone()] {
        let req = to_bank(&band, "DE89370400440532013000", "Ann", "k8");
        assert_eq!(code(client.request_payout(authed(req, &stranger)).await), "ERR_4000");
    }
    let wallet = env.wallet(&band).await;
    assert_eq!((wallet.balance_minor, wallet.status), (600, pb::WalletStatus::Active as i32));

    // A small balance can still be donated.
    let gift = pb::RequestPayoutRequest {
        wallet_id: band.wallet_id.to_string(),
        donate: true,
        idempotency_key: "gift".into(),
        ..Default::default()
    };
    let gift = client.request_payout(authed(gift, &band.holder)).await.expect("donate").into_inner();
    assert_eq!((gift.status, gift.payout_minor, gift.fee_minor), (pb::PayoutStatus::Donated as i32, 600, 0));
    let report = client
        .get_close_out_report(authed(pb::GetCloseOutReportRequest { festival_id: f.id.to_string() }, &f.organizer))
        .await
        .expect("report")
        .into_inner();
    assert_eq!((report.donated_minor, report.pending_payouts), (600, 0));
    // A donation is not a bank transfer: no file.
    let batch = client.export_payouts(authed(export(&f), &f.organizer)).await.expect("export").into_inner();
    assert_eq!(batch.payouts, 0);
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn the_organisers_policy_is_theirs_alone_and_checked() {
    let env = spawn().await;
    let f = env.festival().await;
    let other = env.festival().await;
    let mut client = env.client();
    // Another festival's organiser, a cashier, a holder: not this festival's organiser.
    for token in [other.organizer.clone(), f.cashier.clone(), env.issuer.user().1] {
        assert!(
            ["ERR_3001", "ERR_3002"]
                .contains(&code(client.set_payout_policy(authed(policy(&f, |_| {}), &token)).await).as_str())
        );
    }
    let bad_iban = policy(&f, |p| p.debtor_iban = "DE00 0000".into());
    assert_eq!(code(client.set_payout_policy(authed(bad_iban, &f.organizer)).await), "ERR_8017");
    let bad_batch = policy(&f, |p| p.batch_max = 2_001);
    assert_eq!(code(client.set_payout_policy(authed(bad_batch, &f.organizer)).await), "ERR_1000");
    // No bank account yet: nothing can be exported.
    assert_eq!(code(client.export_payouts(authed(export(&f), &f.organizer)).await), "ERR_8015");
    client.set_payout_policy(authed(policy(&f, |_| {}), &f.organizer)).await.expect("policy");
    for token in [other.organizer.clone(), f.cashier.clone()] {
        assert!(
            ["ERR_3001", "ERR_3002"].contains(&code(client.export_payouts(authed(export(&f), &token)).await).as_str())
        );
    }
    let past = pb::ExportPayoutsRequest { execution_date: "2000-01-01".into(), ..export(&f) };
    assert_eq!(code(client.export_payouts(authed(past, &f.organizer)).await), "ERR_1000");
    let read = client
        .get_payout_policy(authed(pb::GetPayoutPolicyRequest { festival_id: f.id.to_string() }, &f.cashier))
        .await
        .expect("a cashier reads it")
        .into_inner();
    assert_eq!(read.fee_minor, 150);
    env.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_are_split_by_the_batch_size_and_exports_at_once_never_share_a_payout() {
    let env = Arc::new(spawn().await);
    let f = Arc::new(env.festival().await);
    let mut client = env.client();
    let with_bic = policy(&f, |p| {
        p.batch_max = 3;
        p.debtor_bic = "INGDDEFFXXX".into();
    });
    client.set_payout_policy(authed(with_bic, &f.organizer)).await.expect("policy");
    env.complete(&f).await;
    let mut requested = HashSet::new();
    for i in 0..8 {
        let band = env.band(&f, 1_000 + i).await;
        let req = to_bank(&band, "FR14 2004 1010 0505 0001 3M02 606", "Zoë Dupont-Moreau", "p");
        let payout = client.request_payout(authed(req, &band.holder)).await.expect("payout").into_inner();
        requested.insert(Uuid::parse_str(&payout.id).expect("id").simple().to_string());
    }
    let batches = all_at_once(
        (0..3)
            .map(|_| {
                let (env, f) = (env.clone(), f.clone());
                async move { env.client().export_payouts(authed(export(&f), &f.organizer)).await.expect("export") }
            })
            .collect(),
    )
    .await;
    let mut exported = Vec::new();
    for batch in batches.into_iter().map(tonic::Response::into_inner) {
        assert!(batch.payouts <= 3, "{}", batch.payouts);
        if batch.payouts > 0 {
            keep(&batch);
            let ids = end_to_end_ids(&batch.xml);
            assert_eq!(ids.len(), batch.payouts as usize);
            exported.extend(ids);
        }
    }
    let rest = client.export_payouts(authed(export(&f), &f.organizer)).await.expect("rest").into_inner();
    keep(&rest);
    exported.extend(end_to_end_ids(&rest.xml));
    let last = client.export_payouts(authed(export(&f), &f.organizer)).await.expect("last").into_inner();
    exported.extend(end_to_end_ids(&last.xml));
    keep(&last);
    assert_eq!(exported.len(), 8, "each payout in one file: {exported:?}");
    assert_eq!(exported.iter().cloned().collect::<HashSet<_>>(), requested);
    env.assert_ledger(&f).await;
}

#[tokio::test]
async fn after_the_deadline_unclaimed_money_goes_where_the_policy_says() {
    let env = spawn().await;
    let mut client = env.client();
    for (unclaimed, kept, donated) in [(pb::UnclaimedMoney::Keep, 2_500, 0), (pb::UnclaimedMoney::Donate, 0, 2_500)] {
        let f = env.festival().await;
        let deadline = env.app.clock.now() + chrono::Duration::days(30);
        let set = policy(&f, |p| {
            p.deadline = Some(timestamp(deadline));
            p.unclaimed = unclaimed as i32;
        });
        client.set_payout_policy(authed(set, &f.organizer)).await.expect("policy");
        let (a, b, empty) = (env.band(&f, 1_000).await, env.band(&f, 1_500).await, env.band(&f, 0).await);
        let settle = || pb::SettleUnclaimedRequest { festival_id: f.id.to_string() };
        env.complete(&f).await;
        assert_eq!(code(client.settle_unclaimed(authed(settle(), &f.organizer)).await), "ERR_8015", "before it");
        // Payouts are open: their terms only change in the holders' favour.
        let dearer = policy(&f, |p| {
            p.deadline = Some(timestamp(deadline));
            p.unclaimed = unclaimed as i32;
            p.fee_minor = 900;
        });
        assert_eq!(code(client.set_payout_policy(authed(dearer, &f.organizer)).await), "ERR_1000");
        // A deadline leaves holders time, and never moves earlier once announced.
        let sooner = policy(&f, |p| p.deadline = Some(timestamp(deadline - chrono::Duration::days(1))));
        assert_eq!(code(client.set_payout_policy(authed(sooner, &f.organizer)).await), "ERR_1000");
        let other = env.festival().await;
        let too_soon = policy(&other, |p| p.deadline = Some(timestamp(env.app.clock.now())));
        assert_eq!(code(client.set_payout_policy(authed(too_soon, &other.organizer)).await), "ERR_1000");

        env.app.clock.advance(Duration::from_secs(30 * 24 * 3600));
        let late = to_bank(&a, "DE89370400440532013000", "Ann", "late");
        assert_eq!(code(client.request_payout(authed(late, &a.holder)).await), "ERR_8015");
        let done = client.settle_unclaimed(authed(settle(), &f.organizer)).await.expect("settle").into_inner();
        assert_eq!((done.wallets, done.total_minor, done.unclaimed), (2, 2_500, unclaimed as i32));
        for band in [&a, &b] {
            let wallet = env.wallet(band).await;
            assert_eq!((wallet.balance_minor, wallet.status), (0, pb::WalletStatus::Closed as i32));
        }
        assert_eq!(env.wallet(&empty).await.status, pb::WalletStatus::Active as i32, "nothing to settle");
        let again = client.settle_unclaimed(authed(settle(), &f.organizer)).await.expect("again").into_inner();
        assert_eq!((again.wallets, again.total_minor), (0, 0));
        let report = client
            .get_close_out_report(authed(pb::GetCloseOutReportRequest { festival_id: f.id.to_string() }, &f.organizer))
            .await
            .expect("report")
            .into_inner();
        assert_eq!((report.unclaimed_kept_minor, report.donated_minor, report.outstanding_minor), (kept, donated, 0));
        env.assert_ledger(&f).await;
    }
    env.app.stop().await;
}

/// Money loaded online goes back to its card: a bank payout takes the rest and leaves it
/// in the wallet, and refuses a wallet holding nothing else.
#[tokio::test]
async fn money_loaded_online_is_never_paid_to_a_bank_account() {
    use festival_proto::payments::v1 as pay;
    let env = spawn().await;
    let f = env.festival().await;
    let mut client = env.client();
    client.set_payout_policy(authed(policy(&f, |p| p.fee_minor = 0), &f.organizer)).await.expect("policy");
    let (mixed, online_only) = (env.band(&f, 1_500).await, env.band(&f, 0).await);
    for (band, amount) in [(&mixed, 2_000), (&online_only, 800)] {
        let paid = pay::PaymentCompleted {
            payment_id: Uuid::now_v7().to_string(),
            festival_id: f.id.to_string(),
            purpose: pay::PaymentPurpose::WalletTopUp as i32,
            reference: band.wallet_id.to_string(),
            payer_user_id: band.holder_id.to_string(),
            amount_minor: amount,
            currency: "EUR".into(),
        };
        festival_testkit::publish_event(&env.app.naming(), &paid).await;
    }
    let credited = eventually(Duration::from_secs(10), || async {
        env.wallet(&mixed).await.balance_minor == 3_500 && env.wallet(&online_only).await.balance_minor == 800
    })
    .await;
    assert!(credited, "the online top-ups were never credited");
    // Moved to a friend's wallet, money loaded online stays money loaded online.
    let friend = env.band(&f, 1_000).await;
    let gift = pb::TransferRequest {
        wallet_id: online_only.wallet_id.to_string(),
        to_wallet_id: friend.wallet_id.to_string(),
        amount_minor: 500,
        currency: "EUR".into(),
        idempotency_key: "t".into(),
    };
    client.transfer(authed(gift, &online_only.holder)).await.expect("transfer");
    env.complete(&f).await;
    let req = to_bank(&friend, "DE89370400440532013000", "Bo", "f1");
    let theirs = client.request_payout(authed(req, &friend.holder)).await.expect("friend's payout").into_inner();
    assert_eq!((theirs.payout_minor, theirs.card_minor), (1_000, 500), "the transfer did not launder it");

    let req = to_bank(&online_only, "DE89370400440532013000", "Ann", "o1");
    assert_eq!(code(client.request_payout(authed(req, &online_only.holder)).await), "ERR_8018");
    let req = to_bank(&mixed, "DE89370400440532013000", "Ann", "m1");
    let payout = client.request_payout(authed(req, &mixed.holder)).await.expect("payout").into_inner();
    assert_eq!((payout.payout_minor, payout.card_minor), (1_500, 2_000));
    let wallet = env.wallet(&mixed).await;
    assert_eq!((wallet.balance_minor, wallet.status), (2_000, pb::WalletStatus::Active as i32), "kept for the card");
    assert!(!wallet.wristbands.is_empty());
    assert!(wallet.wristbands.iter().all(|b| b.status == pb::WristbandStatus::Blocked as i32));
    // Asking again finds only the card's money.
    let again = to_bank(&mixed, "DE89370400440532013000", "Ann", "m2");
    assert_eq!(code(client.request_payout(authed(again, &mixed.holder)).await), "ERR_8018");
    // Donating gives it all.
    let gift = pb::RequestPayoutRequest {
        wallet_id: online_only.wallet_id.to_string(),
        donate: true,
        idempotency_key: "o2".into(),
        ..Default::default()
    };
    let gift = client.request_payout(authed(gift, &online_only.holder)).await.expect("donate").into_inner();
    assert_eq!((gift.payout_minor, gift.card_minor), (300, 0));
    env.assert_ledger(&f).await;
    env.app.stop().await;
}
