//! Festival members as identity reports them; program's read-only copy.

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

pub async fn holds(conn: &mut PgConnection, festival_id: Uuid, user_id: Uuid, role: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists(select 1 from festival_members where festival_id = $1 and user_id = $2 and role = $3)",
    )
    .bind(festival_id)
    .bind(user_id)
    .bind(role)
    .fetch_one(conn)
    .await
}
