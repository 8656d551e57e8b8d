//! A festival's cashless setup: its rules, its terminals, its bands' keys.

use festival_platform::auth::{Principal, Role};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::cashless::v1 as pb;

use super::{CashlessApi, convert, uid};
use crate::domain::ledger::AccountKind;
use crate::domain::limits::Limits;
use crate::store;

impl CashlessApi {
    pub(super) async fn get_settings(&self, caller: Principal, req: pb::GetSettingsRequest) -> ApiResult<pb::Settings> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require_any(festival_id, &[Role::Organizer, Role::Cashier, Role::Staff])?;
        let mut conn = self.pool.acquire().await?;
        let festival = Self::festival(&mut conn, festival_id).await?;
        let limits = store::settings::get(&mut conn, festival_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        Ok(convert::settings(festival_id, &festival.currency, &limits))
    }

    pub(super) async fn update_settings(
        &self,
        caller: Principal,
        req: pb::UpdateSettingsRequest,
    ) -> ApiResult<pb::Settings> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let s = req.settings.ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "settings", "is required"))?;
        let limits = Limits {
            min_top_up_minor: s.min_top_up_minor,
            max_top_up_minor: s.max_top_up_minor,
            max_balance_minor: s.max_balance_minor,
            max_charge_minor: s.max_charge_minor,
            daily_cap_minor: s.daily_cap_minor,
            offline_limit_minor: s.offline_limit_minor,
            low_balance_minor: s.low_balance_minor,
            void_window_seconds: s.void_window_seconds,
            replacement_fee_minor: s.replacement_fee_minor,
        };
        limits.check()?;
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        let festival = Self::festival(&mut conn, festival_id).await?;
        if !store::settings::update(&mut conn, festival_id, &limits).await? {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        Ok(convert::settings(festival_id, &festival.currency, &limits))
    }

    pub(super) async fn register_terminal(
        &self,
        caller: Principal,
        req: pb::RegisterTerminalRequest,
    ) -> ApiResult<pb::Terminal> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let device_id = validate::uuid("device_id", &req.device_id)?;
        let vendor_id = validate::uuid("vendor_id", &req.vendor_id)?;
        let label = validate::plain_text("label", validate::required("label", &req.label, 100)?, false)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut tx = self.pool.begin().await?;
        let festival = Self::festival(&mut tx, festival_id).await?;
        if store::terminals::is_revoked(&mut tx, device_id).await? {
            return Err(ApiError::new(codes::DEVICE_REVOKED));
        }
        store::accounts::ensure(&mut tx, festival_id, AccountKind::VendorRevenue, Some(vendor_id), &festival.currency)
            .await?;
        // A device id of another festival registers nothing there: its tokens name their
        // own festival, and a charge must come from a terminal of the charge's festival.
        store::terminals::register(&mut tx, device_id, festival_id, vendor_id, label, self.now()).await?;
        let terminal =
            store::terminals::find(&mut tx, festival_id, device_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        tx.commit().await?;
        Ok(convert::terminal(&terminal))
    }

    pub(super) async fn list_terminals(
        &self,
        caller: Principal,
        req: pb::ListTerminalsRequest,
    ) -> ApiResult<pb::ListTerminalsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let rows = store::terminals::list(&mut *self.pool.acquire().await?, festival_id).await?;
        Ok(pb::ListTerminalsResponse { terminals: rows.iter().map(convert::terminal).collect() })
    }

    /// The key an encoder writes into a new band, before it is bound (a bound band's:
    /// ERR_8004). Only organisers see band keys; the master key never leaves the service.
    pub(super) async fn provision_wristband(
        &self,
        caller: Principal,
        req: pb::ProvisionWristbandRequest,
    ) -> ApiResult<pb::WristbandKey> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let uid = uid("uid", &req.uid)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        Self::festival(&mut conn, festival_id).await?;
        // A bound band's key would let whoever holds it forge that holder's taps.
        if store::wallets::band(&mut conn, festival_id, &uid.to_hex()).await?.is_some() {
            return Err(ApiError::new(codes::WRISTBAND_ALREADY_BOUND));
        }
        let keys = self.keys.get(&mut conn, festival_id).await.map_err(ApiError::internal)?;
        let key = keys.master.wristband_key(&uid);
        tracing::info!(festival = %festival_id, uid = %uid, by = %caller.user_id, "wristband key provisioned");
        Ok(pb::WristbandKey { uid: uid.to_hex(), key_hex: key.as_bytes().iter().map(|b| format!("{b:02X}")).collect() })
    }
}
