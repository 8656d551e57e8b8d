//! Wallets and wristbands: one wallet per holder and festival, bands bound once,
//! blocked by their holder or the staff, and nobody else's business.

use std::time::Duration;

use festival_proto::cashless::v1 as pb;
use festival_proto::ticketing::v1 as ticketing;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn a_holder_has_one_wallet_per_festival_with_several_bands() {
    let env = spawn().await;
    let f = env.festival().await;
    let (_, holder) = env.issuer.user();
    let mut client = env.client();
    let open = || pb::OpenWalletRequest { festival_id: f.id.to_string() };
    let opened = all_at_once(
        (0..4)
            .map(|_| {
                let mut client = client.clone();
                let holder = holder.clone();
                let req = open();
                async move { client.open_wallet(authed(req, &holder)).await.expect("open").into_inner().id }
            })
            .collect(),
    )
    .await;
    assert_eq!(opened.len(), 4);
    assert!(opened.iter().all(|id| *id == opened[0]), "twins opened one wallet: {opened:?}");

    // A family: two bands on one wallet.
    let (first, second) = (env.new_band(&f).await, env.new_band(&f).await);
    for band in [&first, &second] {
        client
            .bind_wristband(authed(
                pb::BindWristbandRequest { wallet_id: opened[0].clone(), uid: band.uid.to_hex() },
                &holder,
            ))
            .await
            .expect("bind");
    }
    let wallet = client
        .get_wallet(authed(pb::GetWalletRequest { wallet_id: opened[0].clone() }, &holder))
        .await
        .expect("wallet")
        .into_inner();
    assert_eq!(wallet.wristbands.len(), 2);
    assert_eq!(wallet.currency, "EUR");
    assert_eq!(wallet.status, pb::WalletStatus::Active as i32);

    // A band is bound once, to one wallet, whoever asks.
    let other = env.band(&f, 0).await;
    let again = client
        .bind_wristband(authed(
            pb::BindWristbandRequest { wallet_id: other.wallet_id.to_string(), uid: first.uid.to_hex() },
            &other.holder,
        ))
        .await;
    assert_eq!(code(again), "ERR_8004");
    // Lower-case hex names the same band.
    let lower = client
        .bind_wristband(authed(
            pb::BindWristbandRequest { wallet_id: opened[0].clone(), uid: first.uid.to_hex().to_lowercase() },
            &holder,
        ))
        .await;
    assert_eq!(code(lower), "ERR_8004");
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
    let mut client = env.client();
    let wallet_id = band.wallet_id.to_string();

    assert_eq!(
        code(client.get_wallet(authed(pb::GetWalletRequest { wallet_id: wallet_id.clone() }, &stranger)).await),
        "ERR_4000"
    );
    // Another festival's cashier is a stranger here.
    assert_eq!(
        code(client.get_wallet(authed(pb::GetWalletRequest { wallet_id: wallet_id.clone() }, &other.cashier)).await),
        "ERR_4000"
    );
    // This festival's cashier looks after it.
    let seen = client
        .get_wallet(authed(pb::GetWalletRequest { wallet_id: wallet_id.clone() }, &f.cashier))
        .await
        .expect("cashier");
    assert_eq!(seen.into_inner().balance_minor, 2_000);
    let fresh = env.new_band(&f).await;
    let bind = client
        .bind_wristband(authed(
            pb::BindWristbandRequest { wallet_id: wallet_id.clone(), uid: fresh.uid.to_hex() },
            &stranger,
        ))
        .await;
    assert_eq!(code(bind), "ERR_4000");
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
    // Blocked again by the staff: the first block's reason stays.
    let again = client.block_wristband(block(&f.cashier)).await.expect("staff blocks").into_inner();
    assert_eq!(again.blocked_at, blocked.blocked_at);
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
