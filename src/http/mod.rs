//! The HTTP API (axum) and the server under it (hyper, our accept loop).
//! Handlers are thin: they turn wire types into engine calls and engine
//! results into wire types. This module owns every serde type the API
//! exposes and the one table that maps errors to responses.

mod admin;
mod authzen;
mod authzen_search;
mod body;
mod callers;
mod connection;
mod cpu_pool;
mod doors;
mod entities_admin;
mod error;
mod fd_limit;
pub mod grpc;
mod handlers;
mod json;
mod lifecycle;
mod links_admin;
mod middleware;
mod plans;
mod search_cache;
pub mod server;
mod status;
mod tokens;
mod wire;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use tower::ServiceBuilder;

pub use admin::AdminToken;
pub use authzen::check_public_url;
pub use connection::ConnectionLimits;
pub use cpu_pool::CpuPool;
pub use doors::{AUTH_PATH, DECISION_ID_HEADER, PRINCIPAL_HEADER, ROUTE_HEADER};
pub use error::ApiError;
pub use fd_limit::fit_connection_cap;
pub use handlers::{POLICY_VERSION_HEADER, REVISION_HEADER};
pub use lifecycle::{Lifecycle, Phase};
pub use middleware::REQUEST_ID_HEADER;
pub use search_cache::SearchCache;
pub use server::Server;
pub use tokens::{
    presented_bearer, warn_if_short, CallerTokens, TokenFileError, TokenSet, MIN_TOKEN_BYTES,
};
pub use wire::{AuthorizeRequest, AuthorizeResponse, WireDecision, WireUid};

use crate::engine::RequestEntityPolicy;
use crate::freshness::{Freshness, FreshnessPolicy};
use crate::gateway::Gateway;
use crate::reload::Reloader;
use crate::state::SharedState;
use crate::sync::RedisWriter;
use crate::telemetry::{DecisionLog, Metrics};

/// Limits that protect the sidecar (and its neighbours) from overload.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Most requests accepted in one batch.
    pub max_batch: usize,
    /// Requests handled at once; more are refused (503 `overloaded`).
    pub max_concurrency: usize,
    /// A request taking longer is answered 503 `timeout`.
    pub request_timeout: Duration,
    /// A body taking longer to arrive is answered 408 `body_timeout`; it is
    /// read before the request takes a concurrency slot.
    pub body_read_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_batch: 100,
            max_concurrency: 1024,
            request_timeout: Duration::from_secs(2),
            body_read_timeout: Duration::from_secs(1),
        }
    }
}

/// What every handler can see.
#[derive(Clone)]
pub struct AppState {
    /// The current policies + entities.
    pub shared: Arc<SharedState>,
    /// Request size limits, timeout, concurrency.
    pub limits: HttpLimits,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The audit trail.
    pub decision_log: Arc<DecisionLog>,
    /// Admin endpoints are enabled only with a token.
    pub admin_token: Option<Arc<AdminToken>>,
    /// Reloads on `POST /v1/admin/reload`, and their status for `/v1/status`.
    pub reloader: Option<Arc<Reloader>>,
    /// Where entities come from, for `/v1/status` (e.g. `file:demo/entities.json`).
    pub entity_source: Arc<str>,
    /// Process start, for uptime.
    pub started_at: SystemTime,
    /// Applied revision and contact with the entity source (staleness,
    /// consistency tokens).
    pub freshness: Arc<Freshness>,
    /// Writes for the entity admin API; `Some` only when entities come from
    /// Redis (the routes exist only then).
    pub entity_writer: Option<Arc<RedisWriter>>,
    /// What entities a request may carry (the trust boundary).
    pub request_entities: Arc<RequestEntityPolicy>,
    /// With a set, the decision API takes only callers presenting a token.
    pub callers: Option<Arc<CallerTokens>>,
    /// Readiness fails while fewer entities are loaded (an emptied source).
    pub min_entities: usize,
    /// Where request-entity parsing and batch parts run.
    pub cpu: Arc<CpuPool>,
    /// Serving, draining or stopping: `/readyz` fails from draining on.
    pub lifecycle: Arc<Lifecycle>,
    /// The gateway doors' route map and principal; `Some` only with a
    /// route map (the doors exist only then).
    pub gateway: Option<Arc<Gateway>>,
    /// The public base URL AuthZEN's metadata names (`public_url`).
    pub public_url: Arc<str>,
    /// The last searches' results, for their next pages.
    pub search_cache: Arc<SearchCache>,
    /// The shadow policy set every live decision is also decided by (off
    /// the request path, never served); `None` without one.
    pub shadow: Option<Arc<crate::shadow::Shadow>>,
}

