//! When a ticket may change hands.

use chrono::{DateTime, Utc};

use super::status::TicketStatus;

/// Why a ticket cannot be transferred now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its category's tickets stay with their buyer.
    NotTransferable,
    /// Past the category's transfer cut-off.
    PastCutoff,
    /// Used, or revoked: only an unused ticket changes hands.
    NotUnused,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotTransferable => "Tickets of this category cannot be transferred",
            Refusal::PastCutoff => "The transfer deadline of this category has passed",
            Refusal::NotUnused => "Only an unused, valid ticket can be transferred",
        }
    }
}

/// A ticket at `status`, of a category `transferable` until `cutoff`, may change hands
/// at `now`.
pub fn may_transfer(
    status: TicketStatus,
    transferable: bool,
    cutoff: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if !transferable {
        return Err(Refusal::NotTransferable);
    }
    if cutoff.is_some_and(|cutoff| now >= cutoff) {
        return Err(Refusal::PastCutoff);
    }
    if status != TicketStatus::Sold {
        return Err(Refusal::NotUnused);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn only_an_unused_ticket_of_a_transferable_category_before_its_cutoff_changes_hands() {
        let now = Utc::now();
        let later = Some(now + Duration::hours(1));
        assert_eq!(may_transfer(TicketStatus::Sold, true, later, now), Ok(()));
        assert_eq!(may_transfer(TicketStatus::Sold, true, None, now), Ok(()));
        assert_eq!(may_transfer(TicketStatus::Sold, false, later, now), Err(Refusal::NotTransferable));
        assert_eq!(
            may_transfer(TicketStatus::Sold, true, Some(now), now),
            Err(Refusal::PastCutoff),
            "the cut-off is excluded"
        );
        for status in [TicketStatus::Used, TicketStatus::Cancelled, TicketStatus::Refunded] {
            assert_eq!(may_transfer(status, true, later, now), Err(Refusal::NotUnused));
        }
    }
}
