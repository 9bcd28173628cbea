//! A JSON body extractor that answers with *our* error bodies: malformed
//! JSON is `invalid_json`, the wrong shape is `invalid_request`, and an
//! oversized body is `payload_too_large`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};

/// The request body parsed as `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The whole body (already read under its deadline and budget by
/// `http::body`), or why not, as the API's error.
pub async fn body_bytes(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(state.limits.max_body_bytes)
            } else {
                ApiError::InvalidRequest(rejection.body_text())
            }
        })
}

/// Parses JSON text in one pass, telling syntax errors from shape errors.
/// Every body of the API is a JSON object: serde would also take an array of
/// a struct's fields in order, which nobody documents.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let parsed = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidRequest(e.to_string()),
        _ => ApiError::InvalidJson(e.to_string()),
    })?;
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::InvalidRequest(
            "the body must be a JSON object".to_string(),
        ));
    }
    Ok(parsed)
}
