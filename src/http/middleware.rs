//! Cross-cutting request handling: request ids, response counting, and
//! turning overload and timeouts into our JSON errors.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::BoxError;

use super::{ApiError, AppState};

/// The request id header: echoed when the caller sends one, generated otherwise.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-supplied request id we echo; longer or odd ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Per-request facts the handlers log.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The caller's `X-Request-ID`, or one we generated.
    pub request_id: String,
    /// The caller's socket address, when served over TCP.
    pub client: Option<String>,
}

/// Assigns the request id (and notes the caller's address); returns the id
/// in the response header.
pub async fn request_meta(mut request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string);
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.to_string());
    request.extensions_mut().insert(RequestMeta {
        request_id: request_id.clone(),
        client,
    });
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// The route template that answered, carried on the response so the outer
/// counting layer (which runs before routing) can label it.
#[derive(Debug, Clone)]
struct AnsweredRoute(String);

/// Notes the matched route template on the response.
pub async fn tag_route(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(AnsweredRoute(route));
    }
    response
}

/// Counts every response by route template and status; responses made
/// before routing (overload, timeout) and unknown paths count as `unmatched`.
pub async fn count_responses(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<AnsweredRoute>()
        .map_or("unmatched", |r| r.0.as_str());
    state.metrics.record_http(route, response.status().as_u16());
    response
}

/// Maps tower's overload and timeout errors to our JSON error bodies.
pub async fn overload_error(error: BoxError) -> Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout.into_response()
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded.into_response()
    } else {
        tracing::error!(%error, "internal error in the HTTP stack");
        ApiError::Internal.into_response()
    }
}
