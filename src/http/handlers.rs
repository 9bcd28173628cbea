//! Route handlers: a few lines each; the work happens in `engine`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::json::JsonBody;
use super::middleware::RequestMeta;

use super::wire::{
    parse_batch_item, AuthorizeRequest, AuthorizeResponse, BatchItem, BatchRequest, BatchResponse,
    Health, PoliciesResponse, PolicyEntry, Readiness, ReadyStatus, ReadySync,
};
use super::{ApiError, AppState, Phase};
use crate::engine::{decide, DecisionRequest, RequestEntityError, RequestEntityMode, Verdict};
use crate::reload::now_rfc3339;
use crate::state::Snapshot;
use crate::telemetry::{DecisionRecord, Endpoint, RateLimit};

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
    let snapshot = fresh_snapshot(&state, request.consistency.map(|c| c.at_least)).await?;
    let response = if parses_entities(&state, request.entities.as_deref().map_or(0, <[_]>::len)) {
        // Cedar's entity parser is CPU work: off the async workers.
        let (job_state, job_snapshot, job_meta) = (state.clone(), snapshot.clone(), meta.clone());
        state
            .cpu
            .run(move || {
                decide_one(
                    &job_state,
                    &job_snapshot,
                    &job_meta,
                    Endpoint::Single,
                    request,
                )
            })
            .await??
    } else {
        decide_one(&state, &snapshot, &meta, Endpoint::Single, request)?
    };
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
    // Every item is parsed here, once: the entity bound and the freshness
    // wanted are read from exactly what will be decided.
    let items: Vec<Result<AuthorizeRequest, ApiError>> = batch
        .requests
        .iter()
        .map(|raw| parse_batch_item(raw))
        .collect();
    let parsed = || items.iter().filter_map(|item| item.as_ref().ok());
    let entities: usize = parsed()
        .map(|item| item.entities.as_ref().map_or(0, Vec::len))
        .sum();
    let heavy = parses_entities(&state, entities);
    // The entity bound holds for a whole batch, so one HTTP request cannot
    // carry `max_batch` times as much parsing.
    if heavy && entities > state.request_entities.max {
        let error = ApiError::RequestEntities(RequestEntityError::TooMany {
            max: state.request_entities.max,
            got: entities,
        });
        note_refused_entities(&state, &meta, &error);
        return Err(error);
    }
    let at_least = parsed()
        .filter_map(|item| item.consistency.map(|c| c.at_least))
        .chain(batch.consistency.map(|c| c.at_least))
        .max();
    let snapshot = fresh_snapshot(&state, at_least).await?;
    let responses = decide_batch(&state, &snapshot, &meta, items, heavy).await;
    Ok(with_versions(Json(BatchResponse { responses }), &snapshot))
}

/// Refused request entities are what a caller trying to grant itself
/// rights looks like: counted by code, and logged at WARN (at most once a
/// second, with how many were held back).
pub(super) fn note_refused_entities(state: &AppState, meta: &RequestMeta, error: &ApiError) {
    static LINES: RateLimit = RateLimit::new(std::time::Duration::from_secs(1));
    if let ApiError::RequestEntities(refused) = error {
        let (_, code) = error.status_and_code();
        state.metrics.record_request_entities_refused(code);
        if let Some(suppressed) = LINES.check() {
            tracing::warn!(
                code,
                client = meta.client.as_deref().unwrap_or("unknown"),
                request_id = %meta.request_id,
                similar_suppressed = suppressed,
                "request entities refused: {refused}"
            );
        }
    }
}

/// Whether deciding `count` request entities means running Cedar's entity
/// parser (with the mode `off` they are refused before any parsing).
pub(super) fn parses_entities(state: &AppState, count: usize) -> bool {
    count > 0 && state.request_entities.mode != RequestEntityMode::Off
}

/// A batch smaller than this is decided on the request's own task: handing
/// work to another thread costs more than a few decisions.
const PARALLEL_BATCH_MIN: usize = 16;

/// One batch item, parsed (or why it could not be).
type ParsedItem = Result<AuthorizeRequest, ApiError>;

