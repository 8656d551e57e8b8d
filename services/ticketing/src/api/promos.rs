//! Promo codes: made by organizers, applied to holds (see `holds`).

use std::collections::BTreeSet;

use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use super::TicketingApi;
use crate::domain::promo::{Discount, Promo};
use crate::store::{self, promos::PromoRow};

/// Codes a festival may have (bulk generation included).
const MAX_CODES_PER_FESTIVAL: i64 = 100_000;

impl TicketingApi {
    pub(super) async fn create_promo_code(
        &self,
        caller: Principal,
        req: pb::CreatePromoCodeRequest,
    ) -> ApiResult<pb::PromoCode> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let code = normalize_code(&req.code)?;
        if req.max_uses < 0 || req.max_uses_per_account < 0 {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "max_uses", "must not be negative"));
        }
        let terms = self.terms(
            festival_id,
            req.kind,
            req.value,
            &req.category_ids,
            req.min_basket_minor,
            &req.valid_from_time,
            &req.valid_until_time,
        )?;
        let row = PromoRow {
            code,
            max_uses: req.max_uses,
            max_uses_per_account: req.max_uses_per_account,
            stackable: req.stackable,
            ..terms
        };
        self.store_codes(festival_id, std::slice::from_ref(&row)).await?;
        Ok(to_promo(&row))
    }

    pub(super) async fn generate_promo_codes(
        &self,
        caller: Principal,
        req: pb::GeneratePromoCodesRequest,
    ) -> ApiResult<pb::GeneratePromoCodesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        if !(1..=1_000).contains(&req.count) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "count", "must be between 1 and 1000"));
        }
        let prefix = req.prefix.trim().to_ascii_uppercase();
        if prefix.len() > 12 || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "prefix", "up to 12 letters or digits"));
        }
        let terms = self.terms(
            festival_id,
            req.kind,
            req.value,
            &req.category_ids,
            req.min_basket_minor,
            &req.valid_from_time,
            &req.valid_until_time,
        )?;
        let mut seen = BTreeSet::new();
        let rows: Vec<PromoRow> = std::iter::repeat_with(|| crate::domain::promo::random_code(&prefix))
            .filter(|code| seen.insert(code.clone()))
            .take(usize::try_from(req.count).unwrap_or(0))
            .map(|code| PromoRow {
                id: Uuid::now_v7(),
                code,
                max_uses: 1,
                max_uses_per_account: 0,
                stackable: false,
                ..terms.clone()
            })
            .collect();
        self.store_codes(festival_id, &rows).await?;
        Ok(pb::GeneratePromoCodesResponse { codes: rows.into_iter().map(|r| r.code).collect() })
    }

    pub(super) async fn list_promo_codes(
        &self,
        caller: Principal,
        req: pb::ListPromoCodesRequest,
    ) -> ApiResult<pb::ListPromoCodesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        Self::festival(&mut conn, festival_id).await?;
        let rows = store::promos::of_festival(&mut conn, festival_id, 1_000).await?;
        Ok(pb::ListPromoCodesResponse { promo_codes: rows.iter().map(to_promo).collect() })
    }

    /// The terms every code of a request shares, validated (a row without its code yet).
    #[allow(clippy::too_many_arguments)]
    fn terms(
        &self,
        festival_id: Uuid,
        kind: i32,
        value: i64,
        category_ids: &[String],
        min_basket_minor: i64,
        valid_from: &Option<prost_types::Timestamp>,
        valid_until: &Option<prost_types::Timestamp>,
    ) -> ApiResult<PromoRow> {
        let kind = match validate::known_enum::<pb::DiscountKind>("kind", kind, false)? {
            Some(pb::DiscountKind::Percent) => "PERCENT",
            Some(pb::DiscountKind::Fixed) => "FIXED",
            _ => return Err(ApiError::field(codes::REQUIRED_FIELD, "kind", "is required")),
        };
        let max_value = if kind == "PERCENT" { 100 } else { self.config.limits.price_minor };
        if !(1..=max_value).contains(&value) {
            return Err(ApiError::field(codes::INVALID_AMOUNT, "value", format!("must be between 1 and {max_value}")));
        }
        if !(0..=i64::MAX / 4).contains(&min_basket_minor) {
            return Err(ApiError::field(codes::INVALID_AMOUNT, "min_basket_minor", "must not be negative"));
        }
        if category_ids.len() > 50 {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "category_ids", "at most 50 categories"));
        }
        let categories: BTreeSet<Uuid> =
            category_ids.iter().map(|id| validate::uuid("category_ids", id)).collect::<ApiResult<_>>()?;
        let valid_from = validate::timestamp("valid_from_time", valid_from)?;
        let valid_until = validate::timestamp("valid_until_time", valid_until)?;
        if let (Some(from), Some(until)) = (valid_from, valid_until) {
            validate::range("valid_from_time", "valid_until_time", from, until)?;
        }
        Ok(PromoRow {
            id: Uuid::now_v7(),
            festival_id,
            code: String::new(),
            kind: kind.into(),
            value,
            category_ids: categories.into_iter().collect(),
            min_basket_minor,
            max_uses: 0,
            max_uses_per_account: 0,
            used: 0,
            stackable: false,
            valid_from,
            valid_until,
            created_at: self.clock.now(),
        })
    }

    async fn store_codes(&self, festival_id: Uuid, rows: &[PromoRow]) -> ApiResult<()> {
        let mut tx = self.pool.begin().await?;
        Self::festival(&mut tx, festival_id).await?;
        let categories: Vec<Uuid> = rows.first().map(|r| r.category_ids.clone()).unwrap_or_default();
        if store::categories::find_many(&mut tx, festival_id, &categories).await?.len() != categories.len() {
            return Err(ApiError::field(codes::NOT_FOUND, "category_ids", "not categories of this festival"));
        }
        if store::promos::count(&mut tx, festival_id).await? + rows.len() as i64 > MAX_CODES_PER_FESTIVAL {
            return Err(ApiError::new(codes::LIMIT_REACHED)
                .with_message(format!("A festival has at most {MAX_CODES_PER_FESTIVAL} promo codes")));
        }
        store::promos::insert_many(&mut tx, rows)
            .await
            .on_unique(store::promos::CODE_UNIQUE, ApiError::field(codes::ALREADY_EXISTS, "code", "is already used"))?;
        tx.commit().await?;
        Ok(())
    }
}

