//! Refunds: checked and booked under the payment's row lock, then asked of the provider
//! with the refund's own idempotency key. If the provider is down the refund stays
//! PENDING and the sweep asks again; it is never lost and never sent twice.

use festival_platform::auth::{Principal, Role};
use festival_platform::idempotency::{self, Claim};
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::payments::v1 as pb;
use uuid::Uuid;

use super::PaymentsApi;
use super::convert::to_refund;
use crate::domain::status::{PaymentStatus, RefundStatus};
use crate::refunding;
use crate::store::{self, refunds::RefundRow};

impl PaymentsApi {
    pub(super) async fn refund_payment(
        &self,
        caller: Principal,
        req: pb::RefundPaymentRequest,
    ) -> ApiResult<pb::Refund> {
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let payment_id = validate::uuid("payment_id", &req.payment_id)?;
        if req.amount_minor < 0 {
            return Err(ApiError::field(codes::INVALID_AMOUNT, "amount_minor", "at least 0 (0: all that is left)"));
        }
        let reason = validate::required("reason", &req.reason, 500)?;
        validate::plain_text("reason", reason, true)?;

        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::Refund>(&mut tx, "payments.RefundPayment", caller.user_id, key, &req)
            .await?
        {
            Claim::Replay(refund) => return Ok(refund),
            Claim::Fresh(fresh) => fresh,
        };
        let payment = lock_or_read(&mut tx, payment_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        festival_platform::rpc::record_festival(payment.festival_id);
        // Another festival's organiser learns nothing, not even that it exists.
        if !caller.has(payment.festival_id, Role::Organizer) {
            return Err(if payment.payer_user_id == caller.user_id {
                ApiError::new(codes::INSUFFICIENT_PERMISSIONS)
            } else {
                ApiError::new(codes::NOT_FOUND)
            });
        }
        if payment.status != PaymentStatus::Completed || payment.provider_intent_id.is_none() {
            return Err(ApiError::new(codes::REFUND_EXCEEDS_PAYMENT)
                .with_message(format!("Only a completed payment can be refunded; this one is {}", payment.status)));
        }
        let left = payment.amount_minor - payment.refunded_minor;
        let amount = if req.amount_minor == 0 { left } else { req.amount_minor };
        #[cfg(feature = "race-hooks")]
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if amount <= 0 || amount > left {
            return Err(ApiError::field(
                codes::REFUND_EXCEEDS_PAYMENT,
                "amount_minor",
                format!("at most {left} is left to refund"),
            ));
        }
        let now = self.clock.now();
        let refund = RefundRow {
            id: Uuid::now_v7(),
            payment_id,
            amount_minor: amount,
            status: RefundStatus::Pending,
            reason: reason.to_owned(),
            requested_by: caller.user_id.to_string(),
            provider_refund_id: None,
            created_at: now,
            reverse_transfer: true,
            asked_at: None,
        };
        store::refunds::insert(&mut tx, &refund).await?;
        book(&mut tx, &payment, amount, now).await?;
        let response = to_refund(&refund, &payment.currency);
        fresh.complete(&mut tx, &response).await?;
        tx.commit().await?;
        // Booked: now ask the provider. Its answer (or the sweep's retry) settles it.
        Ok(refunding::send(&self.pool, self.provider.as_ref(), &self.clock, refund.id)
            .await?
            .map_or(response, |r| to_refund(&r, &payment.currency)))
    }

    pub(super) async fn list_refunds(
        &self,
        caller: Principal,
        req: pb::ListRefundsRequest,
    ) -> ApiResult<pb::ListRefundsResponse> {
        let payment_id = validate::uuid("payment_id", &req.payment_id)?;
        let mut conn = self.pool.acquire().await?;
        let payment = store::payments::find(&mut conn, payment_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        Self::may_read(&caller, &payment)?;
        let refunds = store::refunds::of_payment(&mut conn, payment_id).await?;
        // The organisers' reasons are theirs: the payer sees amounts and states.
        let organiser = caller.has(payment.festival_id, Role::Organizer);
        let shown = |r: &RefundRow| {
            let mut refund = to_refund(r, &payment.currency);
            if !organiser {
                refund.reason.clear();
            }
            refund
        };
        Ok(pb::ListRefundsResponse { refunds: refunds.iter().map(shown).collect() })
    }
}

/// The payment, locked: two refunds at once are checked one after the other.
#[cfg(not(feature = "race-hooks"))]
async fn lock_or_read(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
) -> Result<Option<store::payments::PaymentRow>, sqlx::Error> {
    store::payments::lock(conn, id).await
}

/// Test-only (race-hooks): read without the lock, as a careless implementation would.
#[cfg(feature = "race-hooks")]
async fn lock_or_read(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
) -> Result<Option<store::payments::PaymentRow>, sqlx::Error> {
    store::payments::find(conn, id).await
}

/// Adds the refund to what the payment has refunded, under the lock.
#[cfg(not(feature = "race-hooks"))]
async fn book(
    conn: &mut sqlx::PgConnection,
    payment: &store::payments::PaymentRow,
    amount: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    store::payments::add_refunded(conn, payment.id, amount, now).await.map(|_| ())
}

/// Test-only (race-hooks): writes the total computed from the unlocked read.
#[cfg(feature = "race-hooks")]
async fn book(
    conn: &mut sqlx::PgConnection,
    payment: &store::payments::PaymentRow,
    amount: i64,
    _now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    store::payments::set_refunded(conn, payment.id, payment.refunded_minor + amount).await
}
