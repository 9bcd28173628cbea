//! Route handlers: a few lines each; the work happens in `engine`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::json::{from_value, JsonBody};
use super::wire::{AuthorizeRequest, AuthorizeResponse, BatchRequest};
use super::{ApiError, AppState};
use crate::engine::decide;
use crate::state::Snapshot;

/// Response header carrying the entity revision a decision was made at.
pub const REVISION_HEADER: HeaderName = HeaderName::from_static("x-cedar-revision");

/// `POST /v1/is_authorized`
pub async fn is_authorized(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<AuthorizeRequest>,
) -> Result<Response, ApiError> {
    let snapshot = current(&state)?;
    let response = decide_one(&snapshot, request)?;
    Ok(with_revision(Json(response), snapshot.entities.revision()))
}

/// `POST /v1/is_authorized/batch`: every item against the same snapshot.
pub async fn is_authorized_batch(
    State(state): State<AppState>,
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
                .and_then(|request| decide_one(&snapshot, request))
                .map_or_else(
                    |error| json!({ "error": error.body() }),
                    |response| json!(response),
                )
        })
        .collect();
    Ok(with_revision(
        Json(json!({ "responses": responses })),
        snapshot.entities.revision(),
    ))
}

/// `GET /v1/policies`
pub async fn policies(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = current(&state)?;
    Ok(Json(json!({ "policies": snapshot.pack.files.info })).into_response())
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

fn decide_one(
    snapshot: &Snapshot,
    request: AuthorizeRequest,
) -> Result<AuthorizeResponse, ApiError> {
    let request = request.into_decision_request()?;
    let decision = decide(&snapshot.pack, &snapshot.entities, &request)?;
    Ok(AuthorizeResponse::new(
        decision,
        snapshot.entities.revision(),
    ))
}

fn with_revision(body: impl IntoResponse, revision: u64) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(REVISION_HEADER, HeaderValue::from(revision));
    response
}
