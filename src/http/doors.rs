//! The HTTP front doors for gateways, thin adapters over one decision path
//! ([`gateway_decide`], shared with the gRPC door):
//! - Envoy ext_authz, HTTP service mode: any method under the prefix
//!   (`/ext_authz/orgs/o1` is `GET /orgs/o1` when asked with GET).
//! - `/v1/gateway/auth`: nginx `auth_request` (`X-Original-Method`,
//!   `X-Original-URI`) and forward-auth for Traefik and Caddy
//!   (`X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host`).
//!
//! 200 allows, with `x-cedar-principal`, `x-cedar-decision-id` (both empty
//! on a public route) and `x-cedar-route` for the upstream; 403 denies with a JSON body; 401 is an
//! authentication failure (`WWW-Authenticate: Bearer error="invalid_token"`).
//! nginx takes only 2xx, 401 and 403 from `auth_request`, so at that door
//! every other answer (a bad value, an unmapped route in 404 mode, not
//! ready) is a 403 with its code in the body. Any internal failure denies.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Json, Router};
use serde_json::json;

use super::handlers::current;
use super::middleware::RequestMeta;
use super::{ApiError, AppState};
use crate::engine::{decide, RequestEntityPolicy, Verdict};
use crate::gateway::routes::Unmatched;
use crate::gateway::{Door, Gateway, GatewayRequest, Outcome, Prepared, Refusal, TokenError};
use crate::reload::now_rfc3339;
use crate::telemetry::DecisionRecord;

/// The principal a decision allowed, for the upstream.
pub const PRINCIPAL_HEADER: HeaderName = HeaderName::from_static("x-cedar-principal");
/// The decision's id (in the decision log), for the upstream.
pub const DECISION_ID_HEADER: HeaderName = HeaderName::from_static("x-cedar-decision-id");
/// The route that matched.
pub const ROUTE_HEADER: HeaderName = HeaderName::from_static("x-cedar-route");
/// The one path of nginx `auth_request` and forward-auth.
pub const AUTH_PATH: &str = "/v1/gateway/auth";

/// A door's answer, before it is put on the door's wire.
#[derive(Debug, Clone)]
pub struct DoorAnswer {
    /// How it ended (counted).
    pub outcome: Outcome,
    /// The HTTP status for the original request.
    pub status: StatusCode,
    /// Stable snake_case code (denials and errors).
    pub code: &'static str,
    /// Human message (denials and errors).
    pub message: String,
    /// The principal, on an allow.
    pub principal: Option<String>,
    /// The decision's id, when a decision was made.
    pub decision_id: Option<String>,
    /// The matched route's id.
    pub route: Option<Arc<str>>,
}

impl DoorAnswer {
    fn refused(outcome: Outcome, status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            outcome,
            status,
            code,
            message,
            principal: None,
            decision_id: None,
            route: None,
        }
    }

    /// `{"code","message"}`.
    pub fn body(&self) -> serde_json::Value {
        json!({ "code": self.code, "message": self.message })
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn challenge(&self) -> String {
        let description = self.message.replace(['"', '\\'], "'");
        format!("Bearer error=\"invalid_token\", error_description=\"{description}\"")
    }
}

/// The gateway routes, added to the API router when a route map is set.
pub fn routes(gateway: &Gateway) -> Router<AppState> {
    let prefix = gateway.config.ext_authz_prefix.clone();
    Router::new()
        .route(AUTH_PATH, any(auth_request))
        .route(&prefix, any(ext_authz))
        .route(&format!("{prefix}/"), any(ext_authz))
        .route(&format!("{prefix}/{{*original}}"), any(ext_authz))
}

/// Envoy ext_authz, HTTP service mode.
async fn ext_authz(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    request: Request,
) -> Response {
    let Some(gateway) = state.gateway.clone() else {
        return ApiError::NotFound(request.uri().path().to_string()).into_response();
    };
    let prefix = gateway.config.ext_authz_prefix.as_str();
    let path = request.uri().path();
    let original = path.strip_prefix(prefix).unwrap_or(path);
    let original = if original.is_empty() { "/" } else { original };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{original}?{query}"),
        None => original.to_string(),
    };
    let gateway_request = GatewayRequest {
        method: request.method(),
        path_and_query: &path_and_query,
        headers: request.headers(),
    };
    let answer = gateway_decide(
        &state,
        &gateway,
        Door::ExtAuthzHttp,
        &meta,
        &gateway_request,
    );
    http_answer(answer)
}

