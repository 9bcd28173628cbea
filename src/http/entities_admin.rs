//! The entity admin API: `PUT /v1/entities` (a batch, one revision),
//! `DELETE /v1/entities`, `GET /v1/entities/{uid}`. Present only when
//! entities come from Redis; every call needs the admin token
//! (`Authorization: Bearer`, see [`super::admin`]).
//! Entities are validated against the schema (and their parents checked)
//! before anything is written.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cedar_policy::EntityUid;

use super::admin::authorize_admin;
use super::handlers::current;
use super::json::JsonBody;
use super::wire::{
    DeleteEntitiesRequest, EntitiesDeleted, EntitiesWritten, EntityRecordBody, PutEntitiesRequest,
};
use super::{ApiError, AppState};
use crate::entities::parse_entities_json;
use crate::sync::{EntityWrite, RedisWriter};

/// Middleware in front of every entity admin route: the admin token is
/// checked before the body is read (403 when admin is off, 401 otherwise).
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match authorize_admin(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// `PUT /v1/entities`: validates, then writes all entities as one revision.
pub async fn put_entities(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<PutEntitiesRequest>,
) -> Result<Response, ApiError> {
    let writer = writer(&state)?;
    let snapshot = current(&state)?;
    let entities = parse_entities_json(request.entities, &snapshot.pack.schema)
        .map_err(|e| ApiError::InvalidEntity(e.to_string()))?;
    let revision = writer
        .put_entities(&entities, request.expected_revision)
        .await?;
    Ok(Json(EntitiesWritten {
        revision,
        written: entities.len(),
    })
    .into_response())
}

/// `DELETE /v1/entities`: deletes the uids as one revision.
pub async fn delete_entities(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<DeleteEntitiesRequest>,
) -> Result<Response, ApiError> {
    let writer = writer(&state)?;
    let writes = request
        .uids
        .iter()
        .map(|uid| uid.to_uid("uids").map(|uid| EntityWrite::delete(&uid)))
        .collect::<Result<Vec<_>, _>>()?;
    let revision = writer.write(&writes, request.expected_revision).await?;
    Ok(Json(EntitiesDeleted {
        revision,
        deleted: writes.len(),
    })
    .into_response())
}

/// `GET /v1/entities/{uid}`: the entity as stored in Redis.
pub async fn get_entity(
    State(state): State<AppState>,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let writer = writer(&state)?;
    let parsed = EntityUid::from_str(&uid).map_err(|e| {
        ApiError::InvalidRequest(format!(
            "`{uid}` is not an entity uid like `User::\"alice\"`: {e}"
        ))
    })?;
    let canonical = parsed.to_string();
    let record = writer
        .get(&canonical)
        .await?
        .ok_or(ApiError::EntityNotFound(canonical))?;
    let entity: serde_json::Value = serde_json::from_str(&record.json).map_err(|error| {
        tracing::error!(uid = record.uid, %error, "stored entity is not JSON");
        ApiError::SourceUnavailable
    })?;
    Ok(Json(EntityRecordBody {
        uid: record.uid,
        revision: record.revision,
        entity,
    })
    .into_response())
}

fn writer(state: &AppState) -> Result<&Arc<RedisWriter>, ApiError> {
    state.entity_writer.as_ref().ok_or(ApiError::AdminDisabled)
}
