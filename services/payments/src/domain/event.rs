//! What a provider event means for us, read from its JSON once. Only the fields used
//! are read; everything else in Stripe's (large, versioned) objects is ignored, so a new
//! API version adding fields changes nothing.

use serde_json::Value;

/// A webhook event, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEvent {
    /// `evt_…`: the redelivery key.
    pub id: String,
    /// `checkout.session.completed`, …
    pub kind: String,
    pub change: Change,
}

/// The change an event reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A checkout finished. `paid`: the money is captured; otherwise a delayed method
    /// (a bank debit) settles later.
    CheckoutCompleted {
        session_id: String,
        intent_id: Option<String>,
        paid: bool,
        amount_total: Option<i64>,
        currency: Option<String>,
    },
    /// A delayed payment settled.
    AsyncSucceeded { session_id: String, intent_id: Option<String> },
    /// A delayed payment failed.
    AsyncFailed { session_id: String },
    /// The checkout closed unpaid.
    CheckoutExpired { session_id: String },
    /// A refund was made or changed (ours, or one made in Stripe's dashboard).
    Refund(RefundChange),
    /// The payer's bank opened a dispute.
    DisputeOpened { dispute_id: String, intent_id: String, amount: i64 },
    /// A vendor's connected account changed (its onboarding progressed, or Stripe
    /// restricted it). `at`: the event's time, so an older state never overwrites a newer.
    AccountUpdated {
        account_id: String,
        charges_enabled: bool,
        payouts_enabled: bool,
        details_submitted: bool,
        at: i64,
    },
    /// An event we do not act on.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundChange {
    pub refund_id: String,
    pub intent_id: String,
    pub amount: i64,
    pub status: ProviderRefundStatus,
    /// Our refund's id, when we asked for it (`metadata.refund_id`).
    pub our_id: Option<String>,
    /// It reversed a vendor's transfer (`transfer_reversal` set).
    pub transfer_reversed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderRefundStatus {
    Pending,
    Succeeded,
    Failed,
}

impl ProviderRefundStatus {
    /// Stripe's refund statuses: `pending`, `requires_action`, `succeeded`, `failed`,
    /// `canceled`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" | "requires_action" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" | "canceled" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl Change {
    /// The payment intent it is about, if it names one (parked until known).
    pub fn intent_id(&self) -> Option<&str> {
        match self {
            Change::Refund(r) => Some(&r.intent_id),
            Change::DisputeOpened { intent_id, .. } => Some(intent_id),
            Change::CheckoutCompleted { intent_id, .. } | Change::AsyncSucceeded { intent_id, .. } => {
                intent_id.as_deref()
            }
            _ => None,
        }
    }

    /// The key of its effect: the same change under another event id has none again.
    pub fn effect_key(&self, kind: &str) -> Option<String> {
        match self {
            Change::CheckoutCompleted { session_id, .. }
            | Change::AsyncSucceeded { session_id, .. }
            | Change::AsyncFailed { session_id }
            | Change::CheckoutExpired { session_id } => Some(format!("{session_id}:{kind}")),
            Change::Refund(r) => Some(format!("{}:{:?}", r.refund_id, r.status)),
            Change::DisputeOpened { dispute_id, .. } => Some(format!("{dispute_id}:{kind}")),
            // A state, not an effect: newer wins (by time), repeats change nothing.
            Change::AccountUpdated { .. } | Change::Other => None,
        }
    }
}

/// Why an event body is refused (after its signature passed: Stripe sent something we
/// do not understand, which is logged and answered 400 so it shows in Stripe's
/// dashboard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub &'static str);

