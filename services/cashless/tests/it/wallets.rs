//! Wallets and wristbands: one wallet per holder and festival, bands bound once and only
//! by whoever holds them, blocked by their holder or the staff, and nobody else's
//! business.

use std::time::Duration;

use festival_proto::cashless::v1 as pb;
use festival_proto::ticketing::v1 as ticketing;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn a_holder_has_one_wallet_per_festival_with_several_bands() {
    let env = spawn().await;
    let f = env.festival().await;
    let (holder_id, holder) = env.issuer.user();
    let client = env.client();
    let opened = all_at_once(
        (0..4)
            .map(|_| {
                let (mut client, holder) = (client.clone(), holder.clone());
                let req = pb::OpenWalletRequest { festival_id: f.id.to_string() };
                async move { client.open_wallet(authed(req, &holder)).await.expect("open").into_inner().id }
            })
            .collect(),
    )
    .await;
    assert_eq!(opened.len(), 4);
    assert!(opened.iter().all(|id| *id == opened[0]), "twins opened one wallet: {opened:?}");
    let mut client = env.client();

    // A family: two bands on one wallet, each bound by tapping it.
    let (first, second) = (env.new_band(&f).await, env.new_band(&f).await);
    for band in [&first, &second] {
        let bound =
            client.bind_wristband(authed(bind(&f, &opened[0], band), &holder)).await.expect("bind").into_inner();
        assert_eq!(bound.bound_by, holder_id.to_string());
        assert_eq!(bound.status, pb::WristbandStatus::Active as i32);
    }
    let wallet = client
        .get_wallet(authed(pb::GetWalletRequest { wallet_id: opened[0].clone() }, &holder))
        .await
        .expect("wallet")
        .into_inner();
    assert_eq!(wallet.wristbands.len(), 2);
    assert_eq!(wallet.currency, "EUR");
    assert_eq!(wallet.status, pb::WalletStatus::Active as i32);

    // A band is bound once, to one wallet, even by someone holding it.
    let other = env.band(&f, 0).await;
    let again = client.bind_wristband(authed(bind(&f, &other.wallet_id.to_string(), &first), &other.holder)).await;
    assert_eq!(code(again), "ERR_8004");
    // Lower-case hex names the same band.
    let mut lower = bind(&f, &opened[0], &first);
    lower.uid = lower.uid.to_lowercase();
    assert_eq!(code(client.bind_wristband(authed(lower, &holder)).await), "ERR_8004");
    // A bound band's key is no longer handed out.
    let provision = pb::ProvisionWristbandRequest { festival_id: f.id.to_string(), uid: first.uid.to_hex() };
    assert_eq!(code(client.provision_wristband(authed(provision, &f.organizer)).await), "ERR_8004");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn a_uid_read_from_afar_binds_nothing() {
    let env = spawn().await;
    let f = env.festival().await;
    let thief = env.band(&f, 0).await;
    let victims_band = env.new_band(&f).await;
    let mut client = env.client();
    let wallet = thief.wallet_id.to_string();
    // The UID, copied, with a proof made by another band or for another wallet.
    let decoy = env.new_band(&f).await;
    let mut forged = bind(&f, &wallet, &decoy);
    forged.uid = victims_band.uid.to_hex();
    assert_eq!(code(client.bind_wristband(authed(forged, &thief.holder)).await), "ERR_8008");
    let mut elsewhere = bind(&f, &Uuid::now_v7().to_string(), &victims_band);
    elsewhere.wallet_id.clone_from(&wallet);
    assert_eq!(code(client.bind_wristband(authed(elsewhere, &thief.holder)).await), "ERR_8008");
    let mut missing = bind(&f, &wallet, &victims_band);
    missing.tap_proof.clear();
    assert_eq!(code(client.bind_wristband(authed(missing, &thief.holder)).await), "ERR_8008");
    // The band stays free for whoever really holds it.
    let owner = env.band(&f, 0).await;
    let bound =
        client.bind_wristband(authed(bind(&f, &owner.wallet_id.to_string(), &victims_band), &owner.holder)).await;
    assert_eq!(festival_testkit::outcome(bound), "OK");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn strangers_neither_see_nor_bind_nor_block_someone_elses_wallet() {
    let env = spawn().await;
    let f = env.festival().await;
    let other = env.festival().await;
    let band = env.band(&f, 2_000).await;
    let (_, stranger) = env.issuer.user();
    let (staff_id, _) = env.issuer.user();
    let staff = env.issuer.member(staff_id, f.id, festival_platform::auth::Role::Staff);
    let mut client = env.client();
    let wallet_id = band.wallet_id.to_string();
    let get = |token: &str| authed(pb::GetWalletRequest { wallet_id: wallet_id.clone() }, token);

    assert_eq!(code(client.get_wallet(get(&stranger)).await), "ERR_4000");
    // Another festival's cashier is a stranger here; this festival's staff bind and block
    // bands but read no balances.
    assert_eq!(code(client.get_wallet(get(&other.cashier)).await), "ERR_4000");
    assert_eq!(code(client.get_wallet(get(&staff)).await), "ERR_4000");
    let seen = client.get_wallet(get(&f.cashier)).await.expect("cashier");
    assert_eq!(seen.into_inner().balance_minor, 2_000);
    let fresh = env.new_band(&f).await;
    assert_eq!(code(client.bind_wristband(authed(bind(&f, &wallet_id, &fresh), &stranger)).await), "ERR_4000");
    // A member of staff binds a band in hand at the gate: on record.
    let bound = client.bind_wristband(authed(bind(&f, &wallet_id, &fresh), &staff)).await.expect("staff binds");
    assert_eq!(bound.into_inner().bound_by, staff_id.to_string());

    let block = |token: &str| {
        authed(
            pb::BlockWristbandRequest { festival_id: f.id.to_string(), uid: band.uid(), reason: "mine now".into() },
            token,
        )
    };
    assert_eq!(code(client.block_wristband(block(&stranger)).await), "ERR_8003");
    assert_eq!(code(client.block_wristband(block(&other.organizer)).await), "ERR_8003");
    let blocked = client.block_wristband(block(&band.holder)).await.expect("holder blocks").into_inner();
    assert_eq!(blocked.status, pb::WristbandStatus::Blocked as i32);
    assert_eq!(blocked.block_reason, "mine now");
    assert_eq!(blocked.blocked_by, band.holder_id.to_string());
    // Blocked again by the staff: the first block's time, author and reason stay.
    let again = client.block_wristband(block(&staff)).await.expect("staff blocks").into_inner();
    assert_eq!((again.blocked_at, again.blocked_by), (blocked.blocked_at, blocked.blocked_by));
    // A blocked band takes no top-up either.
    assert_eq!(code(env.top_up(&f, &band, 1_000).await), "ERR_8007");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn buying_a_ticket_opens_a_wallet() {
    let env = spawn().await;
    let f = env.festival().await;
    let buyer = Uuid::now_v7();
    festival_testkit::publish_event(
        &env.app.naming(),
        &ticketing::OrderPaid {
            order_id: Uuid::now_v7().to_string(),
            festival_id: f.id.to_string(),
            buyer_user_id: buyer.to_string(),
            total_minor: 12_000,
            currency: "EUR".into(),
            ..Default::default()
        },
    )
    .await;
    let opened = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>("select count(*) from wallets where festival_id = $1 and user_id = $2")
            .bind(f.id)
            .bind(buyer)
            .fetch_one(&env.app.pool)
            .await
            .expect("count")
            == 1
    })
    .await;
    assert!(opened, "no wallet for the buyer");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}