/// Decides a batch's items in order. A large batch is split over the cores
/// (items are independent and share one snapshot), so its latency is not
/// the sum of its items'; a batch with request entities to parse runs all
/// of its parts in the CPU pool, none on the async worker. The parts are
/// owned by this request: when it is dropped (a timeout), parts still
/// waiting for a core are dropped with it.
async fn decide_batch(
    state: &AppState,
    snapshot: &Arc<Snapshot>,
    meta: &RequestMeta,
    mut items: Vec<ParsedItem>,
    heavy: bool,
) -> Vec<BatchItem> {
    let cores = state.cpu.cores();
    if !heavy && (cores < 2 || items.len() < PARALLEL_BATCH_MIN) {
        return decide_items(state, snapshot, meta, items);
    }
    let share = items.len().div_ceil(cores).max(1);
    let mut parts = Vec::with_capacity(cores);
    while items.len() > share {
        parts.push(items.split_off(items.len() - share));
    }
    parts.push(items);
    parts.reverse();
    // Without entities to parse, the first part is decided here meanwhile.
    let here = (!heavy && !parts.is_empty()).then(|| parts.remove(0));
    let mut pooled = tokio::task::JoinSet::new();
    let lengths: Vec<usize> = parts.iter().map(Vec::len).collect();
    for (index, part) in parts.into_iter().enumerate() {
        let (state, snapshot, meta) = (state.clone(), snapshot.clone(), meta.clone());
        let cpu = state.cpu.clone();
        let job = move || decide_items(&state, &snapshot, &meta, part);
        pooled.spawn(async move { (index, cpu.run(job).await) });
    }
    let mut responses = match here {
        Some(part) => decide_items(state, snapshot, meta, part),
        None => Vec::new(),
    };
    let mut decided: Vec<Option<Vec<BatchItem>>> = lengths.iter().map(|_| None).collect();
    while let Some(joined) = pooled.join_next().await {
        match joined {
            Ok((index, Ok(part))) => {
                if let Some(slot) = decided.get_mut(index) {
                    *slot = Some(part);
                }
            }
            failed => tracing::error!(
                ?failed,
                "a batch part failed; its items are answered with errors"
            ),
        }
    }
    for (part, len) in decided.into_iter().zip(lengths) {
        match part {
            Some(part) => responses.extend(part),
            None => {
                let refused = || BatchItem::Refused {
                    error: ApiError::Internal.body(),
                };
                responses.extend(std::iter::repeat_with(refused).take(len));
            }
        }
    }
    responses
}

fn decide_items(
    state: &AppState,
    snapshot: &Snapshot,
    meta: &RequestMeta,
    items: Vec<ParsedItem>,
) -> Vec<BatchItem> {
    items
        .into_iter()
        .map(|item| {
            item.and_then(|request| decide_one(state, snapshot, meta, Endpoint::Batch, request))
                .map_or_else(
                    |error| BatchItem::Refused {
                        error: error.body(),
                    },
                    BatchItem::Decided,
                )
        })
        .collect()
}

