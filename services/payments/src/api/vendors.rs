//! Vendors' connected accounts (Stripe Connect Express): opened by an organiser,
//! onboarded on the provider's page, paid by destination charges less the platform's
//! commission; the fee and payout report, and the debts of vendors whose transfer could
//! not be reversed for a refund.

use std::collections::BTreeMap;

use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::payments::v1 as pb;
use uuid::Uuid;

use super::{PaymentsApi, provider_error};
use crate::domain::{checkout, connect};
use crate::provider::{AccountSpec, ProviderError};
use crate::store::{
    self,
    vendors::{DebtRow, State, VendorAccountRow},
};

fn to_account(a: &VendorAccountRow) -> pb::VendorAccount {
    pb::VendorAccount {
        id: a.id.to_string(),
        festival_id: a.festival_id.to_string(),
        vendor_id: a.vendor_id.to_string(),
        display_name: a.display_name.clone(),
        provider_account_id: a.provider_account_id.clone(),
        commission_bps: a.commission_bps,
        charges_enabled: a.charges_enabled,
        payouts_enabled: a.payouts_enabled,
        details_submitted: a.details_submitted,
        create_time: Some(timestamp(a.created_at)),
    }
}

fn to_debt(d: &DebtRow) -> pb::VendorDebt {
    pb::VendorDebt {
        id: d.id.to_string(),
        vendor_account_id: d.vendor_account_id.to_string(),
        refund_id: d.refund_id.to_string(),
        amount_minor: d.amount_minor,
        currency: d.currency.clone(),
        create_time: Some(timestamp(d.created_at)),
        settle_time: d.settled_at.map(timestamp),
    }
}

