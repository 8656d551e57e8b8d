//! Generated protobuf and gRPC code for every festival API (`proto/festival/**`), plus
//! the encoded descriptor set used by gRPC reflection and the gateway's transcoder.
//!
//! This is the only crate that runs codegen; services depend on it instead of
//! compiling `.proto` files themselves.

/// Encoded `FileDescriptorSet` of every shipped festival proto and its imports (not the
/// test-only `festival.testing` package).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/festival_descriptor.bin"));

/// [`FILE_DESCRIPTOR_SET`] plus the test-only `festival.testing` package.
#[cfg(feature = "testing")]
pub const TESTING_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/festival_testing_descriptor.bin"));

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// The module tree mirrors the proto packages, so generated cross-package paths
/// (`super::super::google::api::HttpBody`) resolve.
pub mod festival {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("festival.common.v1");
        }
    }

    pub mod identity {
        pub mod v1 {
            tonic::include_proto!("festival.identity.v1");
        }
    }

    /// Test-only API for the gateway's transcoding tests and the event kit's tests (the
    /// `testing` feature; never in a shipped binary).
    #[cfg(feature = "testing")]
    pub mod testing {
        pub mod v1 {
            tonic::include_proto!("festival.testing.v1");
        }
    }

    pub mod program {
        pub mod v1 {
            tonic::include_proto!("festival.program.v1");
        }
    }

    pub mod ticketing {
        pub mod v1 {
            tonic::include_proto!("festival.ticketing.v1");
        }
    }

    pub mod payments {
        pub mod v1 {
            tonic::include_proto!("festival.payments.v1");
        }
    }

    pub mod cashless {
        pub mod v1 {
            tonic::include_proto!("festival.cashless.v1");
        }
    }
}

#[cfg(feature = "testing")]
pub use festival::testing;
pub use festival::{cashless, common, identity, payments, program, ticketing};

/// A domain event: a protobuf message that knows the subject it is published on.
///
/// Subjects are `festival.<service>.<entity>.<verb>` (without any deployment prefix) and
/// are written once, here, next to the generated types: the outbox publishes on
/// [`Event::SUBJECT`], consumers subscribe to it and dispatch on the type's full name.
pub trait Event: prost::Message + prost::Name + Default + Send + Sync + 'static {
    /// `festival.identity.user.deleted`.
    const SUBJECT: &'static str;

    /// The publishing service (the subject's second segment), whose stream carries it.
    fn service() -> &'static str {
        Self::SUBJECT.split('.').nth(1).unwrap_or_default()
    }
}

/// Every event and its subject.
macro_rules! events {
    ($($(#[$attr:meta])* $ty:ty => $subject:literal;)*) => {
        $($(#[$attr])* impl Event for $ty { const SUBJECT: &'static str = $subject; })*
        /// `(protobuf full name, subject)` of every event, for checks over the whole set.
        #[allow(clippy::vec_init_then_push, reason = "an entry may be compiled out by its cfg")]
        pub fn all_events() -> Vec<(String, &'static str)> {
            let mut all = Vec::new();
            $($(#[$attr])* all.push((<$ty as prost::Name>::full_name(), $subject));)*
            all
        }
    };
}

events! {
    identity::v1::UserRegistered => "festival.identity.user.registered";
    identity::v1::UserUpdated => "festival.identity.user.updated";
    identity::v1::UserDeleted => "festival.identity.user.deleted";
    identity::v1::MembershipGranted => "festival.identity.membership.granted";
    identity::v1::MembershipRevoked => "festival.identity.membership.revoked";
    identity::v1::SessionRevoked => "festival.identity.session.revoked";
    identity::v1::SigningKeyRevoked => "festival.identity.signing_key.revoked";
    identity::v1::DeviceRevoked => "festival.identity.device.revoked";
    program::v1::FestivalCreated => "festival.program.festival.created";
    program::v1::FestivalUpdated => "festival.program.festival.updated";
    program::v1::FestivalStatusChanged => "festival.program.festival.status_changed";
    program::v1::FestivalDeleted => "festival.program.festival.deleted";
    program::v1::PerformanceChanged => "festival.program.performance.changed";
    ticketing::v1::OrderPaid => "festival.ticketing.order.paid";
    ticketing::v1::OrderCancelled => "festival.ticketing.order.cancelled";
    ticketing::v1::TicketAdmitted => "festival.ticketing.ticket.admitted";
    ticketing::v1::TicketExited => "festival.ticketing.ticket.exited";
    ticketing::v1::TicketTransferred => "festival.ticketing.ticket.transferred";
    ticketing::v1::WaitingListOffered => "festival.ticketing.waiting_list.offered";
    ticketing::v1::RefundRequested => "festival.ticketing.refund.requested";
    ticketing::v1::RefundApproved => "festival.ticketing.refund.approved";
    ticketing::v1::OrderPaymentRefused => "festival.ticketing.order.payment_refused";
    payments::v1::PaymentCompleted => "festival.payments.payment.completed";
    payments::v1::PaymentFailed => "festival.payments.payment.failed";
    payments::v1::PaymentRefunded => "festival.payments.payment.refunded";
    payments::v1::PaymentDisputed => "festival.payments.payment.disputed";
    cashless::v1::TransactionRecorded => "festival.cashless.transaction.recorded";
    cashless::v1::WalletLow => "festival.cashless.wallet.low";
    #[cfg(feature = "testing")]
    testing::v1::ThingHappened => "festival.testing.thing.happened";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_is_well_formed_and_used_once() {
        let all = all_events();
        assert!(all.len() >= 11);
        let mut seen = std::collections::HashSet::new();
        for (name, subject) in &all {
            let parts: Vec<&str> = subject.split('.').collect();
            assert_eq!(parts.len(), 4, "{subject}: festival.<service>.<entity>.<verb>");
            assert_eq!(parts[0], "festival", "{subject}");
            assert!(name.starts_with(&format!("festival.{}.v1.", parts[1])), "{name} is published on {subject}");
            assert!(parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
            assert!(seen.insert(*subject), "{subject} is used twice");
        }
        assert_eq!(identity::v1::UserDeleted::service(), "identity");
        assert_eq!(program::v1::FestivalCreated::service(), "program");
    }

    #[test]
    fn the_shipped_descriptor_set_has_the_real_apis_and_not_the_test_only_one() {
        use prost::Message as _;
        let shipped = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set");
        let services: Vec<String> = shipped
            .file
            .iter()
            .flat_map(|f| f.service.iter().map(move |s| format!("{}.{}", f.package(), s.name())))
            .collect();
        assert!(services.contains(&"festival.identity.v1.IdentityService".to_owned()), "{services:?}");
        assert!(services.contains(&"festival.program.v1.ProgramService".to_owned()), "{services:?}");
        let test_only: Vec<&str> =
            shipped.file.iter().map(|f| f.package()).filter(|p| p.starts_with("festival.testing")).collect();
        assert_eq!(test_only, Vec::<&str>::new());
    }
}
