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
    if admitted(&state, &request) {
        next.run(request).await
    } else {
        ApiError::CallerUnauthorized.into_response()
    }
}

/// Whether the request may use the decision API: no caller tokens are
/// configured, or it presents one of them. Every door asks this one question.
pub fn admitted(state: &AppState, request: &Request) -> bool {
    let Some(callers) = &state.callers else {
        return true;
    };
    let client = request
        .extensions()
        .get::<RequestMeta>()
        .and_then(|meta| meta.client.clone());
    callers.admits(request.headers(), client.as_deref())
}