/// Two capital letters (ISO 3166-1 alpha-2).
fn is_country(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

impl PaymentsApi {
    /// A vendor account of a festival the caller organises; another festival's
    /// organiser is told it does not exist.
    async fn vendor_account(&self, caller: &Principal, raw_id: &str) -> ApiResult<VendorAccountRow> {
        let id = validate::uuid("account_id", raw_id)?;
        let account = store::vendors::find(&mut *self.pool.acquire().await?, id)
            .await?
            .filter(|a| caller.has(a.festival_id, Role::Organizer))
            .ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(account.festival_id);
        Ok(account)
    }

    pub(super) async fn create_vendor_account(
        &self,
        caller: Principal,
        req: pb::CreateVendorAccountRequest,
    ) -> ApiResult<pb::VendorAccount> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let vendor_id = validate::uuid("vendor_id", &req.vendor_id)?;
        let name = validate::required("display_name", req.display_name.trim(), 120)?;
        validate::plain_text("display_name", name, false)?;
        let email = validate::email("email", &req.email)?;
        if !is_country(&req.country) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "country", "two capital letters (ISO 3166-1)"));
        }
        if !(0..=10_000).contains(&req.commission_bps) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "commission_bps", "0 to 10,000 basis points"));
        }
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let id = super::derived_id(b"payments.CreateVendorAccount", caller.user_id, key);

        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::VendorAccount>(
            &mut tx,
            "payments.CreateVendorAccount",
            caller.user_id,
            key,
            &req,
        )
        .await?
        {
            Claim::Replay(account) => return Ok(account),
            Claim::Fresh(fresh) => fresh,
        };
        if store::vendors::of_vendor(&mut tx, festival_id, vendor_id).await?.is_some() {
            return Err(ApiError::field(codes::ALREADY_EXISTS, "vendor_id", "the vendor has an account already"));
        }
        let spec = AccountSpec {
            vendor_account_id: id,
            festival_id,
            display_name: name.to_owned(),
            email: email.as_str().to_owned(),
            country: req.country.clone(),
            idempotency_key: format!("account-{id}"),
        };
        // As a checkout: the key's row lock serialises retries while Stripe answers, and
        // an outage writes nothing.
        let opened = self.provider.create_account(&spec).await.map_err(provider_error)?;
        let now = self.clock.now();
        let account = VendorAccountRow {
            id,
            festival_id,
            vendor_id,
            display_name: name.to_owned(),
            provider_account_id: opened.id,
            commission_bps: req.commission_bps,
            charges_enabled: opened.charges_enabled,
            payouts_enabled: opened.payouts_enabled,
            details_submitted: opened.details_submitted,
            created_at: now,
        };
        store::vendors::insert(&mut tx, &account).await.on_unique(
            store::vendors::VENDOR_UNIQUE,
            ApiError::field(codes::ALREADY_EXISTS, "vendor_id", "the vendor has an account already"),
        )?;
        let response = to_account(&account);
        fresh.complete(&mut tx, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// The account as the provider has it now (its onboarding may have progressed since
    /// the last `account.updated`); the stored state if the provider does not answer.
    pub(super) async fn get_vendor_account(
        &self,
        caller: Principal,
        req: pb::GetVendorAccountRequest,
    ) -> ApiResult<pb::VendorAccount> {
        let account = self.vendor_account(&caller, &req.account_id).await?;
        let asked_at = self.clock.now();
        match self.provider.account(&account.provider_account_id).await {
            Ok(now) => {
                let state = State {
                    charges_enabled: now.charges_enabled,
                    payouts_enabled: now.payouts_enabled,
                    details_submitted: now.details_submitted,
                    at: asked_at,
                };
                let mut conn = self.pool.acquire().await?;
                let updated = store::vendors::set_state(&mut conn, &account.provider_account_id, &state).await?;
                Ok(to_account(&updated.unwrap_or(account)))
            }
            Err(ProviderError::Unavailable(why)) => {
                tracing::warn!(account = %account.id, %why, "provider unavailable; answering the stored state");
                Ok(to_account(&account))
            }
            Err(e) => Err(provider_error(e)),
        }
    }

    pub(super) async fn create_vendor_onboarding_link(
        &self,
        caller: Principal,
        req: pb::CreateVendorOnboardingLinkRequest,
    ) -> ApiResult<pb::VendorOnboardingLink> {
        let account = self.vendor_account(&caller, &req.account_id).await?;
        for (field, url) in [("return_url", &req.return_url), ("refresh_url", &req.refresh_url)] {
            if !checkout::is_return_url(url) {
                return Err(ApiError::field(codes::VALIDATION_FAILED, field, "an absolute http(s) URL"));
            }
        }
        let url = self
            .provider
            .account_link(&account.provider_account_id, &req.refresh_url, &req.return_url)
            .await
            .map_err(provider_error)?;
        Ok(pb::VendorOnboardingLink { url })
    }

    pub(super) async fn get_vendor_report(
        &self,
        caller: Principal,
        req: pb::GetVendorReportRequest,
    ) -> ApiResult<pb::VendorReport> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        // One report: every figure read at one point in time.
        let mut tx = self.pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
        let accounts = store::vendors::of_festival(&mut tx, festival_id).await?;
        let sales = store::vendors::sales_of_festival(&mut tx, festival_id).await?;
        let debts = store::vendors::debts_of_festival(&mut tx, festival_id).await?;
        tx.commit().await?;
        let mut lines: BTreeMap<Uuid, pb::VendorReportLine> = accounts
            .iter()
            .map(|a| (a.id, pb::VendorReportLine { account: Some(to_account(a)), ..Default::default() }))
            .collect();
        for sale in &sales {
            let Some(line) = lines.get_mut(&sale.vendor_account_id) else { continue };
            line.charges += 1;
            line.gross_minor += sale.amount_minor;
            line.fees_minor += sale.application_fee_minor;
            line.net_minor += sale.amount_minor - sale.application_fee_minor;
            for (refund, reversed) in sale.refunds.iter().zip(&sale.reversed) {
                let share = connect::vendor_share(*refund, sale.amount_minor, sale.application_fee_minor);
                line.refunded_minor += refund;
                // Reversed: the vendor gives its share back, the platform its fee's.
                // Not reversed: the platform paid it all and the vendor owes its share
                // (a debt), the fee stays.
                if *reversed {
                    line.fees_refunded_minor += refund - share;
                    line.reversed_minor += share;
                    line.net_minor -= share;
                }
            }
        }
        for debt in &debts {
            let Some(line) = lines.get_mut(&debt.vendor_account_id) else { continue };
            if debt.settled_at.is_none() {
                line.owed_minor += debt.amount_minor;
            }
            line.debts.push(to_debt(debt));
        }
        Ok(pb::VendorReport { festival_id: festival_id.to_string(), vendors: lines.into_values().collect() })
    }

    pub(super) async fn settle_vendor_debt(
        &self,
        caller: Principal,
        req: pb::SettleVendorDebtRequest,
    ) -> ApiResult<pb::VendorDebt> {
        let id = validate::uuid("debt_id", &req.debt_id)?;
        let mut tx = self.pool.begin().await?;
        let (debt, festival_id) = store::vendors::lock_debt(&mut tx, id)
            .await?
            .filter(|(_, festival)| caller.has(*festival, Role::Organizer))
            .ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(festival_id);
        let now = self.clock.now();
        store::vendors::settle_debt(&mut tx, id, caller.user_id, now).await?;
        tracing::info!(debt = %id, by = %caller.user_id, amount = debt.amount_minor, "a vendor's debt recorded as paid");
        tx.commit().await?;
        Ok(to_debt(&DebtRow { settled_at: debt.settled_at.or(Some(now)), ..debt }))
    }
}
