//! Terminals that lost their network: they charge from a snapshot, and their uploads are
//! verified whole, booked once per charge in the order the charges were made, and what
//! offline let through that online would not have is booked, flagged and stopped.

use chrono::{TimeDelta, Utc};
use ed25519_dalek::SigningKey;
use festival_gate::till::{Till, TillRefusal};
use festival_platform::auth::DeviceLevel;
use festival_platform::nfc::SoftBand;
use festival_proto::cashless::v1 as pb;
use prost::Message;
use uuid::Uuid;

use crate::helpers::*;

/// A terminal with its device key, registered for a vendor, and its offline till.
struct OfflineTerminal {
    terminal: Terminal,
    till: Till,
    key: SigningKey,
}

async fn offline_terminal(env: &Env, f: &Festival) -> OfflineTerminal {
    let device_id = Uuid::now_v7();
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let token = env.issuer.device(device_id, f.id, "bar", DeviceLevel::Steward, &key);
    env.client()
        .register_terminal(authed(
            pb::RegisterTerminalRequest {
                festival_id: f.id.to_string(),
                device_id: device_id.to_string(),
                vendor_id: Uuid::now_v7().to_string(),
                label: "Field bar".into(),
            },
            &f.organizer,
        ))
        .await
        .expect("register");
    let terminal = Terminal { device_id, vendor_id: Uuid::nil(), token };
    let till = Till::from_snapshot(&snapshot(env, f, &terminal).await, key.clone()).expect("till");
    OfflineTerminal { terminal, till, key }
}

async fn snapshot(env: &Env, f: &Festival, t: &Terminal) -> pb::TerminalSnapshot {
    env.client()
        .get_terminal_snapshot(authed(pb::GetTerminalSnapshotRequest { festival_id: f.id.to_string() }, &t.token))
        .await
        .expect("snapshot")
        .into_inner()
}

/// Taps `band` for `amount` at the till, `minutes` after half an hour ago (the network
/// has been down a while).
fn tap(t: &mut OfflineTerminal, band: &SoftBand, amount: i64, minutes: i64) -> Result<i64, TillRefusal> {
    let proof = band.tap(&t.till.challenge(amount));
    t.till.charge(&band.uid, amount, &proof, Utc::now() - TimeDelta::minutes(30) + TimeDelta::minutes(minutes))
}

async fn upload(
    env: &Env,
    t: &OfflineTerminal,
    req: pb::UploadOfflineChargesRequest,
) -> Result<pb::UploadOfflineChargesResponse, tonic::Status> {
    env.client().upload_offline_charges(authed(req, &t.terminal.token)).await.map(tonic::Response::into_inner)
}

/// What the festival's offline-loss account paid.
async fn offline_loss(env: &Env, f: &Festival) -> i64 {
    sqlx::query_scalar(
        "select coalesce(sum(e.amount_minor), 0)::bigint from entries e join accounts a on a.id = e.account_id
         where a.festival_id = $1 and a.kind = 'OFFLINE_LOSS'",
    )
    .bind(f.id)
    .fetch_one(&env.app.pool)
    .await
    .expect("loss")
}

/// The kinds of the festival's offline exceptions, newest first.
async fn exception_kinds(env: &Env, f: &Festival) -> Vec<String> {
    env.client()
        .list_offline_exceptions(authed(
            pb::ListOfflineExceptionsRequest { festival_id: f.id.to_string(), ..Default::default() },
            &f.organizer,
        ))
        .await
        .expect("exceptions")
        .into_inner()
        .exceptions
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn outcomes(r: &pb::UploadOfflineChargesResponse) -> Vec<(i64, i32)> {
    r.results.iter().map(|x| (x.sequence, x.outcome)).collect()
}

/// The same charges, signed again in another order or as a part.
fn resigned(t: &OfflineTerminal, key: &SigningKey, charges: Vec<pb::OfflineCharge>) -> pb::UploadOfflineChargesRequest {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let template = pb::OfflineChargeBatch::decode(t.till.upload(0).batch.as_slice()).expect("batch");
    let batch = pb::OfflineChargeBatch { charges, ..template }.encode_to_vec();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.sign(&batch).to_bytes());
    pb::UploadOfflineChargesRequest { festival_id: t.till.upload(0).festival_id, batch, signature }
}

