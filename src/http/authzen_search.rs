//! AuthZEN 1.0 search: `POST /access/v1/search/subject`, `/search/resource`
//! and `/search/action`, and the native `POST /v1/search` (Cedar's shapes,
//! the same search and pages). The search itself is `engine::search` (every
//! result confirmed by a decision); this module maps the wire shapes and
//! pages the results with tamper-evident tokens.
//!
//! A page token is `offset.mac` in hex, the MAC an HMAC-SHA256, under a key
//! drawn at random when the process starts, of the offset, the snapshot
//! (entity revision and policy version) and the request without its `page`.
//! A token from another request, another snapshot or another process, or
//! one changed in any way, is refused (400): the caller starts over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use cedar_policy::EntityUid;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::authzen::{AuthzenError, AuthzenJson};
use super::handlers::{current, with_versions};
use super::json::JsonBody;
use super::search_cache::SearchKey;
use super::wire::authzen::{
    action_named, search_context, ActionSearchRequest, FoundAction, FoundEntity, PageRequest,
    PageResponse, ResourceSearchRequest, SearchResponse, SubjectSearchRequest,
};
use super::wire::search::NativeSearchRequest;
use super::{ApiError, AppState};
use crate::engine::{search_while, SearchRequest, Searched};
use crate::state::Snapshot;
use crate::telemetry::{SearchEnd, SearchKind};

/// Results on a page when the request names no `page.limit`.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// The largest `page.limit` honoured.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// `POST /access/v1/search/subject`
pub async fn subjects(
    State(state): State<AppState>,
    AuthzenJson(body): AuthzenJson<Value>,
) -> Result<Response, AuthzenError> {
    let (request, page, digest) = parse::<SubjectSearchRequest>("subject", body)?;
    let snapshot = current(&state)?;
    let pack = &snapshot.pack;
    let searched = match request.subject.entity_type.parse() {
        Ok(entity_type) => Some(Searched::Subjects(entity_type)),
        Err(_) => None,
    };
    let query = SearchRequest {
        principal: None,
        action: Some(action_named(&request.action.name, pack)?),
        resource: Some(request.resource.search_uid("resource", pack)?),
        context: search_context(request.context, Some(&request.action))?,
    };
    Ok(respond(&state, snapshot, query, searched, &page, &digest, entity).await?)
}

/// `POST /access/v1/search/resource`
pub async fn resources(
    State(state): State<AppState>,
    AuthzenJson(body): AuthzenJson<Value>,
) -> Result<Response, AuthzenError> {
    let (request, page, digest) = parse::<ResourceSearchRequest>("resource", body)?;
    let snapshot = current(&state)?;
    let pack = &snapshot.pack;
    let searched = match request.resource.entity_type.parse() {
        Ok(entity_type) => Some(Searched::Resources(entity_type)),
        Err(_) => None,
    };
    let query = SearchRequest {
        principal: Some(request.subject.search_uid("subject", pack)?),
        action: Some(action_named(&request.action.name, pack)?),
        resource: None,
        context: search_context(request.context, Some(&request.action))?,
    };
    Ok(respond(&state, snapshot, query, searched, &page, &digest, entity).await?)
}

/// `POST /access/v1/search/action`
pub async fn actions(
    State(state): State<AppState>,
    AuthzenJson(body): AuthzenJson<Value>,
) -> Result<Response, AuthzenError> {
    let (request, page, digest) = parse::<ActionSearchRequest>("action", body)?;
    let snapshot = current(&state)?;
    let pack = &snapshot.pack;
    let query = SearchRequest {
        principal: Some(request.subject.search_uid("subject", pack)?),
        action: None,
        resource: Some(request.resource.search_uid("resource", pack)?),
        context: search_context(request.context, None)?,
    };
    let name = |uid: &EntityUid| FoundAction {
        name: uid.id().unescaped().to_string(),
    };
    Ok(respond(
        &state,
        snapshot,
        query,
        Some(Searched::Actions),
        &page,
        &digest,
        name,
    )
    .await?)
}

/// `POST /v1/search`: one of principal, action and resource is given as a
/// type (without `id`; the action left out); results are uids.
pub async fn native(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let (request, page, digest) = parse::<NativeSearchRequest>("native", body)?;
    let snapshot = current(&state)?;
    let search = request.into_search(&snapshot.pack.type_names)?;
    let query = SearchRequest {
        principal: search.principal,
        action: search.action,
        resource: search.resource,
        context: search.context,
    };
    respond(
        &state,
        snapshot,
        query,
        Some(search.searched),
        &page,
        &digest,
        entity,
    )
    .await
}

