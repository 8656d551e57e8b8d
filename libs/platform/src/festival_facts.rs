//! Program's festival facts (status, currency, time zone, dates) as a service that sells
//! or charges for a festival keeps them: parsed once from program's events, stored in
//! the service's own `festivals` table (id, name, time_zone, currency, start_time,
//! end_time, status, version, deleted, updated_at) so the newest facts win whatever order
//! the events arrive in, and a deleted festival stays deleted.

use chrono::{DateTime, Utc};
use festival_proto::program::v1 as program;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::events::consumer::{Meta, permanent};

/// One festival event's facts. `status` is program's FestivalStatus without its prefix
/// (`PUBLISHED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub id: Uuid,
    pub name: String,
    pub time_zone: String,
    pub currency: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub status: String,
    pub version: i64,
}

impl Facts {
    /// The facts an event carries: `Ok(None)` for an event published before events
    /// carried facts (the festival's next change brings them); malformed ids and unknown
    /// statuses are permanent errors (dead-lettered, never retried).
    pub fn from_event(
        festival_id: &str,
        facts: Option<program::FestivalFacts>,
        meta: &Meta,
    ) -> anyhow::Result<Option<Self>> {
        let Ok(id) = Uuid::parse_str(festival_id) else {
            return Err(permanent(format!("festival event {} with a malformed id", meta.id)));
        };
        let Some(f) = facts else {
            tracing::warn!(%id, event = %meta.id, "festival event without facts; skipped");
            return Ok(None);
        };
        let status = match program::FestivalStatus::try_from(f.status) {
            Ok(s) if s != program::FestivalStatus::Unspecified => {
                s.as_str_name().trim_start_matches("FESTIVAL_STATUS_").to_owned()
            }
            _ => return Err(permanent(format!("festival event {} with unknown status {}", meta.id, f.status))),
        };
        let time = |t: Option<prost_types::Timestamp>| {
            t.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        };
        Ok(Some(Self {
            id,
            name: f.name,
            time_zone: f.time_zone,
            currency: f.currency,
            start_time: time(f.start_time),
            end_time: time(f.end_time),
            status,
            version: f.version,
        }))
    }
}

/// Keeps the newest facts: an older event arriving late changes nothing (false).
pub async fn apply(conn: &mut PgConnection, f: &Facts) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into festivals (id, name, time_zone, currency, start_time, end_time, status, version)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (id) do update set name = excluded.name, time_zone = excluded.time_zone,
             currency = excluded.currency, start_time = excluded.start_time, end_time = excluded.end_time,
             status = excluded.status, version = excluded.version, updated_at = now()
         where festivals.version < excluded.version and not festivals.deleted",
    )
    .bind(f.id)
    .bind(&f.name)
    .bind(&f.time_zone)
    .bind(&f.currency)
    .bind(f.start_time)
    .bind(f.end_time)
    .bind(&f.status)
    .bind(f.version)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A deleted festival stays so, whatever arrives after, even its creation event
/// delivered late (a tombstone row if it was not known yet).
pub async fn mark_deleted(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into festivals (id, name, time_zone, currency, status, version, deleted)
         values ($1, '', 'UTC', 'XXX', 'CANCELLED', 9223372036854775807, true)
         on conflict (id) do update set deleted = true, status = 'CANCELLED', updated_at = now()",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}
