//! Opening a checkout, and reading payments.

use chrono::{DurationRound, TimeDelta};
use festival_platform::auth::{Principal, Role};
use festival_platform::idempotency::{self, Claim};
use festival_platform::{ApiError, ApiResult, codes, page_token, validate};
use festival_proto::payments::v1 as pb;
use uuid::Uuid;

use super::convert::{status_of, to_payment};
use super::{PaymentsApi, provider_error};
use crate::domain::checkout::{self, Line};
use crate::domain::connect;
use crate::domain::status::{PaymentStatus, Purpose};
use crate::provider::{CheckoutSpec, Destination};
use crate::store::{self, payments::PaymentRow};

const MAX_LINES: usize = 20;

impl PaymentsApi {
    pub(super) async fn create_checkout(
        &self,
        caller: Principal,
        req: pb::CreateCheckoutRequest,
    ) -> ApiResult<pb::Payment> {
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        festival_platform::rpc::record_festival(festival_id);
        let purpose = match validate::known_enum::<pb::PaymentPurpose>("purpose", req.purpose, false)? {
            Some(pb::PaymentPurpose::TicketOrder) => Purpose::TicketOrder,
            Some(pb::PaymentPurpose::CampingBooking) => Purpose::CampingBooking,
            Some(pb::PaymentPurpose::WalletTopUp) => Purpose::WalletTopUp,
            Some(pb::PaymentPurpose::VendorOrder) => Purpose::VendorOrder,
            _ => return Err(ApiError::field(codes::REQUIRED_FIELD, "purpose", "is required")),
        };
        let reference = validate::required("reference", &req.reference, 64)?;
        validate::plain_text("reference", reference, false)?;
        if !checkout::is_currency(&req.currency) {
            return Err(ApiError::field(codes::CURRENCY_MISMATCH, "currency", "three letters (ISO 4217)"));
        }
        let lines = lines_of(&req.line_items)?;
        let amount = checkout::total(&lines, self.config.limits.amount_minor).filter(|t| *t > 0).ok_or_else(|| {
            ApiError::field(codes::INVALID_AMOUNT, "line_items", "the total must be at least 1 and at most the limit")
        })?;
        for (field, url) in [("success_url", &req.success_url), ("cancel_url", &req.cancel_url)] {
            if !checkout::is_return_url(url) {
                return Err(ApiError::field(codes::VALIDATION_FAILED, field, "an absolute http(s) URL"));
            }
        }
        let asked_expiry = validate::timestamp("expire_time", &req.expire_time)?;
        // To the minute: a retry after a lost answer sends Stripe the same parameters.
        let now = self.clock.now();
        let minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
        let expires_at = checkout::expiry(asked_expiry, minute);
        // The same caller and key always name the same payment, so a retry whose first
        // attempt reached Stripe but not our database asks Stripe for the same session.
        let payment_id = super::derived_id(b"payments.CreateCheckout", caller.user_id, key);

        // A vendor's order names its vendor; nothing else does.
        let vendor = match (req.vendor_account_id.as_str(), purpose) {
            ("", Purpose::VendorOrder) => {
                return Err(ApiError::field(
                    codes::REQUIRED_FIELD,
                    "vendor_account_id",
                    "a vendor order names its vendor",
                ));
            }
            ("", _) => None,
            (raw, Purpose::VendorOrder) => Some(validate::uuid("vendor_account_id", raw)?),
            (_, _) => {
                return Err(ApiError::field(codes::VALIDATION_FAILED, "vendor_account_id", "only for vendor orders"));
            }
        };

        let mut tx = self.pool.begin().await?;
        let fresh =
            match idempotency::claim::<pb::Payment>(&mut tx, "payments.CreateCheckout", caller.user_id, key, &req)
                .await?
            {
                Claim::Replay(payment) => return Ok(payment),
                Claim::Fresh(fresh) => fresh,
            };
        // A vendor's sale: a destination charge to its account, less the commission.
        let destination = match vendor {
            None => None,
            Some(id) => {
                let account = store::vendors::find(&mut tx, id)
                    .await?
                    .filter(|a| a.festival_id == festival_id)
                    .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "vendor_account_id", "no such vendor account"))?;
                if !account.charges_enabled {
                    return Err(ApiError::new(codes::VENDOR_ACCOUNT_NOT_READY)
                        .with_message("The vendor has not finished the provider's onboarding"));
                }
                let fee = connect::application_fee(amount, account.commission_bps);
                Some((account.id, Destination { account_id: account.provider_account_id, application_fee_minor: fee }))
            }
        };
        let spec = CheckoutSpec {
            payment_id,
            festival_id,
            purpose: purpose.as_str(),
            reference: reference.to_owned(),
            currency: req.currency.to_ascii_lowercase(),
            lines,
            success_url: req.success_url.clone(),
            cancel_url: req.cancel_url.clone(),
            expires_at,
            idempotency_key: format!("checkout-{payment_id}"),
            destination: destination.as_ref().map(|(_, d)| d.clone()),
        };
        // The key's row lock serialises retries of this key while Stripe answers; an
        // outage rolls everything back (nothing written) within the provider deadline.
        let session = self.provider.create_checkout(&spec).await.map_err(provider_error)?;
        let payment = PaymentRow {
            id: payment_id,
            festival_id,
            purpose,
            reference: reference.to_owned(),
            payer_user_id: caller.user_id,
            status: PaymentStatus::Pending,
            amount_minor: amount,
            currency: req.currency.to_ascii_uppercase(),
            refunded_minor: 0,
            provider_session_id: session.id,
            provider_intent_id: None,
            checkout_url: session.url,
            failure_reason: String::new(),
            disputed: false,
            expires_at,
            created_at: now,
            updated_at: now,
            vendor_account_id: destination.as_ref().map(|(id, _)| *id),
            application_fee_minor: destination.as_ref().map_or(0, |(_, d)| d.application_fee_minor),
        };
        store::payments::insert(&mut tx, &payment).await?;
        let response = to_payment(&payment);
        fresh.complete(&mut tx, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    pub(super) async fn get_payment(&self, caller: Principal, req: pb::GetPaymentRequest) -> ApiResult<pb::Payment> {
        let id = validate::uuid("payment_id", &req.payment_id)?;
        let payment = store::payments::find(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or(ApiError::new(codes::NOT_FOUND))?;
        Self::may_read(&caller, &payment)?;
        Ok(to_payment(&payment))
    }

    pub(super) async fn list_payments(
        &self,
        caller: Principal,
        req: pb::ListPaymentsRequest,
    ) -> ApiResult<pb::ListPaymentsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        festival_platform::rpc::record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let status = validate::known_enum::<pb::PaymentStatus>("status", req.status, true)?.and_then(status_of);
        let size = validate::page_size("page_size", req.page_size, 50, 100)?;
        let scope = format!("payments:{festival_id}:{}", req.status);
        let after = page_token::decode::<(chrono::DateTime<chrono::Utc>, Uuid)>(&scope, &req.page_token)?;
        let mut rows =
            store::payments::page(&mut *self.pool.acquire().await?, festival_id, status, after, i64::from(size) + 1)
                .await?;
        let next = page_token::next_page(&mut rows, size as usize, &scope, |p| (p.created_at, p.id));
        Ok(pb::ListPaymentsResponse { payments: rows.iter().map(to_payment).collect(), next_page_token: next })
    }
}

fn lines_of(items: &[pb::LineItem]) -> ApiResult<Vec<Line>> {
    if items.is_empty() || items.len() > MAX_LINES {
        return Err(ApiError::field(codes::VALIDATION_FAILED, "line_items", "1 to 20 items"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name = validate::required(&format!("line_items[{i}].name"), &item.name, 120)?;
            validate::plain_text(&format!("line_items[{i}].name"), name, false)?;
            if !(1..=100).contains(&item.quantity) {
                return Err(ApiError::field(
                    codes::VALIDATION_FAILED,
                    &format!("line_items[{i}].quantity"),
                    "1 to 100",
                ));
            }
            if item.unit_amount_minor < 0 {
                return Err(ApiError::field(
                    codes::INVALID_AMOUNT,
                    &format!("line_items[{i}].unit_amount_minor"),
                    "at least 0",
                ));
            }
            Ok(Line {
                name: name.to_owned(),
                quantity: i64::from(item.quantity),
                unit_amount_minor: item.unit_amount_minor,
            })
        })
        .collect()
}
