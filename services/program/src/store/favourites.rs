use sqlx::PgConnection;
use uuid::Uuid;

/// Stars a performance; `false` when it already was.
pub async fn add(
    conn: &mut PgConnection,
    festival_id: Uuid,
    user_id: Uuid,
    performance_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into favourites (user_id, performance_id, festival_id) values ($1, $2, $3) on conflict do nothing",
    )
    .bind(user_id)
    .bind(performance_id)
    .bind(festival_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove(
    conn: &mut PgConnection,
    festival_id: Uuid,
    user_id: Uuid,
    performance_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("delete from favourites where festival_id = $1 and user_id = $2 and performance_id = $3")
        .bind(festival_id)
        .bind(user_id)
        .bind(performance_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Who starred a performance (notify tells them when it changes).
pub async fn fans(conn: &mut PgConnection, performance_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select user_id from favourites where performance_id = $1 order by user_id")
        .bind(performance_id)
        .fetch_all(conn)
        .await
}

/// The festival and user of a calendar feed, by the digest of its secret.
pub async fn feed_owner(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as("select festival_id, user_id from calendar_feeds where token_hash = $1")
        .bind(token_hash)
        .fetch_optional(conn)
        .await
}

/// When the user's feed secret for the festival was issued, if one was.
pub async fn feed_issued(
    conn: &mut PgConnection,
    festival_id: Uuid,
    user_id: Uuid,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error> {
    sqlx::query_scalar("select created_at from calendar_feeds where festival_id = $1 and user_id = $2")
        .bind(festival_id)
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

/// Sets (or replaces) the digest of the user's feed secret; returns when it was issued.
pub async fn set_feed(
    conn: &mut PgConnection,
    festival_id: Uuid,
    user_id: Uuid,
    token_hash: &[u8],
) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "insert into calendar_feeds (festival_id, user_id, token_hash) values ($1, $2, $3)
         on conflict (festival_id, user_id) do update set token_hash = excluded.token_hash, created_at = now()
         returning created_at",
    )
    .bind(festival_id)
    .bind(user_id)
    .bind(token_hash)
    .fetch_one(conn)
    .await
}
