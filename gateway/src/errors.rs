//! gRPC status → HTTP status and `{"code","message","details","request_id"}`, from the one
//! catalogue in the platform kit. Statuses without `ErrorInfo` (transport failures,
//! limits) get the catalogue code of their gRPC code.

use axum::response::{IntoResponse, Response};
use festival_platform::codes::{self, ErrorCode};
use serde_json::{Value, json};
use tonic_types::StatusExt;

/// The JSON error a client receives.
pub struct HttpError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
    pub request_id: String,
    pub headers: Vec<(http::HeaderName, String)>,
}

impl HttpError {
    pub fn new(code: ErrorCode, request_id: &str) -> Self {
        Self {
            code,
            message: code.message.to_owned(),
            details: json!({}),
            request_id: request_id.to_owned(),
            headers: Vec::new(),
        }
    }

    pub fn field(code: ErrorCode, request_id: &str, field: &str, description: &str) -> Self {
        let mut e = Self::new(code, request_id);
        e.details = json!({ "fieldViolations": [{ "field": field, "description": description }] });
        e
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_header(mut self, name: http::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn from_status(status: &tonic::Status, request_id: &str) -> Self {
        let details = status.get_error_details();
        let code = details
            .error_info()
            .and_then(|info| codes::lookup(&info.reason))
            .unwrap_or_else(|| fallback(status.code()));
        let mut body = serde_json::Map::new();
        if let Some(br) = details.bad_request() {
            body.insert(
                "fieldViolations".into(),
                br.field_violations.iter().map(|v| json!({"field": v.field, "description": v.description})).collect(),
            );
        }
        if let Some(info) = details.error_info()
            && !info.metadata.is_empty()
        {
            body.insert("metadata".into(), json!(info.metadata));
        }
        // Messages of catalogued errors are written for clients; others may carry internals.
        let message =
            if details.error_info().is_some() { status.message().to_owned() } else { code.message.to_owned() };
        // A refusal that says when to retry (e.g. a sign-in lock) says it in HTTP's words too.
        let headers = details
            .error_info()
            .and_then(|info| info.metadata.get("retry_after_secs"))
            .filter(|secs| secs.parse::<u64>().is_ok())
            .map(|secs| vec![(http::header::RETRY_AFTER, secs.clone())])
            .unwrap_or_default();
        Self { code, message, details: Value::Object(body), request_id: request_id.to_owned(), headers }
    }
}

fn fallback(code: tonic::Code) -> ErrorCode {
    use tonic::Code::*;
    match code {
        InvalidArgument => codes::VALIDATION_FAILED,
        Unauthenticated => codes::UNAUTHENTICATED,
        PermissionDenied => codes::INSUFFICIENT_PERMISSIONS,
        NotFound | Unimplemented => codes::NOT_FOUND,
        AlreadyExists => codes::ALREADY_EXISTS,
        Aborted => codes::CONCURRENT_UPDATE,
        ResourceExhausted | OutOfRange => codes::PAYLOAD_TOO_LARGE,
        DeadlineExceeded | Cancelled => codes::DEADLINE_EXCEEDED,
        Unavailable => codes::UNAVAILABLE,
        _ => codes::INTERNAL,
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = http::StatusCode::from_u16(self.code.http).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({
            "code": self.code.code,
            "message": self.message,
            "details": self.details,
            "request_id": self.request_id,
        });
        let mut response = (status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}
