//! The OpenID AuthZEN Authorization API 1.0 front door: Access Evaluation
//! (`POST /access/v1/evaluation`), Access Evaluations (`POST
//! /access/v1/evaluations`) and the metadata document (`GET
//! /.well-known/authzen-configuration`). A thin adapter: each item becomes
//! one Cedar [`DecisionRequest`](crate::engine::DecisionRequest) decided by
//! the native decision path (same snapshot rules, trust boundary, metrics
//! and decision log); no decision logic lives here. docs/authzen.md
//! documents the mapping.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;

use super::authzen_search;
use super::handlers::{
    current, decide_counted, note_refused_entities, parses_entities, with_versions,
};
use super::json::parse_json;
use super::middleware::RequestMeta;
use super::wire::authzen::{
    AuthzenConfiguration, AuthzenDecision, AuthzenErrorBody, AuthzenErrorResponse, DecisionContext,
    EvaluationRequest, EvaluationsRequest, EvaluationsResponse, EvaluationsSemantic, Reasons,
};
use super::wire::{AuthorizeResponse, WireDecision};
use super::{ApiError, AppState};
use crate::engine::{DecisionRequest, RequestEntityError};
use crate::state::Snapshot;
use crate::telemetry::Endpoint;

/// The paths this module serves.
pub const EVALUATION_PATH: &str = "/access/v1/evaluation";
/// See [`EVALUATION_PATH`].
pub const EVALUATIONS_PATH: &str = "/access/v1/evaluations";
/// See [`EVALUATION_PATH`].
pub const SEARCH_SUBJECT_PATH: &str = "/access/v1/search/subject";
/// See [`EVALUATION_PATH`].
pub const SEARCH_RESOURCE_PATH: &str = "/access/v1/search/resource";
/// See [`EVALUATION_PATH`].
pub const SEARCH_ACTION_PATH: &str = "/access/v1/search/action";
/// See [`EVALUATION_PATH`].
pub const CONFIGURATION_PATH: &str = "/.well-known/authzen-configuration";

/// The AuthZEN decision routes, behind the caller tokens when the operator
/// set some (the metadata document is public: it is routed apart).
pub fn routes(state: &AppState) -> Router<AppState> {
    let routes = Router::new()
        .route(EVALUATION_PATH, post(evaluation))
        .route(EVALUATIONS_PATH, post(evaluations))
        .route(SEARCH_SUBJECT_PATH, post(authzen_search::subjects))
        .route(SEARCH_RESOURCE_PATH, post(authzen_search::resources))
        .route(SEARCH_ACTION_PATH, post(authzen_search::actions));
    if state.callers.is_some() {
        routes.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_caller,
        ))
    } else {
        routes
    }
}

/// An error on an AuthZEN route: the status of [`ApiError`]'s table, the
/// body `{"error": {"status", "message"}}` (the shape AuthZEN uses for
/// errors) instead of our `{"code", "message"}`.
#[derive(Debug)]
pub struct AuthzenError(pub ApiError);

impl From<ApiError> for AuthzenError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl AuthzenError {
    fn body(&self) -> AuthzenErrorBody {
        let (status, _) = self.0.status_and_code();
        AuthzenErrorBody {
            status: status.as_u16(),
            message: self.0.to_string(),
        }
    }
}

impl IntoResponse for AuthzenError {
    fn into_response(self) -> Response {
        tracing::debug!(error = %self.0, "authzen request rejected");
        let (status, _) = self.0.status_and_code();
        let mut response =
            (status, Json(AuthzenErrorResponse { error: self.body() })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON object body sent as `Content-Type: application/json`, parsed as
/// `T`; anything else is a 400 in AuthZEN's error shape.
pub struct AuthzenJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AuthzenJson<T> {
    type Rejection = AuthzenError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::InvalidRequest(
                "the request must be sent as `Content-Type: application/json`".to_string(),
            )
            .into());
        }
        let bytes = super::json::body_bytes(request, state).await?;
        match bytes.trim_ascii_start().first() {
            None => return Err(ApiError::InvalidRequest("the body is empty".to_string()).into()),
            Some(b'{') => {}
            Some(_) => {
                return Err(
                    ApiError::InvalidRequest("the body must be a JSON object".to_string()).into(),
                )
            }
        }
        Ok(Self(parse_json(&bytes)?))
    }
}

