//! Second factors: TOTP secrets (sealed), recovery codes (hashed), sign-in challenges
//! (hashed), and festivals' security policies.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub struct TotpRow {
    pub sealed_secret: Vec<u8>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub last_step: i64,
}

/// The account's TOTP, locked: two codes checked at once serialise here, so a code is
/// accepted once.
pub async fn lock_totp(conn: &mut PgConnection, user_id: Uuid) -> Result<Option<TotpRow>, sqlx::Error> {
    // The test-only `race-hooks` build reads without the lock: the race test's negative
    // control must then see one code accepted twice.
    let sql = if cfg!(feature = "race-hooks") {
        "select sealed_secret, confirmed_at, last_step from mfa_totp where user_id = $1"
    } else {
        "select sealed_secret, confirmed_at, last_step from mfa_totp where user_id = $1 for update"
    };
    sqlx::query_as(sql).bind(user_id).fetch_optional(conn).await
}

/// Whether the account signs in with a second factor.
pub async fn is_enabled(conn: &mut PgConnection, user_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from mfa_totp where user_id = $1 and confirmed_at is not null)")
        .bind(user_id)
        .fetch_one(conn)
        .await
}

/// Starts (or restarts) an enrolment: a pending secret replaces a pending one, never a
/// confirmed one. Returns false when MFA is already on.
pub async fn start_enrolment(conn: &mut PgConnection, user_id: Uuid, sealed: &[u8]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into mfa_totp (user_id, sealed_secret) values ($1, $2)
         on conflict (user_id) do update set sealed_secret = excluded.sealed_secret, last_step = 0,
             created_at = now(), updated_at = now()
         where mfa_totp.confirmed_at is null",
    )
    .bind(user_id)
    .bind(sealed)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn confirm(conn: &mut PgConnection, user_id: Uuid, step: i64, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("update mfa_totp set confirmed_at = $3, last_step = $2, updated_at = now() where user_id = $1")
        .bind(user_id)
        .bind(step)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Spends the step a code was accepted for.
pub async fn accept_step(conn: &mut PgConnection, user_id: Uuid, step: i64) -> Result<(), sqlx::Error> {
    sqlx::query("update mfa_totp set last_step = $2, updated_at = now() where user_id = $1")
        .bind(user_id)
        .bind(step)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces the account's recovery codes.
pub async fn replace_recovery_codes(
    conn: &mut PgConnection,
    user_id: Uuid,
    hashes: &[Vec<u8>],
) -> Result<(), sqlx::Error> {
    sqlx::query("delete from mfa_recovery_codes where user_id = $1").bind(user_id).execute(&mut *conn).await?;
    sqlx::query("insert into mfa_recovery_codes (user_id, code_hash) select $1, unnest($2::bytea[])")
        .bind(user_id)
        .bind(hashes)
        .execute(conn)
        .await?;
    Ok(())
}

/// Spends a recovery code; false when it is not one of the account's unused codes.
pub async fn use_recovery_code(
    conn: &mut PgConnection,
    user_id: Uuid,
    hash: &[u8],
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update mfa_recovery_codes set used_at = $3 where user_id = $1 and code_hash = $2 and used_at is null",
    )
    .bind(user_id)
    .bind(hash)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn unused_recovery_codes(conn: &mut PgConnection, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from mfa_recovery_codes where user_id = $1 and used_at is null")
        .bind(user_id)
        .fetch_one(conn)
        .await
}

/// Switches MFA off: the secret, the recovery codes and pending challenges go.
pub async fn remove(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    for sql in [
        "delete from mfa_challenges where user_id = $1",
        "delete from mfa_recovery_codes where user_id = $1",
        "delete from mfa_totp where user_id = $1",
    ] {
        sqlx::query(sql).bind(user_id).execute(&mut *conn).await?;
    }
    Ok(())
}

/// A sign-in waiting for its second factor, with what its session will show.
pub async fn create_challenge(
    conn: &mut PgConnection,
    hash: &[u8],
    user_id: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    device_name: &str,
) -> Result<(), sqlx::Error> {
    // The account's challenges that ran out go first: the table holds live ones only.
    sqlx::query("delete from mfa_challenges where user_id = $1 and expires_at <= $2")
        .bind(user_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "insert into mfa_challenges (challenge_hash, user_id, expires_at, device_name) values ($1, $2, $3, $4)",
    )
    .bind(hash)
    .bind(user_id)
    .bind(expires_at)
    .bind(device_name)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct ChallengeRow {
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub attempts: i32,
    pub device_name: String,
}

/// Whose challenge this is, if it can still be answered at `now` (no lock: the account
/// is locked first, as everywhere). A dead challenge costs nobody's code budget.
pub async fn live_challenge_owner(
    conn: &mut PgConnection,
    hash: &[u8],
    now: DateTime<Utc>,
    max_attempts: i32,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select user_id from mfa_challenges
         where challenge_hash = $1 and expires_at > $2 and attempts < $3",
    )
    .bind(hash)
    .bind(now)
    .bind(max_attempts)
    .fetch_optional(conn)
    .await
}

pub async fn lock_challenge(conn: &mut PgConnection, hash: &[u8]) -> Result<Option<ChallengeRow>, sqlx::Error> {
    sqlx::query_as(
        "select user_id, expires_at, attempts, device_name from mfa_challenges
         where challenge_hash = $1 for update",
    )
    .bind(hash)
    .fetch_optional(conn)
    .await
}

/// Counts a wrong code against the challenge.
pub async fn count_attempt(conn: &mut PgConnection, hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("update mfa_challenges set attempts = attempts + 1 where challenge_hash = $1")
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every pending sign-in of the account (a password reset: they were started with
/// the old password).
pub async fn delete_challenges(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("delete from mfa_challenges where user_id = $1").bind(user_id).execute(conn).await?;
    Ok(())
}

/// A challenge answered: it goes.
pub async fn spend_challenge(conn: &mut PgConnection, hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("delete from mfa_challenges where challenge_hash = $1").bind(hash).execute(conn).await?;
    Ok(())
}

/// The festivals among the account's memberships whose staff must use a second factor.
pub async fn festivals_requiring_mfa(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select distinct p.festival_id from festival_security_policies p
         join memberships m on m.festival_id = p.festival_id
         where m.user_id = $1 and p.staff_mfa_required",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct PolicyRow {
    pub festival_id: Uuid,
    pub staff_mfa_required: bool,
    pub updated_by: Option<Uuid>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A festival's policy (the default, nothing required, when none was set).
pub async fn policy(conn: &mut PgConnection, festival_id: Uuid) -> Result<PolicyRow, sqlx::Error> {
    let row: Option<PolicyRow> = sqlx::query_as(
        "select festival_id, staff_mfa_required, updated_by, updated_at from festival_security_policies
         where festival_id = $1",
    )
    .bind(festival_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.unwrap_or(PolicyRow { festival_id, staff_mfa_required: false, updated_by: None, updated_at: None }))
}

pub async fn set_policy(
    conn: &mut PgConnection,
    festival_id: Uuid,
    staff_mfa_required: bool,
    by: Uuid,
    at: DateTime<Utc>,
) -> Result<PolicyRow, sqlx::Error> {
    sqlx::query_as(
        "insert into festival_security_policies (festival_id, staff_mfa_required, updated_by, updated_at)
         values ($1, $2, $3, $4)
         on conflict (festival_id) do update set staff_mfa_required = excluded.staff_mfa_required,
             updated_by = excluded.updated_by, updated_at = excluded.updated_at
         returning festival_id, staff_mfa_required, updated_by, updated_at",
    )
    .bind(festival_id)
    .bind(staff_mfa_required)
    .bind(by)
    .bind(at)
    .fetch_one(conn)
    .await
}
