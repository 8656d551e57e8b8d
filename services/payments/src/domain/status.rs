//! The brief's PaymentStatus as a transition table: anything not in it is refused, so a
//! late or repeated provider event cannot move a payment backwards.

festival_platform::text_enum! {
    PaymentStatus {
        Pending = "PENDING",
        Processing = "PROCESSING",
        Completed = "COMPLETED",
        Failed = "FAILED",
        Refunded = "REFUNDED",
    }
}

festival_platform::text_enum! {
    Purpose {
        TicketOrder = "TICKET_ORDER",
        CampingBooking = "CAMPING_BOOKING",
        WalletTopUp = "WALLET_TOP_UP",
        VendorOrder = "VENDOR_ORDER",
    }
}

festival_platform::text_enum! {
    RefundStatus { Pending = "PENDING", Succeeded = "SUCCEEDED", Failed = "FAILED" }
}

/// What happens to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentEvent {
    /// Paid by a method that settles later (the checkout completed unpaid).
    Submitted,
    /// The money is captured.
    Captured,
    /// The checkout expired, or the delayed payment did not settle.
    Failed,
    /// Everything captured went back.
    FullyRefunded,
    /// A refund the provider had paid failed after all (Stripe's `refund.failed`): money
    /// is held again.
    RefundReversed,
}

/// The transition table. `None`: not allowed.
pub fn transition(from: PaymentStatus, event: PaymentEvent) -> Option<PaymentStatus> {
    use PaymentEvent::*;
    use PaymentStatus::*;
    match (from, event) {
        (Pending, Submitted) => Some(Processing),
        (Pending | Processing, Captured) => Some(Completed),
        (Pending | Processing, PaymentEvent::Failed) => Some(PaymentStatus::Failed),
        (Completed, FullyRefunded) => Some(Refunded),
        (Refunded, RefundReversed) => Some(Completed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentEvent::*;
    use super::PaymentStatus::*;
    use super::*;

    #[test]
    fn a_payment_moves_forward_only() {
        assert_eq!(transition(Pending, Captured), Some(Completed));
        assert_eq!(transition(Pending, Submitted), Some(Processing));
        assert_eq!(transition(Processing, Captured), Some(Completed));
        assert_eq!(transition(Processing, PaymentEvent::Failed), Some(PaymentStatus::Failed));
        assert_eq!(transition(Completed, FullyRefunded), Some(Refunded));
        // A late expiry or failure never undoes a capture, and nothing revives a failure.
        assert_eq!(transition(Completed, PaymentEvent::Failed), None);
        assert_eq!(transition(Completed, Submitted), None);
        assert_eq!(transition(PaymentStatus::Failed, Captured), None);
        assert_eq!(transition(Refunded, Captured), None);
        assert_eq!(transition(Pending, FullyRefunded), None);
        assert_eq!(transition(Refunded, RefundReversed), Some(Completed));
        assert_eq!(transition(Completed, RefundReversed), None);
    }

    #[test]
    fn every_status_has_a_text_form() {
        for s in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(PaymentStatus::ALL.len(), 5);
    }
}
