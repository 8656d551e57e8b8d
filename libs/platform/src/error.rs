//! The error every RPC returns: a catalogued code, an optional specific message, field
//! violations, and machine-readable metadata. Converts into a `tonic::Status` carrying
//! `google.rpc.ErrorInfo { reason: "ERR_…", domain: "festival" }` and `google.rpc.BadRequest`,
//! so the gateway and clients never parse message strings.
//!
//! Internal failures (`ApiError::internal`) are logged once here with their cause chain
//! and leave the process as an opaque ERR_1500.

use std::collections::HashMap;
use std::fmt;

use tonic_types::{ErrorDetails, StatusExt};

use crate::codes::{self, ErrorCode};

/// The `ErrorInfo.domain` of every festival error.
pub const ERROR_DOMAIN: &str = "festival";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// A client-facing error (or an internal one that will be reported as ERR_1500).
/// Small (two words and the code) so `Result<T, ApiError>` stays cheap on the happy path.
pub struct ApiError {
    pub code: ErrorCode,
    detail: Option<Box<Detail>>,
}

#[derive(Default)]
struct Detail {
    message: Option<String>,
    violations: Vec<FieldViolation>,
    metadata: HashMap<String, String>,
    source: Option<anyhow::Error>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        Self { code, detail: None }
    }

    /// A validation error on one field, with the catalogued code that names the rule.
    pub fn field(code: ErrorCode, field: &str, description: impl Into<String>) -> Self {
        Self::new(code).with_violation(field, description)
    }

    /// An unexpected failure. Logged with its cause chain when converted; the client sees ERR_1500.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::new(codes::INTERNAL).with_source(err)
    }

    fn detail(&mut self) -> &mut Detail {
        self.detail.get_or_insert_with(Default::default)
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.detail().message = Some(message.into());
        self
    }

    pub fn with_violation(mut self, field: &str, description: impl Into<String>) -> Self {
        self.detail().violations.push(FieldViolation { field: field.to_owned(), description: description.into() });
        self
    }

    pub fn with_metadata(mut self, key: &str, value: impl Into<String>) -> Self {
        self.detail().metadata.insert(key.to_owned(), value.into());
        self
    }

    fn with_source(mut self, err: impl Into<anyhow::Error>) -> Self {
        self.detail().source = Some(err.into());
        self
    }

    pub fn violations(&self) -> &[FieldViolation] {
        self.detail.as_ref().map_or(&[], |d| &d.violations)
    }

    pub fn message(&self) -> &str {
        self.detail.as_ref().and_then(|d| d.message.as_deref()).unwrap_or(self.code.message)
    }

    fn source_error(&self) -> Option<&anyhow::Error> {
        self.detail.as_ref().and_then(|d| d.source.as_ref())
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ApiError");
        d.field("code", &self.code.code).field("message", &self.message());
        if !self.violations().is_empty() {
            d.field("violations", &self.violations());
        }
        if let Some(src) = self.source_error() {
            d.field("source", &format_args!("{src:#}"));
        }
        d.finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.code, self.message())
    }
}

impl std::error::Error for ApiError {}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        // No database to answer (the pool is exhausted, or a connection was cut: a
        // restart, a failover): the client retries, with its idempotency key.
        if matches!(err, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) {
            return ApiError::new(codes::UNAVAILABLE).with_source(err);
        }
        // PostgreSQL refuses text it cannot store (a NUL character): the client's input,
        // for any field the edge checks missed, never a server error.
        if let sqlx::Error::Database(db) = &err
            && db.code().as_deref() == Some("22021")
        {
            return ApiError::new(codes::VALIDATION_FAILED).with_message("Text must not contain NUL characters");
        }
        // A deadlock or serialization failure PostgreSQL resolved by aborting this
        // transaction: nothing was written, and a retry succeeds.
        if let sqlx::Error::Database(db) = &err
            && matches!(db.code().as_deref(), Some("40P01" | "40001"))
        {
            tracing::warn!(code = ?db.code(), "transaction aborted by the database; the client may retry");
            return ApiError::new(codes::CONCURRENT_UPDATE).with_source(err);
        }
        ApiError::internal(err)
    }
}

impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        if let Some(src) = err.source_error() {
            // Logged once, at the boundary; the client only sees the catalogue message.
            tracing::error!(code = err.code.code, error = %format_args!("{src:#}"), "request failed");
        }
        let mut details = ErrorDetails::new();
        let metadata = err.detail.as_ref().map(|d| d.metadata.clone()).unwrap_or_default();
        details.set_error_info(err.code.code, ERROR_DOMAIN, metadata);
        for v in err.violations() {
            details.add_bad_request_violation(v.field.clone(), v.description.clone());
        }
        tonic::Status::with_error_details(err.code.grpc, err.message().to_owned(), details)
    }
}

/// True when a database error is a unique violation of the named constraint (SQLSTATE 23505).
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint),
        _ => false,
    }
}

/// Maps database errors where they happen: a unique violation of one named constraint
/// becomes a catalogued error, anything else stays internal.
///
/// ```ignore
/// store::users::insert(&mut tx, &user).await
///     .on_unique(store::users::EMAIL_UNIQUE, ApiError::field(codes::EMAIL_TAKEN, "email", "is already registered"))?;
/// ```
pub trait ResultExt<T> {
    fn on_unique(self, constraint: &str, error: impl Into<ApiError>) -> Result<T, ApiError>;
}

impl<T> ResultExt<T> for Result<T, sqlx::Error> {
    fn on_unique(self, constraint: &str, error: impl Into<ApiError>) -> Result<T, ApiError> {
        self.map_err(|e| if is_unique_violation(&e, constraint) { error.into() } else { e.into() })
    }
}

/// Reads the `ERR_…` reason back out of a status (clients, gateway, tests).
pub fn reason(status: &tonic::Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

/// Reads the BadRequest field violations out of a status.
pub fn violations(status: &tonic::Status) -> Vec<FieldViolation> {
    status
        .get_details_bad_request()
        .map(|br| {
            br.field_violations
                .into_iter()
                .map(|v| FieldViolation { field: v.field, description: v.description })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_the_code_as_error_info_and_the_violations() {
        let status: tonic::Status = ApiError::field(codes::WEAK_PASSWORD, "password", "must be at least 12 characters")
            .with_metadata("rule", "min_length")
            .into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(reason(&status).as_deref(), Some("ERR_10003"));
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata.get("rule").map(String::as_str), Some("min_length"));
        assert_eq!(violations(&status)[0].field, "password");
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let status: tonic::Status = ApiError::internal(anyhow::anyhow!("connection to 10.0.0.3 refused")).into();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "Internal error");
        assert_eq!(reason(&status).as_deref(), Some("ERR_1500"));
    }
}
