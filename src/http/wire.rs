//! The API's wire types. Nothing else in the crate derives serde for HTTP.

pub mod authzen;
mod operations;
pub mod search;

pub use operations::*;

use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::ApiError;
use crate::engine::{Decision, DecisionRequest, TypeNames, Verdict};

/// An entity uid as clients send it: `{"type": "User", "id": "alice"}` or
/// Cedar's string form `User::"alice"` (which keeps cedar-agent clients working).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum WireUid {
    /// `{"type": ..., "id": ...}`
    Typed {
        /// Entity type, possibly namespaced (`Ns::User`).
        #[serde(rename = "type")]
        entity_type: String,
        /// Entity id.
        id: String,
    },
    /// `Type::"id"`
    Text(String),
}

impl WireUid {
    /// Parses into a Cedar uid; `role` names the field in error messages.
    pub fn to_uid(&self, role: &str) -> Result<EntityUid, ApiError> {
        self.to_uid_with(role, &TypeNames::default())
    }

    /// [`Self::to_uid`], taking type names from `known` (the schema's,
    /// parsed once) instead of running Cedar's parser on every request.
    pub fn to_uid_with(&self, role: &str, known: &TypeNames) -> Result<EntityUid, ApiError> {
        let type_name = |entity_type: &str| match known.get(entity_type) {
            Some(name) => Ok(name.clone()),
            None => EntityTypeName::from_str(entity_type).map_err(|e| {
                ApiError::InvalidRequest(format!(
                    "{role}: `{entity_type}` is not a valid entity type: {e}"
                ))
            }),
        };
        match self {
            Self::Typed { entity_type, id } => Ok(EntityUid::from_type_name_and_id(
                type_name(entity_type)?,
                EntityId::new(id),
            )),
            Self::Text(text) => match plain_uid_text(text) {
                // `Type::"id"` without escapes: no parser needed.
                Some((entity_type, id)) if known.contains_key(entity_type) => Ok(
                    EntityUid::from_type_name_and_id(type_name(entity_type)?, EntityId::new(id)),
                ),
                _ => EntityUid::from_str(text).map_err(|e| {
                    ApiError::InvalidRequest(format!(
                        "{role}: `{text}` is not an entity uid like `User::\"alice\"`: {e}"
                    ))
                }),
            },
        }
    }
}

/// Splits `Type::"id"` into its parts when the id has no escapes or
/// quotes (anything else goes to Cedar's parser).
fn plain_uid_text(text: &str) -> Option<(&str, &str)> {
    let (entity_type, rest) = text.split_once("::\"")?;
    let id = rest.strip_suffix('"')?;
    (!id.contains(['"', '\\'])).then_some((entity_type, id))
}

/// Body of `POST /v1/is_authorized` (and one item of a batch).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// Who is asking.
    pub principal: WireUid,
    /// What they want to do.
    pub action: WireUid,
    /// On what.
    pub resource: WireUid,
    /// The context record.
    #[serde(default)]
    pub context: Option<serde_json::Value>,
    /// Extra entities for this request only.
    #[serde(default)]
    pub entities: Option<Vec<serde_json::Value>>,
    /// The oldest entity revision the caller accepts.
    #[serde(default)]
    pub consistency: Option<Consistency>,
}

/// A consistency token: decide only on data at least this fresh.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    /// The revision a writer got back; the sidecar waits (bounded) for it.
    pub at_least: u64,
}

impl AuthorizeRequest {
    /// Turns wire uids into Cedar ones, with the schema's type names.
    pub fn into_decision_request(self, known: &TypeNames) -> Result<DecisionRequest, ApiError> {
        if let Some(context) = &self.context {
            if !context.is_object() && !context.is_null() {
                return Err(ApiError::InvalidRequest(
                    "context must be a JSON object".to_string(),
                ));
            }
        }
        Ok(DecisionRequest {
            principal: self.principal.to_uid_with("principal", known)?,
            action: self.action.to_uid_with("action", known)?,
            resource: self.resource.to_uid_with("resource", known)?,
            context: self.context,
            entities: self.entities.unwrap_or_default(),
        })
    }
}

