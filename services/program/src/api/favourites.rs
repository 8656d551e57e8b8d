//! Favourites: a festival-goer's starred performances, their clashes, and a personal
//! calendar feed behind a secret URL.

use std::hash::{Hash, Hasher};

use festival_platform::auth::Principal;
use festival_platform::convert::timestamp;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::google::api::HttpBody;
use festival_proto::program::v1 as pb;
use uuid::Uuid;

use super::ProgramApi;
use super::convert::{calendar_body, columns, entry, to_clash};
use super::zone;
use crate::domain::clashes::{self, Starred};
use crate::domain::feed;
use crate::domain::lineup::PerformanceStatus;
use crate::store;
use festival_platform::rpc::cacheable;

impl ProgramApi {
    pub(super) async fn add_favourite(
        &self,
        caller: Principal,
        req: pb::AddFavouriteRequest,
    ) -> ApiResult<pb::AddFavouriteResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let performance_id = validate::uuid("performance_id", &req.performance_id)?;
        let mut tx = self.pool.begin().await?;
        Self::readable(&mut tx, festival_id, Some(&caller)).await?;
        let performance = store::performances::find_locked(&mut tx, festival_id, performance_id)
            .await?
            .filter(|p| p.status != PerformanceStatus::Draft)
            .ok_or_else(|| {
                ApiError::field(codes::NOT_FOUND, "performance_id", "no such performance at this festival")
            })?;
        if performance.status == PerformanceStatus::Cancelled {
            return Err(ApiError::new(codes::PERFORMANCE_CANCELLED).with_message("This performance was cancelled"));
        }
        store::favourites::add(&mut tx, festival_id, caller.user_id, performance_id).await?;
        tx.commit().await?;
        Ok(pb::AddFavouriteResponse {})
    }

    pub(super) async fn remove_favourite(
        &self,
        caller: Principal,
        req: pb::RemoveFavouriteRequest,
    ) -> ApiResult<pb::RemoveFavouriteResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let performance_id = validate::uuid("performance_id", &req.performance_id)?;
        let mut conn = self.pool.acquire().await?;
        store::favourites::remove(&mut conn, festival_id, caller.user_id, performance_id).await?;
        Ok(pb::RemoveFavouriteResponse {})
    }

    pub(super) async fn list_favourites(
        &self,
        caller: Principal,
        req: pb::ListFavouritesRequest,
    ) -> ApiResult<pb::ListFavouritesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut conn = self.pool.acquire().await?;
        let (festival, _) = Self::readable(&mut conn, festival_id, Some(&caller)).await?;
        let tz = zone(&festival)?;
        let stages = store::stages::of_festival(&mut conn, festival_id).await?;
        let rows: Vec<_> = store::performances::starred_listing(&mut conn, festival_id, caller.user_id)
            .await?
            .into_iter()
            .filter(|r| r.status == PerformanceStatus::Published)
            .collect();
        let starred: Vec<Starred<Uuid>> = rows
            .iter()
            .map(|r| Starred {
                id: r.id,
                stage: r.stage_id,
                start: r.start_time.timestamp(),
                end: r.end_time.timestamp(),
            })
            .collect();
        let clashes = clashes::detect(&starred, Uuid::nil(), i64::from(festival.travel_minutes) * 60);
        let columns = columns(&stages);
        Ok(pb::ListFavouritesResponse {
            favourites: rows.iter().map(|r| entry(r, tz, &columns)).collect(),
            clashes: clashes.iter().map(to_clash).collect(),
        })
    }

    pub(super) async fn get_favourites_feed(
        &self,
        caller: Principal,
        req: pb::GetFavouritesFeedRequest,
    ) -> ApiResult<pb::FavouritesFeed> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let mut tx = self.pool.begin().await?;
        Self::readable(&mut tx, festival_id, Some(&caller)).await?;
        // The secret is stored as a digest, so it is shown only when issued.
        if !req.rotate
            && let Some(issued) = store::favourites::feed_issued(&mut tx, festival_id, caller.user_id).await?
        {
            return Ok(pb::FavouritesFeed {
                path: String::new(),
                token: String::new(),
                issue_time: Some(timestamp(issued)),
            });
        }
        let token = feed::new_secret();
        let issued =
            store::favourites::set_feed(&mut tx, festival_id, caller.user_id, &feed::secret_digest(&token)).await?;
        tx.commit().await?;
        Ok(pb::FavouritesFeed { path: format!("/v1/calendars/{token}"), token, issue_time: Some(timestamp(issued)) })
    }

    /// Public by design: calendar apps cannot log in. The secret is the credential.
    pub(super) async fn get_personal_calendar(
        &self,
        req: pb::GetPersonalCalendarRequest,
    ) -> ApiResult<tonic::Response<HttpBody>> {
        let token = validate::required("token", &req.token, 100)?;
        let token = token.strip_suffix(".ics").unwrap_or(token);
        let mut conn = self.pool.acquire().await?;
        let (festival_id, user_id) = store::favourites::feed_owner(&mut conn, &feed::secret_digest(token))
            .await?
            .ok_or(ApiError::new(codes::NOT_FOUND))?;
        let festival =
            store::festivals::find(&mut conn, festival_id, false).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let rows = store::performances::starred_listing(&mut conn, festival_id, user_id).await?;
        // Tagged by what the feed shows, so calendar apps polling it mostly get 304.
        let mut hasher = std::hash::DefaultHasher::new();
        (festival.updated_at, rows.iter().map(|r| (r.id, r.updated_at)).collect::<Vec<_>>()).hash(&mut hasher);
        let tag = format!("{:016x}", hasher.finish());
        let body = calendar_body(&festival, &format!("{}: my schedule", festival.name), &rows);
        Ok(cacheable(body, &tag, false, Some(&format!("{}-favourites.ics", festival.slug))))
    }
}
