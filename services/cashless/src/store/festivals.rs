//! Cashless' projection of program's festival facts (written by the kit's
//! `festival_facts`), and what a charge or top-up needs of it.

use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FestivalRow {
    pub id: Uuid,
    pub time_zone: String,
    pub currency: String,
    pub status: String,
}

impl FestivalRow {
    /// Money moves until the festival is cancelled (a completed festival still refunds
    /// and corrects; its wallets close at the end-of-festival run).
    pub fn open(&self) -> bool {
        self.status != "CANCELLED" && self.status != "DRAFT"
    }
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<FestivalRow>, sqlx::Error> {
    sqlx::query_as("select id, time_zone, currency, status from festivals where id = $1 and not deleted")
        .bind(id)
        .fetch_optional(conn)
        .await
}
