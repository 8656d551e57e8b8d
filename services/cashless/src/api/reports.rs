//! Organisers' reports: money in and takings over a period, and the same for the
//! festival's current day as a live stream.

use chrono::{DateTime, Days, TimeZone, Utc};
use chrono_tz::Tz;
use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::live;
use festival_platform::rpc::{RpcStream, record_festival};
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::cashless::v1 as pb;
use sqlx::PgPool;

use super::CashlessApi;
use crate::domain::limits::festival_day;
use crate::store::{self, festivals::FestivalRow};

/// The longest period one report covers.
const MAX_DAYS: i64 = 31;

/// The festival's calendar day around `now`, as instants (a DST day is 23 or 25 hours).
fn day_around(now: DateTime<Utc>, time_zone: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    let tz: Tz = time_zone.parse().unwrap_or(Tz::UTC);
    let day = festival_day(now, time_zone);
    let start_of = |date: chrono::NaiveDate| {
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        // A zone whose midnight is skipped starts the day at the first instant it has.
        tz.from_local_datetime(&midnight)
            .earliest()
            .or_else(|| tz.from_local_datetime(&(midnight + chrono::Duration::hours(1))).earliest())
            .map_or(now, |t| t.with_timezone(&Utc))
    };
    let next = day.checked_add_days(Days::new(1)).unwrap_or(day);
    (start_of(day), start_of(next))
}

/// The method a till account's kind stands for.
fn method(kind: &str) -> &'static str {
    match kind {
        "CASH_DRAWER" => "CASH",
        "CARD_CLEARING" => "CARD",
        _ => "ONLINE",
    }
}

impl CashlessApi {
    pub(super) async fn get_takings_report(
        &self,
        caller: Principal,
        req: pb::GetTakingsReportRequest,
    ) -> ApiResult<pb::TakingsReport> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let period = match (validate::timestamp("from", &req.from)?, validate::timestamp("to", &req.to)?) {
            (None, None) => None,
            (Some(from), Some(to)) if to > from && to - from <= chrono::Duration::days(MAX_DAYS) => Some((from, to)),
            (Some(_), Some(_)) => {
                return Err(ApiError::field(codes::VALIDATION_FAILED, "to", "must be after from, at most 31 days"));
            }
            _ => return Err(ApiError::field(codes::VALIDATION_FAILED, "to", "from and to go together")),
        };
        caller.require(festival_id, Role::Organizer)?;
        let festival = Self::festival(&mut *self.pool.acquire().await?, festival_id).await?;
        let (from, to) = period.unwrap_or_else(|| day_around(self.clock.now(), &festival.time_zone));
        report(&self.pool, &festival, from, to).await
    }

    pub(super) async fn watch_takings(
        &self,
        caller: Principal,
        req: pb::WatchTakingsRequest,
    ) -> ApiResult<RpcStream<pb::TakingsReport>> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let festival = Self::festival(&mut *self.pool.acquire().await?, festival_id).await?;
        let watching = self.watchers.open(festival_id, self.live.max_watchers_per_festival)?;
        let (pool, clock, verifier) = (self.pool.clone(), self.clock.clone(), self.verifier.clone());
        Ok(live::changes(self.live, watching, move || {
            let (pool, festival) = (pool.clone(), festival.clone());
            let (from, to) = day_around(clock.now(), &festival.time_zone);
            // A session ended meanwhile (signed out, account disabled) ends the stream.
            let ended = verifier.session_ended(caller.session_id);
            async move {
                if ended {
                    return Err(ApiError::new(codes::SESSION_REVOKED));
                }
                report(&pool, &festival, from, to).await
            }
        }))
    }
}

/// The report over [from, to), read in one snapshot.
async fn report(
    pool: &PgPool,
    festival: &FestivalRow,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<pb::TakingsReport> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
    // A report never holds a connection the bars need for long.
    sqlx::query("set local statement_timeout = '5s'").execute(&mut *tx).await?;
    let top_ups = store::reports::top_ups(&mut tx, festival.id, from, to).await?;
    let vendors = store::reports::vendors(&mut tx, festival.id, from, to).await?;
    let hours = store::reports::hours(&mut tx, festival.id, &festival.time_zone, from, to).await?;
    let (outstanding_minor, outstanding_wallets) = store::reports::outstanding(&mut tx, festival.id).await?;
    tx.commit().await?;
    Ok(pb::TakingsReport {
        festival_id: festival.id.to_string(),
        currency: festival.currency.clone(),
        from: Some(timestamp(from)),
        to: Some(timestamp(to)),
        top_ups: top_ups
            .into_iter()
            .map(|(kind, count, total)| pb::TopUpTakings { method: method(&kind).into(), count, total_minor: total })
            .collect(),
        vendors: vendors
            .into_iter()
            .map(|(vendor, sales, total, voided)| pb::VendorTakings {
                vendor_id: vendor.to_string(),
                sales,
                total_minor: total,
                voided_minor: voided,
            })
            .collect(),
        hours: hours
            .into_iter()
            .map(|(hour, sales, total)| pb::HourTakings { hour: Some(timestamp(hour)), sales, total_minor: total })
            .collect(),
        outstanding_minor,
        outstanding_wallets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_festival_day_runs_from_local_midnight_to_local_midnight_across_dst() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            day_around(at("2026-07-04T12:00:00Z"), "Europe/Paris"),
            (at("2026-07-03T22:00:00Z"), at("2026-07-04T22:00:00Z"))
        );
        let (from, to) = day_around(at("2026-10-25T12:00:00Z"), "Europe/Paris");
        assert_eq!((to - from).num_hours(), 25, "the day the clocks go back");
        let (from, to) = day_around(at("2026-03-29T12:00:00Z"), "Europe/Paris");
        assert_eq!((to - from).num_hours(), 23);
    }
}
