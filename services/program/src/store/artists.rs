use std::collections::BTreeMap;

use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

pub const NAME_UNIQUE: &str = "artists_name_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArtistRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub name: String,
    pub genres: Vec<String>,
    pub bio: String,
    pub image_url: String,
    pub contact: String,
    pub bios: Json<BTreeMap<String, String>>,
    pub links: Vec<String>,
}

macro_rules! columns {
    () => {
        "id, festival_id, name, genres, bio, image_url, contact, bios, links"
    };
}

pub async fn insert(conn: &mut PgConnection, a: &ArtistRow) -> Result<ArtistRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "insert into artists (id, festival_id, name, genres, bio, image_url, contact, bios, links)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning ",
        columns!()
    ))
    .bind(a.id)
    .bind(a.festival_id)
    .bind(&a.name)
    .bind(&a.genres)
    .bind(&a.bio)
    .bind(&a.image_url)
    .bind(&a.contact)
    .bind(&a.bios)
    .bind(&a.links)
    .fetch_one(conn)
    .await
}

pub async fn of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<ArtistRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from artists where festival_id = $1 order by name"))
        .bind(festival_id)
        .fetch_all(conn)
        .await
}

pub async fn exists(conn: &mut PgConnection, festival_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists(select 1 from artists where festival_id = $1 and id = $2)")
        .bind(festival_id)
        .bind(id)
        .fetch_one(conn)
        .await
}