/// A code as typed by a person: trimmed, upper-cased, 3 to 32 letters, digits or dashes.
pub(super) fn normalize_code(raw: &str) -> ApiResult<String> {
    let code = raw.trim().to_ascii_uppercase();
    if !(3..=32).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ApiError::field(codes::VALIDATION_FAILED, "code", "3 to 32 letters, digits or dashes"));
    }
    Ok(code)
}

/// A stored code as the domain's rule.
pub(super) fn to_rule(row: &PromoRow) -> Promo {
    Promo {
        id: row.id,
        discount: if row.kind == "PERCENT" { Discount::Percent(row.value) } else { Discount::Fixed(row.value) },
        categories: row.category_ids.clone(),
        min_basket_minor: row.min_basket_minor,
        stackable: row.stackable,
    }
}

fn to_promo(row: &PromoRow) -> pb::PromoCode {
    pb::PromoCode {
        id: row.id.to_string(),
        festival_id: row.festival_id.to_string(),
        code: row.code.clone(),
        kind: if row.kind == "PERCENT" { pb::DiscountKind::Percent } else { pb::DiscountKind::Fixed } as i32,
        value: row.value,
        category_ids: row.category_ids.iter().map(ToString::to_string).collect(),
        min_basket_minor: row.min_basket_minor,
        max_uses: row.max_uses,
        max_uses_per_account: row.max_uses_per_account,
        used: row.used,
        stackable: row.stackable,
        valid_from_time: row.valid_from.map(timestamp),
        valid_until_time: row.valid_until.map(timestamp),
        create_time: Some(timestamp(row.created_at)),
    }
}