/// nginx `auth_request` and forward-auth (Traefik, Caddy).
async fn auth_request(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    headers: HeaderMap,
) -> Response {
    let Some(gateway) = state.gateway.clone() else {
        return ApiError::NotFound(AUTH_PATH.to_string()).into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let original = header("x-original-uri").is_some() || header("x-original-method").is_some();
    let forwarded = header("x-forwarded-uri").is_some() || header("x-forwarded-method").is_some();
    let (door, method, uri) = match (header("x-original-uri"), header("x-forwarded-uri")) {
        // A forward-auth proxy passes the client's own headers on and sets
        // only its X-Forwarded-* ones: a request with both families may
        // carry a client's X-Original-* naming another request. Refused.
        _ if original && forwarded => {
            let answer = DoorAnswer::refused(
                Outcome::BadRequest,
                StatusCode::FORBIDDEN,
                "ambiguous_original_request",
                "both X-Original-* (nginx) and X-Forwarded-Method/X-Forwarded-Uri (forward-auth) were sent; the proxy must send one family and strip the other from clients".into(),
            );
            gateway.metrics.record(Door::AuthRequest, answer.outcome);
            return http_answer(answer);
        }
        (Some(uri), _) => (Door::AuthRequest, header("x-original-method"), uri),
        (None, Some(uri)) => (Door::ForwardAuth, header("x-forwarded-method"), uri),
        (None, None) => {
            let answer = DoorAnswer::refused(
                Outcome::BadRequest,
                StatusCode::FORBIDDEN,
                "missing_original_request",
                "the original request is missing: send X-Original-Method and X-Original-URI (nginx) or X-Forwarded-Method and X-Forwarded-Uri (forward-auth)".into(),
            );
            gateway.metrics.record(Door::AuthRequest, answer.outcome);
            return http_answer(answer);
        }
    };
    let method = method.and_then(|m| Method::from_bytes(m.trim().as_bytes()).ok());
    let Some(method) = method else {
        let answer = DoorAnswer::refused(
            Outcome::BadRequest,
            StatusCode::FORBIDDEN,
            "missing_original_request",
            "the original method is missing or invalid (X-Original-Method or X-Forwarded-Method)"
                .into(),
        );
        gateway.metrics.record(door, answer.outcome);
        return http_answer(answer);
    };
    let uri = origin_form(uri);
    let gateway_request = GatewayRequest {
        method: &method,
        path_and_query: uri,
        headers: &headers,
    };
    let mut answer = gateway_decide(&state, &gateway, door, &meta, &gateway_request);
    // nginx: anything but 2xx, 401 and 403 is an error, not a decision.
    if door == Door::AuthRequest
        && !answer.status.is_success()
        && answer.status != StatusCode::UNAUTHORIZED
    {
        answer.status = StatusCode::FORBIDDEN;
    }
    http_answer(answer)
}

/// The answer as an HTTP response.
fn http_answer(answer: DoorAnswer) -> Response {
    let mut response = if answer.status.is_success() {
        StatusCode::OK.into_response()
    } else {
        (answer.status, Json(answer.body())).into_response()
    };
    let headers = response.headers_mut();
    if answer.status == StatusCode::UNAUTHORIZED {
        if let Ok(value) = HeaderValue::from_str(&answer.challenge()) {
            headers.insert(axum::http::header::WWW_AUTHENTICATE, value);
        }
    }
    let mut put = |name: HeaderName, value: Option<&str>| {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    };
    if answer.status.is_success() {
        // Always set on an allow, empty on a public route: a gateway that
        // copies them (Caddy, Traefik, Envoy) then overwrites a client's
        // own, and Caddy 2.6 does not copy its placeholder text instead.
        put(
            PRINCIPAL_HEADER,
            Some(answer.principal.as_deref().unwrap_or("")),
        );
        put(
            DECISION_ID_HEADER,
            Some(answer.decision_id.as_deref().unwrap_or("")),
        );
    } else {
        put(DECISION_ID_HEADER, answer.decision_id.as_deref());
    }
    put(ROUTE_HEADER, answer.route.as_deref());
    response
}

/// The one decision path of every door: route, principal, decision
/// against one snapshot; counted and logged. Fails closed.
pub fn gateway_decide(
    state: &AppState,
    gateway: &Gateway,
    door: Door,
    meta: &RequestMeta,
    request: &GatewayRequest<'_>,
) -> DoorAnswer {
    let started = Instant::now();
    let answer = decide_for(state, gateway, door, meta, request, started);
    gateway.metrics.record(door, answer.outcome);
    tracing::debug!(
        door = door.label(),
        method = %request.method,
        path = request.path_and_query,
        route = answer.route.as_deref().unwrap_or("-"),
        outcome = answer.outcome.label(),
        status = answer.status.as_u16(),
        "gateway request"
    );
    answer
}

fn decide_for(
    state: &AppState,
    gateway: &Gateway,
    door: Door,
    meta: &RequestMeta,
    request: &GatewayRequest<'_>,
    started: Instant,
) -> DoorAnswer {
    // No request entities, ever: the strictest rules, whatever the API's.
    static NO_ENTITIES: std::sync::LazyLock<RequestEntityPolicy> =
        std::sync::LazyLock::new(RequestEntityPolicy::default);
    // The snapshot first: the route map used is the one compiled against
    // its pack, so a reload never pairs a map with other policies.
    // (A stale or unready sidecar has no snapshot to decide against; a
    // public route is still answered, by the map of what is published.)
    let snapshot = current(state);
    let published = match &snapshot {
        Ok(snapshot) => Some(snapshot.clone()),
        Err(_) => state.shared.snapshot(),
    };
    let version = published.as_ref().map(|s| s.pack.version.as_str());
    let (route, decision_request) = match gateway.prepare(version, request) {
        Ok(Prepared::Public { route }) => {
            return DoorAnswer {
                route: Some(route),
                ..DoorAnswer::refused(Outcome::Public, StatusCode::OK, "public", String::new())
            }
        }
        Ok(Prepared::Decide { route, request }) => (route, request),
        Err(refusal) => return refused(refusal),
    };
    let snapshot = match snapshot {
        Ok(snapshot) => snapshot,
        Err(error) => {
            let (status, code) = error.status_and_code();
            return DoorAnswer {
                route: Some(route),
                ..DoorAnswer::refused(Outcome::Error, status, code, error.to_string())
            };
        }
    };
    let decision = decide(
        &snapshot.pack,
        &snapshot.entities,
        &decision_request,
        &NO_ENTITIES,
    );
    let decision = match decision {
        Ok(decision) => decision,
        Err(error) => {
            // The route map and the policies disagree (a reload in
            // between): deny, and say why.
            tracing::warn!(%error, route = %route, "gateway request refused by the schema");
            return DoorAnswer {
                route: Some(route),
                ..DoorAnswer::refused(
                    Outcome::Error,
                    StatusCode::FORBIDDEN,
                    "request_schema_violation",
                    error.to_string(),
                )
            };
        }
    };
    let elapsed = started.elapsed();
    let allowed = decision.verdict == Verdict::Allow;
    let decision_id = uuid::Uuid::now_v7().to_string();
    let principal = decision_request.principal.to_string();
    if state.decision_log.wants(allowed) {
        let context = decision_request
            .context
            .clone()
            .unwrap_or_else(|| json!({}));
        // A gateway request carries no entities.
        let logged =
            state
                .decision_log
                .logged_request(&context, &[], crate::engine::RequestEntityMode::Off);
        state.decision_log.submit(DecisionRecord {
            decision_id: decision_id.clone(),
            timestamp: now_rfc3339(),
            request_id: meta.request_id.clone(),
            endpoint: door.label(),
            client: meta.client.clone(),
            principal: principal.clone(),
            action: decision_request.action.to_string(),
            resource: decision_request.resource.to_string(),
            context: logged.context,
            decision: if allowed { "Allow" } else { "Deny" },
            reasons: decision.reasons.clone(),
            errors: decision.errors.clone(),
            policy_version: snapshot.pack.version.clone(),
            entity_revision: snapshot.entities.revision(),
            latency_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            request_entities: Vec::new(),
            request_entities_mode: None,
            masked: logged.masked,
            gateway: Some(json!({
                "method": request.method.as_str(),
                "path": request.path_and_query,
                "route": route.as_ref(),
            })),
        });
    }
    if let Some(shadow) = &state.shadow {
        shadow.submit(
            &snapshot.entities,
            &decision_request,
            &decision_id,
            decision.verdict,
            &decision.reasons,
        );
    }
    if allowed {
        DoorAnswer {
            outcome: Outcome::Allow,
            status: StatusCode::OK,
            code: "allowed",
            message: String::new(),
            principal: Some(principal),
            decision_id: Some(decision_id),
            route: Some(route),
        }
    } else {
        DoorAnswer {
            outcome: Outcome::Deny,
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: format!(
                "{principal} may not {} on {}",
                decision_request.action, decision_request.resource
            ),
            principal: None,
            decision_id: Some(decision_id),
            route: Some(route),
        }
    }
}

fn refused(refusal: Refusal) -> DoorAnswer {
    let message = refusal.to_string();
    match refusal {
        Refusal::Unauthenticated(error) => {
            let code = match error {
                TokenError::Missing | TokenError::MissingHeader(_) => "missing_token",
                TokenError::Expired => "token_expired",
                _ => "invalid_token",
            };
            DoorAnswer::refused(
                Outcome::Unauthenticated,
                StatusCode::UNAUTHORIZED,
                code,
                message,
            )
        }
        Refusal::NotMapped { answer, .. } => {
            let status = match answer {
                Unmatched::Forbidden => StatusCode::FORBIDDEN,
                Unmatched::NotFound => StatusCode::NOT_FOUND,
            };
            DoorAnswer::refused(Outcome::NotMapped, status, "route_not_mapped", message)
        }
        Refusal::BadPath(_) => DoorAnswer::refused(
            Outcome::BadRequest,
            StatusCode::BAD_REQUEST,
            "invalid_path",
            message,
        ),
        Refusal::BadValue(_) => DoorAnswer::refused(
            Outcome::BadRequest,
            StatusCode::BAD_REQUEST,
            "invalid_request_value",
            message,
        ),
        Refusal::NoRouteMap(_) => DoorAnswer::refused(
            Outcome::Error,
            StatusCode::SERVICE_UNAVAILABLE,
            "route_map_unavailable",
            message,
        ),
    }
}

/// The path and query of the original request. An absolute URI
/// (`scheme://host/path`) is read for its path only when it starts with a
/// scheme: a `://` later on (in a query, say) is data, never a new path.
fn origin_form(uri: &str) -> &str {
    if uri.starts_with('/') {
        return uri;
    }
    match uri.split_once("://") {
        Some((scheme, rest))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            match rest.find(['/', '?']) {
                Some(index) if rest[index..].starts_with('/') => &rest[index..],
                _ => "/",
            }
        }
        _ => uri,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::origin_form;

    #[test]
    fn only_a_leading_scheme_makes_an_absolute_uri() {
        assert_eq!(
            origin_form("/orgs/victim?x=http://a/orgs/mallory"),
            "/orgs/victim?x=http://a/orgs/mallory"
        );
        assert_eq!(origin_form("https://api.example/orgs/a?b=c"), "/orgs/a?b=c");
        assert_eq!(origin_form("http://api.example"), "/");
        assert_eq!(origin_form("http://api.example?x=/orgs/y"), "/");
        // Not absolute and not a path: split_path refuses it.
        assert_eq!(origin_form("orgs?x=http://a/b"), "orgs?x=http://a/b");
    }
}