/// `application/json`, with parameters (`; charset=utf-8`) or not.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Refuses (401) a request without one of the caller tokens, in AuthZEN's
/// error shape; the same tokens as the native decision API.
pub async fn require_caller(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if super::callers::admitted(&state, &request) {
        next.run(request).await
    } else {
        AuthzenError(ApiError::CallerUnauthorized).into_response()
    }
}

/// `POST /access/v1/evaluation`
pub async fn evaluation(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    AuthzenJson(request): AuthzenJson<EvaluationRequest>,
) -> Result<Response, AuthzenError> {
    let snapshot = current(&state)?;
    let reasons = request.options.unwrap_or_default().include_reasons;
    let decision = decide_one(
        &state,
        &snapshot,
        &meta,
        Endpoint::AuthzenEvaluation,
        request,
    )
    .await?;
    Ok(with_versions(Json(answer(decision, reasons)), &snapshot))
}

/// `POST /access/v1/evaluations`: every item against one snapshot, in
/// order; the short-circuit semantics stop after the first deny (an item
/// that could not be decided counts as one) or the first permit.
pub async fn evaluations(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    AuthzenJson(mut batch): AuthzenJson<EvaluationsRequest>,
) -> Result<Response, AuthzenError> {
    let options = batch.options.unwrap_or_default();
    let raw = batch.evaluations.take().unwrap_or_default();
    if raw.is_empty() {
        // No items: exactly a single evaluation of the top-level request.
        let request = batch.single()?;
        let snapshot = current(&state)?;
        let decision = decide_one(
            &state,
            &snapshot,
            &meta,
            Endpoint::AuthzenEvaluations,
            request,
        )
        .await?;
        return Ok(with_versions(
            Json(answer(decision, options.include_reasons)),
            &snapshot,
        ));
    }
    if raw.len() > state.limits.max_batch {
        return Err(ApiError::BatchTooLarge {
            max: state.limits.max_batch,
            got: raw.len(),
        }
        .into());
    }
    let items: Vec<Result<EvaluationRequest, ApiError>> =
        raw.iter().map(|item| batch.item(item)).collect();
    let snapshot = current(&state)?;
    let decided = decide_items(
        &state,
        &snapshot,
        &meta,
        Endpoint::AuthzenEvaluations,
        items,
        options.evaluations_semantic.unwrap_or_default(),
    )
    .await?;
    let evaluations = decided
        .into_iter()
        .map(|item| match item {
            Ok(decision) => answer(decision, options.include_reasons),
            Err(error) => AuthzenDecision {
                decision: false,
                context: Some(DecisionContext::Error {
                    error: AuthzenError(error).body(),
                }),
            },
        })
        .collect();
    Ok(with_versions(
        Json(EvaluationsResponse { evaluations }),
        &snapshot,
    ))
}

/// `GET /.well-known/authzen-configuration`: the endpoints this sidecar
/// serves, under its configured public URL.
pub async fn configuration(State(state): State<AppState>) -> Response {
    let base = state.public_url.trim_end_matches('/');
    Json(AuthzenConfiguration {
        policy_decision_point: base.to_string(),
        access_evaluation_endpoint: format!("{base}{EVALUATION_PATH}"),
        access_evaluations_endpoint: format!("{base}{EVALUATIONS_PATH}"),
        search_subject_endpoint: Some(format!("{base}{SEARCH_SUBJECT_PATH}")),
        search_resource_endpoint: Some(format!("{base}{SEARCH_RESOURCE_PATH}")),
        search_action_endpoint: Some(format!("{base}{SEARCH_ACTION_PATH}")),
    })
    .into_response()
}

