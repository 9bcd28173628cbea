//! The wire types of OpenID AuthZEN Authorization API 1.0 (Access
//! Evaluation, Access Evaluations, the metadata document), and their
//! mapping to one Cedar [`DecisionRequest`] (documented in docs/authzen.md).
//!
//! Unknown fields are ignored, as the specification asks; everything else
//! is typed, so a missing `type`, `id` or `name`, or a value of the wrong
//! JSON type, is a 400 before any decision.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::WireUid;
use crate::engine::{DecisionRequest, PolicyPack, RequestEntityMode, RequestEntityPolicy};
use crate::entities::EntityMap;
use crate::http::ApiError;

/// The Cedar context key under which `action.properties` are passed
/// (Cedar actions have no request-time attributes).
pub const ACTION_PROPERTIES_KEY: &str = "action_properties";

/// An AuthZEN subject or resource: `{"type", "id", "properties"?}`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthzenEntity {
    /// The entity type (mapped to the Cedar entity type of the same name).
    #[serde(rename = "type")]
    pub entity_type: String,
    /// The entity id within its type.
    pub id: String,
    /// Attributes the caller asserts: a request entity, admitted only under
    /// the operator's request-entities rules.
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
}

/// An AuthZEN action: `{"name", "properties"?}`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthzenAction {
    /// The action name (Cedar `Action::"name"`).
    pub name: String,
    /// Passed in the Cedar context under [`ACTION_PROPERTIES_KEY`].
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
}

/// Options both evaluation endpoints read (unknown keys are ignored).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct EvaluationOptions {
    /// Batch semantics; `execute_all` when absent.
    #[serde(default)]
    pub evaluations_semantic: Option<EvaluationsSemantic>,
    /// Our extension: answer each decision with a `context` naming the
    /// determining policies (off by default: interop runners compare
    /// decisions exactly).
    #[serde(default)]
    pub include_reasons: bool,
}

/// `options.evaluations_semantic`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationsSemantic {
    /// Decide every item.
    #[default]
    ExecuteAll,
    /// Stop after the first item that is not a permit.
    DenyOnFirstDeny,
    /// Stop after the first permit.
    PermitOnFirstPermit,
}

/// Body of `POST /access/v1/evaluation`.
#[derive(Debug, Clone, Deserialize)]
pub struct EvaluationRequest {
    /// Who asks.
    pub subject: AuthzenEntity,
    /// What they want to do.
    pub action: AuthzenAction,
    /// On what.
    pub resource: AuthzenEntity,
    /// The Cedar context.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// Our `include_reasons` extension.
    #[serde(default)]
    pub options: Option<EvaluationOptions>,
}

/// Body of `POST /access/v1/evaluations`: the top-level keys are defaults
/// that an item's key replaces as a whole. An empty object (`"resource":
/// {}`, as the interop's Todo backend sends when every item names its
/// own) is no default ([`BatchDefault`]).
#[derive(Debug, Deserialize)]
pub struct EvaluationsRequest {
    /// Default subject.
    #[serde(default, deserialize_with = "batch_default")]
    pub subject: Option<BatchDefault<AuthzenEntity>>,
    /// Default action.
    #[serde(default, deserialize_with = "batch_default")]
    pub action: Option<BatchDefault<AuthzenAction>>,
    /// Default resource.
    #[serde(default, deserialize_with = "batch_default")]
    pub resource: Option<BatchDefault<AuthzenEntity>>,
    /// Default context.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// The items, kept raw so that one bad item is an error for that item
    /// only.
    #[serde(default)]
    pub evaluations: Option<Vec<Box<RawValue>>>,
    /// Batch semantics and our `include_reasons` extension.
    #[serde(default)]
    pub options: Option<EvaluationOptions>,
}

/// A top-level subject, action or resource of a batch.
#[derive(Debug, Clone)]
pub enum BatchDefault<T> {
    /// `{}`: no default for the items (a request without items that is
    /// a single evaluation must still be whole).
    Empty,
    /// A whole subject, action or resource.
    Given(T),
}

impl<T: DeserializeOwned> BatchDefault<T> {
    /// The default an item inherits, if any.
    fn for_item(&self) -> Option<T>
    where
        T: Clone,
    {
        match self {
            Self::Empty => None,
            Self::Given(value) => Some(value.clone()),
        }
    }

    /// The value itself, for a single evaluation: `{}` is refused with the
    /// field it lacks.
    fn whole(self) -> Result<T, ApiError> {
        match self {
            Self::Given(value) => Ok(value),
            Self::Empty => serde_json::from_value(Value::Object(Map::new()))
                .map_err(|e| ApiError::InvalidRequest(e.to_string())),
        }
    }
}

