//! Anonymous wallets (box office): bound only to a band, claimable later with the code
//! printed on the receipt, locked once claimed.

use festival_platform::nfc::{self, SoftBand};
use festival_proto::cashless::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

fn open(f: &Festival, band: &SoftBand, key: &str) -> pb::OpenAnonymousWalletRequest {
    let challenge = nfc::bind_challenge(f.id.as_bytes(), Uuid::nil().as_bytes());
    pb::OpenAnonymousWalletRequest {
        festival_id: f.id.to_string(),
        uid: band.uid.to_hex(),
        tap_proof: band.tap(&challenge).iter().map(|b| format!("{b:02x}")).collect(),
        idempotency_key: key.into(),
    }
}

fn claim(f: &Festival, band: &SoftBand, code: &str) -> pb::ClaimWalletRequest {
    pb::ClaimWalletRequest { festival_id: f.id.to_string(), uid: band.uid.to_hex(), claim_code: code.into() }
}

#[tokio::test]
async fn a_box_office_wallet_is_claimed_once_with_its_code() {
    let env = spawn().await;
    let f = env.festival().await;
    let bar = env.terminal(&f).await;
    let soft = env.new_band(&f).await;
    let mut client = env.client();
    // Only cashiers open them, with the band in hand.
    let stranger = env.issuer.user().1;
    assert_eq!(code(client.open_anonymous_wallet(authed(open(&f, &soft, "a0"), &stranger)).await), "ERR_3002");
    let forged = pb::OpenAnonymousWalletRequest { tap_proof: "00".repeat(16), ..open(&f, &soft, "a0") };
    assert_eq!(code(client.open_anonymous_wallet(authed(forged, &f.cashier)).await), "ERR_8008");

    let opened = client.open_anonymous_wallet(authed(open(&f, &soft, "a1"), &f.cashier)).await.expect("open");
    let opened = opened.into_inner();
    // A retry answers the wallet, not its code (never kept): the desk prints a new one.
    let again = client.open_anonymous_wallet(authed(open(&f, &soft, "a1"), &f.cashier)).await.expect("retry");
    let again = again.into_inner();
    assert_eq!(
        (again.claim_code.as_str(), again.wallet.map(|w| w.id)),
        ("", opened.wallet.as_ref().map(|w| w.id.clone()))
    );
    let reissue = pb::ReissueClaimCodeRequest {
        festival_id: f.id.to_string(),
        uid: soft.uid.to_hex(),
        tap_proof: open(&f, &soft, "").tap_proof,
    };
    let reissued = client.reissue_claim_code(authed(reissue, &f.cashier)).await.expect("reissue").into_inner();
    assert_ne!(reissued.claim_code, opened.claim_code);
    let old_code = opened.claim_code.clone();
    let opened = pb::AnonymousWallet { claim_code: reissued.claim_code, ..opened };
    assert_eq!(code(client.open_anonymous_wallet(authed(open(&f, &soft, "a2"), &f.cashier)).await), "ERR_8004");
    let wallet = opened.wallet.expect("wallet");
    assert_eq!(wallet.user_id, "");
    let band = Band {
        soft: soft.clone(),
        wallet_id: Uuid::parse_str(&wallet.id).expect("id"),
        holder: f.cashier.clone(),
        holder_id: f.cashier_id,
    };
    env.top_up(&f, &band, 3_000).await.expect("cash on it");
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &soft, 500, "beer")).await, "OK");

    // The cashier who sold and loaded it does not claim it.
    let theirs = claim(&f, &soft, &opened.claim_code);
    assert_eq!(code(client.claim_wallet(authed(theirs, &f.cashier)).await), "ERR_3001");
    // A wrong code, the replaced code, or the right code with another band: the same refusal.
    let (fan_id, fan) = env.issuer.user();
    assert_eq!(code(client.claim_wallet(authed(claim(&f, &soft, &old_code), &fan)).await), "ERR_8020");
    assert_eq!(code(client.claim_wallet(authed(claim(&f, &soft, "0000-0000-0000"), &fan)).await), "ERR_8020");
    let other = env.band(&f, 0).await;
    assert_eq!(code(client.claim_wallet(authed(claim(&f, &other.soft, &opened.claim_code), &fan)).await), "ERR_8020");
    let typed = opened.claim_code.to_lowercase().replace('-', " ");
    let mine = client.claim_wallet(authed(claim(&f, &soft, &typed), &fan)).await.expect("claim").into_inner();
    assert_eq!(
        (mine.id.as_str(), mine.user_id.clone(), mine.balance_minor),
        (wallet.id.as_str(), fan_id.to_string(), 2_500)
    );
    // Locked once claimed: the code is spent.
    let thief = env.issuer.user().1;
    assert_eq!(code(client.claim_wallet(authed(claim(&f, &soft, &opened.claim_code), &thief)).await), "ERR_8020");
    assert_eq!(code(client.claim_wallet(authed(claim(&f, &soft, &opened.claim_code), &fan)).await), "ERR_8020");
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn a_holder_with_a_wallet_gets_the_claimed_balance_and_band_moved_into_it() {
    let env = spawn().await;
    let f = env.festival().await;
    let bar = env.terminal(&f).await;
    let own = env.band(&f, 1_000).await;
    let soft = env.new_band(&f).await;
    let mut client = env.client();
    let opened = client.open_anonymous_wallet(authed(open(&f, &soft, "k"), &f.cashier)).await.expect("open");
    let opened = opened.into_inner();
    let anonymous = Band {
        soft: soft.clone(),
        wallet_id: Uuid::parse_str(&opened.wallet.expect("wallet").id).expect("id"),
        holder: f.cashier.clone(),
        holder_id: f.cashier_id,
    };
    env.top_up(&f, &anonymous, 2_000).await.expect("cash");

    let merged = client.claim_wallet(authed(claim(&f, &soft, &opened.claim_code), &own.holder)).await.expect("claim");
    let merged = merged.into_inner();
    assert_eq!((merged.id, merged.balance_minor, merged.wristbands.len()), (own.wallet_id.to_string(), 3_000, 2));
    let closed = client
        .get_wallet(authed(pb::GetWalletRequest { wallet_id: anonymous.wallet_id.to_string() }, &f.cashier))
        .await
        .expect("anonymous")
        .into_inner();
    assert_eq!((closed.status, closed.balance_minor), (pb::WalletStatus::Closed as i32, 0));
    // The claimed band now pays from the holder's wallet.
    assert_eq!(charge_code(&env, &bar, charge(&f, &bar, &soft, 400, "x")).await, "OK");
    assert_eq!(env.wallet(&own).await.balance_minor, 2_600);
    env.assert_ledger(&f).await;
    env.app.stop().await;
}
