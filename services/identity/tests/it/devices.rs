use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey};
use festival_platform::convert::timestamp;
use festival_proto::identity::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

pub(crate) fn create(festival: Uuid, level: pb::DeviceLevel) -> pb::CreateDeviceRequest {
    pb::CreateDeviceRequest {
        festival_id: festival.to_string(),
        name: "North gate, lane 3".into(),
        gate: "north".into(),
        level: level as i32,
    }
}

pub(crate) fn pair(code: &str, key: &SigningKey) -> pb::PairDeviceRequest {
    pb::PairDeviceRequest {
        pairing_code: code.into(),
        public_key: URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
    }
}

/// The proof a device signs at `at` (Unix seconds).
pub(crate) fn proof(
    device_id: &str,
    key: &SigningKey,
    at: chrono::DateTime<chrono::Utc>,
) -> pb::IssueDeviceTokenRequest {
    let message = format!("festival-device-token:v1:{device_id}:{}", at.timestamp());
    pb::IssueDeviceTokenRequest {
        device_id: device_id.into(),
        sign_time: Some(timestamp(at)),
        signature: URL_SAFE_NO_PAD.encode(key.sign(message.as_bytes()).to_bytes()),
    }
}

#[tokio::test]
async fn a_device_pairs_once_with_its_own_key_and_gets_gate_scoped_tokens_with_single_use_proofs() {
    let app = spawn().await;
    let mut c = client(&app);
    let (festival, organiser) = organiser(&app, &mut c).await;
    let created = c
        .create_device(authed(create(festival, pb::DeviceLevel::Supervisor), &organiser))
        .await
        .expect("create")
        .into_inner();
    let device = created.device.expect("device");
    assert_eq!((device.status, device.level), (pb::DeviceStatus::Pending as i32, pb::DeviceLevel::Supervisor as i32));
    assert!(device.pairing_expire_time.is_some() && device.public_key.is_empty());

    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    // Typed in lower case with spaces: still the code.
    let typed = created.pairing_code.to_lowercase().replace('-', " ");
    let paired = c.pair_device(pair(&typed, &key)).await.expect("pair").into_inner();
    assert_eq!(paired.status, pb::DeviceStatus::Active as i32);
    assert_eq!(paired.public_key, URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()));
    // The code worked once: a second device (a thief who read it) cannot pair with it.
    let thief = SigningKey::generate(&mut rand::rngs::OsRng);
    assert_eq!(code(c.pair_device(pair(&created.pairing_code, &thief)).await), "ERR_2009");

    let now = chrono::Utc::now();
    let issued = c.issue_device_token(proof(&device.id, &key, now)).await.expect("token").into_inner();
    let claims = payload(&issued.access_token);
    assert_eq!(claims["token_use"], "device");
    assert_eq!(claims["sub"], device.id.as_str());
    assert_eq!(claims["fid"], festival.to_string().as_str());
    assert_eq!((claims["gate"].as_str(), claims["lvl"].as_str()), (Some("north"), Some("SUPERVISOR")));
    assert_eq!(claims["dkey"], paired.public_key.as_str());
    assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 600);

    // A device token is not a person's: identity's own RPCs refuse it.
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &issued.access_token)).await), "ERR_2002");
    // A proof works once, and only a later one works next.
    assert_eq!(code(c.issue_device_token(proof(&device.id, &key, now)).await), "ERR_2011");
    assert_eq!(
        code(c.issue_device_token(proof(&device.id, &key, now - chrono::Duration::seconds(1))).await),
        "ERR_2011"
    );
    c.issue_device_token(proof(&device.id, &key, now + chrono::Duration::seconds(1))).await.expect("a later proof");
    // Signed by another key, or too old, or too far ahead: refused.
    let later = now + chrono::Duration::seconds(2);
    assert_eq!(code(c.issue_device_token(proof(&device.id, &thief, later)).await), "ERR_2011");
    assert_eq!(
        code(c.issue_device_token(proof(&device.id, &key, now - chrono::Duration::seconds(90))).await),
        "ERR_2011"
    );
    assert_eq!(
        code(c.issue_device_token(proof(&device.id, &key, now + chrono::Duration::seconds(90))).await),
        "ERR_2011"
    );
    let mut garbage = proof(&device.id, &key, later);
    garbage.signature = "not-a-signature".into();
    assert_eq!(code(c.issue_device_token(garbage).await), "ERR_2011");
    // An unknown device is told apart from nothing.
    assert_eq!(code(c.issue_device_token(proof(&Uuid::now_v7().to_string(), &key, later)).await), "ERR_2011");

    // Revoked: no more tokens, at once, and the services hear it.
    let revoked = c
        .revoke_device(authed(
            pb::RevokeDeviceRequest { festival_id: festival.to_string(), device_id: device.id.clone() },
            &organiser,
        ))
        .await
        .expect("revoke")
        .into_inner();
    assert_eq!(revoked.status, pb::DeviceStatus::Revoked as i32);
    assert_eq!(code(c.issue_device_token(proof(&device.id, &key, later)).await), "ERR_2010");
    let event = app.last_event::<pb::DeviceRevoked>().await;
    assert_eq!((event.device_id.as_str(), event.festival_id.clone()), (device.id.as_str(), festival.to_string()));

    let listed = c
        .list_devices(authed(pb::ListDevicesRequest { festival_id: festival.to_string() }, &organiser))
        .await
        .expect("list")
        .into_inner()
        .devices;
    assert_eq!(
        listed.iter().map(|d| (d.id.as_str(), d.status)).collect::<Vec<_>>(),
        [(device.id.as_str(), pb::DeviceStatus::Revoked as i32)]
    );
}

