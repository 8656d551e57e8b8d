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
