//! Events identity publishes (payloads in `proto/festival/identity/v1/events.proto`).
//! Each is written to the outbox in the transaction of the change it reports.

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
