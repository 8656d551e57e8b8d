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

/// The announced line-up: artists with at least one published (or cancelled, so still
/// shown) set. An artist booked only in draft slots is not public yet.
pub async fn announced(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<ArtistRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from artists a where festival_id = $1 and exists (
             select 1 from performances p
             where p.artist_id = a.id and p.status in ('PUBLISHED', 'CANCELLED'))
         order by name"
    ))
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

pub async fn find(conn: &mut PgConnection, festival_id: Uuid, id: Uuid) -> Result<Option<ArtistRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from artists where festival_id = $1 and id = $2 for update"))
        .bind(festival_id)
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn update(conn: &mut PgConnection, a: &ArtistRow) -> Result<ArtistRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "update artists set name = $2, genres = $3, bio = $4, image_url = $5, contact = $6, bios = $7, links = $8,
           updated_at = now()
         where id = $1 returning ",
        columns!()
    ))
    .bind(a.id)
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

/// Scheduled (not cancelled) performances of an artist.
pub async fn uses(conn: &mut PgConnection, id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from performances where artist_id = $1 and status <> 'CANCELLED'")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Deletes an artist with its cancelled performances (and their stars).
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    for sql in [
        "delete from favourites where performance_id in (select id from performances where artist_id = $1)",
        "delete from performances where artist_id = $1 and status = 'CANCELLED'",
        "delete from artists where id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}
