use sqlx::PgConnection;
use uuid::Uuid;

pub const NAME_UNIQUE: &str = "stages_name_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StageRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub name: String,
    pub capacity: i32,
    pub position: i32,
    pub changeover_minutes: i32,
}

pub async fn insert(conn: &mut PgConnection, s: &StageRow) -> Result<StageRow, sqlx::Error> {
    sqlx::query_as(
        "insert into stages (id, festival_id, name, capacity, position, changeover_minutes) values ($1, $2, $3, $4, $5, $6)
         returning id, festival_id, name, capacity, position, changeover_minutes",
    )
    .bind(s.id)
    .bind(s.festival_id)
    .bind(&s.name)
    .bind(s.capacity)
    .bind(s.position)
    .bind(s.changeover_minutes)
    .fetch_one(conn)
    .await
}

pub async fn of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<StageRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, festival_id, name, capacity, position, changeover_minutes from stages
         where festival_id = $1 order by position, name",
    )
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

pub async fn count(conn: &mut PgConnection, festival_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from stages where festival_id = $1").bind(festival_id).fetch_one(conn).await
}

pub async fn update(conn: &mut PgConnection, s: &StageRow) -> Result<StageRow, sqlx::Error> {
    sqlx::query_as(
        "update stages set name = $2, capacity = $3, position = $4, changeover_minutes = $5, updated_at = now()
         where id = $1 returning id, festival_id, name, capacity, position, changeover_minutes",
    )
    .bind(s.id)
    .bind(&s.name)
    .bind(s.capacity)
    .bind(s.position)
    .bind(s.changeover_minutes)
    .fetch_one(conn)
    .await
}

/// Scheduled (not cancelled) performances and shifts on a stage.
pub async fn uses(conn: &mut PgConnection, id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select (select count(*) from performances where stage_id = $1 and status <> 'CANCELLED')
              + (select count(*) from shifts where place_kind = 'STAGE' and place = $1::text)",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Deletes a stage with its cancelled performances (and their stars).
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    for sql in [
        "delete from favourites where performance_id in (select id from performances where stage_id = $1)",
        "delete from performances where stage_id = $1 and status = 'CANCELLED'",
        "delete from stages where id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}
