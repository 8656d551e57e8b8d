//! Rows and domain types → protobuf messages.

use festival_platform::convert::timestamp;
use festival_proto::payments::v1 as pb;

use crate::domain::status::{PaymentStatus, RefundStatus};
use crate::store::{payments::PaymentRow, refunds::RefundRow};

pub(super) fn status_pb(s: PaymentStatus) -> pb::PaymentStatus {
    match s {
        PaymentStatus::Pending => pb::PaymentStatus::Pending,
        PaymentStatus::Processing => pb::PaymentStatus::Processing,
        PaymentStatus::Completed => pb::PaymentStatus::Completed,
        PaymentStatus::Failed => pb::PaymentStatus::Failed,
        PaymentStatus::Refunded => pb::PaymentStatus::Refunded,
    }
}

pub(super) fn status_of(s: pb::PaymentStatus) -> Option<PaymentStatus> {
    match s {
        pb::PaymentStatus::Unspecified => None,
        pb::PaymentStatus::Pending => Some(PaymentStatus::Pending),
        pb::PaymentStatus::Processing => Some(PaymentStatus::Processing),
        pb::PaymentStatus::Completed => Some(PaymentStatus::Completed),
        pb::PaymentStatus::Failed => Some(PaymentStatus::Failed),
        pb::PaymentStatus::Refunded => Some(PaymentStatus::Refunded),
    }
}

pub(super) fn to_payment(p: &PaymentRow) -> pb::Payment {
    pb::Payment {
        id: p.id.to_string(),
        festival_id: p.festival_id.to_string(),
        purpose: crate::settle::purpose_pb(p.purpose) as i32,
        reference: p.reference.clone(),
        payer_user_id: p.payer_user_id.to_string(),
        status: status_pb(p.status) as i32,
        amount_minor: p.amount_minor,
        currency: p.currency.clone(),
        refunded_minor: p.refunded_minor,
        // Only an open checkout can be paid; afterwards the link is of no use.
        checkout_url: if p.status == PaymentStatus::Pending { p.checkout_url.clone() } else { String::new() },
        failure_reason: p.failure_reason.clone(),
        create_time: Some(timestamp(p.created_at)),
        update_time: Some(timestamp(p.updated_at)),
        expire_time: Some(timestamp(p.expires_at)),
        disputed: p.disputed,
        vendor_account_id: p.vendor_account_id.map(|v| v.to_string()).unwrap_or_default(),
        application_fee_minor: p.application_fee_minor,
    }
}

pub(super) fn to_refund(r: &RefundRow, currency: &str) -> pb::Refund {
    pb::Refund {
        id: r.id.to_string(),
        payment_id: r.payment_id.to_string(),
        amount_minor: r.amount_minor,
        currency: currency.to_owned(),
        status: match r.status {
            RefundStatus::Pending => pb::RefundStatus::Pending,
            RefundStatus::Succeeded => pb::RefundStatus::Succeeded,
            RefundStatus::Failed => pb::RefundStatus::Failed,
        } as i32,
        reason: r.reason.clone(),
        create_time: Some(timestamp(r.created_at)),
    }
}
