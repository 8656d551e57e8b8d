//! Cashless' projection of program's festival facts (written by the kit's
//! `festival_facts`), and what a charge or top-up needs of it.

use sqlx::PgConnection;
use uuid::Uuid;

festival_platform::text_enum! {
    /// Program's festival status, as the projection stores it.
    FestivalStatus {
        Draft = "DRAFT",
        Published = "PUBLISHED",
        Ongoing = "ONGOING",
        Completed = "COMPLETED",
        Cancelled = "CANCELLED",
    }
}

impl FestivalStatus {
    /// The festival is over (its terminals are expected to have synced): holders may ask
    /// for their balances.
    pub fn over(self) -> bool {
        matches!(self, FestivalStatus::Completed | FestivalStatus::Cancelled)
    }

    /// Money moves until the festival is cancelled (a completed festival still refunds
    /// and corrects; its wallets close at the end-of-festival run), never in a draft.
    pub fn moves_money(self) -> bool {
        !matches!(self, FestivalStatus::Draft | FestivalStatus::Cancelled)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FestivalRow {
    pub id: Uuid,
    pub time_zone: String,
    pub currency: String,
    #[sqlx(try_from = "String")]
    pub status: FestivalStatus,
    pub end_time: Option<chrono::DateTime<chrono::Utc>>,
    /// When cashless first heard it was over.
    pub over_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl FestivalRow {
    /// Until when holders may ask for their money: the policy's deadline, but never
    /// sooner than 14 days after cashless heard the festival was over (None: not over).
    pub fn claims_until(
        &self,
        deadline: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let over = self.over_at?;
        let floor = over + chrono::Duration::days(crate::domain::payouts::MIN_CLAIM_DAYS);
        Some(deadline.map_or(floor, |d| d.max(floor)))
    }
}

impl FestivalRow {
    pub fn open(&self) -> bool {
        self.status.moves_money()
    }
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<FestivalRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, time_zone, currency, status, end_time, over_at from festivals where id = $1 and not deleted",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Notes when the festival was first seen over (a later status change keeps it).
pub async fn mark_over(
    conn: &mut PgConnection,
    id: Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update festivals set over_at = $2 where id = $1 and over_at is null and status in ('COMPLETED', 'CANCELLED')",
    )
    .bind(id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_get_at_least_14_days_from_when_the_festival_was_over() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let row = |over: Option<&str>| FestivalRow {
            id: Uuid::nil(),
            time_zone: "Europe/Paris".into(),
            currency: "EUR".into(),
            status: FestivalStatus::Completed,
            end_time: None,
            over_at: over.map(at),
        };
        assert_eq!(row(None).claims_until(Some(at("2026-08-01T00:00:00Z"))), None, "not over: no end yet");
        let late = row(Some("2026-07-30T00:00:00Z"));
        assert_eq!(late.claims_until(Some(at("2026-08-01T00:00:00Z"))), Some(at("2026-08-13T00:00:00Z")));
        assert_eq!(late.claims_until(Some(at("2026-09-01T00:00:00Z"))), Some(at("2026-09-01T00:00:00Z")));
        assert_eq!(late.claims_until(None), Some(at("2026-08-13T00:00:00Z")));
    }
}