impl AppState {
    /// A state with default limits, fresh metrics, no decision log, no admin API.
    pub fn new(shared: Arc<SharedState>) -> Self {
        let revision = shared.snapshot().map_or(0, |s| s.entities.revision());
        let metrics = Arc::new(Metrics::default());
        Self {
            shared,
            limits: HttpLimits::default(),
            decision_log: Arc::new(DecisionLog::off(metrics.clone())),
            metrics,
            admin_token: None,
            reloader: None,
            entity_source: Arc::from("memory"),
            started_at: SystemTime::now(),
            freshness: Arc::new(Freshness::untracked(FreshnessPolicy::default(), revision)),
            entity_writer: None,
            request_entities: Arc::new(RequestEntityPolicy::default()),
            callers: None,
            min_entities: 0,
            cpu: Arc::new(CpuPool::for_this_machine()),
            lifecycle: Arc::new(Lifecycle::default()),
            gateway: None,
            public_url: Arc::from("http://127.0.0.1:8180"),
            search_cache: Arc::default(),
            shadow: None,
        }
    }
}

/// The whole API as a router; tests call it with `oneshot`, without a socket.
///
/// The overload guard (concurrency limit with load shedding, and the request
/// timeout) wraps the whole API once, so the limit is global, not per route.
/// The probes (`/healthz`, `/readyz`, `/metrics`) are outside it: they are
/// never shed and never cut by the request timeout, so an overloaded sidecar
/// is not restarted for being busy. Bodies are read before the guard
/// (`body.rs`).
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// [`router`] with `extra` routes behind the same layers. Only the bench
/// harness passes any (its no-op route must cost what the API's stack costs).
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let limits = state.limits;
    let mut routes = extra;
    // The admin routes over data, behind the admin token: the served links
    // (any source); with Redis, writes and reads of entities and links.
    let mut admin = Router::new();
    if state.entity_writer.is_some() {
        admin = admin
            .route(
                "/v1/entities",
                put(entities_admin::put_entities).delete(entities_admin::delete_entities),
            )
            .route("/v1/entities/{uid}", get(entities_admin::get_entity))
            .route(
                "/v1/policy-links",
                get(links_admin::list_links)
                    .put(links_admin::put_links)
                    .delete(links_admin::delete_links),
            )
            .route("/v1/policy-links/{id}", get(links_admin::get_link));
    } else {
        admin = admin.route("/v1/policy-links", get(links_admin::list_links));
    }
    routes = routes.merge(admin.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        entities_admin::require_admin,
    )));
    // The decision API, behind caller tokens when the operator set some.
    let mut decisions = Router::new()
        .route("/v1/is_authorized", post(handlers::is_authorized))
        .route(
            "/v1/is_authorized/batch",
            post(handlers::is_authorized_batch),
        )
        .route("/v1/search", post(authzen_search::native))
        .route("/v1/plan", post(plans::plan_resources))
        .route("/v1/policies", get(handlers::policies))
        .route("/v1/status", get(status::status));
    if state.callers.is_some() {
        decisions = decisions.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            callers::require_caller,
        ));
    }
    // The gateway doors: outside the caller-token guard (their
    // `Authorization` is the end user's token), inside the overload guard.
    if let Some(gateway) = &state.gateway {
        routes = routes.merge(doors::routes(gateway));
    }
    let api = routes
        .merge(decisions)
        .merge(authzen::routes(&state))
        .route("/v1/admin/reload", post(admin::reload))
        .route(
            "/v1/admin/shadow",
            put(admin::put_shadow).delete(admin::delete_shadow),
        )
        .route(authzen::CONFIGURATION_PATH, get(authzen::configuration))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::middleware::from_fn(middleware::tag_route))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(state.clone());
    let guarded = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(middleware::overload_error))
        .load_shed()
        .concurrency_limit(limits.max_concurrency)
        .timeout(limits.request_timeout)
        .service(api);
    outer_layers(probes(state.clone()).fallback_service(guarded), state)
}

/// Only the probes, for the probe listener: a kubelet can reach it on any
/// interface without reaching decisions or admin endpoints.
pub fn probe_router(state: AppState) -> Router {
    outer_layers(probes(state.clone()).fallback(handlers::not_found), state)
}

/// `/healthz`, `/readyz`, `/metrics`.
fn probes(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(status::metrics))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .route_layer(axum::middleware::from_fn(middleware::tag_route))
        .with_state(state)
}

/// What every request passes first: request id, response counting, then
/// the body read under its deadline.
fn outer_layers(routes: Router, state: AppState) -> Router {
    routes
        .layer(axum::middleware::from_fn_with_state(
            body::BodyReader::new(&state.limits),
            body::read_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::count_responses,
        ))
        .layer(axum::middleware::from_fn(middleware::request_meta))
}
