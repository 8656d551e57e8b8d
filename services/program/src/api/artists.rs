//! Artists: names, genres, bios and links for the public, booking contacts for organizers.

use festival_platform::auth::Principal;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::program::v1 as pb;
use sqlx::types::Json;
use uuid::Uuid;

use super::convert::to_artist;
use super::{ProgramApi, https_urls, localized};
use crate::domain::festival::{self as rules, MAX_NAME, MAX_TEXT};
use crate::store::festivals::Holding;
use crate::store::{self, artists::ArtistRow};

impl ProgramApi {
    pub(super) async fn create_artist(&self, caller: Principal, req: pb::CreateArtistRequest) -> ApiResult<pb::Artist> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let name = validate::required("name", &req.name, MAX_NAME)?;
        let genres = genres(&req.genres)?;
        let bio = validate::optional("bio", &req.bio, 5_000)?.unwrap_or("");
        let image_url = validate::optional("image_url", &req.image_url, 2_000)?.unwrap_or("");
        if !image_url.is_empty() && !rules::valid_https_url(image_url) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "image_url", "must be an https URL"));
        }
        let contact = validate::optional("contact", &req.contact, MAX_TEXT)?.unwrap_or("");
        let links = https_urls("links", &req.links)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::managed(&mut tx, festival_id, &caller).await?;
        self.room_for(&mut tx, festival_id, Holding::Artists).await?;
        let bios = localized("bios", &req.bios, &festival.languages, 5_000)?;
        let artist = ArtistRow {
            id: Uuid::now_v7(),
            festival_id,
            name: name.to_owned(),
            genres,
            bio: bio.to_owned(),
            image_url: image_url.to_owned(),
            contact: contact.to_owned(),
            bios: Json(bios),
            links: links.to_vec(),
        };
        let row = store::artists::insert(&mut tx, &artist).await.on_unique(
            store::artists::NAME_UNIQUE,
            ApiError::field(codes::ALREADY_EXISTS, "name", "this festival already has an artist with that name"),
        )?;
        tx.commit().await?;
        Ok(to_artist(&row, true))
    }

    pub(super) async fn list_artists(
        &self,
        caller: Option<Principal>,
        req: pb::ListArtistsRequest,
    ) -> ApiResult<pb::ListArtistsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut conn = self.pool.acquire().await?;
        let (_, manager) = Self::readable(&mut conn, festival_id, caller.as_ref()).await?;
        // Organizers see the whole booking list; everyone else the announced line-up only.
        let rows = if manager {
            store::artists::of_festival(&mut conn, festival_id).await?
        } else {
            store::artists::announced(&mut conn, festival_id).await?
        };
        Ok(pb::ListArtistsResponse { artists: rows.iter().map(|a| to_artist(a, manager)).collect() })
    }

    pub(super) async fn update_artist(&self, caller: Principal, req: pb::UpdateArtistRequest) -> ApiResult<pb::Artist> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let artist_id = validate::uuid("artist_id", &req.artist_id)?;
        let name = validate::optional("name", &req.name, MAX_NAME)?;
        let new_genres = (!req.genres.is_empty()).then(|| genres(&req.genres)).transpose()?;
        let bio = validate::optional("bio", &req.bio, 5_000)?;
        let image_url = validate::optional("image_url", &req.image_url, 2_000)?;
        if image_url.is_some_and(|url| !rules::valid_https_url(url)) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "image_url", "must be an https URL"));
        }
        let contact = validate::optional("contact", &req.contact, MAX_TEXT)?;
        let links = https_urls("links", &req.links)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::managed(&mut tx, festival_id, &caller).await?;
        let bios = localized("bios", &req.bios, &festival.languages, 5_000)?;
        let current = store::artists::find(&mut tx, festival_id, artist_id)
            .await?
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "artist_id", "no such artist at this festival"))?;
        let changed = ArtistRow {
            name: name.map_or(current.name.clone(), str::to_owned),
            genres: new_genres.unwrap_or(current.genres.clone()),
            bio: bio.map_or(current.bio.clone(), str::to_owned),
            image_url: image_url.map_or(current.image_url.clone(), str::to_owned),
            contact: contact.map_or(current.contact.clone(), str::to_owned),
            bios: if bios.is_empty() { current.bios.clone() } else { Json(bios) },
            links: if links.is_empty() { current.links.clone() } else { links.to_vec() },
            ..current
        };
        let row = store::artists::update(&mut tx, &changed).await.on_unique(
            store::artists::NAME_UNIQUE,
            ApiError::field(codes::ALREADY_EXISTS, "name", "this festival already has an artist with that name"),
        )?;
        tx.commit().await?;
        Ok(to_artist(&row, true))
    }

    pub(super) async fn delete_artist(
        &self,
        caller: Principal,
        req: pb::DeleteArtistRequest,
    ) -> ApiResult<pb::DeleteArtistResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let artist_id = validate::uuid("artist_id", &req.artist_id)?;
        let mut tx = self.pool.begin().await?;
        Self::managed(&mut tx, festival_id, &caller).await?;
        if store::artists::find(&mut tx, festival_id, artist_id).await?.is_none() {
            return Err(ApiError::field(codes::NOT_FOUND, "artist_id", "no such artist at this festival"));
        }
        let uses = store::artists::uses(&mut tx, artist_id).await?;
        if uses > 0 {
            return Err(ApiError::new(codes::IN_USE)
                .with_message(format!("{uses} performance(s) of this artist are scheduled; cancel them first")));
        }
        store::artists::delete(&mut tx, artist_id).await?;
        tx.commit().await?;
        Ok(pb::DeleteArtistResponse {})
    }
}

/// Up to 20 genres of up to 50 characters, lower-cased.
fn genres(list: &[String]) -> ApiResult<Vec<String>> {
    if list.len() > rules::MAX_GENRES {
        return Err(ApiError::field(codes::FIELD_TOO_LONG, "genres", format!("at most {} genres", rules::MAX_GENRES)));
    }
    list.iter().map(|g| validate::required("genres", g, rules::MAX_GENRE_CHARS).map(rules::normalise_genre)).collect()
}
