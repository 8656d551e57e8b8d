//! Festivals: create, read, list, update, the status workflow and delete.

use festival_platform::auth::{Principal, Role};
use festival_platform::{ApiError, ApiResult, ResultExt, codes, page_token, validate};
use festival_proto::program::v1 as pb;
use uuid::Uuid;

/// Page-token scope of ListFestivals.
const LIST_SCOPE: &str = "program.ListFestivals";

use super::convert::{status_from_proto, status_to_proto, to_festival};
use super::{DEFAULT_PAGE, MAX_PAGE, ProgramApi, conflict_refusal, https_urls, localized, non_negative, slug, visible};
use crate::domain::conflicts::new_conflicts;
use crate::domain::festival::{self as rules, MAX_NAME, MAX_TEXT};
use crate::domain::status::{self, Completeness, Status as FestivalStatus, TransitionError};
use crate::events;
use crate::store::{self};

impl ProgramApi {
    pub(super) async fn create_festival(
        &self,
        caller: Principal,
        req: pb::CreateFestivalRequest,
    ) -> ApiResult<pb::Festival> {
        let name = validate::required("name", &req.name, MAX_NAME)?;
        let slug = slug(&req.slug)?;
        let time_zone = validate::required("time_zone", &req.time_zone, 64)?;
        if !rules::valid_time_zone(time_zone) {
            return Err(ApiError::field(codes::UNKNOWN_TIME_ZONE, "time_zone", "not an IANA time zone"));
        }
        let currency = validate::required("currency", &req.currency, 3)?;
        if !rules::valid_currency(currency) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "currency", "an ISO 4217 code such as EUR"));
        }
        let venue = validate::optional("venue", &req.venue, MAX_TEXT)?.unwrap_or("");
        let address = validate::optional("address", &req.address, MAX_TEXT)?.unwrap_or("");
        let (start_time, end_time) =
            (validate::timestamp("start_time", &req.start_time)?, validate::timestamp("end_time", &req.end_time)?);
        if !rules::valid_dates(start_time, end_time) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "end_time", "must be after start_time"));
        }
        let capacity = non_negative("capacity", req.capacity)?;
        let travel_minutes =
            if req.travel_minutes == 0 { 15 } else { non_negative("travel_minutes", req.travel_minutes)? };
        let default_languages = vec!["en".to_owned()];
        let languages = if req.languages.is_empty() { &default_languages } else { languages(&req.languages)? };
        let descriptions = descriptions(&req.descriptions, languages)?;
        let image_urls = image_urls(&req.image_urls)?;

        let mut tx = self.pool.begin().await?;
        Self::claim_slug(&mut tx, slug).await?;
        let row = store::festivals::insert(
            &mut tx,
            &store::festivals::NewFestival {
                id: Uuid::now_v7(),
                name,
                slug,
                time_zone,
                currency,
                venue,
                address,
                start_time,
                end_time,
                capacity,
                travel_minutes,
                created_by: caller.user_id,
                languages,
                descriptions: &descriptions,
                image_urls,
            },
        )
        .await
        .on_unique(store::festivals::DRAFT_SLUG_UNIQUE, own_draft_has_slug())?;
        events::publish(&mut tx, &events::festival_created(&row)).await?;
        tx.commit().await?;
        Ok(to_festival(&row))
    }

    /// Refuses a slug a visible festival uses. Drafts of others do not count: refusing
    /// their slugs would reveal them (publishing checks again).
    pub(super) async fn claim_slug(conn: &mut sqlx::PgConnection, slug: &str) -> ApiResult<()> {
        if store::festivals::slug_is_public(conn, slug).await? {
            return Err(ApiError::field(codes::SLUG_TAKEN, "slug", "is already used by another festival"));
        }
        Ok(())
    }

    pub(super) async fn get_festival(
        &self,
        caller: Option<Principal>,
        req: pb::GetFestivalRequest,
    ) -> ApiResult<pb::Festival> {
        let key = validate::required("id_or_slug", &req.id_or_slug, 63)?;
        let mut conn = self.pool.acquire().await?;
        let candidates = match Uuid::try_parse(key) {
            Ok(id) => store::festivals::find(&mut conn, id, false).await?.into_iter().collect(),
            Err(_) => store::festivals::find_by_slug(&mut conn, key).await?,
        };
        // A slug names the visible festival, else a draft this caller may see.
        let festival =
            candidates.into_iter().find(|f| visible(f, caller.as_ref())).ok_or(ApiError::new(codes::NOT_FOUND))?;
        Ok(to_festival(&festival))
    }

    pub(super) async fn list_festivals(
        &self,
        caller: Option<Principal>,
        req: pb::ListFestivalsRequest,
    ) -> ApiResult<pb::ListFestivalsResponse> {
        let page_size = validate::page_size("page_size", req.page_size, DEFAULT_PAGE, MAX_PAGE)?;
        let after: Option<Uuid> = page_token::decode(LIST_SCOPE, &req.page_token)?;
        let (admin, user, organizer_of) = match &caller {
            Some(c) => (
                c.is_admin(),
                Some(c.user_id),
                // Through `has`: a festival requiring a second factor lists its drafts only
                // to sessions that have one.
                c.memberships
                    .iter()
                    .filter(|m| m.role == Role::Organizer && c.has(m.fid, Role::Organizer))
                    .map(|m| m.fid)
                    .collect(),
            ),
            None => (false, None, Vec::new()),
        };
        let mut conn = self.pool.acquire().await?;
        let mut rows =
            store::festivals::list_visible(&mut conn, admin, user, &organizer_of, after, i64::from(page_size) + 1)
                .await?;
        let next_page_token = page_token::next_page(&mut rows, page_size as usize, LIST_SCOPE, |r| r.id);
        Ok(pb::ListFestivalsResponse { festivals: rows.iter().map(to_festival).collect(), next_page_token })
    }

    pub(super) async fn update_festival(
        &self,
        caller: Principal,
        req: pb::UpdateFestivalRequest,
    ) -> ApiResult<pb::Festival> {
        let id = validate::uuid("festival_id", &req.festival_id)?;
        let new_languages = (!req.languages.is_empty()).then(|| languages(&req.languages)).transpose()?;
        let new_images = (!req.image_urls.is_empty()).then(|| image_urls(&req.image_urls)).transpose()?;
        let mut changes = store::festivals::Changes {
            name: validate::optional("name", &req.name, MAX_NAME)?,
            venue: validate::optional("venue", &req.venue, MAX_TEXT)?,
            address: validate::optional("address", &req.address, MAX_TEXT)?,
            start_time: validate::timestamp("start_time", &req.start_time)?,
            end_time: validate::timestamp("end_time", &req.end_time)?,
            capacity: (req.capacity != 0).then(|| non_negative("capacity", req.capacity)).transpose()?,
            travel_minutes: (req.travel_minutes != 0)
                .then(|| non_negative("travel_minutes", req.travel_minutes))
                .transpose()?,
            languages: new_languages,
            descriptions: None,
            image_urls: new_images,
        };
        let mut tx = self.pool.begin().await?;
        let current = Self::managed(&mut tx, id, &caller).await?;
        // Descriptions (replaced as a whole) are checked against the languages the festival will have.
        let texts;
        if !req.descriptions.is_empty() {
            texts = descriptions(&req.descriptions, changes.languages.unwrap_or(&current.languages))?;
            changes.descriptions = Some(&texts);
        }
        if !rules::valid_dates(changes.start_time.or(current.start_time), changes.end_time.or(current.end_time)) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "end_time", "must be after start_time"));
        }
        // New dates or travel time may not put the published schedule in conflict.
        let before = Self::conflicts(&mut tx, &current, false).await?.conflicts;
        let row = store::festivals::update(&mut tx, id, &changes).await?;
        let broken = new_conflicts(&before, Self::conflicts(&mut tx, &row, false).await?.conflicts);
        if !broken.is_empty() {
            let message = "This change would put the published schedule in conflict";
            return Err(conflict_refusal(&broken, broken.len(), message));
        }
        events::publish(
            &mut tx,
            &pb::FestivalUpdated { festival_id: id.to_string(), facts: Some(events::festival_facts(&row)) },
        )
        .await?;
        tx.commit().await?;
        Ok(to_festival(&row))
    }

    pub(super) async fn transition_festival(
        &self,
        caller: Principal,
        req: pb::TransitionFestivalRequest,
    ) -> ApiResult<pb::Festival> {
        let id = validate::uuid("festival_id", &req.festival_id)?;
        let target = validate::known_enum::<pb::FestivalStatus>("status", req.status, false)?
            .and_then(status_from_proto)
            .ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "status", "is required"))?;
        let mut tx = self.pool.begin().await?;
        let current = Self::managed(&mut tx, id, &caller).await?;
        let from = current.status;
        let completeness = Completeness {
            has_dates: current.start_time.is_some() && current.end_time.is_some(),
            stage_count: store::stages::count(&mut tx, id).await? as usize,
        };
        let to = status::transition(from, target, completeness).map_err(|e| match e {
            TransitionError::NotAllowed { from, to } => ApiError::new(codes::INVALID_STATUS_TRANSITION)
                .with_message(format!("A {} festival cannot become {}", from.as_str(), to.as_str()))
                .with_metadata("from", from.as_str())
                .with_metadata("to", to.as_str()),
            TransitionError::Incomplete(missing) => {
                missing.iter().fold(ApiError::new(codes::FESTIVAL_INCOMPLETE), |e, field| {
                    e.with_violation(field, "is required before publishing")
                })
            }
        })?;
        let row = store::festivals::set_status(&mut tx, id, to).await.on_unique(
            store::festivals::SLUG_UNIQUE,
            ApiError::field(
                codes::SLUG_TAKEN,
                "slug",
                "a published festival uses this slug now; clone this draft under another slug",
            ),
        )?;
        events::publish(
            &mut tx,
            &pb::FestivalStatusChanged {
                festival_id: id.to_string(),
                from: status_to_proto(from) as i32,
                to: status_to_proto(to) as i32,
                facts: Some(events::festival_facts(&row)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(to_festival(&row))
    }

    pub(super) async fn delete_festival(
        &self,
        caller: Principal,
        req: pb::DeleteFestivalRequest,
    ) -> ApiResult<pb::DeleteFestivalResponse> {
        let id = validate::uuid("festival_id", &req.festival_id)?;
        let mut tx = self.pool.begin().await?;
        let current = Self::managed(&mut tx, id, &caller).await?;
        if !matches!(current.status, FestivalStatus::Draft | FestivalStatus::Cancelled) {
            return Err(ApiError::new(codes::INVALID_STATUS_TRANSITION)
                .with_message("Only draft or cancelled festivals can be deleted; cancel it first"));
        }
        store::festivals::soft_delete(&mut tx, id).await?;
        events::publish(&mut tx, &pb::FestivalDeleted { festival_id: id.to_string() }).await?;
        tx.commit().await?;
        Ok(pb::DeleteFestivalResponse {})
    }
}

/// Distinct BCP 47 tags, at most [`rules::MAX_LANGUAGES`].
fn languages(tags: &[String]) -> ApiResult<&[String]> {
    if tags.len() > rules::MAX_LANGUAGES {
        return Err(ApiError::field(codes::FIELD_TOO_LONG, "languages", "at most 20 languages"));
    }
    for (i, tag) in tags.iter().enumerate() {
        if !rules::valid_language(tag) {
            return Err(ApiError::field(
                codes::VALIDATION_FAILED,
                "languages",
                "BCP 47 tags such as \"en\" or \"fr-CA\"",
            ));
        }
        if tags[..i].contains(tag) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "languages", "each language once"));
        }
    }
    Ok(tags)
}

/// Texts by language: each key one of `languages`, each text at most 10,000 characters.
fn descriptions(
    texts: &std::collections::BTreeMap<String, String>,
    languages: &[String],
) -> ApiResult<std::collections::BTreeMap<String, String>> {
    localized("descriptions", texts, languages, 10_000)
}

fn image_urls(urls: &[String]) -> ApiResult<&[String]> {
    https_urls("image_urls", urls)
}

/// The caller already has a draft with this slug (their own, so naming it reveals nothing).
pub(super) fn own_draft_has_slug() -> ApiError {
    ApiError::field(codes::SLUG_TAKEN, "slug", "one of your drafts already uses this slug")
}
