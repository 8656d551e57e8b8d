//! Ending a session reaches every service in seconds: a disabled account's access token,
//! still unexpired, is refused by identity at once and by program within its poll of
//! identity's ended sessions (`auth.session_revocations_poll_secs`).

use std::time::{Duration, Instant};

use festival_identity::Identity;
use festival_program::Program;
use festival_proto::identity::v1 as id;
use festival_proto::identity::v1::identity_service_client::IdentityServiceClient;
use festival_proto::program::v1 as program;
use festival_proto::program::v1::program_service_client::ProgramServiceClient;
use festival_testkit::{TestApp, authed, code};
use uuid::Uuid;

use crate::{PASSWORD, signed_in};

#[tokio::test]
async fn a_disabled_account_is_refused_by_identity_at_once_and_by_program_within_seconds() {
    let identity = TestApp::<Identity>::spawn().await;
    let mut config = <Program as festival_platform::server::Service>::default_config();
    festival_testkit::isolate(&mut config.common, &identity.name);
    config.common.auth.identity_url = format!("http://{}", identity.addr);
    let poll = config.common.auth.session_revocations_poll_secs;
    assert!(poll > 0, "the default polls");
    let program = TestApp::<Program>::start(config, identity.name.clone()).await;
    let mut ids = IdentityServiceClient::new(identity.channel.clone());
    let programs = ProgramServiceClient::new(program.channel.clone());

    let admin = signed_in(&mut ids, true, &identity).await;
    let fan = signed_in(&mut ids, false, &identity).await;
    let fan_user = fan.user.clone().expect("user");
    // Any call that authenticates first: an unknown festival's favourites.
    let probe = |token: String| {
        let mut programs = programs.clone();
        async move {
            let request = program::ListFavouritesRequest { festival_id: Uuid::now_v7().to_string() };
            code(programs.list_favourites(authed(request, &token)).await)
        }
    };
    assert_eq!(probe(fan.access_token.clone()).await, "ERR_4000", "signed in: past authentication");

    let disable = id::DisableAccountRequest { user_id: fan_user.id.clone(), reason: "chargeback fraud".into() };
    let status = ids.disable_account(authed(disable, &admin.access_token)).await.expect("disable").into_inner();
    assert!(status.disabled);
    assert_eq!(status.sessions_revoked, 1);
    let disabled_at = Instant::now();
    // Identity: at once, whatever the token's expiry says.
    assert_eq!(code(ids.get_me(authed(id::GetMeRequest {}, &fan.access_token)).await), "ERR_2005");
    assert_eq!(code(ids.refresh(id::RefreshRequest { refresh_token: fan.refresh_token.clone() }).await), "ERR_2003");
    let again = id::LoginRequest { email: fan_user.email.clone(), password: PASSWORD.into(), ..Default::default() };
    assert_eq!(code(ids.login(again.clone()).await), "ERR_2006");
    // Program: at its next poll of identity.
    let refused = festival_testkit::eventually(Duration::from_secs(4 * poll + 5), || {
        let token = fan.access_token.clone();
        let probe = &probe;
        async move { probe(token).await == "ERR_2005" }
    })
    .await;
    assert!(refused, "program still accepts a disabled account's token after {:?}", disabled_at.elapsed());
    // Others are untouched.
    assert_eq!(probe(admin.access_token.clone()).await, "ERR_4000");

    // Enabled again: the account signs in anew (its old session stays ended).
    let enable = id::EnableAccountRequest { user_id: fan_user.id.clone() };
    assert!(!ids.enable_account(authed(enable, &admin.access_token)).await.expect("enable").into_inner().disabled);
    let back = ids.login(again).await.expect("sign in again").into_inner();
    assert_eq!(probe(back.access_token).await, "ERR_4000");
    assert_eq!(probe(fan.access_token.clone()).await, "ERR_2005");
}
