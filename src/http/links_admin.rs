//! The template link admin API, behind the admin token like the entity
//! admin API ([`super::entities_admin::require_admin`]):
//!
//! - `GET /v1/policy-links?limit=&after=`: the links this sidecar serves, a
//!   page at a time, by id (any entity source). Links are grants, so they
//!   are not listed to every caller (`/v1/policies` gives only their count).
//! - With Redis only: `PUT /v1/policy-links` (a batch, one revision),
//!   `DELETE /v1/policy-links`, `GET /v1/policy-links/{id}` (as stored).
//!   Each link is checked against the served pack's templates before
//!   anything is written.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::handlers::current;
use super::json::JsonBody;
use super::wire::{
    DeleteLinksRequest, LinkEntry, LinkRecordBody, LinksDeleted, LinksPage, LinksPageQuery,
    LinksWritten, PutLinksRequest,
};
use super::{ApiError, AppState};
use crate::engine::check_link;
use crate::entities::{parse_link, StoredLink};
use crate::sync::{LinkWrite, RedisWriter};

/// Links per page unless the caller asks for fewer (or more, up to
/// [`MAX_PAGE`]).
const DEFAULT_PAGE: usize = 100;
/// Most links one page holds.
const MAX_PAGE: usize = 1000;

/// `GET /v1/policy-links`: the served links with ids after `after`, at most
/// `limit`, sorted by id. O(links) per page (a selection, not a sort of
/// all of them); pages are consistent only within one revision.
pub async fn list_links(
    State(state): State<AppState>,
    query: Result<Query<LinksPageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::InvalidRequest(format!(
            "`limit` must be between 1 and {MAX_PAGE}"
        )));
    }
    let snapshot = current(&state)?;
    let after = query.after.as_deref().unwrap_or("");
    let mut page: Vec<&Arc<StoredLink>> = snapshot
        .entities
        .links()
        .iter()
        .filter(|link| &*link.id > after)
        .collect();
    let more = page.len() > limit;
    if more {
        page.select_nth_unstable_by(limit, |a, b| a.id.cmp(&b.id));
        page.truncate(limit);
    }
    page.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let next = page.last().filter(|_| more).map(|link| link.id.to_string());
    Ok(Json(LinksPage {
        revision: snapshot.entities.revision(),
        links: page
            .into_iter()
            .map(|l| LinkEntry::from(l.as_ref()))
            .collect(),
        next,
    })
    .into_response())
}

/// `PUT /v1/policy-links`: checks every link against the served templates,
/// then writes them all as one revision.
pub async fn put_links(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<PutLinksRequest>,
) -> Result<Response, ApiError> {
    let writer = writer(&state)?;
    let snapshot = current(&state)?;
    let mut seen = HashSet::new();
    let mut writes = Vec::with_capacity(request.links.len());
    for (index, value) in request.links.iter().enumerate() {
        let link =
            parse_link(value).map_err(|e| ApiError::InvalidLink(format!("links[{index}]: {e}")))?;
        check_link(&snapshot.pack, &link)
            .map_err(|e| ApiError::InvalidLink(format!("links[{index}]: {e}")))?;
        if !seen.insert(link.id.clone()) {
            return Err(ApiError::InvalidLink(format!(
                "links[{index}]: duplicate link id `{}`",
                link.id
            )));
        }
        writes.push(LinkWrite::put(&link));
    }
    let revision = writer
        .write_links(&writes, request.expected_revision)
        .await?;
    Ok(Json(LinksWritten {
        revision,
        written: writes.len(),
    })
    .into_response())
}

/// `DELETE /v1/policy-links`: deletes the ids as one revision.
pub async fn delete_links(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<DeleteLinksRequest>,
) -> Result<Response, ApiError> {
    let writer = writer(&state)?;
    if request.ids.iter().any(String::is_empty) {
        return Err(ApiError::InvalidRequest(
            "`ids` must be non-empty link ids".to_string(),
        ));
    }
    let writes: Vec<LinkWrite> = request.ids.iter().map(|id| LinkWrite::delete(id)).collect();
    let revision = writer
        .write_links(&writes, request.expected_revision)
        .await?;
    Ok(Json(LinksDeleted {
        revision,
        deleted: writes.len(),
    })
    .into_response())
}

/// `GET /v1/policy-links/{id}`: the link as stored in Redis.
pub async fn get_link(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let writer = writer(&state)?;
    let record = writer
        .get_link(&id)
        .await?
        .ok_or(ApiError::LinkNotFound(id))?;
    let link: serde_json::Value = serde_json::from_str(&record.json).map_err(|error| {
        tracing::error!(link = record.uid, %error, "stored link is not JSON");
        ApiError::SourceUnavailable
    })?;
    Ok(Json(LinkRecordBody {
        link_id: record.uid,
        revision: record.revision,
        link,
    })
    .into_response())
}

fn writer(state: &AppState) -> Result<&Arc<RedisWriter>, ApiError> {
    state.entity_writer.as_ref().ok_or(ApiError::AdminDisabled)
}