fn entity(uid: &EntityUid) -> FoundEntity {
    FoundEntity {
        entity_type: uid.type_name().to_string(),
        id: uid.id().unescaped().to_string(),
    }
}

/// The typed request, its `page`, and the digest of the search (`kind`)
/// and the rest of the body: what a token and a kept result are bound to
/// (the same body asks another question of another search).
fn parse<T: DeserializeOwned>(
    kind: &str,
    mut body: Value,
) -> Result<(T, PageRequest, [u8; 32]), ApiError> {
    let page = match body
        .as_object_mut()
        .and_then(|fields| fields.remove("page"))
    {
        None | Some(Value::Null) => PageRequest::default(),
        Some(page) => serde_json::from_value(page)
            .map_err(|e| ApiError::InvalidRequest(format!("page: {e}")))?,
    };
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    hasher.update(b"\n");
    hasher.update(body.to_string().as_bytes());
    let digest: [u8; 32] = hasher.finalize().into();
    let request =
        serde_json::from_value(body).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    Ok((request, page, digest))
}

/// Searches in the CPU pool (a search makes many decisions), then answers
/// the page the token and limit ask for.
async fn respond<T: Serialize>(
    state: &AppState,
    snapshot: Arc<Snapshot>,
    query: SearchRequest,
    searched: Option<Searched>,
    page: &PageRequest,
    digest: &[u8; 32],
    show: impl Fn(&EntityUid) -> T,
) -> Result<Response, ApiError> {
    let binding = Binding {
        digest: *digest,
        revision: snapshot.entities.revision(),
        policy_version: snapshot.pack.version.clone(),
    };
    let offset = match &page.token {
        None => 0,
        Some(token) if token.is_empty() => 0,
        Some(token) => binding.open(token)?,
    };
    let limit = page
        .limit
        .map_or(DEFAULT_PAGE_LIMIT, |limit| {
            usize::try_from(limit).unwrap_or(MAX_PAGE_LIMIT)
        })
        .clamp(1, MAX_PAGE_LIMIT);
    let key = SearchKey::new(*digest, &snapshot);
    let found = match (searched, state.search_cache.get(&key)) {
        // The same search on the same snapshot: the same results.
        (_, Some(found)) => found,
        // A type name that cannot exist finds nothing.
        (None, None) => Arc::new(Vec::new()),
        (Some(searched), None) => {
            let job_snapshot = snapshot.clone();
            let caller_gone = StopOnDrop::default();
            let stop = caller_gone.0.clone();
            let metrics = state.metrics.clone();
            let found = state
                .cpu
                .run(move || {
                    let started = Instant::now();
                    let found = search_while(
                        &job_snapshot.pack,
                        &job_snapshot.entities,
                        &query,
                        &searched,
                        || !stop.load(Ordering::Relaxed),
                    );
                    let (end, results) = match &found {
                        Some(found) => (SearchEnd::Answered, found.len()),
                        None => (SearchEnd::Stopped, 0),
                    };
                    metrics
                        .search
                        .record_search(kind(&searched), end, results, started.elapsed());
                    found
                })
                .await?
                // Only a dropped request stops a search, and then nobody
                // reads this answer.
                .ok_or(ApiError::Internal)?;
            let found = Arc::new(found);
            state.search_cache.put(key, found.clone());
            found
        }
    };
    let total = found.len();
    let end = offset.saturating_add(limit).min(total);
    let results: Vec<T> = found
        .get(offset.min(end)..end)
        .unwrap_or_default()
        .iter()
        .map(show)
        .collect();
    let next_token = if end < total {
        binding.seal(end)
    } else {
        String::new()
    };
    Ok(with_versions(
        Json(SearchResponse {
            page: PageResponse {
                next_token,
                count: results.len(),
                total,
            },
            results,
        }),
        &snapshot,
    ))
}

fn kind(searched: &Searched) -> SearchKind {
    match searched {
        Searched::Subjects(_) => SearchKind::Subject,
        Searched::Resources(_) => SearchKind::Resource,
        Searched::Actions => SearchKind::Action,
    }
}

/// Set when the request that started a search is dropped (its timeout
/// fired or its client went away), which the search reads between
/// decisions: a search nobody waits for gives its core back.
#[derive(Default)]
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What a page token is bound to.
struct Binding {
    digest: [u8; 32],
    revision: u64,
    policy_version: String,
}

