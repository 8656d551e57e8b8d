//! Ledger accounts: a wallet's own, and the festival's (per vendor, per cashier's
//! drawer, or one of a kind).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::ledger::AccountKind;

/// The festival's account of `kind` for `owner` (None: the festival's own), made on
/// first use.
pub async fn ensure(
    conn: &mut PgConnection,
    festival: Uuid,
    kind: AccountKind,
    owner: Option<Uuid>,
    currency: &str,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query(
        "insert into accounts (id, festival_id, kind, currency, owner_id) values ($1, $2, $3, $4, $5)
         on conflict (festival_id, kind, owner_id) do nothing",
    )
    .bind(Uuid::now_v7())
    .bind(festival)
    .bind(kind.as_str())
    .bind(currency)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar(
        "select id from accounts where festival_id = $1 and kind = $2 and owner_id is not distinct from $3",
    )
    .bind(festival)
    .bind(kind.as_str())
    .bind(owner)
    .fetch_one(conn)
    .await
}
