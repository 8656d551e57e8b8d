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
