//! Events: identity publishes `festival.identity.*` (payloads and subjects in
//! `festival_proto`: `UserRegistered`, `UserUpdated`, `UserDeleted`, `MembershipGranted`,
//! `MembershipRevoked`, `SessionRevoked`) through [`publish`], each in the transaction of
//! the change it reports; and it follows program's `festival.created` (the creator becomes
//! the festival's ORGANIZER).

use festival_platform::events::consumer::{self, Meta, Subscription};
use festival_proto::identity::v1 as pb;
use festival_proto::program::v1 as program;
use sqlx::PgConnection;
use uuid::Uuid;

pub use festival_platform::events::outbox::publish;

/// The events identity follows.
pub fn consumers() -> Vec<Subscription> {
    vec![consumer::follow("identity-festival-created", festival_created)]
}

/// Grants ORGANIZER to a festival's creator, once per event.
async fn festival_created(tx: &mut PgConnection, created: program::FestivalCreated, meta: &Meta) -> anyhow::Result<()> {
    let (Ok(festival_id), Ok(user_id)) = (Uuid::parse_str(&created.festival_id), Uuid::parse_str(&created.created_by))
    else {
        return Err(consumer::permanent(format!("festival.created {} with malformed ids", meta.id)));
    };
    if crate::store::users::find(tx, user_id).await?.is_none() {
        tracing::warn!(%festival_id, %user_id, "festival creator has no live account; no membership granted");
        return Ok(());
    }
    let (_, new) =
        crate::store::memberships::grant(tx, festival_id, user_id, festival_platform::auth::Role::Organizer, user_id)
            .await?;
    if new {
        publish(
            tx,
            &pb::MembershipGranted {
                festival_id: festival_id.to_string(),
                user_id: user_id.to_string(),
                role: pb::Role::Organizer as i32,
                granted_by: user_id.to_string(),
            },
        )
        .await?;
    }
    Ok(())
}