/// Reads a [`BatchDefault`]: `null` is none, `{}` is
/// [`BatchDefault::Empty`], anything else is read as a whole subject,
/// action or resource, straight from the body (so its errors keep their
/// positions and messages).
fn batch_default<'de, D, T>(deserializer: D) -> Result<Option<BatchDefault<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_any(BatchDefaultVisitor(PhantomData))
}

struct BatchDefaultVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for BatchDefaultVisitor<T> {
    type Value = Option<BatchDefault<T>>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok(Some(BatchDefault::Empty));
        };
        let rest = FirstKeyThen {
            first: Some(first),
            map,
        };
        given(MapAccessDeserializer::new(rest))
    }

    // Not an object: `T`'s own error ("expected struct ...").
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        given(value.into_deserializer())
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        given(value.into_deserializer())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        given(value.into_deserializer())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        given(value.into_deserializer())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        given(value.into_deserializer())
    }

    fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Self::Value, S::Error> {
        given(SeqAccessDeserializer::new(seq))
    }
}

/// `T` read from `deserializer`, as a given default.
fn given<'de, T, D>(deserializer: D) -> Result<Option<BatchDefault<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(deserializer).map(|value| Some(BatchDefault::Given(value)))
}

/// A map whose first key was already read: that key, then the rest.
struct FirstKeyThen<M> {
    first: Option<String>,
    map: M,
}

impl<'de, M: MapAccess<'de>> MapAccess<'de> for FirstKeyThen<M> {
    type Error = M::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.first.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => self.map.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.map.next_value_seed(seed)
    }
}

/// One item of `evaluations[]`: each key present replaces the default.
#[derive(Debug, Deserialize)]
pub struct EvaluationItem {
    /// Replaces the default subject.
    #[serde(default)]
    pub subject: Option<AuthzenEntity>,
    /// Replaces the default action.
    #[serde(default)]
    pub action: Option<AuthzenAction>,
    /// Replaces the default resource.
    #[serde(default)]
    pub resource: Option<AuthzenEntity>,
    /// Replaces the default context.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

impl EvaluationsRequest {
    /// The request an item stands for: the item's keys over the defaults,
    /// each replacing the default as a whole object.
    pub fn item(&self, raw: &RawValue) -> Result<EvaluationRequest, ApiError> {
        if !raw.get().trim_start().starts_with('{') {
            return Err(ApiError::InvalidRequest(
                "an evaluations item must be a JSON object".to_string(),
            ));
        }
        let item: EvaluationItem =
            serde_json::from_str(raw.get()).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
        let missing = |what: &str| ApiError::InvalidRequest(format!("missing field `{what}`"));
        Ok(EvaluationRequest {
            subject: item
                .subject
                .or_else(|| self.subject.as_ref().and_then(BatchDefault::for_item))
                .ok_or_else(|| missing("subject"))?,
            action: item
                .action
                .or_else(|| self.action.as_ref().and_then(BatchDefault::for_item))
                .ok_or_else(|| missing("action"))?,
            resource: item
                .resource
                .or_else(|| self.resource.as_ref().and_then(BatchDefault::for_item))
                .ok_or_else(|| missing("resource"))?,
            context: item.context.or_else(|| self.context.clone()),
            options: None,
        })
    }

