//! Wire types of the native "which?" routes: `POST /v1/search` (the same
//! search and pages as AuthZEN's, in Cedar's shapes) and `POST /v1/plan`.

use cedar_policy::EntityUid;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::WireUid;
use crate::engine::{Plan, Searched, TypeNames};
use crate::http::ApiError;

/// One of a search's principal, action and resource: a uid, or (for the
/// searched one) a type without an id.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SearchSlot {
    /// `{"type": ..., "id"?: ...}`
    Typed {
        /// Entity type.
        #[serde(rename = "type")]
        entity_type: String,
        /// Entity id; absent on the searched one.
        #[serde(default)]
        id: Option<String>,
    },
    /// `Type::"id"`
    Text(String),
}

/// Body of `POST /v1/search` (its `page` is read apart: page tokens are
/// bound to the rest).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeSearchRequest {
    /// The principal, or the principal type searched for.
    pub principal: SearchSlot,
    /// The action; absent (or `{"type": "Action"}`) to search actions.
    #[serde(default)]
    pub action: Option<SearchSlot>,
    /// The resource, or the resource type searched for.
    pub resource: SearchSlot,
    /// The context record.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// A parsed native search: what is searched, and the known uids.
pub struct NativeSearch {
    /// What is searched for.
    pub searched: Searched,
    /// The principal, unless searched.
    pub principal: Option<EntityUid>,
    /// The action, unless searched.
    pub action: Option<EntityUid>,
    /// The resource, unless searched.
    pub resource: Option<EntityUid>,
    /// The context.
    pub context: Option<Value>,
}

impl SearchSlot {
    /// A uid, or `Err(type)` when only a type is given.
    fn read(&self, role: &str, known: &TypeNames) -> Result<Result<EntityUid, String>, ApiError> {
        match self {
            Self::Typed {
                entity_type,
                id: None,
            } => Ok(Err(entity_type.clone())),
            Self::Typed {
                entity_type,
                id: Some(id),
            } => WireUid::Typed {
                entity_type: entity_type.clone(),
                id: id.clone(),
            }
            .to_uid_with(role, known)
            .map(Ok),
            Self::Text(text) => WireUid::Text(text.clone()).to_uid_with(role, known).map(Ok),
        }
    }
}

impl NativeSearchRequest {
    /// Which one is searched (exactly one is given as a type) and the rest.
    pub fn into_search(self, known: &TypeNames) -> Result<NativeSearch, ApiError> {
        let principal = self.principal.read("principal", known)?;
        let resource = self.resource.read("resource", known)?;
        let action = match &self.action {
            None => Err("Action".to_string()),
            Some(slot) => slot.read("action", known)?,
        };
        let entity_type = |name: String, role: &str| {
            name.parse().map_err(|e| {
                ApiError::InvalidRequest(format!(
                    "{role}: `{name}` is not a valid entity type: {e}"
                ))
            })
        };
        let searched = match (&principal, &action, &resource) {
            (Err(name), Ok(_), Ok(_)) => {
                Searched::Subjects(entity_type(name.clone(), "principal")?)
            }
            (Ok(_), Ok(_), Err(name)) => {
                Searched::Resources(entity_type(name.clone(), "resource")?)
            }
            (Ok(_), Err(_), Ok(_)) => Searched::Actions,
            _ => {
                return Err(ApiError::InvalidRequest(
                    "exactly one of `principal`, `action` and `resource` is searched: \
                     give it as a type without an `id` (or leave `action` out)"
                        .to_string(),
                ))
            }
        };
        let context = self.context.filter(|c| !c.is_empty()).map(Value::Object);
        Ok(NativeSearch {
            searched,
            principal: principal.ok(),
            action: action.ok(),
            resource: resource.ok(),
            context,
        })
    }
}

/// Body of `POST /v1/plan`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// Who is asking.
    pub principal: WireUid,
    /// What they want to do.
    pub action: WireUid,
    /// The type of the resources the plan is for.
    pub resource_type: String,
    /// The context record.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// Answer of `POST /v1/plan`.
#[derive(Debug, Serialize)]
pub struct PlanResponse {
    /// `always_allow`, `always_deny` or `conditional`.
    pub kind: &'static str,
    /// The condition tree of a `conditional` plan (docs/plans.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
}

impl From<&Plan> for PlanResponse {
    fn from(plan: &Plan) -> Self {
        match plan {
            Plan::AlwaysAllow => Self {
                kind: "always_allow",
                condition: None,
            },
            Plan::AlwaysDeny => Self {
                kind: "always_deny",
                condition: None,
            },
            Plan::Conditional(condition) => Self {
                kind: "conditional",
                condition: Some(condition.to_json()),
            },
        }
    }
}
