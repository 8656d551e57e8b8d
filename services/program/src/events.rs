//! Events program publishes (payloads in `proto/festival/program/v1/events.proto`), and
//! the identity events it follows to know who holds which role at a festival.

use festival_platform::events::outbox;
use festival_proto::program::v1 as pb;
use sqlx::PgConnection;

pub const FESTIVAL_CREATED: &str = "festival.program.festival.created";
pub const FESTIVAL_UPDATED: &str = "festival.program.festival.updated";
pub const FESTIVAL_STATUS_CHANGED: &str = "festival.program.festival.status_changed";
pub const FESTIVAL_DELETED: &str = "festival.program.festival.deleted";
pub const PERFORMANCE_CHANGED: &str = "festival.program.performance.changed";

pub async fn festival_created(conn: &mut PgConnection, e: pb::FestivalCreated) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, FESTIVAL_CREATED, &e).await.map(drop)
}

pub async fn festival_updated(conn: &mut PgConnection, e: pb::FestivalUpdated) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, FESTIVAL_UPDATED, &e).await.map(drop)
}

pub async fn festival_status_changed(conn: &mut PgConnection, e: pb::FestivalStatusChanged) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, FESTIVAL_STATUS_CHANGED, &e).await.map(drop)
}

pub async fn festival_deleted(conn: &mut PgConnection, e: pb::FestivalDeleted) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, FESTIVAL_DELETED, &e).await.map(drop)
}

pub async fn performance_changed(conn: &mut PgConnection, e: pb::PerformanceChanged) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, PERFORMANCE_CHANGED, &e).await.map(drop)
}

/// Identity's membership events (granted and revoked).
pub const MEMBERSHIPS: &str = "festival.identity.membership.*";

/// Keeps `festival_members` in step with identity's membership events.
pub struct FollowMemberships;

impl festival_platform::events::consumer::Handler for FollowMemberships {
    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        event: &'a festival_platform::events::consumer::IncomingEvent,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        use festival_proto::identity::v1 as identity;
        Box::pin(async move {
            let (festival_id, user_id, role, granted) = if event.subject.ends_with(".granted") {
                let e: identity::MembershipGranted = event.decode()?;
                (e.festival_id, e.user_id, e.role, true)
            } else if event.subject.ends_with(".revoked") {
                let e: identity::MembershipRevoked = event.decode()?;
                (e.festival_id, e.user_id, e.role, false)
            } else {
                return Ok(());
            };
            let role =
                identity::Role::try_from(role).map(|r| r.as_str_name().trim_start_matches("ROLE_")).unwrap_or("");
            let (Ok(festival_id), Ok(user_id)) = (uuid::Uuid::parse_str(&festival_id), uuid::Uuid::parse_str(&user_id))
            else {
                tracing::warn!(event_id = %event.id, "membership event with malformed ids; skipped");
                return Ok(());
            };
            crate::store::members::apply(tx, festival_id, user_id, role, granted, event.id).await?;
            Ok(())
        })
    }
}

/// Identity's account deletion.
pub const USER_DELETED: &str = "festival.identity.user.deleted";

/// Forgets a deleted account's personal traces here: favourites, calendar feed secrets,
/// memberships and shifts still to come. Past shift assignments stay (worked-hours records
/// hold only the pseudonymous user id).
pub struct ForgetDeletedUser;

impl festival_platform::events::consumer::Handler for ForgetDeletedUser {
    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        event: &'a festival_platform::events::consumer::IncomingEvent,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let deleted: festival_proto::identity::v1::UserDeleted = event.decode()?;
            let Ok(user_id) = uuid::Uuid::parse_str(&deleted.user_id) else {
                tracing::warn!(event_id = %event.id, "user.deleted with a malformed id; skipped");
                return Ok(());
            };
            crate::store::members::forget_user(tx, user_id).await?;
            Ok(())
        })
    }
}
