//! Route handlers: a few lines each; the work happens in `engine`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::json::{from_value, JsonBody};
use super::middleware::RequestMeta;
use super::wire::{AuthorizeRequest, AuthorizeResponse, BatchRequest};
use super::{ApiError, AppState};
use crate::engine::{decide, DecisionRequest, Verdict};
use crate::reload::now_rfc3339;
use crate::state::Snapshot;
use crate::telemetry::{DecisionRecord, Endpoint};

/// Response header carrying the entity revision a decision was made at.
pub const REVISION_HEADER: HeaderName = HeaderName::from_static("x-cedar-revision");
/// Response header carrying the policy set version a decision was made with.
pub const POLICY_VERSION_HEADER: HeaderName = HeaderName::from_static("x-cedar-policy-version");

/// `POST /v1/is_authorized`
pub async fn is_authorized(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    JsonBody(request): JsonBody<AuthorizeRequest>,
) -> Result<Response, ApiError> {
    let snapshot = current(&state)?;
    let response = decide_one(&state, &snapshot, &meta, Endpoint::Single, request)?;
    Ok(with_versions(Json(response), &snapshot))
}

/// `POST /v1/is_authorized/batch`: every item against the same snapshot.
pub async fn is_authorized_batch(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    JsonBody(batch): JsonBody<BatchRequest>,
) -> Result<Response, ApiError> {
    if batch.requests.len() > state.limits.max_batch {
        return Err(ApiError::BatchTooLarge {
            max: state.limits.max_batch,
            got: batch.requests.len(),
        });
    }
    let snapshot = current(&state)?;
    let responses: Vec<serde_json::Value> = batch
        .requests
        .into_iter()
        .map(|item| {
            from_value::<AuthorizeRequest>(item)
                .and_then(|request| decide_one(&state, &snapshot, &meta, Endpoint::Batch, request))
                .map_or_else(
                    |error| json!({ "error": error.body() }),
                    |response| json!(response),
                )
        })
        .collect();
    Ok(with_versions(
        Json(json!({ "responses": responses })),
        &snapshot,
    ))
}

/// `GET /v1/policies`
pub async fn policies(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = current(&state)?;
    Ok(Json(json!({
        "version": snapshot.pack.version,
        "policies": snapshot.pack.files.info,
    }))
    .into_response())
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: 200 once policies, schema and entities are loaded.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.shared.snapshot() {
        Some(snapshot) => Json(json!({
            "status": "ready",
            "policy_version": snapshot.pack.version,
            "policies": snapshot.pack.files.policy_count(),
            "entities": snapshot.entities.len(),
            "revision": snapshot.entities.revision(),
        }))
        .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": "policies and entities are still loading" })),
        )
            .into_response(),
    }
}

/// Unknown path.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

/// Known path, wrong method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

fn current(state: &AppState) -> Result<Arc<Snapshot>, ApiError> {
    state
        .shared
        .snapshot()
        .ok_or_else(|| ApiError::NotReady("policies and entities are still loading".to_string()))
}

/// Decides one request, then counts and (maybe) logs it.
fn decide_one(
    state: &AppState,
    snapshot: &Snapshot,
    meta: &RequestMeta,
    endpoint: Endpoint,
    request: AuthorizeRequest,
) -> Result<AuthorizeResponse, ApiError> {
    let started = Instant::now();
    let request = request.into_decision_request()?;
    let decision = decide(&snapshot.pack, &snapshot.entities, &request)?;
    let elapsed = started.elapsed();
    let allowed = decision.verdict == Verdict::Allow;
    state.metrics.record_decision(allowed, endpoint, elapsed);
    let response = AuthorizeResponse::new(
        decision,
        snapshot.entities.revision(),
        &snapshot.pack.version,
    );
    tracing::debug!(
        decision_id = %response.decision_id,
        principal = %request.principal,
        action = %request.action,
        resource = %request.resource,
        decision = %response.decision,
        reasons = ?response.diagnostics.reason,
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "decision"
    );
    if state.decision_log.wants(allowed) {
        state.decision_log.submit(record(
            state, snapshot, meta, endpoint, &request, &response, elapsed,
        ));
    }
    Ok(response)
}

fn record(
    state: &AppState,
    snapshot: &Snapshot,
    meta: &RequestMeta,
    endpoint: Endpoint,
    request: &DecisionRequest,
    response: &AuthorizeResponse,
    elapsed: std::time::Duration,
) -> DecisionRecord {
    let context = request.context.clone().unwrap_or_else(|| json!({}));
    DecisionRecord {
        decision_id: response.decision_id.clone(),
        timestamp: now_rfc3339(),
        request_id: meta.request_id.clone(),
        endpoint: endpoint.label(),
        client: meta.client.clone(),
        principal: request.principal.to_string(),
        action: request.action.to_string(),
        resource: request.resource.to_string(),
        context: state.decision_log.mask(&context),
        decision: if response.decision == "Allow" {
            "Allow"
        } else {
            "Deny"
        },
        reasons: response.diagnostics.reason.clone(),
        errors: response.diagnostics.errors.clone(),
        policy_version: snapshot.pack.version.clone(),
        entity_revision: snapshot.entities.revision(),
        latency_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
    }
}

fn with_versions(body: impl IntoResponse, snapshot: &Snapshot) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        REVISION_HEADER,
        HeaderValue::from(snapshot.entities.revision()),
    );
    if let Ok(version) = HeaderValue::from_str(&snapshot.pack.version) {
        headers.insert(POLICY_VERSION_HEADER, version);
    }
    response
}
