//! The catalogue: categories, the quotas that cap them, and what can be bought now.

use std::collections::{BTreeSet, HashMap};

use festival_platform::auth::{Principal, Role};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use super::TicketingApi;
use super::convert::{to_category, to_quota};
use chrono::NaiveDate;

use crate::domain::checkin::local_day;
use crate::domain::inventory::{Counters, category_available};
use crate::domain::sale::{self, in_window};
use crate::domain::status::{FestivalStatus, Visibility, festival_on_sale};
use crate::store::{self, categories::CategoryRow, festivals::FestivalRow};

const MAX_NAME: usize = 100;
const MAX_DAYS: usize = 31;
const MAX_ZONES: usize = 20;
const MAX_ZONE: usize = 64;

/// A category's valid days: ISO dates, each once, within the festival's local dates
/// when it has them (`ERR_7007` otherwise).
fn valid_days(raw: &[String], festival: &FestivalRow) -> ApiResult<Vec<NaiveDate>> {
    if raw.len() > MAX_DAYS {
        return Err(ApiError::field(codes::VALIDATION_FAILED, "valid_days", format!("at most {MAX_DAYS} days")));
    }
    let span = festival
        .start_time
        .zip(festival.end_time)
        .map(|(start, end)| local_day(&festival.time_zone, start)..=local_day(&festival.time_zone, end));
    let mut days = BTreeSet::new();
    for (i, text) in raw.iter().enumerate() {
        let field = format!("valid_days[{i}]");
        let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| ApiError::field(codes::VALIDATION_FAILED, &field, "not a YYYY-MM-DD date"))?;
        if span.as_ref().is_some_and(|span| !span.contains(&day)) {
            return Err(ApiError::field(codes::OUTSIDE_FESTIVAL_DATES, &field, "not a day of the festival"));
        }
        if !days.insert(day) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, &field, "given twice"));
        }
    }
    Ok(days.into_iter().collect())
}

/// Each category's quota counters (its availability is the minimum over them).
fn counters_by_category(quotas: &[store::quotas::QuotaRow]) -> HashMap<Uuid, Vec<Counters>> {
    let mut counters_of: HashMap<Uuid, Vec<Counters>> = HashMap::new();
    for quota in quotas {
        for category in &quota.category_ids {
            counters_of.entry(*category).or_default().push(quota.counters());
        }
    }
    counters_of
}

/// The hash of an access code a buyer typed (none when empty).
pub(super) fn access_code(festival_id: Uuid, raw: &str) -> ApiResult<Option<Vec<u8>>> {
    match validate::max_len("access_code", raw.trim(), 64)? {
        "" => Ok(None),
        code => Ok(Some(sale::access_code_hash(festival_id, validate::plain_text("access_code", code, false)?))),
    }
}

/// Zone names: plain text, each once.
fn zone_names(raw: &[String]) -> ApiResult<Vec<String>> {
    if raw.len() > MAX_ZONES {
        return Err(ApiError::field(codes::VALIDATION_FAILED, "zones", format!("at most {MAX_ZONES} zones")));
    }
    let mut zones = BTreeSet::new();
    for (i, zone) in raw.iter().enumerate() {
        let field = format!("zones[{i}]");
        let zone = validate::plain_text(&field, validate::required(&field, zone.trim(), MAX_ZONE)?, false)?;
        if !zones.insert(zone.to_owned()) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, &field, "given twice"));
        }
    }
    Ok(zones.into_iter().collect())
}

