//! Events: program publishes `festival.program.*` (payloads and subjects in
//! `festival_proto`: `FestivalCreated`, `FestivalUpdated`, `FestivalStatusChanged`,
//! `FestivalDeleted`, `PerformanceChanged`) through [`publish`], in the transaction of the
//! change each reports; and it follows identity's memberships and account deletions.

use festival_platform::events::consumer::{self, Meta, Subscription};
use festival_proto::identity::v1 as identity;
use sqlx::PgConnection;
use uuid::Uuid;

pub use festival_platform::events::outbox::publish;

/// `festival.created`, for a new festival and for a cloned edition alike (identity makes
/// the creator its organizer from it).
pub fn festival_created(row: &crate::store::festivals::FestivalRow) -> festival_proto::program::v1::FestivalCreated {
    festival_proto::program::v1::FestivalCreated {
        festival_id: row.id.to_string(),
        slug: row.slug.clone(),
        created_by: row.created_by.to_string(),
        facts: Some(festival_facts(row)),
    }
}

/// The facts every festival event carries for other services' projections.
pub fn festival_facts(row: &crate::store::festivals::FestivalRow) -> festival_proto::program::v1::FestivalFacts {
    use festival_platform::convert::timestamp;
    festival_proto::program::v1::FestivalFacts {
        name: row.name.clone(),
        time_zone: row.time_zone.clone(),
        currency: row.currency.clone(),
        start_time: row.start_time.map(timestamp),
        end_time: row.end_time.map(timestamp),
        status: crate::api::status_to_proto(row.status) as i32,
        version: row.updated_at.timestamp_micros(),
    }
}

/// The identity events program follows.
pub fn consumers() -> Vec<Subscription> {
    vec![
        consumer::follow("program-membership-granted", membership_granted),
        consumer::follow("program-membership-revoked", membership_revoked),
        consumer::follow("program-user-deleted", user_deleted),
    ]
}

/// Keeps `festival_members` in step with identity: a grant adds the role here.
async fn membership_granted(tx: &mut PgConnection, e: identity::MembershipGranted, meta: &Meta) -> anyhow::Result<()> {
    apply_membership(tx, &e.festival_id, &e.user_id, e.role, true, meta).await
}

/// ...and a revocation takes it away (order-independent: the newer event id wins).
async fn membership_revoked(tx: &mut PgConnection, e: identity::MembershipRevoked, meta: &Meta) -> anyhow::Result<()> {
    apply_membership(tx, &e.festival_id, &e.user_id, e.role, false, meta).await
}

async fn apply_membership(
    tx: &mut PgConnection,
    festival_id: &str,
    user_id: &str,
    role: i32,
    granted: bool,
    meta: &Meta,
) -> anyhow::Result<()> {
    let Ok(role) = identity::Role::try_from(role).map(|r| r.as_str_name().trim_start_matches("ROLE_")) else {
        return Err(consumer::permanent(format!("membership event {} with unknown role {role}", meta.id)));
    };
    let (Ok(festival_id), Ok(user_id)) = (Uuid::parse_str(festival_id), Uuid::parse_str(user_id)) else {
        return Err(consumer::permanent(format!("membership event {} with malformed ids", meta.id)));
    };
    crate::store::members::apply(tx, festival_id, user_id, role, granted, meta.id).await?;
    Ok(())
}

/// Forgets a deleted account's personal traces here: favourites, calendar feed secrets,
/// memberships and shifts still to come. Past shift assignments stay (worked-hours records
/// hold only the pseudonymous user id).
async fn user_deleted(tx: &mut PgConnection, e: identity::UserDeleted, meta: &Meta) -> anyhow::Result<()> {
    let Ok(user_id) = Uuid::parse_str(&e.user_id) else {
        return Err(consumer::permanent(format!("user.deleted {} with a malformed id", meta.id)));
    };
    crate::store::members::forget_user(tx, user_id, meta.id).await?;
    Ok(())
}