/// Body of `POST /v1/is_authorized/batch`: items are parsed one by one so
/// that one bad item does not spoil the others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The requests, decided in order against one snapshot; kept as raw
    /// text so each is parsed once, straight into [`AuthorizeRequest`].
    pub requests: Vec<Box<RawValue>>,
    /// The oldest entity revision the caller accepts, for the whole batch.
    #[serde(default)]
    pub consistency: Option<Consistency>,
}

/// Parses one batch item; a malformed item is an error for that item only.
/// An item is a JSON object (serde would also take an array of the fields
/// in order, which nobody documents and checks could read differently).
pub fn parse_batch_item(raw: &RawValue) -> Result<AuthorizeRequest, ApiError> {
    if !raw.get().starts_with('{') {
        return Err(ApiError::InvalidRequest(
            "a batch item must be a JSON object".to_string(),
        ));
    }
    serde_json::from_str(raw.get()).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

/// Body of a batch answer: one entry per item, in order.
#[derive(Debug, Serialize)]
pub struct BatchResponse {
    /// The answers.
    pub responses: Vec<BatchItem>,
}

/// One answer of a batch: a decision, or why the item was refused.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum BatchItem {
    /// The item was decided.
    Decided(AuthorizeResponse),
    /// The item was refused: `{"error": {"code", "message"}}`.
    Refused {
        /// The same body a single request would get.
        error: ErrorBody,
    },
}

/// Body of `PUT /v1/entities`: entities written as one revision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutEntitiesRequest {
    /// Entities in Cedar's JSON format.
    pub entities: Vec<serde_json::Value>,
    /// Write only if the current revision is exactly this.
    #[serde(default)]
    pub expected_revision: Option<u64>,
}

/// Body of `DELETE /v1/entities`: uids deleted as one revision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteEntitiesRequest {
    /// The entities to delete.
    pub uids: Vec<WireUid>,
    /// Write only if the current revision is exactly this.
    #[serde(default)]
    pub expected_revision: Option<u64>,
}

/// Body of `PUT /v1/policy-links`: template links written as one revision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutLinksRequest {
    /// Links in the Cedar CLI's `--template-linked` form.
    pub links: Vec<serde_json::Value>,
    /// Write only if the current revision is exactly this.
    #[serde(default)]
    pub expected_revision: Option<u64>,
}

/// Body of `DELETE /v1/policy-links`: link ids deleted as one revision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteLinksRequest {
    /// The links to delete.
    pub ids: Vec<String>,
    /// Write only if the current revision is exactly this.
    #[serde(default)]
    pub expected_revision: Option<u64>,
}

/// Query of `GET /v1/policy-links`: one page of the served links.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinksPageQuery {
    /// Most links in the page (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
    /// The previous page's `next`: the page starts after it.
    #[serde(default)]
    pub after: Option<String>,
}

/// `Allow` or `Deny`, as the API spells them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum WireDecision {
    /// At least one permit applied and nothing forbade or failed closed.
    Allow,
    /// Anything else.
    Deny,
}

impl WireDecision {
    /// The name, as in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::Deny => "Deny",
        }
    }
}

impl From<Verdict> for WireDecision {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Allow => Self::Allow,
            Verdict::Deny => Self::Deny,
        }
    }
}

/// A decision on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthorizeResponse {
    /// `Allow` or `Deny`.
    pub decision: WireDecision,
    /// Why.
    pub diagnostics: WireDiagnostics,
    /// Unique id of this decision, for audit trails.
    pub decision_id: String,
    /// The entity revision the decision was made at.
    pub revision: u64,
    /// The policy set version (content hash) the decision was made with.
    pub policy_version: String,
}

/// Determining policies and errors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireDiagnostics {
    /// Ids of the policies that determined the decision.
    pub reason: Vec<String>,
    /// Evaluation errors and fail-closed explanations.
    pub errors: Vec<String>,
}

impl AuthorizeResponse {
    /// Wraps an engine decision.
    pub fn new(decision: Decision, revision: u64, policy_version: &str) -> Self {
        Self {
            decision: decision.verdict.into(),
            diagnostics: WireDiagnostics {
                reason: decision.reasons,
                errors: decision.errors,
            },
            decision_id: uuid::Uuid::now_v7().to_string(),
            revision,
            policy_version: policy_version.to_string(),
        }
    }
}