impl TicketingApi {
    pub(super) async fn create_category(
        &self,
        caller: Principal,
        req: pb::CreateCategoryRequest,
    ) -> ApiResult<pb::Category> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let limits = self.config.limits;
        let name = validate::plain_text("name", validate::required("name", req.name.trim(), MAX_NAME)?, false)?;
        if !(0..=limits.price_minor).contains(&req.price_minor) {
            let why = format!("must be between 0 and {} minor units", limits.price_minor);
            return Err(ApiError::field(codes::INVALID_AMOUNT, "price_minor", why));
        }
        let sale_start = validate::timestamp("sale_start_time", &req.sale_start_time)?;
        let sale_end = validate::timestamp("sale_end_time", &req.sale_end_time)?;
        if let (Some(start), Some(end)) = (sale_start, sale_end) {
            validate::range("sale_start_time", "sale_end_time", start, end)?;
        }
        let min = if req.min_per_order == 0 { 1 } else { req.min_per_order };
        let max = if req.max_per_order == 0 { 10.min(limits.quantity) } else { req.max_per_order };
        if min < 1 || max > limits.quantity || min > max {
            let why = format!("need 1 <= min_per_order <= max_per_order <= {}", limits.quantity);
            return Err(ApiError::field(codes::VALIDATION_FAILED, "max_per_order", why));
        }
        if req.max_per_account < 0 {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "max_per_account", "must not be negative"));
        }
        let visibility = match validate::known_enum::<pb::Visibility>("visibility", req.visibility, true)? {
            Some(pb::Visibility::Hidden) => Visibility::Hidden,
            _ => Visibility::Public,
        };
        let zones = zone_names(&req.zones)?;
        let access_code_hash = match req.access_code.trim() {
            "" => None,
            _ if visibility != Visibility::Hidden => {
                return Err(ApiError::field(codes::VALIDATION_FAILED, "access_code", "only a hidden category has one"));
            }
            code if !(8..=64).contains(&code.chars().count()) => {
                return Err(ApiError::field(codes::VALIDATION_FAILED, "access_code", "8 to 64 characters"));
            }
            code => Some(sale::access_code_hash(festival_id, validate::plain_text("access_code", code, false)?)),
        };
        let transfer_cutoff = validate::timestamp("transfer_cutoff_time", &req.transfer_cutoff_time)?;
        if transfer_cutoff.is_some() && !req.transferable {
            return Err(ApiError::field(
                codes::VALIDATION_FAILED,
                "transfer_cutoff_time",
                "only a transferable category has a transfer cut-off",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let festival = Self::festival(&mut tx, festival_id).await?;
        let valid_days = valid_days(&req.valid_days, &festival)?;
        if store::categories::count(&mut tx, festival_id).await? >= limits.categories {
            return Err(ApiError::new(codes::LIMIT_REACHED)
                .with_message(format!("A festival has at most {} ticket categories", limits.categories)));
        }
        let row = store::categories::insert(
            &mut tx,
            &CategoryRow {
                id: Uuid::now_v7(),
                festival_id,
                name: name.to_owned(),
                price_minor: req.price_minor,
                sale_start,
                sale_end,
                min_per_order: min,
                max_per_order: max,
                max_per_account: req.max_per_account,
                visibility,
                created_at: self.clock.now(),
                valid_days,
                zones,
                reentry: req.reentry,
                transferable: req.transferable,
                transfer_cutoff,
                addon: req.addon,
                access_code_hash,
            },
        )
        .await
        .on_unique(store::categories::NAME_UNIQUE, ApiError::field(codes::ALREADY_EXISTS, "name", "is already used"))?;
        tx.commit().await?;
        Ok(to_category(&row, &festival.currency))
    }

    pub(super) async fn list_categories(
        &self,
        caller: Option<Principal>,
        req: pb::ListCategoriesRequest,
    ) -> ApiResult<pb::ListCategoriesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let mut conn = self.pool.acquire().await?;
        let (festival, organizer) = self.visible_festival(&mut conn, festival_id, caller.as_ref()).await?;
        let code = access_code(festival_id, &req.access_code)?;
        let categories = store::categories::of_festival(&mut conn, festival_id).await?;
        Ok(pb::ListCategoriesResponse {
            categories: categories
                .iter()
                .filter(|c| c.open_to(organizer, code.as_deref()))
                .map(|c| to_category(c, &festival.currency))
                .collect(),
        })
    }

    pub(super) async fn create_quota(&self, caller: Principal, req: pb::CreateQuotaRequest) -> ApiResult<pb::Quota> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let limits = self.config.limits;
        let name = validate::plain_text("name", validate::required("name", req.name.trim(), MAX_NAME)?, false)?;
        if !(1..=limits.quota_size).contains(&req.size) {
            let why = format!("must be between 1 and {}", limits.quota_size);
            return Err(ApiError::field(codes::VALIDATION_FAILED, "size", why));
        }
        if req.category_ids.is_empty() {
            return Err(ApiError::field(codes::REQUIRED_FIELD, "category_ids", "at least one category"));
        }
        if req.category_ids.len() > 50 {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "category_ids", "at most 50 categories"));
        }
        let ids: BTreeSet<Uuid> =
            req.category_ids.iter().map(|id| validate::uuid("category_ids", id)).collect::<ApiResult<_>>()?;
        let ids: Vec<Uuid> = ids.into_iter().collect();
        let mut tx = self.pool.begin().await?;
        Self::festival(&mut tx, festival_id).await?;
        if store::categories::find_many(&mut tx, festival_id, &ids).await?.len() != ids.len() {
            return Err(ApiError::field(codes::NOT_FOUND, "category_ids", "not categories of this festival"));
        }
        if store::quotas::count(&mut tx, festival_id).await? >= limits.quotas {
            return Err(ApiError::new(codes::LIMIT_REACHED)
                .with_message(format!("A festival has at most {} quotas", limits.quotas)));
        }
        let id = Uuid::now_v7();
        store::quotas::insert(&mut tx, id, festival_id, name, req.size, &ids)
            .await
            .on_unique(store::quotas::NAME_UNIQUE, ApiError::field(codes::ALREADY_EXISTS, "name", "is already used"))?;
        let quota = store::quotas::of_festival(&mut tx, festival_id)
            .await?
            .into_iter()
            .find(|q| q.id == id)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("quota {id} vanished")))?;
        tx.commit().await?;
        Ok(to_quota(&quota))
    }

    pub(super) async fn list_quotas(
        &self,
        caller: Principal,
        req: pb::ListQuotasRequest,
    ) -> ApiResult<pb::ListQuotasResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        Self::festival(&mut conn, festival_id).await?;
        let quotas = store::quotas::of_festival(&mut conn, festival_id).await?;
        Ok(pb::ListQuotasResponse { quotas: quotas.iter().map(to_quota).collect() })
    }

    pub(super) async fn get_availability(
        &self,
        caller: Option<Principal>,
        req: pb::GetAvailabilityRequest,
    ) -> ApiResult<pb::Availability> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let mut conn = self.pool.acquire().await?;
        let (festival, organizer) = self.visible_festival(&mut conn, festival_id, caller.as_ref()).await?;
        let code = access_code(festival_id, &req.access_code)?;
        let categories = store::categories::of_festival(&mut conn, festival_id).await?;
        let quotas = store::quotas::of_festival(&mut conn, festival_id).await?;
        let counters_of = counters_by_category(&quotas);
        let now = self.clock.now();
        let selling = festival_on_sale(festival.status);
        Ok(pb::Availability {
            categories: categories
                .iter()
                .filter(|c| c.open_to(organizer, code.as_deref()))
                .map(|c| pb::CategoryAvailability {
                    category_id: c.id.to_string(),
                    available: category_available(counters_of.get(&c.id).map_or(&[][..], Vec::as_slice)),
                    on_sale: selling && in_window(now, c.sale_start, c.sale_end),
                })
                .collect(),
        })
    }

    /// The festival as a caller may see its catalogue: organizers always; others once it
    /// is no longer a draft. Returns whether the caller organizes it.
    async fn visible_festival(
        &self,
        conn: &mut sqlx::PgConnection,
        festival_id: Uuid,
        caller: Option<&Principal>,
    ) -> ApiResult<(store::festivals::FestivalRow, bool)> {
        let festival = Self::festival(conn, festival_id).await?;
        let organizer = caller.is_some_and(|c| c.has(festival_id, Role::Organizer));
        if !organizer && festival.status == FestivalStatus::Draft {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        Ok((festival, organizer))
    }
}