impl Binding {
    fn mac(&self, offset: usize) -> [u8; 32] {
        let mut message = Vec::with_capacity(80 + self.policy_version.len());
        message.extend_from_slice(&(offset as u64).to_be_bytes());
        message.extend_from_slice(&self.revision.to_be_bytes());
        message.extend_from_slice(&self.digest);
        message.extend_from_slice(self.policy_version.as_bytes());
        hmac_sha256(key(), &message)
    }

    /// The token for the page starting at `offset`.
    fn seal(&self, offset: usize) -> String {
        format!("{offset:x}.{}", hex(&self.mac(offset)))
    }

    /// The offset a token stands for, if this process made it for this
    /// request and this snapshot.
    fn open(&self, token: &str) -> Result<usize, ApiError> {
        let refused = || {
            ApiError::InvalidRequest(
                "`page.token` is not a token for this request on the current data: \
                 search again without it"
                    .to_string(),
            )
        };
        let (text, mac) = token.split_once('.').ok_or_else(refused)?;
        let offset = usize::from_str_radix(text, 16).map_err(|_| refused())?;
        // One spelling per token: `01` is not `1`.
        if format!("{offset:x}") != text {
            return Err(refused());
        }
        let expected = hex(&self.mac(offset));
        if bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            Ok(offset)
        } else {
            Err(refused())
        }
    }
}

/// The per-process page-token key.
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        let (first, second) = key.split_at_mut(16);
        first.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        second.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key
    })
}

/// HMAC-SHA256 (RFC 2104) with a 32-byte key.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut inner_pad = [0x36u8; 64];
    let mut outer_pad = [0x5cu8; 64];
    for (index, byte) in key.iter().enumerate() {
        if let (Some(inner), Some(outer)) = (inner_pad.get_mut(index), outer_pad.get_mut(index)) {
            *inner ^= byte;
            *outer ^= byte;
        }
    }
    let inner = Sha256::new()
        .chain_update(inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_style_vector() {
        // RFC 4231 test case 2's message under a 32-byte key of 0x0b,
        // cross-checked with `openssl dgst -sha256 -mac HMAC`.
        let mac = hmac_sha256(&[0x0b; 32], b"Hi There");
        assert_eq!(
            hex(&mac),
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
    }

    #[test]
    fn a_token_opens_only_for_its_binding() {
        let binding = Binding {
            digest: [1; 32],
            revision: 7,
            policy_version: "v".to_string(),
        };
        let token = binding.seal(100);
        assert_eq!(binding.open(&token).unwrap(), 100);
        let other = Binding {
            revision: 8,
            ..Binding {
                digest: [1; 32],
                revision: 7,
                policy_version: "v".to_string(),
            }
        };
        assert!(other.open(&token).is_err());
        let forged = token.replacen("64.", "c8.", 1);
        assert!(binding.open(&forged).is_err());
        assert!(binding.open("garbage").is_err());
    }
}

/// A search answered from kept results must be of the snapshot served now,
/// even when a new one has the same revision (a Redis restarted empty).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod kept_results {
    use std::time::SystemTime;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::engine::{PackSources, PolicyPack};
    use crate::entities::{load_entities_file, EntityMap};
    use crate::http::{router, AppState};
    use crate::state::{SharedState, Snapshot};

    fn snapshot(demo: bool) -> Snapshot {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let pack = PolicyPack::load(&PackSources {
            policies: root.join("policies"),
            schema: root.join("schema"),
        })
        .unwrap();
        let entities = if demo {
            load_entities_file(&root.join("demo/entities.json"), &pack.schema).unwrap()
        } else {
            Vec::new()
        };
        Snapshot {
            pack: std::sync::Arc::new(pack),
            entities: EntityMap::from_entities(entities, 1),
            pack_loaded_at: SystemTime::now(),
        }
    }

    async fn search(state: &AppState) -> String {
        let body = r#"{"principal": {"type": "User", "id": "paula"},
            "action": {"type": "Action", "id": "UseEnvironment"}, "resource": {"type": "Environment"}}"#;
        let request = Request::builder()
            .method("POST")
            .uri("/v1/search")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = router(state.clone()).oneshot(request).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn another_snapshot_at_the_same_revision_is_searched_again() {
        let state = AppState::new(std::sync::Arc::new(SharedState::ready(snapshot(true))));
        let before = search(&state).await;
        assert!(before.contains("acme-prod"), "{before}");
        state.shared.swap(snapshot(false));
        let after = search(&state).await;
        assert!(after.contains(r#""results":[]"#), "{after}");
    }
}
