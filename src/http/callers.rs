//! Caller authentication for the decision API: off by default (a sidecar
//! on loopback talks only to its own pod); with a token file, every caller
//! presents one of its tokens.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::middleware::RequestMeta;
use super::{ApiError, AppState};

/// Refuses (401) a request without one of the caller tokens.
pub async fn require_caller(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(callers) = &state.callers else {
        return next.run(request).await;
    };
    let client = request
        .extensions()
        .get::<RequestMeta>()
        .and_then(|meta| meta.client.clone());
    if callers.admits(request.headers(), client.as_deref()) {
        next.run(request).await
    } else {
        ApiError::CallerUnauthorized.into_response()
    }
}