/// Parses a verified event body.
pub fn parse(body: &[u8]) -> Result<ProviderEvent, Unreadable> {
    let root: Value = serde_json::from_slice(body).map_err(|_| Unreadable("not JSON"))?;
    let id = text(&root, "id").filter(|id| id.starts_with("evt_")).ok_or(Unreadable("no event id"))?;
    let kind = text(&root, "type").ok_or(Unreadable("no event type"))?;
    let object = root.get("data").and_then(|d| d.get("object")).ok_or(Unreadable("no data.object"))?;
    let session = || text(object, "id").filter(|id| id.starts_with("cs_")).ok_or(Unreadable("no checkout session id"));
    let change = match kind.as_str() {
        "checkout.session.completed" => Change::CheckoutCompleted {
            session_id: session()?,
            intent_id: intent_of(object),
            paid: matches!(text(object, "payment_status").as_deref(), Some("paid")),
            amount_total: object.get("amount_total").and_then(Value::as_i64),
            currency: text(object, "currency").map(|c| c.to_ascii_uppercase()),
        },
        "checkout.session.async_payment_succeeded" => {
            Change::AsyncSucceeded { session_id: session()?, intent_id: intent_of(object) }
        }
        "checkout.session.async_payment_failed" => Change::AsyncFailed { session_id: session()? },
        "checkout.session.expired" => Change::CheckoutExpired { session_id: session()? },
        // A refund or dispute without a payment intent belongs to another integration on
        // the account (a charge made without Checkout): nothing of ours.
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" | "charge.dispute.created"
            if intent_of(object).is_none() =>
        {
            Change::Other
        }
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            Change::Refund(RefundChange {
                refund_id: text(object, "id").ok_or(Unreadable("no refund id"))?,
                intent_id: intent_of(object).ok_or(Unreadable("a refund without a payment intent"))?,
                amount: object
                    .get("amount")
                    .and_then(Value::as_i64)
                    .filter(|a| *a > 0)
                    .ok_or(Unreadable("no amount"))?,
                status: text(object, "status")
                    .and_then(|s| ProviderRefundStatus::parse(&s))
                    .ok_or(Unreadable("unknown refund status"))?,
                our_id: object.get("metadata").and_then(|m| text(m, "refund_id")),
                transfer_reversed: object.get("transfer_reversal").is_some_and(|r| !r.is_null()),
            })
        }
        "charge.dispute.created" => Change::DisputeOpened {
            dispute_id: text(object, "id").ok_or(Unreadable("no dispute id"))?,
            intent_id: intent_of(object).ok_or(Unreadable("a dispute without a payment intent"))?,
            amount: object.get("amount").and_then(Value::as_i64).ok_or(Unreadable("no amount"))?,
        },
        // A Connect event names the connected account it is from; it must be the object.
        "account.updated" if root.get("account").is_some_and(|a| a.as_str() != text(object, "id").as_deref()) => {
            return Err(Unreadable("an account event from another account"));
        }
        "account.updated" => Change::AccountUpdated {
            account_id: text(object, "id").filter(|id| id.starts_with("acct_")).ok_or(Unreadable("no account id"))?,
            charges_enabled: object.get("charges_enabled").and_then(Value::as_bool).unwrap_or(false),
            payouts_enabled: object.get("payouts_enabled").and_then(Value::as_bool).unwrap_or(false),
            details_submitted: object.get("details_submitted").and_then(Value::as_bool).unwrap_or(false),
            at: root.get("created").and_then(Value::as_i64).ok_or(Unreadable("no event time"))?,
        },
        _ => Change::Other,
    };
    Ok(ProviderEvent { id, kind, change })
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 255).map(str::to_owned)
}

/// `payment_intent` is an id, or the expanded object.
fn intent_of(object: &Value) -> Option<String> {
    match object.get("payment_intent") {
        Some(Value::String(id)) if id.starts_with("pi_") && id.len() <= 255 => Some(id.clone()),
        Some(Value::Object(_)) => object.get("payment_intent").and_then(|pi| text(pi, "id")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(kind: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"id": "evt_1", "object": "event", "type": kind, "data": {"object": object}}))
            .unwrap_or_default()
    }

    #[test]
    fn a_completed_checkout_names_its_session_intent_and_whether_it_is_paid() {
        let e = parse(&body(
            "checkout.session.completed",
            json!({"id": "cs_1", "payment_intent": "pi_1", "payment_status": "paid", "amount_total": 9000}),
        ))
        .expect("parses");
        assert_eq!(e.id, "evt_1");
        assert_eq!(
            e.change,
            Change::CheckoutCompleted {
                session_id: "cs_1".into(),
                intent_id: Some("pi_1".into()),
                paid: true,
                amount_total: Some(9000),
                currency: None,
            }
        );
        assert_eq!(e.change.effect_key(&e.kind).as_deref(), Some("cs_1:checkout.session.completed"));
    }

    #[test]
    fn a_refund_event_carries_our_id_and_status() {
        let e = parse(&body(
            "refund.updated",
            json!({"id": "re_1", "payment_intent": "pi_1", "amount": 500, "status": "succeeded", "metadata": {"refund_id": "r-1"}}),
        ))
        .expect("parses");
        let Change::Refund(r) = &e.change else { panic!("not a refund: {e:?}") };
        assert_eq!((r.amount, r.status, r.our_id.as_deref()), (500, ProviderRefundStatus::Succeeded, Some("r-1")));
        assert_eq!(e.change.intent_id(), Some("pi_1"));
    }

    #[test]
    fn unknown_types_are_other_and_broken_bodies_are_unreadable() {
        assert_eq!(parse(&body("customer.created", json!({"id": "cus_1"}))).map(|e| e.change), Ok(Change::Other));
        assert_eq!(parse(b"nope"), Err(Unreadable("not JSON")));
        assert_eq!(
            parse(&body("checkout.session.completed", json!({"id": "x"}))),
            Err(Unreadable("no checkout session id"))
        );
        assert_eq!(
            parse(&body(
                "refund.updated",
                json!({"id": "re_1", "payment_intent": "pi_1", "amount": -5, "status": "succeeded"})
            )),
            Err(Unreadable("no amount"))
        );
    }
}
