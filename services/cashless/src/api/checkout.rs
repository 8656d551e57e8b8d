//! Online top-ups, started here and paid at payments: the holder is sent to a hosted
//! checkout, and the wallet is credited when payments reports the payment completed
//! (`crate::online`). Nothing is stored at the start: the checkout names the wallet as
//! its reference and the holder as its payer, which is all the completion trusts.

use festival_platform::auth::Principal;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, idempotency, validate};
use festival_proto::cashless::v1 as pb;
use festival_proto::payments::v1 as pay;

use super::{CashlessApi, amount, currency};
use crate::store;
use crate::store::wallets::WalletStatus;

impl CashlessApi {
    pub(super) async fn start_top_up(
        &self,
        caller: Principal,
        bearer: String,
        req: pb::StartTopUpRequest,
    ) -> ApiResult<pb::TopUpCheckout> {
        let wallet_id = validate::uuid("wallet_id", &req.wallet_id)?;
        let value = amount("amount_minor", req.amount_minor)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let mut conn = self.pool.acquire().await?;
        let wallet = store::wallets::find(&mut conn, wallet_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(wallet.festival_id);
        // The payer must be the holder: a completion paid by anyone else credits nothing.
        if wallet.user_id != Some(caller.user_id) {
            return Err(
                ApiError::new(codes::INSUFFICIENT_PERMISSIONS).with_message("Only the wallet's holder loads it online")
            );
        }
        let festival = Self::open_festival(&mut conn, wallet.festival_id).await?;
        currency("currency", &req.currency, &wallet.currency)?;
        if wallet.status != WalletStatus::Active {
            return Err(ApiError::new(codes::WALLET_CLOSED));
        }
        if wallet.currency != festival.currency {
            return Err(ApiError::new(codes::CURRENCY_MISMATCH));
        }
        let limits =
            store::settings::get(&mut conn, wallet.festival_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        // As the wallet stands now: a payment completing after other top-ups is still
        // credited (the money was taken), so the cap can be passed by what was in flight.
        limits.top_up(value, wallet.balance_minor)?;
        drop(conn);

        let url = |template: &str| template.replace("{WALLET_ID}", &wallet_id.to_string());
        let request = pay::CreateCheckoutRequest {
            festival_id: wallet.festival_id.to_string(),
            purpose: pay::PaymentPurpose::WalletTopUp as i32,
            reference: wallet_id.to_string(),
            currency: wallet.currency.clone(),
            line_items: vec![pay::LineItem {
                name: "Cashless wallet top-up".into(),
                quantity: 1,
                unit_amount_minor: value,
            }],
            success_url: url(&self.payments_config.success_url),
            cancel_url: url(&self.payments_config.cancel_url),
            // Payments keeps the key per payer: a retry answers the same checkout, the
            // same key for another amount is refused there (ERR_1006).
            idempotency_key: checkout_key(wallet_id, key),
            expire_time: None,
            vendor_account_id: String::new(),
        };
        let payment = self.payments.create_checkout(&bearer, request).await?;
        Ok(pb::TopUpCheckout {
            wallet_id: wallet_id.to_string(),
            payment_id: payment.id,
            checkout_url: payment.checkout_url,
            amount_minor: payment.amount_minor,
            currency: payment.currency,
            expire_time: payment.expire_time,
        })
    }
}

/// Payments' key for a holder's key on a wallet: fixed length whatever the holder sent,
/// and another wallet's checkout never answers for this one.
fn checkout_key(wallet_id: uuid::Uuid, key: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new().chain_update(wallet_id.as_bytes()).chain_update(key.as_bytes()).finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("top-up-{hex}")
}
