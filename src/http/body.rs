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

/// The whole body, and the budget it holds. Each frame is copied into one
/// buffer and dropped at once, and the budget is charged for what the
/// buffer holds: a frame is a slice of the connection's read buffer, so
/// keeping frames would keep whole read buffers alive for a byte each.
async fn collect(
    mut body: Body,
    reader: &BodyReader,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), ApiError> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut charged = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|error| ApiError::InvalidRequest(format!("cannot read the body: {error}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buffer.len().saturating_add(data.len()) > reader.max_bytes {
            return Err(ApiError::PayloadTooLarge(reader.max_bytes));
        }
        buffer.extend_from_slice(&data);
        drop(data);
        let grown = buffer.capacity().saturating_sub(charged);
        if grown > 0 {
            let permits = u32::try_from(grown).map_err(|_| ApiError::Overloaded)?;
            let permit = reader
                .budget
                .clone()
                .try_acquire_many_owned(permits)
                .map_err(|_| ApiError::Overloaded)?;
            charged = buffer.capacity();
            match held.as_mut() {
                Some(held) => held.merge(permit),
                None => held = Some(permit),
            }
        }
    }
    Ok((Bytes::from(buffer), held))
}
