//! Stripe's webhook: verify the signature over the raw body, record the event by id
//! (a redelivery does nothing), apply it through the status table and the outbox, and
//! answer. Everything happens in one transaction, so a failure answers 500 and Stripe's
//! retry finds nothing half-done.

use festival_platform::{ApiError, ApiResult, codes};
use festival_proto::google::api::HttpBody;
use festival_proto::payments::v1 as pb;
use tonic::metadata::MetadataMap;

use super::PaymentsApi;
use crate::domain::{event, signature};
use crate::settle;
use crate::store::{self, webhooks::Outcome};

/// Where the gateway puts Stripe's header.
const SIGNATURE_HEADER: &str = "stripe-signature";
/// The largest event body accepted.
const MAX_BODY_BYTES: usize = 256 * 1024;

impl PaymentsApi {
    pub(super) async fn receive_stripe_webhook(
        &self,
        metadata: MetadataMap,
        body: HttpBody,
    ) -> ApiResult<pb::WebhookReceipt> {
        // Stripe's events are a few kilobytes; nothing larger is even hashed.
        if body.data.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(codes::PAYLOAD_TOO_LARGE));
        }
        let header = metadata.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        let now = self.clock.now();
        if let Err(refusal) = signature::verify(
            header,
            &body.data,
            &self.webhook_secrets,
            now.timestamp(),
            self.config.webhook.tolerance_secs,
        ) {
            tracing::warn!(?refusal, "webhook refused: bad signature");
            return Err(ApiError::new(codes::WEBHOOK_SIGNATURE_INVALID));
        }
        let event = event::parse(&body.data).map_err(|why| {
            tracing::error!(reason = why.0, "signed webhook we cannot read");
            ApiError::field(codes::VALIDATION_FAILED, "body", why.0)
        })?;
        let mut tx = self.pool.begin().await?;
        if !store::webhooks::record(&mut tx, &event.id, &event.kind, event.change.intent_id()).await? {
            return Ok(pb::WebhookReceipt { event_id: event.id, duplicate: true });
        }
        let outcome = settle::apply(&mut tx, &event, now).await?;
        match outcome {
            Outcome::Parked => {
                let payload: serde_json::Value = serde_json::from_slice(&body.data).unwrap_or_default();
                store::webhooks::park(&mut tx, &event.id, &payload).await?;
                tracing::info!(event = %event.id, kind = %event.kind, "webhook parked until its payment is known");
            }
            Outcome::Ignored => store::webhooks::set_outcome(&mut tx, &event.id, Outcome::Ignored).await?,
            Outcome::Applied => {
                // The payment intent is known now: what arrived before it applies.
                if let Some(intent_id) = event.change.intent_id() {
                    for (parked_id, raw) in store::webhooks::parked(&mut tx, intent_id).await? {
                        let outcome = match event::parse(&raw) {
                            Ok(parked) => settle::apply(&mut tx, &parked, now).await?,
                            Err(_) => Outcome::Ignored,
                        };
                        // Still waiting (a refund that does not fit yet): the sweep retries.
                        if outcome != Outcome::Parked {
                            store::webhooks::unpark(&mut tx, &parked_id, outcome).await?;
                        }
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(pb::WebhookReceipt { event_id: event.id, duplicate: false })
    }
}
