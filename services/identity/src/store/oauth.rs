//! Provider accounts linked to ours, and sign-in flows under way (hashed state and
//! binding, spent once).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::oauth::{FlowPurpose, Provider};

/// One live link of each provider per account.
pub const USER_PROVIDER_UNIQUE: &str = "oauth_identities_user_provider_key";

pub struct NewFlow<'a> {
    pub state_hash: &'a [u8],
    pub binding_hash: &'a [u8],
    pub provider: Provider,
    pub purpose: FlowPurpose,
    pub user_id: Option<Uuid>,
    pub code_verifier: &'a str,
    pub nonce: &'a str,
    pub device_name: &'a str,
    pub expires_at: DateTime<Utc>,
}

pub async fn create_flow(conn: &mut PgConnection, f: &NewFlow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into oauth_flows (state_hash, binding_hash, provider, purpose, user_id, code_verifier, nonce,
             device_name, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(f.state_hash)
    .bind(f.binding_hash)
    .bind(f.provider.as_str())
    .bind(f.purpose.as_str())
    .bind(f.user_id)
    .bind(f.code_verifier)
    .bind(f.nonce)
    .bind(f.device_name)
    .bind(f.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes up to 100 flows that expired before `now` (each start clears some: abandoned
/// flows never pile up).
pub async fn prune_flows(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "delete from oauth_flows where state_hash in
             (select state_hash from oauth_flows where expires_at < $1 limit 100 for update skip locked)",
    )
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

#[derive(Debug, sqlx::FromRow)]
pub struct FlowRow {
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    #[sqlx(try_from = "String")]
    pub purpose: FlowPurpose,
    pub user_id: Option<Uuid>,
    pub code_verifier: String,
    pub nonce: String,
    pub device_name: String,
    pub expires_at: DateTime<Utc>,
}

/// Spends the flow of this state and binding: deleted and answered in one statement, so
/// it is answered once. A wrong binding spends nothing: whoever saw a state (a log, a
/// Referer) cannot cancel its holder's sign-in.
pub async fn take_flow(
    conn: &mut PgConnection,
    state_hash: &[u8],
    binding_hash: &[u8],
) -> Result<Option<FlowRow>, sqlx::Error> {
    sqlx::query_as(
        "delete from oauth_flows where state_hash = $1 and binding_hash = $2
         returning provider, purpose, user_id, code_verifier, nonce, device_name, expires_at",
    )
    .bind(state_hash)
    .bind(binding_hash)
    .fetch_optional(conn)
    .await
}

/// Whose a provider's account is: `Linked` to an account, `Unlinked` once (never linked
/// again by its address alone), or unknown (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Linked(Uuid),
    Unlinked,
}

pub async fn owner(conn: &mut PgConnection, provider: Provider, subject: &str) -> Result<Option<Owner>, sqlx::Error> {
    let row: Option<(Uuid, bool)> = sqlx::query_as(
        "select user_id, unlinked_at is null from oauth_identities where provider = $1 and subject = $2",
    )
    .bind(provider.as_str())
    .bind(subject)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(user_id, live)| if live { Owner::Linked(user_id) } else { Owner::Unlinked }))
}

/// Links a provider's account to `user_id` (again, if it was unlinked from anyone);
/// false when it is linked to an account already.
pub async fn link(
    conn: &mut PgConnection,
    provider: Provider,
    subject: &str,
    user_id: Uuid,
    email: &str,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into oauth_identities (provider, subject, user_id, email, linked_at) values ($1, $2, $3, $4, $5)
         on conflict (provider, subject) do update
             set user_id = excluded.user_id, email = excluded.email, linked_at = excluded.linked_at,
                 last_used_at = null, unlinked_at = null
             where oauth_identities.unlinked_at is not null",
    )
    .bind(provider.as_str())
    .bind(subject)
    .bind(user_id)
    .bind(email)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Notes a sign-in with it, while it is still linked to `user_id`; false when it is not
/// (unlinked meanwhile: the sign-in must look again).
pub async fn touch(
    conn: &mut PgConnection,
    provider: Provider,
    subject: &str,
    user_id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update oauth_identities set last_used_at = $4
         where provider = $1 and subject = $2 and user_id = $3 and unlinked_at is null",
    )
    .bind(provider.as_str())
    .bind(subject)
    .bind(user_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, sqlx::FromRow)]
pub struct IdentityRow {
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    pub subject: String,
    pub email: String,
    pub linked_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub unlinked_at: Option<DateTime<Utc>>,
}

/// The user's live links.
pub async fn of_user(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<IdentityRow>, sqlx::Error> {
    sqlx::query_as(
        "select provider, subject, email, linked_at, last_used_at, unlinked_at from oauth_identities
         where user_id = $1 and unlinked_at is null order by linked_at",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// Every link the user has had and is kept (unlinked ones too), for their data export.
pub async fn all_of_user(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<IdentityRow>, sqlx::Error> {
    sqlx::query_as(
        "select provider, subject, email, linked_at, last_used_at, unlinked_at from oauth_identities
         where user_id = $1 order by linked_at",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// Unlinks the user's account of `provider` (kept, marked); false when none is linked.
pub async fn unlink(
    conn: &mut PgConnection,
    user_id: Uuid,
    provider: Provider,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update oauth_identities set unlinked_at = $3
         where user_id = $1 and provider = $2 and unlinked_at is null",
    )
    .bind(user_id)
    .bind(provider.as_str())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A deleted account keeps no provider links nor flows.
pub async fn forget_user(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("delete from oauth_identities where user_id = $1").bind(user_id).execute(&mut *conn).await?;
    sqlx::query("delete from oauth_flows where user_id = $1").bind(user_id).execute(conn).await?;
    Ok(())
}
