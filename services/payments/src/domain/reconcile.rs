//! Reconciliation: our payments against the provider's checkout sessions and refunds,
//! every difference named. Pure: the caller reads both sides.
//!
//! What agrees: an open session and a PENDING payment; a paid session and a COMPLETED or
//! REFUNDED payment of the same amount and currency; an expired session and a FAILED
//! payment; a completed but unpaid session (a delayed method) and a PROCESSING payment,
//! or a FAILED one (Stripe leaves a session whose delayed payment failed complete and
//! unpaid). Refunds agree when the provider's succeeded refunds of the payment's intent
//! add up to ours.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::status::PaymentStatus;
use crate::provider::{ListedSession, SessionState};

/// One of our payments, as the report needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ours {
    pub payment_id: Uuid,
    pub session_id: String,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: String,
    pub intent_id: Option<String>,
    /// Refunds the provider confirmed.
    pub refunded_minor: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// We have the payment; the provider has no such session (in the window).
    MissingAtProvider,
    /// The provider has a session made for us (our metadata) that we have no record of.
    UnknownHere,
    Status,
    Amount,
    Currency,
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub kind: Kind,
    pub payment_id: Option<Uuid>,
    pub session_id: String,
    /// What we recorded, and what the provider says, in words.
    pub ours: String,
    pub provider: String,
}

fn state_name(state: &SessionState) -> &'static str {
    match state {
        SessionState::Open => "open",
        SessionState::Paid { .. } => "paid",
        SessionState::Processing { .. } => "complete, payment pending or failed",
        SessionState::Expired => "expired",
    }
}

fn agrees(status: PaymentStatus, state: &SessionState) -> bool {
    use PaymentStatus as S;
    matches!(
        (status, state),
        (S::Pending, SessionState::Open)
            | (S::Completed | S::Refunded, SessionState::Paid { .. })
            | (S::Processing | S::Failed, SessionState::Processing { .. })
            | (S::Failed, SessionState::Expired)
    )
}

