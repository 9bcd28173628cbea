//! The HTTP API (axum). Handlers are thin: they turn wire types into engine
//! calls and engine results into wire types. This module owns every serde
//! type the API exposes and the one table that maps errors to responses.

mod error;
mod handlers;
mod json;
mod wire;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use error::ApiError;
pub use wire::{AuthorizeRequest, AuthorizeResponse, WireUid};

use crate::state::SharedState;

/// Limits that protect the sidecar from oversized input.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Most requests accepted in one batch.
    pub max_batch: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_batch: 100,
        }
    }
}

/// What every handler can see.
#[derive(Clone)]
pub struct AppState {
    /// The current policies + entities.
    pub shared: Arc<SharedState>,
    /// Request size limits.
    pub limits: HttpLimits,
}

/// The whole API as a router; tests call it with `oneshot`, without a socket.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/is_authorized", post(handlers::is_authorized))
        .route(
            "/v1/is_authorized/batch",
            post(handlers::is_authorized_batch),
        )
        .route("/v1/policies", get(handlers::policies))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .with_state(state)
}