#[tokio::test]
async fn offline_charges_apply_once_in_any_order_with_gaps_reported() {
    let env = spawn().await;
    let f = env.festival().await;
    let band = env.band(&f, 5_000).await;
    let mut bar = offline_terminal(&env, &f).await;
    let seqs: Vec<i64> = [(1_000, 0), (500, 1), (700, 2)]
        .iter()
        .map(|&(a, m)| tap(&mut bar, &band.soft, a, m).expect("offline charge"))
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let kept = bar.till.kept().to_vec();

    // The last one first: the two before it are a gap until they come.
    let last = upload(&env, &bar, resigned(&bar, &bar.key, vec![kept[2].clone()])).await.expect("upload");
    assert_eq!(outcomes(&last), vec![(3, pb::OfflineOutcome::Applied as i32)]);
    assert_eq!(last.gaps, vec![pb::SequenceGap { first: 1, last: 2 }]);
    // Then the others, in reverse order.
    let rest =
        upload(&env, &bar, resigned(&bar, &bar.key, vec![kept[1].clone(), kept[0].clone()])).await.expect("upload");
    assert_eq!(outcomes(&rest), vec![(2, pb::OfflineOutcome::Applied as i32), (1, pb::OfflineOutcome::Applied as i32)]);
    assert!(rest.gaps.is_empty());
    // The whole batch again (an answer lost, sent twice): nothing moves.
    let again = upload(&env, &bar, bar.till.upload(10)).await.expect("replay");
    assert_eq!((again.applied, again.duplicates, again.flagged), (0, 3, 0));
    bar.till.settle(&again);
    assert!(bar.till.kept().is_empty());
    assert_eq!(env.wallet(&band).await.balance_minor, 5_000 - 2_200);
    // Booked upload by upload, and within an upload in the order the charges were made:
    // the third charge came first (5,000 → 4,300), then the first (→ 3,300) before the
    // second (→ 2,800). The statement lists them by when they were made, newest first:
    // the top-up (now), then the charges half an hour ago.
    let statement = env
        .client()
        .list_transactions(authed(
            pb::ListTransactionsRequest { wallet_id: band.wallet_id.to_string(), ..Default::default() },
            &band.holder,
        ))
        .await
        .expect("statement")
        .into_inner();
    let afters: Vec<i64> = statement.transactions.iter().map(|t| t.balance_after_minor).collect();
    assert_eq!(afters, vec![5_000, 4_300, 2_800, 3_300]);

    // The sequence goes on from the server's count: a charge lost on the terminal (4)
    // shows as a gap.
    let next = snapshot(&env, &f, &bar.terminal).await;
    assert_eq!(next.next_sequence, 4);
    bar.till.refresh(&next);
    tap(&mut bar, &band.soft, 100, 3).expect("4");
    tap(&mut bar, &band.soft, 100, 4).expect("5");
    let only_five = resigned(&bar, &bar.key, vec![bar.till.kept()[1].clone()]);
    let answer = upload(&env, &bar, only_five).await.expect("upload");
    assert_eq!(answer.gaps, vec![pb::SequenceGap { first: 4, last: 4 }]);
    // A batch re-encoded without its signature is a tampered batch.
    let mut req = bar.till.upload(2);
    let mut batch = pb::OfflineChargeBatch::decode(req.batch.as_slice()).expect("batch");
    batch.charges[0].amount_minor = 1;
    req.batch = batch.encode_to_vec();
    assert_eq!(code(upload(&env, &bar, req).await), "ERR_8012");
    let answer = upload(&env, &bar, bar.till.upload(2)).await.expect("upload");
    assert_eq!((answer.applied, answer.duplicates), (1, 1));
    assert!(answer.gaps.is_empty());
    let report = env.assert_ledger(&f).await;
    assert_eq!(report.transactions, 6, "a top-up and five charges");
    // Each booked charge told the others, once.
    let recorded = env.app.published::<pb::TransactionRecorded>().await;
    let offline = recorded.iter().filter(|e| e.actor_id == bar.terminal.device_id.to_string()).count();
    assert_eq!(offline, 5);
    env.app.stop().await;
}

