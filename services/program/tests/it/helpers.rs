use festival_platform::auth::Role;
use festival_program::Program;
use festival_proto::identity::v1 as idpb;
use festival_proto::program::v1 as pb;
use festival_proto::program::v1::program_service_client::ProgramServiceClient;
pub use festival_testkit::{TestApp, TestIssuer, all_at_once, authed, code};
use tonic::transport::Channel;

/// Program under test, with tokens from the test kit's issuer (no identity service):
/// memberships reach program as identity's events would, published by the test.
pub struct Env {
    pub issuer: TestIssuer,
    pub program: TestApp<Program>,
}

pub type Client = ProgramServiceClient<Channel>;

pub async fn spawn() -> Env {
    spawn_with(|_| {}).await
}

/// [`spawn`] after `adjust` has changed program's configuration.
pub async fn spawn_with(adjust: impl FnOnce(&mut festival_program::Config)) -> Env {
    let issuer = TestIssuer::start().await;
    let identity_url = issuer.url();
    let program = TestApp::<Program>::spawn_with(|c| {
        c.common.auth.identity_url = identity_url;
        adjust(c);
    })
    .await;
    Env { issuer, program }
}

impl Env {
    pub fn client(&self) -> Client {
        ProgramServiceClient::new(self.program.channel.clone())
    }

    /// A new account's (user id, access token).
    pub async fn user(&self) -> (String, String) {
        let (id, token) = self.issuer.user();
        (id.to_string(), token)
    }

    /// An ADMIN's access token.
    pub async fn admin(&self) -> String {
        self.issuer.admin()
    }

    pub async fn festivals(&self) -> i64 {
        sqlx::query_scalar("select count(*) from festivals").fetch_one(&self.program.pool).await.expect("count")
    }
}

/// The tests are written for a festival in June 2027. So that they never expire, every
/// date they name moves by the same whole number of years: to the next June still ahead
/// (0 until June 2027). Order, weekdays aside, and local times stay as written.
pub fn years_ahead() -> i32 {
    use chrono::Datelike;
    if let Ok(forced) = std::env::var("FESTIVAL_TEST_YEARS_AHEAD") {
        return forced.parse().expect("FESTIVAL_TEST_YEARS_AHEAD is a whole number");
    }
    let today = chrono::Utc::now().date_naive();
    let next_june = if today.month() < 6 { today.year() } else { today.year() + 1 };
    next_june - 2027
}

/// An instant as written in a test (see [`years_ahead`]).
pub fn ts(rfc3339: &str) -> prost_types::Timestamp {
    use chrono::Datelike;
    let written = chrono::DateTime::parse_from_rfc3339(rfc3339).expect("time");
    let moved = written.with_year(written.year() + years_ahead()).expect("a June date exists every year");
    festival_platform::convert::timestamp(moved.into())
}

/// A date (`YYYY-MM-DD`) as written in a test (see [`years_ahead`]).
pub fn day(written: &str) -> String {
    use chrono::Datelike;
    let date = chrono::NaiveDate::parse_from_str(written, "%Y-%m-%d").expect("date");
    date.with_year(date.year() + years_ahead()).expect("a June date exists every year").to_string()
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
    /// A new account holding `role` at `festival`: identity's grant event is published
    /// (as identity would) and program has applied it; returns (user id, fresh token).
    pub async fn member(&self, festival: &str, role: idpb::Role) -> (String, String) {
        let user_id = uuid::Uuid::now_v7();
        let festival_id = uuid::Uuid::parse_str(festival).expect("festival id");
        let granted = idpb::MembershipGranted {
            festival_id: festival.into(),
            user_id: user_id.to_string(),
            role: role as i32,
            granted_by: uuid::Uuid::now_v7().to_string(),
        };
        festival_testkit::publish_event(&self.program.naming(), &granted).await;
        let pool = self.program.pool.clone();
        let seen = festival_testkit::eventually(std::time::Duration::from_secs(15), || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, bool>(
                    "select exists(select 1 from festival_members where festival_id = $1 and user_id = $2 and active)",
                )
                .bind(festival_id)
                .bind(user_id)
                .fetch_one(&pool)
                .await
                .unwrap_or(false)
            }
        })
        .await;
        assert!(seen, "program never saw the membership event");
        let role = Role::try_from(role).expect("a festival role");
        (user_id.to_string(), self.issuer.member(user_id, festival_id, role))
    }

    /// The last event of type `E` program published.
    pub async fn last_event<E: festival_proto::Event>(&self) -> E {
        self.program.last_event::<E>().await
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

/// The UTC date `days` from today (`YYYY-MM-DD`), for dates that must stay in the future.
pub fn in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::TimeDelta::days(days)).format("%Y-%m-%d").to_string()
}