    /// The request itself as a single evaluation (no `evaluations`).
    pub fn single(self) -> Result<EvaluationRequest, ApiError> {
        let missing = |what: &str| ApiError::InvalidRequest(format!("missing field `{what}`"));
        Ok(EvaluationRequest {
            subject: self.subject.ok_or_else(|| missing("subject"))?.whole()?,
            action: self.action.ok_or_else(|| missing("action"))?.whole()?,
            resource: self.resource.ok_or_else(|| missing("resource"))?.whole()?,
            context: self.context,
            options: self.options,
        })
    }
}

impl EvaluationRequest {
    /// The Cedar request: principal `type::"id"`, `Action::"name"`,
    /// resource `type::"id"`; the context with `action.properties` under
    /// [`ACTION_PROPERTIES_KEY`]; non-empty subject or resource
    /// `properties` as request entities (with no parents), which the
    /// decision admits only under the operator's request-entities rules.
    ///
    /// A resource sent without properties, of a type `trust` lets requests
    /// describe (`new-only`) and not in `store`, is a request entity with
    /// no attributes: the PEP names an object its application holds (the
    /// interop's `todo-1`), and an empty description grants nothing the
    /// caller could not get by describing it. Anything else without
    /// properties is looked up in the store as before.
    pub fn into_decision_request(
        self,
        pack: &PolicyPack,
        store: &EntityMap,
        trust: &RequestEntityPolicy,
    ) -> Result<DecisionRequest, ApiError> {
        let principal = uid(&self.subject, "subject", pack)?;
        let resource = uid(&self.resource, "resource", pack)?;
        let action = action_uid(&self.action.name, pack)?;
        let mut context = self.context.unwrap_or_default();
        if let Some(properties) = self.action.properties.filter(|p| !p.is_empty()) {
            if context.contains_key(ACTION_PROPERTIES_KEY) {
                return Err(ApiError::InvalidRequest(format!(
                    "`context.{ACTION_PROPERTIES_KEY}` is where `action.properties` go: \
                     send one or the other"
                )));
            }
            context.insert(ACTION_PROPERTIES_KEY.to_string(), Value::Object(properties));
        }
        let mut entities = Vec::new();
        if let Some(properties) = self.subject.properties.filter(|p| !p.is_empty()) {
            entities.push(request_entity(&principal, properties));
        }
        match self.resource.properties.filter(|p| !p.is_empty()) {
            Some(properties) => entities.push(request_entity(&resource, properties)),
            None if described_by_requests(&resource, &principal, pack, store, trust) => {
                entities.push(request_entity(&resource, Map::new()));
            }
            None => {}
        }
        Ok(DecisionRequest {
            principal,
            action,
            resource,
            context: (!context.is_empty()).then_some(Value::Object(context)),
            entities,
        })
    }
}

/// A subject or resource as a Cedar uid (entity type names as the schema
/// spells them, parsed once).
fn uid(entity: &AuthzenEntity, role: &str, pack: &PolicyPack) -> Result<EntityUid, ApiError> {
    WireUid::Typed {
        entity_type: entity.entity_type.clone(),
        id: entity.id.clone(),
    }
    .to_uid_with(role, &pack.type_names)
}

/// `Action::"name"`; in a pack whose actions live in a namespace, the one
/// action of that name (`Ns::Action::"name"`) when there is exactly one.
/// An unknown name stays `Action::"name"`, which the decision refuses as a
/// schema violation.
fn action_uid(name: &str, pack: &PolicyPack) -> Result<EntityUid, ApiError> {
    let action_type = match pack.type_names.get("Action") {
        Some(known) => known.clone(),
        None => EntityTypeName::from_str("Action").map_err(|_| ApiError::Internal)?,
    };
    let plain = EntityUid::from_type_name_and_id(action_type, EntityId::new(name));
    if pack.actions.contains_key(&plain) {
        return Ok(plain);
    }
    let mut named = pack
        .actions
        .keys()
        .filter(|uid| uid.id().unescaped() == name && uid.type_name().basename() == "Action");
    Ok(match (named.next(), named.next()) {
        (Some(only), None) => only.clone(),
        _ => plain,
    })
}

/// Whether `uid` is an entity the application holds and requests describe:
/// of a type listed under `new-only`, not stored, and one a request may
/// describe (not the principal, not named by a policy: those would be
/// refused, where the plain uid is decided as before).
fn described_by_requests(
    uid: &EntityUid,
    principal: &EntityUid,
    pack: &PolicyPack,
    store: &EntityMap,
    trust: &RequestEntityPolicy,
) -> bool {
    trust.mode == RequestEntityMode::NewOnly
        && trust.types.contains(uid.type_name())
        && store.get(uid).is_none()
        && uid != principal
        && !pack.policy_literals.contains(uid)
        && !store.links().names(uid)
}

/// A request entity in Cedar's JSON format, with no parents (so it cannot
/// join a stored group or roster).
fn request_entity(uid: &EntityUid, properties: Map<String, Value>) -> Value {
    serde_json::json!({
        "uid": {"type": uid.type_name().to_string(), "id": uid.id().unescaped()},
        "attrs": properties,
        "parents": [],
    })
}

/// `{"decision": bool, "context"?}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuthzenDecision {
    /// `true` only for a Cedar Allow.
    pub decision: bool,
    /// Absent unless reasons were asked for, or for an item's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<DecisionContext>,
}

/// The `context` of a decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum DecisionContext {
    /// `{"reason_admin": {"policies", "errors"}}` (with `include_reasons`).
    Reasons {
        /// For the PDP's operators: which policies decided, what failed.
        reason_admin: Reasons,
    },
    /// `{"error": {"status", "message"}}`: an item that could not be decided.
    Error {
        /// Why.
        error: AuthzenErrorBody,
    },
}

/// The determining policies and the evaluation errors of one decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Reasons {
    /// Ids of the policies that determined the decision.
    pub policies: Vec<String>,
    /// Evaluation errors and fail-closed explanations.
    pub errors: Vec<String>,
}

/// `{"status", "message"}`: an error as AuthZEN spells it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuthzenErrorBody {
    /// The HTTP status the error stands for.
    pub status: u16,
    /// For people.
    pub message: String,
}

/// The body of an AuthZEN route's error response: `{"error": {...}}`.
#[derive(Debug, Serialize)]
pub struct AuthzenErrorResponse {
    /// Status and message.
    pub error: AuthzenErrorBody,
}

