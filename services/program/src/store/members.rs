//! Festival members as identity reports them (program's read-only copy), and forgetting
//! a deleted account.

use sqlx::PgConnection;
use uuid::Uuid;

pub async fn grant(conn: &mut PgConnection, festival_id: Uuid, user_id: Uuid, role: &str) -> Result<(), sqlx::Error> {
    sqlx::query("insert into festival_members (festival_id, user_id, role) values ($1, $2, $3) on conflict do nothing")
        .bind(festival_id)
        .bind(user_id)
        .bind(role)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn revoke(conn: &mut PgConnection, festival_id: Uuid, user_id: Uuid, role: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from festival_members where festival_id = $1 and user_id = $2 and role = $3")
        .bind(festival_id)
        .bind(user_id)
        .bind(role)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the user holds `role` at the festival; a festival's ORGANIZER holds every role.
pub async fn holds(conn: &mut PgConnection, festival_id: Uuid, user_id: Uuid, role: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists(select 1 from festival_members
                        where festival_id = $1 and user_id = $2 and (role = $3 or role = 'ORGANIZER'))",
    )
    .bind(festival_id)
    .bind(user_id)
    .bind(role)
    .fetch_one(conn)
    .await
}

/// Removes a deleted account's favourites, feed secrets, memberships and future shifts.
pub async fn forget_user(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    for sql in [
        "delete from favourites where user_id = $1",
        "delete from calendar_feeds where user_id = $1",
        "delete from festival_members where user_id = $1",
        "delete from shift_assignments where user_id = $1 and end_time > now()",
    ] {
        sqlx::query(sql).bind(user_id).execute(&mut *conn).await?;
    }
    Ok(())
}
