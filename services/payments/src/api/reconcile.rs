//! The reconciliation report: a festival's payments in a window against the provider's
//! checkout sessions and refunds (read page by page), compared by `domain::reconcile`.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::payments::v1 as pb;
use uuid::Uuid;

use super::{PaymentsApi, provider_error};
use crate::domain::event::ProviderRefundStatus;
use crate::domain::reconcile::{self, Kind, Ours};
use crate::domain::status::PaymentStatus;
use crate::provider::{ListedRefund, ListedSession, Page, ProviderError, SessionState};
use crate::store;

/// The longest window one report covers.
const MAX_WINDOW: TimeDelta = TimeDelta::days(31);
/// Pages of 100 read from the provider per list, at most.
const MAX_PAGES: usize = 100;
/// How far around the window provider objects are read: a session is created at the
/// provider a moment after our payment row's time, a refund any time later.
const SLACK: TimeDelta = TimeDelta::minutes(10);
/// Refunds of the window's payments are read up to this long after its end (the report
/// is about payments; a refund later than that shows as a REFUNDED difference).
const REFUND_HORIZON: TimeDelta = TimeDelta::days(180);

fn too_many() -> ApiError {
    let why = format!("the window holds more than {} provider records: narrow it", MAX_PAGES * 100);
    ApiError::field(codes::VALIDATION_FAILED, "start_time", why)
}

/// Reads every page of a provider list (at most [`MAX_PAGES`]).
async fn read_all<'a, T, F>(mut page: F, id: fn(&T) -> String) -> ApiResult<Vec<T>>
where
    F: FnMut(Option<String>) -> futures::future::BoxFuture<'a, Result<Page<T>, ProviderError>>,
{
    let mut items: Vec<T> = Vec::new();
    let mut after = None;
    for _ in 0..MAX_PAGES {
        let next = page(after.take()).await.map_err(provider_error)?;
        items.extend(next.items);
        match items.last() {
            Some(last) if next.has_more => after = Some(id(last)),
            _ => return Ok(items),
        }
    }
    Err(too_many())
}

fn kind_of(kind: Kind) -> pb::DifferenceKind {
    match kind {
        Kind::MissingAtProvider => pb::DifferenceKind::MissingAtProvider,
        Kind::UnknownHere => pb::DifferenceKind::UnknownHere,
        Kind::Status => pb::DifferenceKind::Status,
        Kind::Amount => pb::DifferenceKind::Amount,
        Kind::Currency => pb::DifferenceKind::Currency,
        Kind::Refunded => pb::DifferenceKind::Refunded,
    }
}