/// Body of an `/access/v1/evaluations` answer.
#[derive(Debug, Serialize)]
pub struct EvaluationsResponse {
    /// One decision per item decided, in request order.
    pub evaluations: Vec<AuthzenDecision>,
}

/// `GET /.well-known/authzen-configuration`: only the endpoints served.
#[derive(Debug, Serialize)]
pub struct AuthzenConfiguration {
    /// The PDP's public base URL (the `public_url` setting).
    pub policy_decision_point: String,
    /// `…/access/v1/evaluation`.
    pub access_evaluation_endpoint: String,
    /// `…/access/v1/evaluations`.
    pub access_evaluations_endpoint: String,
    /// `…/access/v1/search/subject`, when served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_subject_endpoint: Option<String>,
    /// `…/access/v1/search/resource`, when served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_resource_endpoint: Option<String>,
    /// `…/access/v1/search/action`, when served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_action_endpoint: Option<String>,
}

/// The searched entity of a subject or resource search: its `type` (an
/// `id`, if sent, is ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct SearchedEntity {
    /// The type searched for.
    #[serde(rename = "type")]
    pub entity_type: String,
}

/// `page` of a search request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageRequest {
    /// The `next_token` of the previous page.
    #[serde(default)]
    pub token: Option<String>,
    /// Most results on this page.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Body of `POST /access/v1/search/subject` (its `page`, a
/// [`PageRequest`], is read apart: tokens are bound to the rest).
#[derive(Debug, Clone, Deserialize)]
pub struct SubjectSearchRequest {
    /// The subject type searched for.
    pub subject: SearchedEntity,
    /// The action.
    pub action: AuthzenAction,
    /// The resource.
    pub resource: AuthzenEntity,
    /// The Cedar context.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// Body of `POST /access/v1/search/resource` (`page` read apart).
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceSearchRequest {
    /// The subject.
    pub subject: AuthzenEntity,
    /// The action.
    pub action: AuthzenAction,
    /// The resource type searched for.
    pub resource: SearchedEntity,
    /// The Cedar context.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// Body of `POST /access/v1/search/action` (`page` read apart).
#[derive(Debug, Clone, Deserialize)]
pub struct ActionSearchRequest {
    /// The subject.
    pub subject: AuthzenEntity,
    /// The resource.
    pub resource: AuthzenEntity,
    /// The Cedar context.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// A subject or resource found: `{"type", "id"}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FoundEntity {
    /// Its type.
    #[serde(rename = "type")]
    pub entity_type: String,
    /// Its id.
    pub id: String,
}

/// An action found: `{"name"}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FoundAction {
    /// The action's id.
    pub name: String,
}

/// A search answer: one page of results.
#[derive(Debug, Serialize)]
pub struct SearchResponse<T> {
    /// This page's results.
    pub results: Vec<T>,
    /// Where the next page starts.
    pub page: PageResponse,
}

/// `page` of a search answer.
#[derive(Debug, Serialize)]
pub struct PageResponse {
    /// The token of the next page; `""` on the last page.
    pub next_token: String,
    /// Results on this page.
    pub count: usize,
    /// Results on all pages.
    pub total: usize,
}

impl AuthzenEntity {
    /// This entity as a Cedar uid, for a search: properties are refused
    /// (searches decide on stored data only).
    pub fn search_uid(&self, role: &str, pack: &PolicyPack) -> Result<EntityUid, ApiError> {
        if self.properties.as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(ApiError::InvalidRequest(format!(
                "{role}: searches decide on stored entities only; `properties` are not accepted"
            )));
        }
        uid(self, role, pack)
    }
}

/// The Cedar context of a search (`action.properties` under
/// [`ACTION_PROPERTIES_KEY`], as for an evaluation).
pub fn search_context(
    context: Option<Map<String, Value>>,
    action: Option<&AuthzenAction>,
) -> Result<Option<Value>, ApiError> {
    let mut context = context.unwrap_or_default();
    if let Some(properties) = action
        .and_then(|a| a.properties.clone())
        .filter(|p| !p.is_empty())
    {
        if context.contains_key(ACTION_PROPERTIES_KEY) {
            return Err(ApiError::InvalidRequest(format!(
                "`context.{ACTION_PROPERTIES_KEY}` is where `action.properties` go: \
                 send one or the other"
            )));
        }
        context.insert(ACTION_PROPERTIES_KEY.to_string(), Value::Object(properties));
    }
    Ok((!context.is_empty()).then_some(Value::Object(context)))
}

/// [`action_uid`] for the HTTP layer.
pub fn action_named(name: &str, pack: &PolicyPack) -> Result<EntityUid, ApiError> {
    action_uid(name, pack)
}
