//! Events identity publishes (payloads in `proto/festival/identity/v1/events.proto`),
//! each written to the outbox in the transaction of the change it reports; and the
//! events it consumes.

use festival_platform::events::outbox;
use festival_proto::identity::v1 as pb;
use sqlx::PgConnection;

pub const USER_REGISTERED: &str = "festival.identity.user.registered";
pub const USER_UPDATED: &str = "festival.identity.user.updated";
pub const USER_DELETED: &str = "festival.identity.user.deleted";
pub const MEMBERSHIP_GRANTED: &str = "festival.identity.membership.granted";
pub const MEMBERSHIP_REVOKED: &str = "festival.identity.membership.revoked";
pub const SESSION_REVOKED: &str = "festival.identity.session.revoked";

pub async fn user_registered(conn: &mut PgConnection, e: pb::UserRegistered) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, USER_REGISTERED, &e).await.map(drop)
}

pub async fn user_updated(conn: &mut PgConnection, e: pb::UserUpdated) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, USER_UPDATED, &e).await.map(drop)
}

pub async fn user_deleted(conn: &mut PgConnection, e: pb::UserDeleted) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, USER_DELETED, &e).await.map(drop)
}

pub async fn membership_granted(conn: &mut PgConnection, e: pb::MembershipGranted) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, MEMBERSHIP_GRANTED, &e).await.map(drop)
}

pub async fn membership_revoked(conn: &mut PgConnection, e: pb::MembershipRevoked) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, MEMBERSHIP_REVOKED, &e).await.map(drop)
}

pub async fn session_revoked(conn: &mut PgConnection, e: pb::SessionRevoked) -> Result<(), sqlx::Error> {
    outbox::enqueue(conn, SESSION_REVOKED, &e).await.map(drop)
}

/// Program's `festival.created`: the creator becomes the festival's ORGANIZER.
pub const FESTIVAL_CREATED: &str = "festival.program.festival.created";

/// Consumes [`FESTIVAL_CREATED`]: grants ORGANIZER to the creator, once per event.
pub struct GrantCreatorOrganizer;

impl festival_platform::events::consumer::Handler for GrantCreatorOrganizer {
    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        event: &'a festival_platform::events::consumer::IncomingEvent,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let created: festival_proto::program::v1::FestivalCreated = event.decode()?;
            let (Ok(festival_id), Ok(user_id)) =
                (uuid::Uuid::parse_str(&created.festival_id), uuid::Uuid::parse_str(&created.created_by))
            else {
                tracing::warn!(event_id = %event.id, "festival.created with malformed ids; skipped");
                return Ok(());
            };
            if crate::store::users::find(tx, user_id).await?.is_none() {
                tracing::warn!(%festival_id, %user_id, "festival creator has no live account; no membership granted");
                return Ok(());
            }
            let (_, new) = crate::store::memberships::grant(tx, festival_id, user_id, "ORGANIZER", user_id).await?;
            if new {
                membership_granted(
                    tx,
                    pb::MembershipGranted {
                        festival_id: festival_id.to_string(),
                        user_id: user_id.to_string(),
                        role: pb::Role::Organizer as i32,
                        granted_by: user_id.to_string(),
                    },
                )
                .await?;
            }
            Ok(())
        })
    }
}
