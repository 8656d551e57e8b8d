//! `/healthz`: the process answers. `/readyz`: every upstream's `grpc.health.v1` status,
//! by name; 200 only when all are SERVING.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::Shared;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<Shared>) -> Response {
    let checks = state.upstreams.iter().map(|(name, _, channel)| async move {
        let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
        request.set_timeout(Duration::from_secs(2));
        let status = match tokio::time::timeout(Duration::from_secs(3), HealthClient::new(channel).check(request)).await
        {
            Ok(Ok(r)) => ServingStatus::try_from(r.into_inner().status).map_or("UNKNOWN", |s| s.as_str_name()),
            Ok(Err(_)) | Err(_) => "UNREACHABLE",
        };
        (name.to_owned(), status)
    });
    let upstreams: BTreeMap<String, &str> = futures::future::join_all(checks).await.into_iter().collect();
    let ready = upstreams.values().all(|s| *s == "SERVING");
    let code = if ready { http::StatusCode::OK } else { http::StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(serde_json::json!({ "ready": ready, "upstreams": upstreams }))).into_response()
}
