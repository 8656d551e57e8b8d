//! Real services together, without the gateway: what one service's suite cannot show
//! with the test kit's token issuer standing in for identity.

mod purchase;
mod sessions;
mod top_up;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey};
use festival_identity::Identity;
use festival_platform::convert::timestamp;
use festival_proto::identity::v1 as id;
use festival_proto::identity::v1::identity_service_client::IdentityServiceClient;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use festival_proto::ticketing::v1::ticketing_service_client::TicketingServiceClient;
use festival_testkit::{TestApp, authed, code};
use festival_ticketing::Ticketing;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

async fn signed_in(
    c: &mut IdentityServiceClient<tonic::transport::Channel>,
    admin: bool,
    app: &TestApp<Identity>,
) -> id::TokenPair {
    let email = format!("mesh-{}@example.org", festival_testkit::unique_name());
    c.register(id::RegisterRequest { email: email.clone(), password: PASSWORD.into(), ..Default::default() })
        .await
        .expect("register");
    if admin {
        let mut conn = app.pool.acquire().await.expect("conn");
        festival_identity::store::users::set_role(&mut conn, &email, festival_platform::auth::Role::Admin)
            .await
            .expect("admin");
    }
    c.login(id::LoginRequest { email, password: PASSWORD.into(), ..Default::default() })
        .await
        .expect("login")
        .into_inner()
}

/// A gate scanner paired through identity scans at ticketing with the device token
/// identity issued, and stops the moment identity revokes it.
#[tokio::test]
async fn a_scanner_paired_through_identity_scans_at_ticketing_until_identity_revokes_it() {
    festival_testkit::init_tracing();
    let identity = TestApp::<Identity>::spawn().await;
    // Ticketing on the same NATS subject prefix, verifying tokens with identity's keys.
    let mut config = <Ticketing as festival_platform::server::Service>::default_config();
    festival_testkit::isolate(&mut config.common, &identity.name);
    config.common.auth.identity_url = format!("http://{}", identity.addr);
    let ticketing = TestApp::<Ticketing>::start(config, identity.name.clone()).await;
    let mut ids = IdentityServiceClient::new(identity.channel.clone());
    let mut tix = TicketingServiceClient::new(ticketing.channel.clone());

    // An organiser of a published festival (program's event, as program sends it).
    let festival = Uuid::now_v7();
    let admin = signed_in(&mut ids, true, &identity).await;
    let organiser = signed_in(&mut ids, false, &identity).await;
    ids.grant_membership(authed(
        id::GrantMembershipRequest {
            festival_id: festival.to_string(),
            user_id: organiser.user.as_ref().expect("user").id.clone(),
            role: id::Role::Organizer as i32,
        },
        &admin.access_token,
    ))
    .await
    .expect("grant");
    let organiser = ids
        .refresh(id::RefreshRequest { refresh_token: organiser.refresh_token })
        .await
        .expect("refresh")
        .into_inner()
        .access_token;
    festival_testkit::announce_festival(&ticketing.naming(), festival, "Mesh", program::FestivalStatus::Published)
        .await;
    let category = festival_testkit::eventually(Duration::from_secs(15), || {
        let (mut tix, token) = (tix.clone(), organiser.clone());
        async move {
            tix.create_category(authed(
                pb::CreateCategoryRequest {
                    festival_id: festival.to_string(),
                    name: "GA".into(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .is_ok()
        }
    })
    .await;
    assert!(category, "ticketing never heard of the festival");
    let category_id = tix
        .list_categories(pb::ListCategoriesRequest { festival_id: festival.to_string(), ..Default::default() })
        .await
        .expect("categories")
        .into_inner()
        .categories[0]
        .id
        .clone();
    tix.create_quota(authed(
        pb::CreateQuotaRequest {
            festival_id: festival.to_string(),
            name: "GA capacity".into(),
            size: 10,
            category_ids: vec![category_id.clone()],
        },
        &organiser,
    ))
    .await
    .expect("quota");
    let sell = || pb::CreateOrderRequest {
        festival_id: festival.to_string(),
        category_id: category_id.clone(),
        quantity: 1,
        payment_method: pb::PaymentMethod::Cash as i32,
        idempotency_key: Uuid::now_v7().to_string(),
        ..Default::default()
    };
    let first =
        tix.create_order(authed(sell(), &organiser)).await.expect("sold").into_inner().tickets[0].credential.clone();
    let second =
        tix.create_order(authed(sell(), &organiser)).await.expect("sold").into_inner().tickets[0].credential.clone();

    // The organiser registers the scanner; the scanner pairs with its own key and asks
    // for a token with a signed proof.
    let created = ids
        .create_device(authed(
            id::CreateDeviceRequest {
                festival_id: festival.to_string(),
                name: "North 1".into(),
                gate: "north".into(),
                level: id::DeviceLevel::Steward as i32,
            },
            &organiser,
        ))
        .await
        .expect("device")
        .into_inner();
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let device = ids
        .pair_device(id::PairDeviceRequest {
            pairing_code: created.pairing_code,
            public_key: URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
        })
        .await
        .expect("pair")
        .into_inner();
    let now = chrono::Utc::now();
    let proof = format!("festival-device-token:v1:{}:{}", device.id, now.timestamp());
    let token = ids
        .issue_device_token(id::IssueDeviceTokenRequest {
            device_id: device.id.clone(),
            sign_time: Some(timestamp(now)),
            signature: URL_SAFE_NO_PAD.encode(key.sign(proof.as_bytes()).to_bytes()),
        })
        .await
        .expect("device token")
        .into_inner()
        .access_token;

    let scan = |credential: &str| pb::RedeemRequest {
        festival_id: festival.to_string(),
        credential: credential.into(),
        ..Default::default()
    };
    let admitted = tix.redeem(authed(scan(&first), &token)).await.expect("the scanner admits").into_inner();
    assert_eq!(admitted.gate, "north");
    assert_eq!(code(tix.redeem(authed(scan(&first), &token)).await), "ERR_6001");
    // Its token opens nothing a person's would.
    assert_eq!(code(ids.get_me(authed(id::GetMeRequest {}, &token)).await), "ERR_2002");
    assert_eq!(code(tix.list_my_tickets(authed(pb::ListMyTicketsRequest::default(), &token)).await), "ERR_2002");

    ids.revoke_device(authed(
        id::RevokeDeviceRequest { festival_id: festival.to_string(), device_id: device.id.clone() },
        &organiser,
    ))
    .await
    .expect("revoke");
    // Re-scanning the used ticket: ERR_6001 until ticketing hears of the revocation
    // (within the event's delivery), ERR_2010 from then on.
    let refused = festival_testkit::eventually(Duration::from_secs(15), || {
        let (mut tix, request, token) = (tix.clone(), scan(&first), token.clone());
        async move { festival_testkit::outcome(tix.redeem(authed(request, &token)).await) == "ERR_2010" }
    })
    .await;
    assert!(refused, "ticketing kept accepting a revoked scanner");
    assert_eq!(code(tix.redeem(authed(scan(&second), &token)).await), "ERR_2010");
    let tickets_inside: i64 = sqlx::query_scalar("select count(*) from ticket_presence where inside")
        .fetch_one(&ticketing.pool)
        .await
        .expect("count");
    assert_eq!(tickets_inside, 1, "the second ticket never got in");
}