/// `GET /v1/policies`
pub async fn policies(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = current(&state)?;
    Ok(Json(PoliciesResponse {
        version: snapshot.pack.version.clone(),
        policies: snapshot
            .pack
            .files
            .info
            .iter()
            .map(|info| PolicyEntry::new(info, &snapshot.pack))
            .collect(),
        link_count: snapshot.entities.links().len(),
    })
    .into_response())
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Response {
    Json(Health { status: "ok" }).into_response()
}

/// `GET /readyz`: 200 once policies, schema and entities are loaded and the
/// entity source is in contact (or `serve_stale` is on); 503 otherwise, with
/// the reasons. 503 `draining` from SIGTERM on, so traffic moves elsewhere
/// while in-flight requests finish.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.lifecycle.phase() != Phase::Serving {
        let reason = "shutting down: new requests should go elsewhere";
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness::because(
                ReadyStatus::Draining,
                reason.to_string(),
            )),
        )
            .into_response();
    }
    let report = state.freshness.report();
    let policy = state.freshness.policy();
    let sync = ReadySync::new(&report, &policy);
    let Some(snapshot) = state.shared.snapshot() else {
        let reason = match &report.last_error {
            Some(error) => format!("entities are still loading (last error: {error})"),
            None => "policies and entities are still loading".to_string(),
        };
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                sync: Some(sync),
                ..Readiness::because(ReadyStatus::NotReady, reason)
            }),
        )
            .into_response();
    };
    let entities = snapshot.entities.len();
    if entities < state.min_entities {
        let reason = format!(
            "{entities} entities loaded, fewer than min_entities = {}; the entity source may have lost its data",
            state.min_entities
        );
        tracing::warn!(%reason, "not ready");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                entities: Some(entities),
                min_entities: Some(state.min_entities),
                sync: Some(sync),
                ..Readiness::because(ReadyStatus::NotReady, reason)
            }),
        )
            .into_response();
    }
    let mut body = Readiness {
        status: ReadyStatus::Ready,
        reason: None,
        reasons: Vec::new(),
        policy_version: Some(snapshot.pack.version.clone()),
        policies: Some(snapshot.pack.files.policy_count()),
        entities: Some(snapshot.entities.len()),
        min_entities: None,
        revision: Some(snapshot.entities.revision()),
        sync: Some(sync),
    };
    if report.stale {
        let reason = format!(
            "out of contact with the entity source for {} ms (bound {} ms)",
            report.since_contact_ms.unwrap_or_default(),
            policy.stale_after.as_millis()
        );
        tracing::warn!(%reason, "entity data is stale");
        body.status = ReadyStatus::Stale;
        body.reasons = vec![reason.clone()];
        body.reason = Some(reason);
        if !policy.serve_stale {
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    }
    Json(body).into_response()
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

/// The snapshot to decide on; fails closed while not loaded, or while out
/// of contact with the entity source longer than allowed.
pub(super) fn current(state: &AppState) -> Result<Arc<Snapshot>, ApiError> {
    let snapshot = state
        .shared
        .snapshot()
        .ok_or_else(|| ApiError::NotReady("policies and entities are still loading".to_string()))?;
    if let Some(age) = state.freshness.stale_for() {
        if !state.freshness.policy().serve_stale {
            return Err(ApiError::Stale(format!(
                "out of contact with the entity source for {} ms",
                age.as_millis()
            )));
        }
    }
    Ok(snapshot)
}

/// [`current`], at entity revision `at_least` or newer: waits (bounded by
/// the freshness policy) for the sync to apply it, else 503 `stale`.
async fn fresh_snapshot(
    state: &AppState,
    at_least: Option<u64>,
) -> Result<Arc<Snapshot>, ApiError> {
    let snapshot = current(state)?;
    let Some(wanted) = at_least else {
        return Ok(snapshot);
    };
    if snapshot.entities.revision() >= wanted {
        return Ok(snapshot);
    }
    if state.freshness.wait_for(wanted).await {
        let snapshot = current(state)?;
        if snapshot.entities.revision() >= wanted {
            return Ok(snapshot);
        }
    }
    Err(ApiError::Stale(format!(
        "entity revision {wanted} was not applied within {} ms (this replica is at {})",
        state.freshness.policy().max_wait.as_millis(),
        state.freshness.applied()
    )))
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
    let request = request.into_decision_request(&snapshot.pack.type_names)?;
    decide_counted(state, snapshot, meta, endpoint, &request, started)
}

/// Decides a request already in Cedar terms (any front door's), then
/// counts and (maybe) logs it; `started` is when its parsing began.
pub(super) fn decide_counted(
    state: &AppState,
    snapshot: &Snapshot,
    meta: &RequestMeta,
    endpoint: Endpoint,
    request: &DecisionRequest,
    started: Instant,
) -> Result<AuthorizeResponse, ApiError> {
    let decision = decide(
        &snapshot.pack,
        &snapshot.entities,
        request,
        &state.request_entities,
    )
    .map_err(ApiError::from)
    .inspect_err(|error| note_refused_entities(state, meta, error))?;
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
        decision = response.decision.as_str(),
        reasons = ?response.diagnostics.reason,
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "decision"
    );
    if state.decision_log.wants(allowed) {
        state.decision_log.submit(record(
            state, snapshot, meta, endpoint, request, &response, elapsed,
        ));
    }
    if let Some(shadow) = &state.shadow {
        shadow.submit(
            &snapshot.entities,
            request,
            &response.decision_id,
            if allowed {
                Verdict::Allow
            } else {
                Verdict::Deny
            },
            &response.diagnostics.reason,
        );
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
    let context = request
        .context
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    let logged =
        state
            .decision_log
            .logged_request(&context, &request.entities, state.request_entities.mode);
    DecisionRecord {
        decision_id: response.decision_id.clone(),
        timestamp: now_rfc3339(),
        request_id: meta.request_id.clone(),
        endpoint: endpoint.label(),
        client: meta.client.clone(),
        principal: request.principal.to_string(),
        action: request.action.to_string(),
        resource: request.resource.to_string(),
        context: logged.context,
        decision: response.decision.as_str(),
        reasons: response.diagnostics.reason.clone(),
        errors: response.diagnostics.errors.clone(),
        policy_version: snapshot.pack.version.clone(),
        entity_revision: snapshot.entities.revision(),
        latency_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        request_entities: logged.request_entities,
        request_entities_mode: logged.request_entities_mode,
        masked: logged.masked,
        gateway: None,
    }
}

pub(super) fn with_versions(body: impl IntoResponse, snapshot: &Snapshot) -> Response {
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
