//! The states of tickets, holds and orders. A ticket's life (the brief's TicketStatus) is
//! a transition table: anything not in it is refused.

festival_platform::text_enum! {
    /// AVAILABLE and RESERVED tickets are counts on their quotas; a ticket is a row from SOLD on.
    TicketStatus {
        Available = "AVAILABLE",
        Reserved = "RESERVED",
        Sold = "SOLD",
        Used = "USED",
        Cancelled = "CANCELLED",
        Refunded = "REFUNDED",
    }
}

festival_platform::text_enum! {
    HoldStatus { Active = "ACTIVE", CheckedOut = "CHECKED_OUT", Released = "RELEASED", Expired = "EXPIRED" }
}

festival_platform::text_enum! {
    /// AWAITING_PAYMENT: paid online, the payment not settled yet (no tickets);
    /// PAYMENT_FAILED: it never was (nothing charged).
    OrderStatus {
        Paid = "PAID",
        Cancelled = "CANCELLED",
        AwaitingPayment = "AWAITING_PAYMENT",
        PaymentFailed = "PAYMENT_FAILED",
    }
}

festival_platform::text_enum! {
    PaymentMethod { Free = "FREE", Cash = "CASH", External = "EXTERNAL", Card = "CARD" }
}

festival_platform::text_enum! {
    Visibility { Public = "PUBLIC", Hidden = "HIDDEN" }
}

festival_platform::text_enum! {
    /// Program's festival status, as the projection stores it.
    FestivalStatus {
        Draft = "DRAFT",
        Published = "PUBLISHED",
        Ongoing = "ONGOING",
        Completed = "COMPLETED",
        Cancelled = "CANCELLED",
    }
}

/// What happens to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketEvent {
    /// A hold takes it.
    Reserve,
    /// The hold ends without an order (released or expired).
    Release,
    /// The order is paid: the ticket is issued.
    Pay,
    /// Admitted at a gate.
    CheckIn,
    /// The order is cancelled.
    Cancel,
    /// The money went back.
    Refund,
    /// Given to someone else: revoked, and a new ticket issued to them.
    Transfer,
}

/// The transition table. `None`: not allowed.
pub fn transition(from: TicketStatus, event: TicketEvent) -> Option<TicketStatus> {
    use TicketEvent::*;
    use TicketStatus::*;
    match (from, event) {
        (Available, Reserve) => Some(Reserved),
        (Reserved, Release) => Some(Available),
        (Reserved, Pay) => Some(Sold),
        (Sold, CheckIn) => Some(Used),
        (Sold | Used, Cancel) => Some(Cancelled),
        (Sold | Used, Refund) => Some(Refunded),
        (Sold, Transfer) => Some(Cancelled),
        _ => None,
    }
}

/// A revoked ticket never admits anyone again.
pub fn is_revoked(status: TicketStatus) -> bool {
    matches!(status, TicketStatus::Cancelled | TicketStatus::Refunded)
}

/// Sales happen while the festival is published or under way; a cancelled festival
/// stops them at once.
/// Whether the gates may have opened: under way or over, or past its start. Offline
/// scanners may then hold a snapshot, so tickets stop changing hands or being refunded.
pub fn gates_may_be_open(
    status: FestivalStatus,
    start: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    matches!(status, FestivalStatus::Ongoing | FestivalStatus::Completed) || start.is_some_and(|s| now >= s)
}

pub fn festival_on_sale(status: FestivalStatus) -> bool {
    matches!(status, FestivalStatus::Published | FestivalStatus::Ongoing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tables_transitions_are_allowed() {
        use TicketEvent::*;
        use TicketStatus::*;
        let events = [Reserve, Release, Pay, CheckIn, Cancel, Refund, Transfer];
        let allowed: Vec<(TicketStatus, TicketEvent, TicketStatus)> = TicketStatus::ALL
            .iter()
            .flat_map(|&from| events.iter().filter_map(move |&e| transition(from, e).map(|to| (from, e, to))))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Available, Reserve, Reserved),
                (Reserved, Release, Available),
                (Reserved, Pay, Sold),
                (Sold, CheckIn, Used),
                (Sold, Cancel, Cancelled),
                (Sold, Refund, Refunded),
                (Sold, Transfer, Cancelled),
                (Used, Cancel, Cancelled),
                (Used, Refund, Refunded),
            ]
        );
        assert!(TicketStatus::ALL.iter().filter(|s| is_revoked(**s)).eq([Cancelled, Refunded].iter()));
    }

    #[test]
    fn only_published_and_ongoing_festivals_sell() {
        let selling: Vec<_> = FestivalStatus::ALL.iter().copied().filter(|s| festival_on_sale(*s)).collect();
        assert_eq!(selling, vec![FestivalStatus::Published, FestivalStatus::Ongoing]);
    }
}
