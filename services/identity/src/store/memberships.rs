use chrono::{DateTime, Utc};
use festival_platform::auth::Role;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    pub festival_id: Uuid,
    pub user_id: Uuid,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub granted_by: Uuid,
    pub created_at: DateTime<Utc>,
}

macro_rules! membership_columns {
    () => {
        "festival_id, user_id, role, granted_by, created_at"
    };
}

/// Grants a role; granting one already held changes nothing and returns the existing row.
/// The bool is true when the grant is new.
pub async fn grant(
    conn: &mut PgConnection,
    festival_id: Uuid,
    user_id: Uuid,
    role: Role,
    granted_by: Uuid,
) -> Result<(MembershipRow, bool), sqlx::Error> {
    let inserted: Option<MembershipRow> = sqlx::query_as(concat!(
        "insert into memberships (festival_id, user_id, role, granted_by) values ($1, $2, $3, $4)
         on conflict do nothing returning ",
        membership_columns!()
    ))
    .bind(festival_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(granted_by)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = inserted {
        return Ok((row, true));
    }
    let existing = sqlx::query_as(concat!(
        "select ",
        membership_columns!(),
        " from memberships where festival_id = $1 and user_id = $2 and role = $3"
    ))
    .bind(festival_id)
    .bind(user_id)
    .bind(role.as_str())
    .fetch_one(conn)
    .await?;
    Ok((existing, false))
}

/// Whether the user holds `role` at the festival, the membership locked against revoking
/// until the transaction ends (a badge issued for it is in before the revocation looks).
pub async fn lock_held(
    conn: &mut PgConnection,
    festival_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<bool, sqlx::Error> {
    let held: Option<i32> =
        sqlx::query_scalar("select 1 from memberships where festival_id = $1 and user_id = $2 and role = $3 for share")
            .bind(festival_id)
            .bind(user_id)
            .bind(role.as_str())
            .fetch_optional(conn)
            .await?;
    Ok(held.is_some())
}

pub async fn revoke(
    conn: &mut PgConnection,
    festival_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("delete from memberships where festival_id = $1 and user_id = $2 and role = $3")
        .bind(festival_id)
        .bind(user_id)
        .bind(role.as_str())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn revoke_all_of_user(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<MembershipRow>, sqlx::Error> {
    sqlx::query_as(concat!("delete from memberships where user_id = $1 returning ", membership_columns!()))
        .bind(user_id)
        .fetch_all(conn)
        .await
}

pub async fn of_user(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<MembershipRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        membership_columns!(),
        " from memberships where user_id = $1 order by festival_id, role"
    ))
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// One page of a festival's roster, ordered by (user_id, role), after the cursor.
pub async fn of_festival(
    conn: &mut PgConnection,
    festival_id: Uuid,
    after: Option<(Uuid, String)>,
    limit: i64,
) -> Result<Vec<MembershipRow>, sqlx::Error> {
    let (after_user, after_role) = after.map_or((None, None), |(u, r)| (Some(u), Some(r)));
    sqlx::query_as(concat!(
        "select ",
        membership_columns!(),
        " from memberships
         where festival_id = $1 and ($2::uuid is null or (user_id, role) > ($2, $3))
         order by user_id, role limit $4"
    ))
    .bind(festival_id)
    .bind(after_user)
    .bind(after_role)
    .bind(limit)
    .fetch_all(conn)
    .await
}
