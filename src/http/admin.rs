//! Admin endpoints: enabled only when an admin token is configured, and
//! only for callers presenting it as `Authorization: Bearer <token>`.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;

use super::json::JsonBody;
use super::tokens::{presented_bearer, TokenSet};
use super::wire::{ReloadResponse, ShadowRequest, ShadowResponse};
use super::{ApiError, AppState};
use crate::reload::Reloaded;
use crate::telemetry::RateLimit;

/// The configured admin token.
pub struct AdminToken {
    token: TokenSet,
    failures: RateLimit,
}

impl AdminToken {
    /// Wraps a token (read from the environment or a file, never a flag);
    /// surrounding blanks are trimmed, as they are from a presented token.
    pub fn new(token: String) -> Self {
        Self {
            token: TokenSet::new([token.as_str()]),
            failures: RateLimit::new(Duration::from_secs(1)),
        }
    }
}

/// Checks the bearer token; the error says whether admin is off or the
/// token is wrong. Failures are logged at WARN, at most once a second.
pub fn authorize_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(admin) = &state.admin_token else {
        return Err(ApiError::AdminDisabled);
    };
    if presented_bearer(headers).is_some_and(|t| admin.token.accepts(t)) {
        return Ok(());
    }
    if let Some(suppressed) = admin.failures.check() {
        tracing::warn!(
            similar_failures_suppressed = suppressed,
            "admin endpoint called without a valid admin token"
        );
    }
    Err(ApiError::Unauthorized)
}

/// `POST /v1/admin/reload`: reload policies, schema and the entities file now.
pub async fn reload(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ReloadResponse>, ApiError> {
    authorize_admin(&state, &headers)?;
    let Some(reloader) = state.reloader.clone() else {
        return Err(ApiError::ReloadFailed(
            "this server has no reloadable sources".to_string(),
        ));
    };
    // A task of its own: a client that gives up does not cancel the reload.
    let result = tokio::spawn(async move { reloader.reload_all().await })
        .await
        .map_err(|_| ApiError::Internal)?;
    match result {
        Ok(Reloaded::Published(version)) => Ok(Json(ReloadResponse {
            status: "reloaded",
            policy_version: version,
        })),
        // A new schema waits for entities checked against it; `/v1/status`
        // shows when it is published (or refused).
        Ok(Reloaded::Pending(version)) => Ok(Json(ReloadResponse {
            status: "pending",
            policy_version: version,
        })),
        Err(error) => Err(ApiError::ReloadFailed(error)),
    }
}

/// `PUT /v1/admin/shadow`: loads a policy folder (on the sidecar's file
/// system, with the served schema) as the shadow policy set. 422 with the
/// problems when it does not load; the shadow in force, if any, stays.
pub async fn put_shadow(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ShadowRequest>,
) -> Result<Json<ShadowResponse>, ApiError> {
    authorize_admin(&state, &headers)?;
    let Some(reloader) = state.reloader.clone() else {
        return Err(ApiError::ReloadFailed(
            "this server has no schema to load a shadow with".to_string(),
        ));
    };
    let folder = std::path::PathBuf::from(body.policies);
    // A folder, whose `.cedar` files alone are read: a file path would be
    // read whatever it holds, and its lines could reach the error in
    // `/v1/status`.
    if !tokio::fs::metadata(&folder)
        .await
        .is_ok_and(|meta| meta.is_dir())
    {
        return Err(ApiError::InvalidRequest(
            "`policies` must name a folder of `.cedar` files on the sidecar's file system"
                .to_string(),
        ));
    }
    let version = tokio::spawn(async move { reloader.load_shadow(folder).await })
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(ApiError::ReloadFailed)?;
    Ok(Json(ShadowResponse {
        status: "loaded",
        policy_version: Some(version),
    }))
}

/// `DELETE /v1/admin/shadow`: stops shadowing.
pub async fn delete_shadow(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ShadowResponse>, ApiError> {
    authorize_admin(&state, &headers)?;
    if let Some(shadow) = &state.shadow {
        shadow.clear();
    }
    Ok(Json(ShadowResponse {
        status: "cleared",
        policy_version: None,
    }))
}