/// Checks the `public_url` setting: an `http` or `https` URL with no query
/// or fragment (AuthZEN's `policy_decision_point`).
pub fn check_public_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{url}` has no host"));
    }
    if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_whitespace()) {
        return Err(format!(
            "`{url}` must not have a query, a fragment or spaces"
        ));
    }
    Ok(())
}

/// The AuthZEN answer for a decision: exactly `{"decision": bool}` unless
/// reasons were asked for.
fn answer(decision: AuthorizeResponse, reasons: bool) -> AuthzenDecision {
    AuthzenDecision {
        decision: decision.decision == WireDecision::Allow,
        context: reasons.then_some(DecisionContext::Reasons {
            reason_admin: Reasons {
                policies: decision.diagnostics.reason,
                errors: decision.diagnostics.errors,
            },
        }),
    }
}

/// One item's outcome: decided, or why it could not be.
type Decided = Result<AuthorizeResponse, ApiError>;

/// Maps and decides `items` in order against `snapshot`, stopping as
/// `semantic` says. Items carrying request entities to parse are decided
/// in the CPU pool (Cedar's entity parser is CPU work), never on an async
/// worker; the entity bound holds for the whole request.
/// One request decided as a batch of one: its error is the answer's.
async fn decide_one(
    state: &AppState,
    snapshot: &Arc<Snapshot>,
    meta: &RequestMeta,
    endpoint: Endpoint,
    request: EvaluationRequest,
) -> Result<AuthorizeResponse, AuthzenError> {
    let items = vec![Ok(request)];
    let semantic = EvaluationsSemantic::ExecuteAll;
    let mut decided = decide_items(state, snapshot, meta, endpoint, items, semantic).await?;
    match decided.pop() {
        Some(Ok(decision)) => Ok(decision),
        Some(Err(error)) => Err(error.into()),
        None => Err(ApiError::Internal.into()),
    }
}

async fn decide_items(
    state: &AppState,
    snapshot: &Arc<Snapshot>,
    meta: &RequestMeta,
    endpoint: Endpoint,
    items: Vec<Result<EvaluationRequest, ApiError>>,
    semantic: EvaluationsSemantic,
) -> Result<Vec<Decided>, ApiError> {
    let mapped: Vec<Result<DecisionRequest, ApiError>> = items
        .into_iter()
        .map(|item| {
            item.and_then(|request| {
                request.into_decision_request(
                    &snapshot.pack,
                    &snapshot.entities,
                    &state.request_entities,
                )
            })
        })
        .collect();
    let entities: usize = mapped
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .map(|request| request.entities.len())
        .sum();
    let heavy = parses_entities(state, entities);
    if heavy && entities > state.request_entities.max {
        let error = ApiError::RequestEntities(RequestEntityError::TooMany {
            max: state.request_entities.max,
            got: entities,
        });
        note_refused_entities(state, meta, &error);
        return Err(error);
    }
    if !heavy {
        return Ok(decide_in_order(
            state, snapshot, meta, endpoint, mapped, semantic,
        ));
    }
    let (state, snapshot, meta) = (state.clone(), snapshot.clone(), meta.clone());
    let cpu = state.cpu.clone();
    cpu.run(move || decide_in_order(&state, &snapshot, &meta, endpoint, mapped, semantic))
        .await
}

fn decide_in_order(
    state: &AppState,
    snapshot: &Snapshot,
    meta: &RequestMeta,
    endpoint: Endpoint,
    mapped: Vec<Result<DecisionRequest, ApiError>>,
    semantic: EvaluationsSemantic,
) -> Vec<Decided> {
    let mut decided = Vec::with_capacity(mapped.len());
    for item in mapped {
        let outcome = item.and_then(|request| {
            decide_counted(state, snapshot, meta, endpoint, &request, Instant::now())
        });
        let allowed = matches!(&outcome, Ok(d) if d.decision == WireDecision::Allow);
        decided.push(outcome);
        let stop = match semantic {
            EvaluationsSemantic::ExecuteAll => false,
            EvaluationsSemantic::DenyOnFirstDeny => !allowed,
            EvaluationsSemantic::PermitOnFirstPermit => allowed,
        };
        if stop {
            break;
        }
    }
    decided
}
