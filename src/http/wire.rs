//! The API's wire types. Nothing else in the crate derives serde for HTTP.

use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::engine::{Decision, DecisionRequest, Verdict};

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
        match self {
            Self::Typed { entity_type, id } => {
                let type_name = EntityTypeName::from_str(entity_type).map_err(|e| {
                    ApiError::InvalidRequest(format!(
                        "{role}: `{entity_type}` is not a valid entity type: {e}"
                    ))
                })?;
                Ok(EntityUid::from_type_name_and_id(
                    type_name,
                    EntityId::new(id),
                ))
            }
            Self::Text(text) => EntityUid::from_str(text).map_err(|e| {
                ApiError::InvalidRequest(format!(
                    "{role}: `{text}` is not an entity uid like `User::\"alice\"`: {e}"
                ))
            }),
        }
    }
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
}

impl AuthorizeRequest {
    /// Turns wire uids into Cedar ones.
    pub fn into_decision_request(self) -> Result<DecisionRequest, ApiError> {
        if let Some(context) = &self.context {
            if !context.is_object() && !context.is_null() {
                return Err(ApiError::InvalidRequest(
                    "context must be a JSON object".to_string(),
                ));
            }
        }
        Ok(DecisionRequest {
            principal: self.principal.to_uid("principal")?,
            action: self.action.to_uid("action")?,
            resource: self.resource.to_uid("resource")?,
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
    /// The requests, decided in order against one snapshot.
    pub requests: Vec<serde_json::Value>,
}

/// A decision on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthorizeResponse {
    /// `Allow` or `Deny`.
    pub decision: String,
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
            decision: match decision.verdict {
                Verdict::Allow => "Allow",
                Verdict::Deny => "Deny",
            }
            .to_string(),
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
