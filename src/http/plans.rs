//! `POST /v1/plan`: the condition a resource of a type must meet for a
//! principal's action to be allowed (`engine::plan`), for an application
//! to query its own data with.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde_json::Value;

use super::handlers::{current, with_versions};
use super::json::JsonBody;
use super::wire::search::{PlanRequest, PlanResponse};
use super::{ApiError, AppState};
use crate::engine::{plan, PlanError};

/// `POST /v1/plan`
pub async fn plan_resources(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<PlanRequest>,
) -> Result<Response, ApiError> {
    let snapshot = current(&state)?;
    let known = &snapshot.pack.type_names;
    let principal = request.principal.to_uid_with("principal", known)?;
    let action = request.action.to_uid_with("action", known)?;
    let resource_type = known.get(&request.resource_type).cloned().ok_or_else(|| {
        ApiError::RequestSchemaViolation(format!(
            "resource_type: the schema declares no entity type `{}`",
            request.resource_type
        ))
    })?;
    let context = request.context.map(Value::Object);
    let job_snapshot = snapshot.clone();
    let planned = state
        .cpu
        .run(move || {
            plan(
                &job_snapshot.pack,
                &job_snapshot.entities,
                &principal,
                &action,
                &resource_type,
                context.as_ref(),
            )
        })
        .await?
        .map_err(|error| match error {
            PlanError::Request(message) => ApiError::RequestSchemaViolation(message),
            PlanError::Unsupported(_) => {
                state.metrics.search.record_plan("unsupported");
                ApiError::PlanUnsupported(error.to_string())
            }
        })?;
    let answer = PlanResponse::from(&planned);
    state.metrics.search.record_plan(answer.kind);
    Ok(with_versions(Json(answer), &snapshot))
}
