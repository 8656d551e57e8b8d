//! The `ERR_XXXX` catalogue: every client-visible error code, with its gRPC code, HTTP
//! status and default message, in one table. `tonic::Status` (see [`crate::error`]) and
//! the gateway's JSON errors both read from here; no code is written twice.
//!
//! Ranges follow the product brief (Appendix B): 1xxx general, 2xxx authentication,
//! 3xxx authorization, 4xxx resources, 5xxx payments, 6xxx tickets, 7xxx festivals,
//! 8xxx cashless, 9xxx zones, 10xxx users, 11xxx vendors, 12xxx notifications,
//! 13xxx promo codes.

use tonic::Code as G;

/// One catalogued error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// `ERR_1000`…: stable, documented, safe to match on.
    pub code: &'static str,
    pub grpc: tonic::Code,
    pub http: u16,
    /// Default client-facing message; never contains internals.
    pub message: &'static str,
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $name:ident = ($code:literal, $grpc:ident, $http:literal, $msg:literal); )*) => {
        $( $(#[$doc])* pub const $name: ErrorCode = ErrorCode { code: $code, grpc: G::$grpc, http: $http, message: $msg }; )*
        /// Every code, in catalogue order.
        pub const ALL: &[ErrorCode] = &[$($name),*];
    };
}

catalogue! {
    // 1xxx general
    VALIDATION_FAILED = ("ERR_1000", InvalidArgument, 400, "Validation failed");
    REQUIRED_FIELD = ("ERR_1001", InvalidArgument, 400, "A required field is missing");
    FIELD_TOO_LONG = ("ERR_1002", InvalidArgument, 400, "A field is longer than allowed");
    UNKNOWN_ENUM_VALUE = ("ERR_1003", InvalidArgument, 400, "Unknown enum value");
    MALFORMED_ID = ("ERR_1004", InvalidArgument, 400, "Malformed identifier");
    INVALID_PAGE_TOKEN = ("ERR_1005", InvalidArgument, 400, "Invalid page token");
    IDEMPOTENCY_KEY_REUSED = ("ERR_1006", FailedPrecondition, 422, "Idempotency key reused with a different request");
    CONCURRENT_UPDATE = ("ERR_1007", Aborted, 409, "Concurrent update, retry the request");
    RATE_LIMITED = ("ERR_1008", ResourceExhausted, 429, "Too many requests");
    DEADLINE_EXCEEDED = ("ERR_1009", DeadlineExceeded, 504, "The request took too long");
    UNAVAILABLE = ("ERR_1010", Unavailable, 503, "Service temporarily unavailable");
    PAYLOAD_TOO_LARGE = ("ERR_1011", ResourceExhausted, 413, "Request too large");
    SERVER_BUSY = ("ERR_1012", ResourceExhausted, 503, "Server busy, retry in a moment");
    INTERNAL = ("ERR_1500", Internal, 500, "Internal error");

    // 2xxx authentication
    UNAUTHENTICATED = ("ERR_2000", Unauthenticated, 401, "Authentication required");
    INVALID_CREDENTIALS = ("ERR_2001", Unauthenticated, 401, "Invalid credentials");
    INVALID_TOKEN = ("ERR_2002", Unauthenticated, 401, "Invalid access token");
    INVALID_REFRESH_TOKEN = ("ERR_2003", Unauthenticated, 401, "Invalid or expired refresh token");
    REFRESH_TOKEN_REUSED = ("ERR_2004", Unauthenticated, 401, "Refresh token already used; the session has been revoked");
    SESSION_REVOKED = ("ERR_2005", Unauthenticated, 401, "Session ended, sign in again");
    ACCOUNT_DISABLED = ("ERR_2006", Unauthenticated, 401, "Account disabled");
    TOKEN_EXPIRED = ("ERR_2007", Unauthenticated, 401, "Access token expired");
    /// Carries `retry_after_secs` in its ErrorInfo metadata.
    TOO_MANY_FAILED_ATTEMPTS = ("ERR_2008", ResourceExhausted, 429, "Too many failed attempts, retry later");
    DEVICE_PAIRING_INVALID = ("ERR_2009", Unauthenticated, 401, "Invalid or expired pairing code");
    DEVICE_REVOKED = ("ERR_2010", Unauthenticated, 401, "Device revoked");
    DEVICE_PROOF_INVALID = ("ERR_2011", Unauthenticated, 401, "Invalid device signature");
    /// A staff role at a festival that requires a second factor, from a session without one.
    MFA_REQUIRED = ("ERR_2012", PermissionDenied, 403, "This festival requires signing in with a second factor");
    MFA_CODE_INVALID = ("ERR_2013", Unauthenticated, 401, "Invalid or already used code");
    MFA_CHALLENGE_INVALID = ("ERR_2014", Unauthenticated, 401, "Invalid or expired sign-in challenge, sign in again");
    MFA_ALREADY_ENABLED = ("ERR_2015", FailedPrecondition, 409, "A second factor is already set up");
    MFA_NOT_ENABLED = ("ERR_2016", FailedPrecondition, 409, "No second factor is set up");
    /// A password-reset or verification link that is unknown, used, expired or superseded.
    LINK_INVALID = ("ERR_2017", Unauthenticated, 401, "Invalid or expired link, ask for a new one");
    /// A sign-in with Google or GitHub: its state is unknown, expired, spent, for another
    /// provider or purpose, or was started by another client.
    OAUTH_STATE_INVALID = ("ERR_2018", Unauthenticated, 401, "Invalid or expired sign-in attempt, start again");
    OAUTH_CODE_REFUSED = ("ERR_2019", Unauthenticated, 401, "The provider refused the sign-in, start again");
    OAUTH_ID_TOKEN_INVALID = ("ERR_2020", Unauthenticated, 401, "The provider's identity token failed its checks");
    OAUTH_IDENTITY_TAKEN = ("ERR_2021", AlreadyExists, 409, "That provider account is linked to another account");
    OAUTH_EMAIL_UNVERIFIED = ("ERR_2022", FailedPrecondition, 409, "The provider has not verified this address");
    /// An account has the provider's address but has not verified it here: its owner links
    /// the provider after signing in (or verifies the address first).
    OAUTH_LINK_REQUIRED =
        ("ERR_2023", FailedPrecondition, 409, "An account with this address exists: sign in and link the provider");
    LAST_SIGN_IN_METHOD = ("ERR_2024", FailedPrecondition, 409, "The last way to sign in cannot be removed");
    OAUTH_PROVIDER_DISABLED = ("ERR_2025", FailedPrecondition, 409, "This sign-in provider is not set up");
    OAUTH_PROVIDER_UNAVAILABLE = ("ERR_2026", Unavailable, 503, "The sign-in provider did not answer, retry");
    /// A change that needs the password asked again, on an account without one: its
    /// session must have started minutes ago.
    REAUTHENTICATION_REQUIRED = ("ERR_2027", Unauthenticated, 401, "Sign in again to make this change");
    EMAIL_NOT_VERIFIED = ("ERR_2028", FailedPrecondition, 409, "Verify your email address first");

    // 3xxx authorization
    INSUFFICIENT_PERMISSIONS = ("ERR_3001", PermissionDenied, 403, "Insufficient permissions");
    NOT_A_MEMBER = ("ERR_3002", PermissionDenied, 403, "Not a member of this festival");
    ROLE_NOT_GRANTABLE = ("ERR_3003", InvalidArgument, 400, "This role cannot be granted at a festival");

    // 4xxx resources
    NOT_FOUND = ("ERR_4000", NotFound, 404, "Not found");
    ALREADY_EXISTS = ("ERR_4001", AlreadyExists, 409, "Already exists");
    VERSION_CONFLICT = ("ERR_4002", Aborted, 409, "The resource was changed by someone else");
    GONE = ("ERR_4003", FailedPrecondition, 410, "The resource was deleted");
    IN_USE = ("ERR_4004", FailedPrecondition, 409, "Still in use");
    LIMIT_REACHED = ("ERR_4005", FailedPrecondition, 409, "Limit reached");

    // 5xxx payments
    PAYMENT_FAILED = ("ERR_5001", FailedPrecondition, 402, "Payment failed");
    PAYMENT_PROVIDER_UNAVAILABLE = ("ERR_5002", Unavailable, 503, "Payment provider unavailable");
    REFUND_EXCEEDS_PAYMENT = ("ERR_5003", FailedPrecondition, 422, "Refund exceeds the amount paid");
    WEBHOOK_SIGNATURE_INVALID = ("ERR_5004", Unauthenticated, 400, "Invalid webhook signature");
    CURRENCY_MISMATCH = ("ERR_5005", InvalidArgument, 400, "Currency does not match");
    INVALID_AMOUNT = ("ERR_5006", InvalidArgument, 400, "Invalid amount");
    VENDOR_ACCOUNT_NOT_READY = ("ERR_5007", FailedPrecondition, 409, "The vendor's payment account cannot take payments yet");

    // 6xxx tickets
    TICKET_ALREADY_USED = ("ERR_6001", FailedPrecondition, 409, "Ticket already used");
    SOLD_OUT = ("ERR_6002", FailedPrecondition, 409, "Sold out");
    HOLD_EXPIRED = ("ERR_6003", FailedPrecondition, 410, "Reservation expired");
    TICKET_SIGNATURE_INVALID = ("ERR_6004", InvalidArgument, 400, "Invalid ticket code");
    TICKET_WRONG_FESTIVAL = ("ERR_6005", FailedPrecondition, 409, "Ticket is not valid for this festival");
    TRANSFER_NOT_ALLOWED = ("ERR_6006", FailedPrecondition, 409, "Ticket cannot be transferred");
    PURCHASE_LIMIT_EXCEEDED = ("ERR_6007", FailedPrecondition, 409, "Purchase limit exceeded");
    SALES_CLOSED = ("ERR_6008", FailedPrecondition, 409, "Ticket sales are closed");
    TICKET_REVOKED = ("ERR_6009", FailedPrecondition, 409, "Ticket revoked");
    HOLD_ALREADY_EXTENDED = ("ERR_6010", FailedPrecondition, 409, "A reservation can be extended once");
    HOLD_NOT_ACTIVE = ("ERR_6011", FailedPrecondition, 409, "The reservation is no longer active");
    TICKET_WRONG_DAY = ("ERR_6012", FailedPrecondition, 409, "Ticket is not valid today");
    TICKET_WRONG_LIST = ("ERR_6013", FailedPrecondition, 409, "Ticket is not valid at this entrance");
    TICKET_NOT_INSIDE = ("ERR_6014", FailedPrecondition, 409, "Ticket is not checked in");
    ADDON_NEEDS_ADMISSION = ("ERR_6015", FailedPrecondition, 409, "An add-on needs an admission ticket");
    REFUND_NOT_ALLOWED = ("ERR_6016", FailedPrecondition, 409, "Ticket cannot be refunded");
    REFUND_ALREADY_DECIDED = ("ERR_6017", FailedPrecondition, 409, "Refund request already decided");
    VOUCHER_CLOSED = ("ERR_6018", FailedPrecondition, 409, "Voucher closed or expired");
    VOUCHER_EXHAUSTED = ("ERR_6019", FailedPrecondition, 409, "Voucher fully used");
    WALLET_NOT_CONFIGURED = ("ERR_6020", FailedPrecondition, 409, "Wallet passes are not set up");
    RESALE_NOT_ALLOWED = ("ERR_6021", FailedPrecondition, 409, "Ticket cannot be resold");
    RESALE_UNAVAILABLE = ("ERR_6022", FailedPrecondition, 409, "The resold ticket is no longer available");

    // 7xxx festivals
    FESTIVAL_NOT_ACTIVE = ("ERR_7001", FailedPrecondition, 409, "Festival not active");
    INVALID_STATUS_TRANSITION = ("ERR_7002", FailedPrecondition, 409, "Invalid festival status transition");
    FESTIVAL_INCOMPLETE = ("ERR_7003", FailedPrecondition, 409, "Festival is incomplete");
    SCHEDULE_CONFLICT = ("ERR_7004", FailedPrecondition, 409, "Schedule conflict");
    SLUG_TAKEN = ("ERR_7005", AlreadyExists, 409, "Slug already in use");
    UNKNOWN_TIME_ZONE = ("ERR_7006", InvalidArgument, 400, "Unknown time zone");
    OUTSIDE_FESTIVAL_DATES = ("ERR_7007", InvalidArgument, 400, "Outside the festival's dates");
    SHIFT_OVERLAP = ("ERR_7008", FailedPrecondition, 409, "Overlapping shift assignment");
    SHIFT_FULL = ("ERR_7009", FailedPrecondition, 409, "Shift is fully staffed");
    SHIFT_ROLE_MISMATCH = ("ERR_7010", FailedPrecondition, 409, "The person does not hold the shift's role here");
    PERFORMANCE_CANCELLED = ("ERR_7011", FailedPrecondition, 409, "Performance is cancelled");
    SHIFT_STARTED = ("ERR_7012", FailedPrecondition, 409, "Shift has already started");

    // 8xxx cashless
    INSUFFICIENT_BALANCE = ("ERR_8001", FailedPrecondition, 409, "Insufficient balance");
    DAILY_CAP_EXCEEDED = ("ERR_8002", FailedPrecondition, 409, "Daily spending cap exceeded");
    WRISTBAND_UNKNOWN = ("ERR_8003", NotFound, 404, "Unknown wristband");
    WRISTBAND_ALREADY_BOUND = ("ERR_8004", AlreadyExists, 409, "Wristband already bound");
    TOP_UP_LIMIT_EXCEEDED = ("ERR_8005", FailedPrecondition, 409, "Top-up limit exceeded");
    WALLET_CLOSED = ("ERR_8006", FailedPrecondition, 409, "Wallet closed");
    WRISTBAND_BLOCKED = ("ERR_8007", FailedPrecondition, 409, "Wristband blocked");
    TAP_PROOF_INVALID = ("ERR_8008", InvalidArgument, 400, "Wristband tap could not be verified");
    CHARGE_LIMIT_EXCEEDED = ("ERR_8009", FailedPrecondition, 409, "Amount above the per-transaction limit");
    TERMINAL_NOT_REGISTERED = ("ERR_8010", PermissionDenied, 403, "Device is not a payment terminal here");
    BALANCE_LIMIT_EXCEEDED = ("ERR_8011", FailedPrecondition, 409, "Balance would exceed the festival's maximum");
    OFFLINE_BATCH_INVALID = ("ERR_8012", InvalidArgument, 400, "Offline upload not signed by this terminal");
    VOID_WINDOW_CLOSED = ("ERR_8013", FailedPrecondition, 409, "The sale can no longer be voided");
    ALREADY_VOIDED = ("ERR_8014", AlreadyExists, 409, "Sale already voided");
    PAYOUTS_CLOSED = ("ERR_8015", FailedPrecondition, 409, "Payouts are not open for this festival");
    PAYOUT_BELOW_MINIMUM = ("ERR_8016", FailedPrecondition, 409, "Balance below the minimum payout");
    IBAN_INVALID = ("ERR_8017", InvalidArgument, 400, "Invalid IBAN");
    PAID_BY_CARD_ONLINE = ("ERR_8018", FailedPrecondition, 409, "Money loaded online goes back to its card");
    AGE_RESTRICTED = ("ERR_8019", FailedPrecondition, 409, "Wallet holder not verified old enough for this product");
    CLAIM_INVALID = ("ERR_8020", InvalidArgument, 400, "Wristband and claim code do not match a claimable wallet");
    SHIFT_NOT_OPEN = ("ERR_8021", FailedPrecondition, 409, "Open a cash shift first");

    // 9xxx zones
    ZONE_AT_CAPACITY = ("ERR_9001", FailedPrecondition, 409, "Zone at capacity");
    ZONE_ACCESS_DENIED = ("ERR_9002", PermissionDenied, 403, "Access to this zone denied");
    ALREADY_INSIDE = ("ERR_9003", FailedPrecondition, 409, "Already inside this zone");

    // 10xxx users
    EMAIL_TAKEN = ("ERR_10001", AlreadyExists, 409, "Email already exists");
    INVALID_EMAIL = ("ERR_10002", InvalidArgument, 400, "Invalid email address");
    WEAK_PASSWORD = ("ERR_10003", InvalidArgument, 400, "Password does not meet the policy");
    INVALID_DISPLAY_NAME = ("ERR_10004", InvalidArgument, 400, "Invalid display name");

    // 11xxx vendors
    OUT_OF_STOCK = ("ERR_11001", FailedPrecondition, 409, "Product out of stock");
    VENDOR_CLOSED = ("ERR_11002", FailedPrecondition, 409, "Vendor closed");

    // 12xxx notifications
    INVALID_DEVICE_TOKEN = ("ERR_12001", InvalidArgument, 400, "Invalid device token");
    TEMPLATE_MISSING = ("ERR_12002", NotFound, 404, "Notification template missing");

    // 13xxx promo codes
    PROMO_NOT_STACKABLE = ("ERR_13001", FailedPrecondition, 409, "Promo code not stackable");
    PROMO_EXPIRED = ("ERR_13002", FailedPrecondition, 409, "Promo code expired");
    PROMO_EXHAUSTED = ("ERR_13003", FailedPrecondition, 409, "Promo code usage limit reached");
    PROMO_INVALID = ("ERR_13004", NotFound, 404, "Unknown promo code");
    PROMO_MIN_BASKET = ("ERR_13005", FailedPrecondition, 409, "Basket below the promo code's minimum");
}

/// Looks a code up by its `ERR_XXXX` name (the gateway maps `ErrorInfo.reason` back).
pub fn lookup(code: &str) -> Option<ErrorCode> {
    ALL.iter().copied().find(|c| c.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_sit_in_their_documented_range() {
        let mut seen = HashSet::new();
        for c in ALL {
            assert!(seen.insert(c.code), "{} appears twice", c.code);
            let n: u32 = c.code.strip_prefix("ERR_").and_then(|n| n.parse().ok()).expect("ERR_<number>");
            assert!((1000..14000).contains(&n), "{} is outside 1xxx..13xxx", c.code);
            assert!((400..600).contains(&c.http), "{} has a non-error HTTP status", c.code);
            assert_ne!(c.grpc, tonic::Code::Ok);
        }
    }

    #[test]
    fn the_brief_examples_keep_their_meaning() {
        assert_eq!(VALIDATION_FAILED.code, "ERR_1000");
        assert_eq!(INVALID_CREDENTIALS.code, "ERR_2001");
        assert_eq!(INSUFFICIENT_PERMISSIONS.code, "ERR_3001");
        assert_eq!(NOT_FOUND.code, "ERR_4000");
        assert_eq!(PAYMENT_FAILED.code, "ERR_5001");
        assert_eq!(TICKET_ALREADY_USED.code, "ERR_6001");
        assert_eq!(FESTIVAL_NOT_ACTIVE.code, "ERR_7001");
        assert_eq!(INSUFFICIENT_BALANCE.code, "ERR_8001");
        assert_eq!(ZONE_AT_CAPACITY.code, "ERR_9001");
        assert_eq!(EMAIL_TAKEN.code, "ERR_10001");
        assert_eq!(OUT_OF_STOCK.code, "ERR_11001");
        assert_eq!(INVALID_DEVICE_TOKEN.code, "ERR_12001");
        assert_eq!(PROMO_NOT_STACKABLE.code, "ERR_13001");
        assert_eq!(lookup("ERR_2004"), Some(REFRESH_TOKEN_REUSED));
        assert_eq!(lookup("ERR_0000"), None);
    }
}
