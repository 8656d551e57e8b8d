//! Festival members as identity reports them (program's read-only copy), and forgetting
//! a deleted account.

use sqlx::PgConnection;
use uuid::Uuid;

/// Records a grant or a revocation carried by `event_id`, unless a later event already
/// set this membership (event ids are UUIDv7, ordered by time).
pub async fn apply(
    conn: &mut PgConnection,
    festival_id: Uuid,
    user_id: Uuid,
    role: &str,
    active: bool,
    event_id: Uuid,
) -> Result<(), sqlx::Error> {
    // An event older than the account's deletion changes nothing (see `forget_user`).
    sqlx::query(
        "insert into festival_members (festival_id, user_id, role, active, event_id)
         select $1, $2, $3, $4, $5
          where not exists (select 1 from forgotten_users f where f.user_id = $2 and f.event_id > $5)
         on conflict (festival_id, user_id, role) do update set active = excluded.active, event_id = excluded.event_id
          where festival_members.event_id is null or festival_members.event_id < excluded.event_id",
    )
    .bind(festival_id)
    .bind(user_id)
    .bind(role)
    .bind(active)
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the user holds `role` at the festival; a festival's ORGANIZER holds every role.
pub async fn holds(conn: &mut PgConnection, festival_id: Uuid, user_id: Uuid, role: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists(select 1 from festival_members
                        where festival_id = $1 and user_id = $2 and active and (role = $3 or role = 'ORGANIZER'))",
    )
    .bind(festival_id)
    .bind(user_id)
    .bind(role)
    .fetch_one(conn)
    .await
}

/// Removes a deleted account's favourites, feed secrets, memberships and future shifts,
/// and leaves a tombstone (the pseudonymous id and the deletion event's id) so that a
/// membership event older than the deletion, redelivered late, cannot bring it back.
pub async fn forget_user(conn: &mut PgConnection, user_id: Uuid, event_id: Uuid) -> Result<(), sqlx::Error> {
    // The tombstone keeps late, older membership events from re-adding the account.
    sqlx::query(
        "insert into forgotten_users (user_id, event_id) values ($1, $2)
         on conflict (user_id) do update set event_id = greatest(forgotten_users.event_id, excluded.event_id),
                                              updated_at = now()",
    )
    .bind(user_id)
    .bind(event_id)
    .execute(&mut *conn)
    .await?;
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