impl TicketingApi {
    pub(super) async fn get_sales_report(
        &self,
        caller: Principal,
        req: pb::GetSalesReportRequest,
    ) -> ApiResult<pb::SalesReport> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        // One report: every figure read at one point in time.
        let mut tx = self.pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
        let festival = Self::festival(&mut tx, festival_id).await?;
        let (paid_orders, revenue_minor, cancelled_orders, cancelled_minor, refunded_minor) =
            store::orders::totals(&mut tx, festival_id).await?;
        let categories = store::categories::of_festival(&mut tx, festival_id).await?;
        let quotas = store::quotas::of_festival(&mut tx, festival_id).await?;
        let held: HashMap<Uuid, i64> =
            store::holds::held_per_category(&mut tx, festival_id).await?.into_iter().collect();
        let issued: HashMap<Uuid, (i64, i64)> = store::gates::per_category(&mut tx, festival_id)
            .await?
            .into_iter()
            .map(|(id, sold, used)| (id, (sold, used)))
            .collect();
        tx.commit().await?;
        let counters_of = counters_by_category(&quotas);
        Ok(pb::SalesReport {
            currency: festival.currency,
            revenue_minor,
            refunded_minor,
            paid_orders,
            cancelled_orders,
            cancelled_minor,
            categories: categories
                .iter()
                .map(|c| {
                    let (sold, checked_in) = issued.get(&c.id).copied().unwrap_or_default();
                    pb::CategorySales {
                        category_id: c.id.to_string(),
                        name: c.name.clone(),
                        sold,
                        held: held.get(&c.id).copied().unwrap_or_default(),
                        checked_in,
                        available: category_available(counters_of.get(&c.id).map_or(&[][..], Vec::as_slice)),
                    }
                })
                .collect(),
        })
    }
}