#[tokio::test]
async fn a_tampered_or_foreign_upload_is_refused_whole() {
    let env = spawn().await;
    let f = env.festival().await;
    let other = env.festival().await;
    let band = env.band(&f, 5_000).await;
    let mut bar = offline_terminal(&env, &f).await;
    let mut foreign = offline_terminal(&env, &other).await;
    tap(&mut bar, &band.soft, 1_000, 0).expect("charge");
    tap(&mut bar, &band.soft, 1_000, 1).expect("charge");

    // One byte flipped: refused whole.
    let mut flipped = bar.till.upload(10);
    let last = flipped.batch.len() - 1;
    flipped.batch[last] ^= 1;
    assert_eq!(code(upload(&env, &bar, flipped).await), "ERR_8012");
    // Signed by another device's key.
    let stranger = SigningKey::generate(&mut rand::rngs::OsRng);
    let kept = bar.till.kept().to_vec();
    assert_eq!(code(upload(&env, &bar, resigned(&bar, &stranger, kept)).await), "ERR_8012");
    // Another festival's terminal uploading this one's batch: a stranger here.
    assert_eq!(code(upload(&env, &foreign, bar.till.upload(10)).await), "ERR_3002");
    tap(&mut foreign, &env.band(&other, 500).await.soft, 100, 0).expect("charge at B");
    // Another terminal's genuine batch, uploaded as this one's: not signed by its key.
    let mut theirs = foreign.till.upload(10);
    theirs.festival_id = f.id.to_string();
    assert_eq!(code(upload(&env, &bar, theirs).await), "ERR_8012");
    // A person is no terminal.
    let person = env.client().upload_offline_charges(authed(bar.till.upload(10), &f.organizer)).await;
    assert_eq!(code(person), "ERR_8010");

    assert_eq!(env.wallet(&band).await.balance_minor, 5_000, "nothing applied");
    let answer = upload(&env, &bar, bar.till.upload(10)).await.expect("the genuine upload");
    assert_eq!(answer.applied, 2);
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn an_overdraw_is_booked_flagged_and_the_band_blocked_at_the_next_sync() {
    let env = spawn().await;
    let f = env.festival().await;
    env.settings(&f, |s| s.offline_limit_minor = 3_000).await;
    let band = env.band(&f, 1_000).await;
    let mut bar = offline_terminal(&env, &f).await;
    // Offline, the till does not know the balance: up to the offline limit it charges.
    tap(&mut bar, &band.soft, 2_500, 0).expect("charged offline");
    assert_eq!(tap(&mut bar, &band.soft, 501, 1), Err(TillRefusal::OverOfflineLimit));
    let answer = upload(&env, &bar, bar.till.upload(10)).await.expect("upload");
    assert_eq!(outcomes(&answer), vec![(1, pb::OfflineOutcome::Overdrawn as i32)]);
    assert_eq!(answer.results[0].shortfall_minor, 1_500);
    assert_eq!(env.wallet(&band).await.balance_minor, 0, "never below zero");

    let exceptions = env
        .client()
        .list_offline_exceptions(authed(
            pb::ListOfflineExceptionsRequest { festival_id: f.id.to_string(), ..Default::default() },
            &f.organizer,
        ))
        .await
        .expect("exceptions")
        .into_inner()
        .exceptions;
    assert_eq!(exceptions.len(), 1);
    assert_eq!((exceptions[0].kind.as_str(), exceptions[0].shortfall_minor), ("OVERDRAWN", 1_500));
    assert_eq!(exceptions[0].wallet_id, band.wallet_id.to_string());
    // Blocked: the next snapshot lists it, and online charges refuse it.
    let next = snapshot(&env, &f, &bar.terminal).await;
    assert_eq!(next.blocked_uids, vec![band.uid()]);
    bar.till.refresh(&next);
    assert_eq!(tap(&mut bar, &band.soft, 100, 2), Err(TillRefusal::Blocked));
    let online = env.terminal(&f).await;
    assert_eq!(charge_code(&env, &online, charge(&f, &online, &band.soft, 100, "after")).await, "ERR_8007");
    // The vendor is paid in full; the shortfall sits in the offline-loss account.
    let loss = offline_loss(&env, &f).await;
    assert_eq!(loss, 1_500);
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn a_cloned_band_is_refused_or_flagged_and_the_loss_stays_within_the_offline_limit() {
    let env = spawn().await;
    let f = env.festival().await;
    env.settings(&f, |s| s.offline_limit_minor = 3_000).await;
    let band = env.band(&f, 3_000).await;
    let mut north = offline_terminal(&env, &f).await;
    let mut south = offline_terminal(&env, &f).await;
    // The band and its clone (a perfect copy, key included) at two bars, minutes apart.
    tap(&mut north, &band.soft, 2_000, 0).expect("north");
    tap(&mut south, &band.soft, 2_000, 2).expect("south");
    // A clone without the key is refused offline already.
    let keyless = SoftBand::personalised(
        band.soft.uid.clone(),
        festival_platform::nfc::BandKey::from_bytes(&[9; 16]).expect("key"),
    );
    assert_eq!(tap(&mut south, &keyless, 100, 3), Err(TillRefusal::BadTap));

    let n = upload(&env, &north, north.till.upload(10)).await.expect("north upload");
    assert_eq!(outcomes(&n), vec![(1, pb::OfflineOutcome::Applied as i32)]);
    let s = upload(&env, &south, south.till.upload(10)).await.expect("south upload");
    assert_eq!(s.flagged, 1);
    assert_eq!(s.results[0].shortfall_minor, 1_000, "the loss: what the wallet could not cover");
    let kinds = exception_kinds(&env, &f).await;
    assert_eq!(kinds, vec!["OVERDRAWN".to_owned()]);
    assert_eq!(snapshot(&env, &f, &north.terminal).await.blocked_uids, vec![band.uid()]);

    // A terminal that uploads a tap the band never made (its proof is wrong): refused,
    // on record, nothing booked.
    let forged = pb::OfflineCharge {
        sequence: 2,
        uid: band.uid(),
        amount_minor: 900,
        currency: "EUR".into(),
        charged_at: Some(festival_platform::convert::timestamp(Utc::now())),
        tap_proof: "00".repeat(16),
        min_age: 0,
    };
    let other_band = env.band(&f, 1_000).await;
    let seen = pb::OfflineCharge {
        sequence: 3,
        uid: other_band.uid(),
        amount_minor: 100,
        currency: "EUR".into(),
        charged_at: Some(festival_platform::convert::timestamp(Utc::now())),
        tap_proof: {
            let challenge = festival_platform::nfc::offline_challenge(
                f.id.as_bytes(),
                north.terminal.device_id.as_bytes(),
                3,
                100,
                "EUR",
            );
            other_band.soft.tap(&challenge).iter().map(|b| format!("{b:02x}")).collect()
        },
        min_age: 0,
    };
    let answer = upload(&env, &north, resigned(&north, &north.key, vec![forged, seen])).await.expect("upload");
    assert_eq!(
        outcomes(&answer),
        vec![(2, pb::OfflineOutcome::Refused as i32), (3, pb::OfflineOutcome::Applied as i32)]
    );
    assert_eq!(answer.results[0].reason, "BAD_TAP");
    assert_eq!(env.wallet(&other_band).await.balance_minor, 900);
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn what_offline_let_through_is_bounded_flagged_and_on_record() {
    let env = spawn().await;
    let f = env.festival().await;
    env.settings(&f, |s| s.offline_limit_minor = 1_000).await;
    let rich = env.band(&f, 10_000).await;
    let empty = env.band(&f, 0).await;
    let lost = env.band(&f, 5_000).await;
    let mut north = offline_terminal(&env, &f).await;
    let mut south = offline_terminal(&env, &f).await;

    // A band with money, at two bars within minutes: booked, flagged for review, not blocked.
    tap(&mut north, &rich.soft, 400, 0).expect("north");
    tap(&mut south, &rich.soft, 400, 3).expect("south");
    // An empty band at both: the festival pays at most the offline limit for it, in all.
    tap(&mut north, &empty.soft, 800, 1).expect("north");
    tap(&mut south, &empty.soft, 800, 4).expect("south");
    // A band reported lost before the till (with an older snapshot) took it.
    env.client()
        .block_wristband(authed(
            pb::BlockWristbandRequest { festival_id: f.id.to_string(), uid: lost.uid(), reason: "lost".into() },
            &lost.holder,
        ))
        .await
        .expect("block");
    tap(&mut south, &lost.soft, 300, 31).expect("south, offline, unaware");

    let n = upload(&env, &north, north.till.upload(10)).await.expect("north");
    assert_eq!(outcomes(&n), vec![(1, pb::OfflineOutcome::Applied as i32), (2, pb::OfflineOutcome::Overdrawn as i32)]);
    assert_eq!(n.results[1].shortfall_minor, 800);
    let s = upload(&env, &south, south.till.upload(10)).await.expect("south");
    let reasons: Vec<(i32, &str, i64)> =
        s.results.iter().map(|r| (r.outcome, r.reason.as_str(), r.shortfall_minor)).collect();
    assert_eq!(
        reasons,
        vec![
            (pb::OfflineOutcome::Flagged as i32, "SEEN_ELSEWHERE", 0),
            // 200 of the band's 1,000 allowance was left: 600 is nobody's, not booked.
            (pb::OfflineOutcome::Overdrawn as i32, "UNFUNDED", 800),
            // The holder's wallet pays nothing for a thief's charge.
            (pb::OfflineOutcome::Flagged as i32, "BLOCKED_BAND", 300),
        ]
    );
    assert_eq!(env.wallet(&rich).await.balance_minor, 9_200);
    assert_eq!(env.wallet(&lost).await.balance_minor, 5_000);
    let loss = offline_loss(&env, &f).await;
    assert_eq!(loss, 800 + 200 + 300, "the empty band cost the offline limit, the lost one its charge");
    let blocked = snapshot(&env, &f, &north.terminal).await.blocked_uids;
    assert!(blocked.contains(&empty.uid()) && blocked.contains(&lost.uid()), "{blocked:?}");
    assert!(!blocked.contains(&rich.uid()), "seen at two bars is not proof");

    // A tampered till: above the per-charge limit, and a sequence number reused for
    // another charge. Refused, on record.
    env.settings(&f, |s| s.max_charge_minor = 500).await;
    let mut big = north.till.kept().to_vec();
    big.clear();
    let challenge =
        festival_platform::nfc::offline_challenge(f.id.as_bytes(), north.terminal.device_id.as_bytes(), 7, 900, "EUR");
    let charge_at = |seq: i64, amount: i64, band: &SoftBand| pb::OfflineCharge {
        sequence: seq,
        uid: band.uid.to_hex(),
        amount_minor: amount,
        currency: "EUR".into(),
        charged_at: Some(festival_platform::convert::timestamp(Utc::now())),
        tap_proof: band
            .tap(&festival_platform::nfc::offline_challenge(
                f.id.as_bytes(),
                north.terminal.device_id.as_bytes(),
                seq,
                amount,
                "EUR",
            ))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        min_age: 0,
    };
    let _ = challenge;
    let answer = upload(
        &env,
        &north,
        resigned(&north, &north.key, vec![charge_at(7, 900, &rich.soft), charge_at(1, 50, &rich.soft)]),
    )
    .await
    .expect("upload");
    let reasons: Vec<&str> = answer.results.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons, vec!["OVER_MAX_CHARGE", "SEQUENCE_REUSED"]);
    assert!(answer.results.iter().all(|r| r.outcome == pb::OfflineOutcome::Refused as i32));
    assert_eq!(env.wallet(&rich).await.balance_minor, 9_200);

    // A terminal moved to another vendor uploads under the vendor it charged for.
    tap(&mut north, &rich.soft, 100, 6).expect("charge");
    env.client()
        .register_terminal(authed(
            pb::RegisterTerminalRequest {
                festival_id: f.id.to_string(),
                device_id: north.terminal.device_id.to_string(),
                vendor_id: Uuid::now_v7().to_string(),
                label: "Moved".into(),
            },
            &f.organizer,
        ))
        .await
        .expect("moved");
    assert_eq!(code(upload(&env, &north, north.till.upload(10)).await), "ERR_8012");

    let kinds = exception_kinds(&env, &f).await;
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["BLOCKED_BAND", "OVERDRAWN", "OVER_MAX_CHARGE", "SEEN_ELSEWHERE", "SEQUENCE_REUSED", "UNFUNDED"]
    );
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

/// Two terminals back online at once, each with charges of the same empty band: the
/// wallet's lock orders the two uploads, so the second sees the first's loss and the
/// festival never pays more than the offline limit for the band.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_uploads_of_one_band_never_cost_more_than_the_offline_limit() {
    let env = std::sync::Arc::new(spawn().await);
    let f = env.festival().await;
    env.settings(&f, |s| s.offline_limit_minor = 1_000).await;
    let mut north = offline_terminal(&env, &f).await;
    let mut south = offline_terminal(&env, &f).await;
    let mut bands = Vec::new();
    for round in 0..4 {
        let band = env.band(&f, 0).await;
        tap(&mut north, &band.soft, 800, round).expect("north");
        tap(&mut south, &band.soft, 800, round + 1).expect("south");
        bands.push(band);
    }
    let (n, s) = (north.till.upload(10), south.till.upload(10));
    let (nt, st) = (north.terminal.token.clone(), south.terminal.token.clone());
    let answers = all_at_once(vec![
        {
            let env = env.clone();
            Box::pin(
                async move { env.client().upload_offline_charges(authed(n, &nt)).await.expect("north").into_inner() },
            )
                as std::pin::Pin<Box<dyn std::future::Future<Output = pb::UploadOfflineChargesResponse> + Send>>
        },
        {
            let env = env.clone();
            Box::pin(
                async move { env.client().upload_offline_charges(authed(s, &st)).await.expect("south").into_inner() },
            )
        },
    ])
    .await;
    assert_eq!(answers.len(), 2);
    for band in &bands {
        let loss: i64 =
            sqlx::query_scalar("select coalesce(sum(loss_minor), 0)::bigint from offline_uploads where uid = $1")
                .bind(band.uid())
                .fetch_one(&env.app.pool)
                .await
                .expect("loss");
        assert_eq!(loss, 1_000, "the band's loss is its offline limit, once");
    }
    env.assert_ledger(&f).await;
}

#[tokio::test]
async fn age_levels_hold_offline_and_a_till_that_ignored_them_is_flagged() {
    use chrono::Months;
    let env = spawn().await;
    let f = env.festival().await;
    let (adult, teen, unverified) = (env.band(&f, 5_000).await, env.band(&f, 5_000).await, env.band(&f, 5_000).await);
    let today = Utc::now().with_timezone(&chrono_tz::Europe::Paris).date_naive();
    let years = |n: u32| today.checked_sub_months(Months::new(n * 12)).expect("date").to_string();
    for (band, born) in [(&adult, years(40)), (&teen, years(17))] {
        let verify = pb::VerifyAgeRequest { festival_id: f.id.to_string(), uid: band.uid(), birth_date: born };
        env.client().verify_age(authed(verify, &f.cashier)).await.expect("verified at the desk");
    }
    let mut bar = offline_terminal(&env, &f).await;
    let snap = snapshot(&env, &f, &bar.terminal).await;
    let mut levels: Vec<(String, i32)> = snap.band_ages.iter().map(|b| (b.uid.clone(), b.level)).collect();
    levels.sort();
    let mut expected = vec![(adult.uid(), 18), (teen.uid(), 16)];
    expected.sort();
    assert_eq!(levels, expected, "levels only, of verified bands only");
    bar.till.refresh(&snap);

    let at = Utc::now() - TimeDelta::minutes(10);
    let sell = |t: &mut OfflineTerminal, band: &Band, level: i32| {
        let proof = band.soft.tap(&t.till.challenge(800));
        t.till.charge_product(&band.soft.uid, 800, level, &proof, at)
    };
    assert_eq!(sell(&mut bar, &teen, 18), Err(TillRefusal::AgeRestricted), "spirits refused offline");
    assert_eq!(sell(&mut bar, &unverified, 16), Err(TillRefusal::AgeRestricted));
    let spirits = sell(&mut bar, &adult, 18).expect("spirits for an adult");
    let beer = sell(&mut bar, &teen, 16).expect("beer at 16");
    let answer = upload(&env, &bar, bar.till.upload(100)).await.expect("upload");
    let applied = pb::OfflineOutcome::Applied as i32;
    assert_eq!(outcomes(&answer), vec![(spirits, applied), (beer, applied)]);

    // A till that did not check (an old app, a tampered one) sold spirits to the teen and
    // beer to the unverified band: booked (it was served), flagged for the organisers.
    let mut kept = Vec::new();
    for (band, level) in [(&teen, 18), (&unverified, 16)] {
        let proof = band.soft.tap(&bar.till.challenge(800));
        let seq = bar.till.charge(&band.soft.uid, 800, &proof, at).expect("no level asked");
        let mut charge = bar.till.kept().iter().find(|c| c.sequence == seq).expect("kept").clone();
        charge.min_age = level;
        kept.push(charge);
    }
    let answer = upload(&env, &bar, resigned(&bar, &bar.key, kept.clone())).await.expect("upload");
    let flagged = pb::OfflineOutcome::Flagged as i32;
    assert_eq!(outcomes(&answer), kept.iter().map(|c| (c.sequence, flagged)).collect::<Vec<_>>());
    assert_eq!(exception_kinds(&env, &f).await, vec!["UNDERAGE", "UNDERAGE"]);
    assert_eq!(env.wallet(&teen).await.balance_minor, 5_000 - 2 * 800, "booked all the same");
    // A level no product has is a malformed batch, refused whole.
    let mut odd = kept[0].clone();
    odd.sequence = 99;
    odd.min_age = 22;
    assert_eq!(code(upload(&env, &bar, resigned(&bar, &bar.key, vec![odd])).await), "ERR_1000");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}