impl PaymentsApi {
    pub(super) async fn get_reconciliation_report(
        &self,
        caller: Principal,
        req: pb::GetReconciliationReportRequest,
    ) -> ApiResult<pb::ReconciliationReport> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let start = validate::required_timestamp("start_time", &req.start_time)?;
        let end = validate::timestamp("end_time", &req.end_time)?.unwrap_or_else(|| self.clock.now());
        let (start, end) = validate::range("start_time", "end_time", start, end)?;
        if end - start > MAX_WINDOW {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "end_time", "at most 31 days after start_time"));
        }

        // One report at a time per replica: each reads up to 200 pages from Stripe.
        let Ok(_slot) = self.report_slot.clone().try_acquire_owned() else {
            return Err(
                ApiError::new(codes::RATE_LIMITED).with_message("Another report is being made; try again shortly")
            );
        };
        let ours = self.ours(festival_id, start, end).await?;
        let provider = self.reports.clone();
        let sessions: Vec<ListedSession> = read_all(
            |after| {
                let provider = provider.clone();
                Box::pin(async move { provider.list_sessions(start - SLACK, end + SLACK, after.as_deref()).await })
            },
            |s: &ListedSession| s.id.clone(),
        )
        .await?;
        let refunds: Vec<ListedRefund> = read_all(
            |after| {
                let provider = provider.clone();
                Box::pin(
                    async move { provider.list_refunds(start - SLACK, end + REFUND_HORIZON, after.as_deref()).await },
                )
            },
            |r: &ListedRefund| r.id.clone(),
        )
        .await?;

        // The festival's sessions: those of our payments in the window, and those whose
        // metadata names a payment of this festival we do not have in the window (the
        // slack reads a few from just outside it; a payment we have is not unknown).
        let mine: std::collections::HashSet<&str> = ours.iter().map(|o| o.session_id.as_str()).collect();
        let outside: Vec<Uuid> = sessions
            .iter()
            .filter(|s| s.festival_id == Some(festival_id) && !mine.contains(s.id.as_str()))
            .filter_map(|s| s.payment_id)
            .collect();
        let known_elsewhere = self.known(&outside).await?;
        let theirs: Vec<ListedSession> = sessions
            .into_iter()
            .filter(|s| {
                mine.contains(s.id.as_str())
                    || (s.festival_id == Some(festival_id)
                        && s.payment_id.is_some_and(|p| !known_elsewhere.contains(&p)))
            })
            .collect();
        let mut refunded: HashMap<String, i64> = HashMap::new();
        for r in refunds.iter().filter(|r| r.status == ProviderRefundStatus::Succeeded) {
            if let Some(intent) = &r.intent_id {
                *refunded.entry(intent.clone()).or_default() += r.amount_minor;
            }
        }
        let differences = reconcile::compare(&ours, &theirs, &refunded);

        let captured = |o: &&Ours| matches!(o.status, PaymentStatus::Completed | PaymentStatus::Refunded);
        let provider_intents: Vec<&str> = theirs
            .iter()
            .filter_map(|s| match &s.state {
                SessionState::Paid { intent_id, .. } | SessionState::Processing { intent_id } => {
                    Some(intent_id.as_str())
                }
                SessionState::Open | SessionState::Expired => None,
            })
            .collect();
        Ok(pb::ReconciliationReport {
            festival_id: festival_id.to_string(),
            start_time: Some(timestamp(start)),
            end_time: Some(timestamp(end)),
            payments: ours.len() as i64,
            provider_sessions: theirs.len() as i64,
            captured_minor: ours.iter().filter(captured).map(|o| o.amount_minor).sum(),
            provider_captured_minor: theirs
                .iter()
                .filter(|s| matches!(s.state, SessionState::Paid { .. }))
                .map(|s| s.amount_total)
                .sum(),
            refunded_minor: ours.iter().map(|o| o.refunded_minor).sum(),
            provider_refunded_minor: provider_intents.iter().filter_map(|i| refunded.get(*i)).sum(),
            differences: differences
                .into_iter()
                .map(|d| pb::ReconciliationDifference {
                    kind: kind_of(d.kind) as i32,
                    payment_id: d.payment_id.map(|p| p.to_string()).unwrap_or_default(),
                    session_id: d.session_id,
                    ours: d.ours,
                    provider: d.provider,
                })
                .collect(),
        })
    }

    /// The festival's payments created in `[start, end)`, with what the provider
    /// confirmed refunding of each.
    async fn ours(&self, festival_id: Uuid, start: DateTime<Utc>, end: DateTime<Utc>) -> ApiResult<Vec<Ours>> {
        let mut conn = self.pool.acquire().await?;
        let limit = (MAX_PAGES * 100) as i64;
        let rows = store::payments::for_reconciliation(&mut conn, festival_id, start, end, limit + 1).await?;
        if rows.len() as i64 > limit {
            return Err(too_many());
        }
        Ok(rows
            .into_iter()
            .map(|(p, refunded_minor)| Ours {
                payment_id: p.id,
                session_id: p.provider_session_id,
                status: p.status,
                amount_minor: p.amount_minor,
                currency: p.currency,
                intent_id: p.provider_intent_id,
                refunded_minor,
            })
            .collect())
    }

    /// Which of `ids` are payments we have.
    async fn known(&self, ids: &[Uuid]) -> ApiResult<std::collections::HashSet<Uuid>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let mut conn = self.pool.acquire().await?;
        Ok(store::payments::existing(&mut conn, ids).await?.into_iter().collect())
    }
}
