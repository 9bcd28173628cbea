//! The request body is read here, whole, under its own deadline and before
//! the request may take a slot of the concurrency limit: a client that sends
//! its body slowly holds its own connection, never a slot that a decision
//! needs. A body not complete within `body_read_timeout` is answered 408
//! `body_timeout`; one over `max_body_bytes` is 413 `payload_too_large`
//! (at once when its declared length says so).
//!
//! Reading outside the concurrency limit must not lift the memory bound
//! that limit gave: bodies being read share a budget of `max_concurrency`
//! × `max_body_bytes` bytes, taken as bytes arrive; past it, 503
//! `overloaded`, as when the limit itself is reached.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, HttpLimits};

/// What the body reader needs: the limits and the shared byte budget.
#[derive(Clone)]
pub struct BodyReader {
    max_bytes: usize,
    timeout: Duration,
    /// Bytes of bodies being read, across all requests.
    budget: Arc<Semaphore>,
}

impl BodyReader {
    /// A reader for `limits`, with its own budget.
    pub fn new(limits: &HttpLimits) -> Self {
        let budget = limits
            .max_concurrency
            .saturating_mul(limits.max_body_bytes)
            .min(Semaphore::MAX_PERMITS);
        Self {
            max_bytes: limits.max_body_bytes,
            timeout: limits.body_read_timeout,
            budget: Arc::new(Semaphore::new(budget)),
        }
    }
}

/// Middleware: reads the body, then hands the request on with the body in
/// memory.
pub async fn read_body(State(reader): State<BodyReader>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    if body.size_hint().lower() > reader.max_bytes as u64 {
        return ApiError::PayloadTooLarge(reader.max_bytes).into_response();
    }
    match tokio::time::timeout(reader.timeout, collect(body, &reader)).await {
        Err(_) => {
            ApiError::BodyTimeout(u64::try_from(reader.timeout.as_millis()).unwrap_or(u64::MAX))
                .into_response()
        }
        Ok(Err(error)) => error.into_response(),
        Ok(Ok((bytes, budget))) => {
            // From here on the body's memory is bounded by the concurrency
            // limit, as before.
            drop(budget);
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

/// The whole body, and the budget it holds.
async fn collect(
    mut body: Body,
    reader: &BodyReader,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), ApiError> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut length = 0usize;
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|error| ApiError::InvalidRequest(format!("cannot read the body: {error}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        length = length.saturating_add(data.len());
        if length > reader.max_bytes {
            return Err(ApiError::PayloadTooLarge(reader.max_bytes));
        }
        let permits = u32::try_from(data.len()).map_err(|_| ApiError::Overloaded)?;
        let permit = reader
            .budget
            .clone()
            .try_acquire_many_owned(permits)
            .map_err(|_| ApiError::Overloaded)?;
        match held.as_mut() {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        chunks.push(data);
    }
    let bytes = match chunks.len() {
        1 => chunks.pop().unwrap_or_default(),
        _ => chunks.concat().into(),
    };
    Ok((bytes, held))
}
