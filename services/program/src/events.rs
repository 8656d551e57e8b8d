//! Events program publishes (payloads in `proto/festival/program/v1/events.proto`).

use festival_platform::events::outbox;
use festival_proto::program::v1 as pb;
use sqlx::PgConnection;

pub const FESTIVAL_CREATED: &str = "festival.program.festival.created";
pub const FESTIVAL_UPDATED: &str = "festival.program.festival.updated";
pub const FESTIVAL_STATUS_CHANGED: &str = "festival.program.festival.status_changed";
pub const FESTIVAL_DELETED: &str = "festival.program.festival.deleted";

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