/// Every difference between `ours` and `theirs` (the provider's sessions of the same
/// festival and window) and the provider's succeeded refunds per payment intent,
/// ordered by kind then payment. A payment is matched to its session by the session's
/// id; a session matching none of ours is unknown here only if its metadata names one
/// of our payments that we do not have (ours in the window are all in `ours`).
pub fn compare(ours: &[Ours], theirs: &[ListedSession], refunded: &HashMap<String, i64>) -> Vec<Difference> {
    let sessions: BTreeMap<&str, &ListedSession> = theirs.iter().map(|s| (s.id.as_str(), s)).collect();
    let known: BTreeMap<&str, &Ours> = ours.iter().map(|o| (o.session_id.as_str(), o)).collect();
    let mut found = Vec::new();
    let difference = |kind, o: &Ours, ours: String, provider: String| Difference {
        kind,
        payment_id: Some(o.payment_id),
        session_id: o.session_id.clone(),
        ours,
        provider,
    };
    for o in ours {
        let Some(s) = sessions.get(o.session_id.as_str()) else {
            found.push(difference(Kind::MissingAtProvider, o, o.status.as_str().to_owned(), "no session".into()));
            continue;
        };
        if !agrees(o.status, &s.state) {
            found.push(difference(Kind::Status, o, o.status.as_str().to_owned(), state_name(&s.state).into()));
        }
        if s.amount_total != o.amount_minor {
            found.push(difference(Kind::Amount, o, o.amount_minor.to_string(), s.amount_total.to_string()));
        }
        if !s.currency.eq_ignore_ascii_case(&o.currency) {
            found.push(difference(Kind::Currency, o, o.currency.clone(), s.currency.clone()));
        }
        let intent = match &s.state {
            SessionState::Paid { intent_id, .. } | SessionState::Processing { intent_id } => Some(intent_id),
            SessionState::Open | SessionState::Expired => o.intent_id.as_ref(),
        };
        let at_provider = intent.and_then(|i| refunded.get(i)).copied().unwrap_or(0);
        if at_provider != o.refunded_minor {
            found.push(difference(Kind::Refunded, o, o.refunded_minor.to_string(), at_provider.to_string()));
        }
    }
    for s in theirs {
        if s.payment_id.is_some() && !known.contains_key(s.id.as_str()) {
            found.push(Difference {
                kind: Kind::UnknownHere,
                payment_id: s.payment_id,
                session_id: s.id.clone(),
                ours: "no payment".into(),
                provider: format!("{} {} {}", state_name(&s.state), s.amount_total, s.currency),
            });
        }
    }
    found.sort_by(|a, b| (a.kind, a.payment_id, &a.session_id).cmp(&(b.kind, b.payment_id, &b.session_id)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(session: &str, status: PaymentStatus, amount: i64, refunded: i64) -> Ours {
        Ours {
            payment_id: Uuid::now_v7(),
            session_id: session.into(),
            status,
            amount_minor: amount,
            currency: "EUR".into(),
            intent_id: None,
            refunded_minor: refunded,
        }
    }

    fn theirs(session: &str, state: SessionState, amount: i64) -> ListedSession {
        ListedSession {
            id: session.into(),
            payment_id: Some(Uuid::now_v7()),
            festival_id: None,
            amount_total: amount,
            currency: "eur".into(),
            created: chrono::Utc::now(),
            state,
        }
    }

    fn paid(intent: &str, amount: i64) -> SessionState {
        SessionState::Paid { intent_id: intent.into(), amount_total: amount }
    }

    #[test]
    fn records_that_agree_make_no_difference() {
        let ours = vec![
            ours("cs_1", PaymentStatus::Pending, 1_000, 0),
            ours("cs_2", PaymentStatus::Completed, 2_000, 500),
            ours("cs_3", PaymentStatus::Failed, 3_000, 0),
            ours("cs_4", PaymentStatus::Processing, 4_000, 0),
            ours("cs_5", PaymentStatus::Failed, 5_000, 0),
            ours("cs_6", PaymentStatus::Refunded, 6_000, 6_000),
        ];
        let theirs = vec![
            theirs("cs_1", SessionState::Open, 1_000),
            theirs("cs_2", paid("pi_2", 2_000), 2_000),
            theirs("cs_3", SessionState::Expired, 3_000),
            theirs("cs_4", SessionState::Processing { intent_id: "pi_4".into() }, 4_000),
            theirs("cs_5", SessionState::Processing { intent_id: "pi_5".into() }, 5_000),
            theirs("cs_6", paid("pi_6", 6_000), 6_000),
        ];
        let refunded = HashMap::from([("pi_2".to_owned(), 500), ("pi_6".to_owned(), 6_000)]);
        assert_eq!(compare(&ours, &theirs, &refunded), Vec::new());
    }

    #[test]
    fn every_kind_of_difference_is_named_with_both_sides() {
        let ours = vec![
            ours("cs_gone", PaymentStatus::Completed, 1_000, 0),
            ours("cs_charged", PaymentStatus::Pending, 2_000, 0),
            ours("cs_amount", PaymentStatus::Completed, 3_000, 0),
            ours("cs_refund", PaymentStatus::Completed, 4_000, 1_000),
            Ours { currency: "CHF".into(), ..ours("cs_currency", PaymentStatus::Pending, 5_000, 0) },
        ];
        let stranger = theirs("cs_stranger", paid("pi_x", 7_000), 7_000);
        let theirs = vec![
            theirs("cs_charged", paid("pi_c", 2_000), 2_000),
            theirs("cs_amount", paid("pi_a", 3_100), 3_100),
            theirs("cs_refund", paid("pi_r", 4_000), 4_000),
            theirs("cs_currency", SessionState::Open, 5_000),
            stranger.clone(),
            // Another integration's session (no metadata of ours) is not ours to report.
            ListedSession { payment_id: None, ..theirs("cs_other", SessionState::Open, 1) },
        ];
        let refunded = HashMap::from([("pi_r".to_owned(), 2_500)]);
        let found = compare(&ours, &theirs, &refunded);
        let found: Vec<(Kind, &str, &str, &str)> =
            found.iter().map(|d| (d.kind, d.session_id.as_str(), d.ours.as_str(), d.provider.as_str())).collect();
        assert_eq!(
            found,
            vec![
                (Kind::MissingAtProvider, "cs_gone", "COMPLETED", "no session"),
                (Kind::UnknownHere, "cs_stranger", "no payment", "paid 7000 eur"),
                (Kind::Status, "cs_charged", "PENDING", "paid"),
                (Kind::Amount, "cs_amount", "3000", "3100"),
                (Kind::Currency, "cs_currency", "CHF", "eur"),
                (Kind::Refunded, "cs_refund", "1000", "2500"),
            ]
        );
        let unknown = compare(&[], std::slice::from_ref(&stranger), &HashMap::new());
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].payment_id, stranger.payment_id);
    }
}
