use chrono::{DateTime, Utc};
use festival_platform::auth::Role;
use sqlx::PgConnection;
use uuid::Uuid;

/// Name of the unique index on live accounts' emails.
pub const EMAIL_UNIQUE: &str = "users_email_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub language: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Disabled by an admin: no sign-in, no refresh.
    pub disabled_at: Option<DateTime<Utc>>,
    /// When its current address was shown to be the holder's (a mailed link followed).
    pub email_verified_at: Option<DateTime<Utc>>,
}

macro_rules! user_columns {
    () => {
        "id, email, password_hash, display_name, language, role, created_at, updated_at, disabled_at, email_verified_at"
    };
}

pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub display_name: &'a str,
    pub language: &'a str,
}

pub async fn insert(conn: &mut PgConnection, u: &NewUser<'_>) -> Result<UserRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "insert into users (id, email, password_hash, display_name, language) values ($1, $2, $3, $4, $5) returning ",
        user_columns!()
    ))
    .bind(u.id)
    .bind(u.email)
    .bind(u.password_hash)
    .bind(u.display_name)
    .bind(u.language)
    .fetch_one(conn)
    .await
}

/// A live (not deleted) account by email.
pub async fn find_by_email(conn: &mut PgConnection, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", user_columns!(), " from users where email = $1 and deleted_at is null"))
        .bind(email)
        .fetch_optional(conn)
        .await
}

/// A live account by id.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", user_columns!(), " from users where id = $1 and deleted_at is null"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// A live account by id, locked against deletion until the transaction ends: a sign-in
/// or refresh racing a deletion either finishes first (and the deletion revokes what it
/// made) or finds no account.
pub async fn lock_live(conn: &mut PgConnection, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", user_columns!(), " from users where id = $1 and deleted_at is null for share"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn update_profile(
    conn: &mut PgConnection,
    id: Uuid,
    display_name: Option<&str>,
    language: Option<&str>,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!("update users set display_name = coalesce($2, display_name), language = coalesce($3, language), updated_at = now()
         where id = $1 and deleted_at is null returning ", user_columns!()))
    .bind(id)
    .bind(display_name)
    .bind(language)
    .fetch_optional(conn)
    .await
}

/// Deletion: the row keeps only its pseudonymous id, role and dates (other services and
/// the ledgers refer to the id); the email, password hash and name are scrubbed, and the
/// address is free again.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update users set deleted_at = now(), updated_at = now(),
                email = 'deleted-' || id || '@invalid', password_hash = '', display_name = ''
         where id = $1 and deleted_at is null",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces a password hash (a rehash at a raised cost).
pub async fn set_password_hash(conn: &mut PgConnection, id: Uuid, password_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update users set password_hash = $2, updated_at = now() where id = $1 and deleted_at is null")
        .bind(id)
        .bind(password_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Disables (`Some(reason)`) or enables (`None`) a live account, locking it first so a
/// sign-in or refresh racing it finishes before (and its session is revoked with the
/// others) or sees it disabled. Returns the row and whether it changed (disabling a
/// disabled account keeps its first time and reason), or `None` when there is no live
/// account.
pub async fn set_disabled(
    conn: &mut PgConnection,
    id: Uuid,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Option<(UserRow, bool)>, sqlx::Error> {
    let Some(row) = sqlx::query_as::<_, UserRow>(concat!(
        "select ",
        user_columns!(),
        " from users where id = $1 and deleted_at is null for update"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    if row.disabled_at.is_some() == reason.is_some() {
        return Ok(Some((row, false)));
    }
    let row = sqlx::query_as(concat!(
        "update users set disabled_at = case when $2::text is null then null else $3 end,
                disabled_reason = $2, updated_at = now()
         where id = $1 returning ",
        user_columns!()
    ))
    .bind(id)
    .bind(reason)
    .bind(at)
    .fetch_one(conn)
    .await?;
    Ok(Some((row, true)))
}

/// A live account locked for a change of its own row (a reset, a verification): two such
/// changes, or one and a sign-in (which shares the row), take turns.
pub async fn lock_for_change(conn: &mut PgConnection, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        user_columns!(),
        " from users where id = $1 and deleted_at is null for no key update"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Notes that `email` (still the account's address) reached its holder.
pub async fn mark_email_verified(
    conn: &mut PgConnection,
    id: Uuid,
    email: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update users set email_verified_at = coalesce(email_verified_at, $3), updated_at = now()
         where id = $1 and email = $2 and deleted_at is null",
    )
    .bind(id)
    .bind(email)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the global role (ADMIN or USER). Used by the `promote-admin` command and tests.
pub async fn set_role(conn: &mut PgConnection, email: &str, role: Role) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("update users set role = $2, updated_at = now() where email = $1 and deleted_at is null")
        .bind(email)
        .bind(role.as_str())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
