use festival_identity::Identity;
use festival_proto::identity::v1 as pb;
use festival_proto::identity::v1::identity_service_client::IdentityServiceClient;
pub use festival_testkit::{TestApp, authed, code};
use tonic::transport::Channel;

pub type App = TestApp<Identity>;
pub type Client = IdentityServiceClient<Channel>;

pub const PASSWORD: &str = "correct horse battery staple";

pub async fn spawn() -> App {
    TestApp::<Identity>::spawn().await
}

pub fn client(app: &App) -> Client {
    IdentityServiceClient::new(app.channel.clone())
}

pub fn new_email() -> String {
    format!("fan-{}@example.org", festival_testkit::unique_name())
}

pub async fn register(client: &mut Client, email: &str) -> pb::User {
    client
        .register(pb::RegisterRequest { email: email.into(), password: PASSWORD.into(), ..Default::default() })
        .await
        .expect("register")
        .into_inner()
        .user
        .expect("user")
}

pub async fn login(client: &mut Client, email: &str) -> pb::TokenPair {
    client
        .login(pb::LoginRequest { email: email.into(), password: PASSWORD.into(), ..Default::default() })
        .await
        .expect("login")
        .into_inner()
}

pub async fn me(client: &mut Client, token: &str) -> pb::User {
    client.get_me(authed(pb::GetMeRequest {}, token)).await.expect("me").into_inner()
}

/// Registers and signs in a new account.
pub async fn signed_in(client: &mut Client) -> (pb::User, pb::TokenPair) {
    let email = new_email();
    let user = register(client, &email).await;
    let tokens = login(client, &email).await;
    (user, tokens)
}

/// Registers an account, makes it ADMIN and signs it in.
pub async fn signed_in_admin(app: &App, client: &mut Client) -> pb::TokenPair {
    let email = new_email();
    register(client, &email).await;
    make_admin(app, &email).await;
    login(client, &email).await
}

/// Makes an account a platform ADMIN, as `identity promote-admin` does.
pub async fn make_admin(app: &App, email: &str) {
    let mut conn = app.pool.acquire().await.expect("conn");
    assert!(
        festival_identity::store::users::set_role(&mut conn, email, festival_platform::auth::Role::Admin)
            .await
            .expect("set role")
    );
}

pub async fn count(app: &App, table: &str) -> i64 {
    let sql = match table {
        "users" => "select count(*) from users",
        "outbox" => "select count(*) from outbox",
        "memberships" => "select count(*) from memberships",
        "sessions" => "select count(*) from sessions",
        other => panic!("no count for {other}"),
    };
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.expect("count")
}

/// An organiser of a new festival: (festival, organiser's access token).
pub async fn organiser(app: &App, c: &mut Client) -> (uuid::Uuid, String) {
    let admin = signed_in_admin(app, c).await;
    let (user, tokens) = signed_in(c).await;
    let festival = uuid::Uuid::now_v7();
    c.grant_membership(authed(
        pb::GrantMembershipRequest {
            festival_id: festival.to_string(),
            user_id: user.id,
            role: pb::Role::Organizer as i32,
        },
        &admin.access_token,
    ))
    .await
    .expect("grant");
    (festival, tokens.access_token)
}

/// The (unverified) JSON payload of a JWT: what a test looks at in identity's tokens.
pub fn payload(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).expect("payload");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64");
    serde_json::from_slice(&json).expect("json")
}
