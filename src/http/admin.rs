//! Admin endpoints: enabled only when an admin token is configured, and
//! only for callers presenting it as `Authorization: Bearer <token>`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};

/// The configured admin token.
pub struct AdminToken(String);

impl AdminToken {
    /// Wraps a token (read from the environment or a file, never a flag).
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// Compares in constant time, so timing does not leak the token.
    fn matches(&self, presented: &str) -> bool {
        self.0.len() == presented.len() && bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// Checks the bearer token; the error says whether admin is off or the token is wrong.
pub fn authorize_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.admin_token else {
        return Err(ApiError::AdminDisabled);
    };
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(presented) if token.matches(presented) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// `POST /v1/admin/reload`: reload policies, schema and the entities file now.
pub async fn reload(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize_admin(&state, &headers)?;
    let Some(reloader) = state.reloader.clone() else {
        return Err(ApiError::ReloadFailed(
            "this server has no reloadable sources".to_string(),
        ));
    };
    let result = tokio::task::spawn_blocking(move || reloader.reload_all())
        .await
        .map_err(|_| ApiError::Internal)?;
    match result {
        Ok(version) => Ok(Json(
            json!({ "status": "reloaded", "policy_version": version }),
        )),
        Err(error) => Err(ApiError::ReloadFailed(error)),
    }
}