#[tokio::test]
async fn a_pending_device_can_be_revoked_and_codes_expire() {
    let app = App::spawn_on_manual_clock(|_| {}).await;
    let mut c = client(&app);
    let (festival, organiser) = organiser(&app, &mut c).await;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);

    let pending = c
        .create_device(authed(create(festival, pb::DeviceLevel::Unspecified), &organiser))
        .await
        .expect("create")
        .into_inner();
    let device = pending.device.expect("device");
    assert_eq!(device.level, pb::DeviceLevel::Steward as i32, "steward by default");
    c.revoke_device(authed(
        pb::RevokeDeviceRequest { festival_id: festival.to_string(), device_id: device.id.clone() },
        &organiser,
    ))
    .await
    .expect("revoke while pending");
    assert_eq!(code(c.pair_device(pair(&pending.pairing_code, &key)).await), "ERR_2009");

    let late = c
        .create_device(authed(create(festival, pb::DeviceLevel::Steward), &organiser))
        .await
        .expect("create")
        .into_inner();
    app.clock.advance(Duration::from_secs(15 * 60 + 1));
    assert_eq!(code(c.pair_device(pair(&late.pairing_code, &key)).await), "ERR_2009");
    assert_eq!(code(c.pair_device(pair("0000-0000-0000-0000", &key)).await), "ERR_2009");
    assert_eq!(code(c.pair_device(pair("not a code", &key)).await), "ERR_2009");
    let mut bad_key = pair(&late.pairing_code, &key);
    bad_key.public_key = URL_SAFE_NO_PAD.encode([0u8; 32]);
    assert_eq!(code(c.pair_device(bad_key).await), "ERR_1000", "a weak key is refused");
}

#[tokio::test]
async fn an_organiser_of_one_festival_cannot_manage_another_s_devices() {
    let app = spawn().await;
    let mut c = client(&app);
    let (festival_a, organiser_a) = organiser(&app, &mut c).await;
    let (festival_b, organiser_b) = organiser(&app, &mut c).await;
    let device = c
        .create_device(authed(create(festival_a, pb::DeviceLevel::Steward), &organiser_a))
        .await
        .expect("create")
        .into_inner()
        .device
        .expect("device");
    assert_eq!(
        code(c.create_device(authed(create(festival_a, pb::DeviceLevel::Steward), &organiser_b)).await),
        "ERR_3002"
    );
    assert_eq!(
        code(
            c.list_devices(authed(pb::ListDevicesRequest { festival_id: festival_a.to_string() }, &organiser_b)).await
        ),
        "ERR_3002"
    );
    // Through their own festival: A's device is not there.
    assert_eq!(
        code(
            c.revoke_device(authed(
                pb::RevokeDeviceRequest { festival_id: festival_b.to_string(), device_id: device.id.clone() },
                &organiser_b,
            ))
            .await
        ),
        "ERR_4000"
    );
    let (_, fan) = signed_in(&mut c).await;
    assert_eq!(
        code(c.create_device(authed(create(festival_a, pb::DeviceLevel::Steward), &fan.access_token)).await),
        "ERR_3002"
    );
    let mut no_gate = create(festival_a, pb::DeviceLevel::Steward);
    no_gate.gate = "  ".into();
    assert_eq!(code(c.create_device(authed(no_gate, &organiser_a)).await), "ERR_1001");
}
