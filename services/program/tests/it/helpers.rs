use festival_identity::Identity;
use festival_platform::error::reason;
use festival_program::Program;
use festival_proto::identity::v1 as idpb;
use festival_proto::identity::v1::identity_service_client::IdentityServiceClient;
use festival_proto::program::v1 as pb;
use festival_proto::program::v1::program_service_client::ProgramServiceClient;
use festival_testkit::TestApp;
use tonic::transport::Channel;

pub struct Env {
    pub identity: TestApp<Identity>,
    pub program: TestApp<Program>,
}

pub type Client = ProgramServiceClient<Channel>;

pub async fn spawn() -> Env {
    let identity = TestApp::<Identity>::spawn().await;
    let identity_url = format!("http://{}", identity.addr);
    let prefix = identity.config.common.nats.subject_prefix.clone();
    let program = TestApp::<Program>::spawn_with(|c| {
        c.common.auth.identity_url = identity_url;
        // One deployment: identity consumes program's events.
        c.common.nats.subject_prefix = prefix;
    })
    .await;
    Env { identity, program }
}

impl Env {
    pub fn client(&self) -> Client {
        ProgramServiceClient::new(self.program.channel.clone())
    }

    /// Registers and signs in a new account; returns (user id, access token).
    pub async fn user(&self) -> (String, String) {
        let mut id = IdentityServiceClient::new(self.identity.channel.clone());
        let email = format!("{}@example.org", festival_testkit::unique_name());
        let password = "correct horse battery staple".to_owned();
        id.register(idpb::RegisterRequest { email: email.clone(), password: password.clone(), ..Default::default() })
            .await
            .expect("register");
        let tokens = id.login(idpb::LoginRequest { email, password }).await.expect("login").into_inner();
        (tokens.user.expect("user").id, tokens.access_token)
    }

    /// An ADMIN's access token.
    pub async fn admin(&self) -> String {
        let (user_id, _) = self.user().await;
        sqlx::query("update users set role = 'ADMIN' where id = $1::uuid")
            .bind(&user_id)
            .execute(&self.identity.pool)
            .await
            .expect("promote");
        let email: String = sqlx::query_scalar("select email from users where id = $1::uuid")
            .bind(&user_id)
            .fetch_one(&self.identity.pool)
            .await
            .expect("email");
        let mut id = IdentityServiceClient::new(self.identity.channel.clone());
        id.login(idpb::LoginRequest { email, password: "correct horse battery staple".into() })
            .await
            .expect("login")
            .into_inner()
            .access_token
    }

    pub async fn festivals(&self) -> i64 {
        sqlx::query_scalar("select count(*) from festivals").fetch_one(&self.program.pool).await.expect("count")
    }
}

pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    request
}

pub fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> String {
    let status = result.expect_err("the call must fail");
    reason(&status).unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"))
}

pub fn ts(rfc3339: &str) -> prost_types::Timestamp {
    festival_platform::convert::timestamp(chrono::DateTime::parse_from_rfc3339(rfc3339).expect("time").into())
}

pub fn festival(slug: &str) -> pb::CreateFestivalRequest {
    pb::CreateFestivalRequest {
        name: format!("Festival {slug}"),
        slug: slug.into(),
        time_zone: "Europe/Paris".into(),
        currency: "EUR".into(),
        venue: "Val de Moine".into(),
        start_time: Some(ts("2027-06-18T14:00:00+02:00")),
        end_time: Some(ts("2027-06-21T04:00:00+02:00")),
        capacity: 60_000,
        ..Default::default()
    }
}

impl Env {
    /// A new account holding `role` at `festival` (granted by an admin through identity),
    /// once program has seen the membership event; returns (user id, fresh token).
    pub async fn member(&self, festival: &str, role: idpb::Role) -> (String, String) {
        let admin = self.admin().await;
        let mut id = IdentityServiceClient::new(self.identity.channel.clone());
        let email = format!("{}@example.org", festival_testkit::unique_name());
        let password = "correct horse battery staple".to_owned();
        let user_id = id
            .register(idpb::RegisterRequest { email: email.clone(), password: password.clone(), ..Default::default() })
            .await
            .expect("register")
            .into_inner()
            .user
            .expect("user")
            .id;
        id.grant_membership(authed(
            idpb::GrantMembershipRequest { festival_id: festival.into(), user_id: user_id.clone(), role: role as i32 },
            &admin,
        ))
        .await
        .expect("grant");
        let pool = self.program.pool.clone();
        let (fid, uid) = (festival.to_owned(), user_id.clone());
        let seen = festival_testkit::eventually(std::time::Duration::from_secs(15), || {
            let (pool, fid, uid) = (pool.clone(), fid.clone(), uid.clone());
            async move {
                sqlx::query_scalar::<_, bool>(
                    "select exists(select 1 from festival_members where festival_id = $1::uuid and user_id = $2::uuid)",
                )
                .bind(fid)
                .bind(uid)
                .fetch_one(&pool)
                .await
                .unwrap_or(false)
            }
        })
        .await;
        assert!(seen, "program never saw the membership event");
        let token = id.login(idpb::LoginRequest { email, password }).await.expect("login").into_inner().access_token;
        (user_id, token)
    }

    /// The last event program published on `subject` (unprefixed).
    pub async fn last_event<M: prost::Message + Default>(&self, subject: &str) -> M {
        self.program.assert_outbox_drained().await;
        let naming = self.program.naming();
        let js = async_nats::jetstream::new(async_nats::connect(festival_testkit::nats_url()).await.expect("nats"));
        let stream = js.get_stream(naming.stream("program")).await.expect("program stream");
        let message = stream.get_last_raw_message_by_subject(&naming.subject(subject)).await.expect("event published");
        M::decode(message.payload.as_ref()).expect("protobuf payload")
    }
}

/// Parses an iCalendar body with the `icalendar` crate's parser: (uid, summary, dtstart, status) per event.
pub fn parse_ics(body: &[u8]) -> Vec<(String, String, String, String)> {
    use icalendar::{Calendar, CalendarComponent, Component};
    let text = std::str::from_utf8(body).expect("utf-8");
    let calendar: Calendar = text.parse().expect("a valid iCalendar");
    calendar
        .components
        .iter()
        .filter_map(|c| match c {
            CalendarComponent::Event(e) => Some((
                e.get_uid().unwrap_or_default().to_owned(),
                e.get_summary().unwrap_or_default().to_owned(),
                e.property_value("DTSTART").unwrap_or_default().to_owned(),
                e.property_value("STATUS").unwrap_or_default().to_owned(),
            )),
            _ => None,
        })
        .collect()
}
