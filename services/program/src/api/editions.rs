//! Editions: next year's festival from this year's, as a new draft.

use std::collections::HashMap;

use festival_platform::auth::Principal;
use festival_platform::{ApiResult, ResultExt, validate};
use festival_proto::program::v1 as pb;
use uuid::Uuid;

use super::convert::to_festival;
use super::{ProgramApi, slug};
use crate::domain::festival::MAX_NAME;
use crate::domain::lineup::PerformanceStatus;
use crate::domain::shifts::PlaceKind;
use crate::events;
use crate::store::{self, artists::ArtistRow, performances::PerformanceRow, shifts::ShiftRow, stages::StageRow};

impl ProgramApi {
    /// A new DRAFT edition from an existing one. Everything is copied in one transaction,
    /// with new ids, and moved by the offset between the two start dates.
    pub(super) async fn clone_festival(
        &self,
        caller: Principal,
        req: pb::CloneFestivalRequest,
    ) -> ApiResult<pb::Festival> {
        let source_id = validate::uuid("festival_id", &req.festival_id)?;
        let name = validate::required("name", &req.name, MAX_NAME)?;
        let slug = slug(&req.slug)?;
        let (start_time, end_time) =
            validate::required_range("start_time", &req.start_time, "end_time", &req.end_time)?;
        let mut tx = self.pool.begin().await?;
        let source = Self::managed(&mut tx, source_id, &caller).await?;
        Self::claim_slug(&mut tx, slug).await?;
        let shift = source.start_time.map_or(chrono::Duration::zero(), |old| start_time - old);
        let row = store::festivals::insert(
            &mut tx,
            &store::festivals::NewFestival {
                id: Uuid::now_v7(),
                name,
                slug,
                time_zone: &source.time_zone,
                currency: &source.currency,
                venue: &source.venue,
                address: &source.address,
                start_time: Some(start_time),
                end_time: Some(end_time),
                capacity: source.capacity,
                travel_minutes: source.travel_minutes,
                created_by: caller.user_id,
                languages: &source.languages,
                descriptions: &source.descriptions.0,
                image_urls: &source.image_urls,
            },
        )
        .await
        .on_unique(store::festivals::DRAFT_SLUG_UNIQUE, super::festivals::own_draft_has_slug())?;

        let mut new_ids: HashMap<Uuid, Uuid> = HashMap::new();
        for stage in store::stages::of_festival(&mut tx, source_id).await? {
            let copy = StageRow { id: Uuid::now_v7(), festival_id: row.id, ..stage.clone() };
            store::stages::insert(&mut tx, &copy).await?;
            new_ids.insert(stage.id, copy.id);
        }
        for artist in store::artists::of_festival(&mut tx, source_id).await? {
            let copy = ArtistRow { id: Uuid::now_v7(), festival_id: row.id, ..artist.clone() };
            store::artists::insert(&mut tx, &copy).await?;
            new_ids.insert(artist.id, copy.id);
        }
        for p in store::performances::of_festival(&mut tx, source_id, true).await? {
            let (Some(&artist_id), Some(&stage_id)) = (new_ids.get(&p.artist_id), new_ids.get(&p.stage_id)) else {
                continue;
            };
            let copy = PerformanceRow {
                id: Uuid::now_v7(),
                festival_id: row.id,
                artist_id,
                stage_id,
                start_time: validate::shifted("start_time", p.start_time, shift)?,
                end_time: validate::shifted("start_time", p.end_time, shift)?,
                status: PerformanceStatus::Draft,
            };
            store::performances::insert(&mut tx, &copy).await?;
        }
        for s in store::shifts::of_festival(&mut tx, source_id).await? {
            let place = match Uuid::try_parse(&s.place).ok().and_then(|id| new_ids.get(&id)) {
                Some(stage) if s.place_kind == PlaceKind::Stage => stage.to_string(),
                _ => s.place.clone(),
            };
            let copy = ShiftRow {
                id: Uuid::now_v7(),
                festival_id: row.id,
                place,
                start_time: validate::shifted("start_time", s.start_time, shift)?,
                end_time: validate::shifted("start_time", s.end_time, shift)?,
                assignees: Vec::new(),
                ..s
            };
            store::shifts::insert(&mut tx, &copy).await?;
        }
        events::publish(&mut tx, &events::festival_created(&row)).await?;
        tx.commit().await?;
        Ok(to_festival(&row))
    }
}
