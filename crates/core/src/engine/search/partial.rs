//! Cedar's type-aware partial evaluation (`tpe`) of a request whose
//! principal or resource is unknown (only its type is given): what is left
//! of each policy once everything known about the request is filled in.
//!
//! What Cedar is told is known: the known principal or resource, the
//! entities its attributes reach (to the pack's dereference depth), the
//! context and the entities it names, each with its complete set of
//! ancestors walked in the store. Every other entity is unknown to Cedar,
//! so its attributes and ancestry stay in the residual: the residual is
//! never narrower than the truth, only less simplified.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use cedar_policy::{
    Context, Entities, EntityTypeName, EntityUid, PartialEntities, PartialEntityUid,
    PartialRequest, Policy,
};
use serde_json::Value;

use super::super::PolicyPack;
use crate::entities::{EntityMap, StoredEntity};

/// The most entities handed to Cedar as known: a request's reach is a
/// handful; past this, the rest are left unknown (less simplification,
/// never a wrong residual).
const MAX_KNOWN: usize = 256;

/// Which side of the request is unknown.
#[derive(Debug, Clone)]
pub enum Unknown {
    /// The principal, of this type; the resource is known.
    Principal(EntityTypeName),
    /// The resource, of this type; the principal is known.
    Resource(EntityTypeName),
}

/// What partial evaluation left.
#[derive(Debug, Clone)]
pub enum Residuals {
    /// The same answer whatever the unknown entity is (Cedar's answer,
    /// before our fail-closed rules).
    Decided(cedar_policy::Decision),
    /// Some policies depend on the unknown entity.
    Open(Open),
}

/// The policies that depend on the unknown entity, as the JSON form (EST)
/// of their conditions, and what is already known of the others.
#[derive(Debug, Clone, Default)]
pub struct Open {
    /// Permits that may or may not apply: one condition each.
    pub permits: Vec<Value>,
    /// Forbids that may or may not apply: one condition each.
    pub forbids: Vec<Value>,
    /// A permit applies whatever the unknown entity is.
    pub permit_holds: bool,
    /// A forbid errors whatever the unknown entity is (our decisions deny
    /// then: fail closed).
    pub forbid_errors: bool,
}

/// Why partial evaluation gave no residual.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PartialError {
    /// The request cannot fit the schema whatever the unknown entity is
    /// (the action does not apply to these types, or the context is of
    /// the wrong shape): every decision on it would be refused.
    #[error("{0}")]
    Request(String),
    /// The known principal or resource is not stored: every decision
    /// denies (fail closed).
    #[error("`{0}` is not stored")]
    NotStored(String),
    /// Cedar's partial evaluation failed, or a residual could not be read.
    #[error("partial evaluation: {0}")]
    Evaluation(String),
}

/// Partially evaluates `action` for `known` (the principal when the
/// resource is unknown, the resource otherwise) with `context`.
pub fn partially_evaluate(
    pack: &PolicyPack,
    store: &EntityMap,
    known: &EntityUid,
    action: &EntityUid,
    unknown: &Unknown,
    context: Option<&Value>,
) -> Result<Residuals, PartialError> {
    if store.get(known).is_none() {
        return Err(PartialError::NotStored(known.to_string()));
    }
    let context_json = context;
    let context = match context {
        None | Some(Value::Null) => Context::empty(),
        Some(json) => Context::from_json_value(json.clone(), Some((&pack.schema, action)))
            .map_err(|e| PartialError::Request(e.to_string()))?,
    };
    let context_named = context_entities(&context, context_json);
    let known_uid = PartialEntityUid::from_concrete(known.clone());
    let (principal, resource) = match unknown {
        Unknown::Principal(ty) => (PartialEntityUid::new(ty.clone(), None), known_uid),
        Unknown::Resource(ty) => (known_uid, PartialEntityUid::new(ty.clone(), None)),
    };
    let request = PartialRequest::new(
        principal,
        action.clone(),
        resource,
        Some(context),
        &pack.schema,
    )
    .map_err(|e| PartialError::Request(e.to_string()))?;
    let roots: Vec<&EntityUid> = std::iter::once(known).chain(context_named.iter()).collect();
    let entities = known_entities(pack, store, &roots)?;
    let evaluation = |e: &dyn std::fmt::Display| PartialError::Evaluation(e.to_string());
    let entities = Entities::from_entities(entities, None).map_err(|e| evaluation(&e))?;
    let entities =
        PartialEntities::from_concrete(entities, &pack.schema).map_err(|e| evaluation(&e))?;
    // Template links stored as data are linked per decision (engine::links)
    // and not part of the policies partially evaluated here: with any link
    // stored, say so (search then confirms every entity of the type, and a
    // plan is refused) rather than give an answer that leaves them out.
    if !store.links().is_empty() {
        return Err(PartialError::Evaluation(
            "template links stored as data are not partially evaluated yet".to_string(),
        ));
    }
    let policies = pack.policies_for(action);
    let response = policies
        .tpe(&request, &entities, &pack.schema)
        .map_err(|e| evaluation(&e))?;
    // A forbid that errors whatever the unknown is denies every decision
    // (fail closed); Cedar's partial decision would ignore it.
    if response.error_forbids().next().is_some() {
        return Ok(Residuals::Decided(cedar_policy::Decision::Deny));
    }
    if let Some(decision) = response.decision() {
        return Ok(Residuals::Decided(decision));
    }
    let conditions = |ids: Vec<cedar_policy::PolicyId>| -> Result<Vec<Value>, PartialError> {
        ids.iter()
            .map(|id| {
                let policy = response.get_policy(id).ok_or_else(|| {
                    PartialError::Evaluation(format!("no residual for policy `{id}`"))
                })?;
                condition(&policy)
            })
            .collect()
    };
    let permits = conditions(response.residual_permits().cloned().collect())?;
    let forbids = conditions(response.residual_forbids().cloned().collect())?;
    let permit_holds = response.true_permits().next().is_some();
    let forbid_errors = response.error_forbids().next().is_some();
    Ok(Residuals::Open(Open {
        permits,
        forbids,
        permit_holds,
        forbid_errors,
    }))
}

/// A residual policy's condition as one EST expression: its `when` bodies
/// and negated `unless` bodies, joined by `&&`. Cedar gives residuals an
/// unconstrained scope; anything else is refused rather than misread.
fn condition(policy: &Policy) -> Result<Value, PartialError> {
    let est = policy
        .to_json()
        .map_err(|e| PartialError::Evaluation(e.to_string()))?;
    for variable in ["principal", "action", "resource"] {
        let op = est.get(variable).and_then(|scope| scope.get("op"));
        if op.and_then(Value::as_str) != Some("All") {
            return Err(PartialError::Evaluation(format!(
                "residual of `{}` constrains its {variable} scope",
                policy.id()
            )));
        }
    }
    let clauses = est
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut joined: Option<Value> = None;
    for clause in clauses {
        let body = clause.get("body").cloned().unwrap_or(Value::Null);
        let part = match clause.get("kind").and_then(Value::as_str) {
            Some("when") => body,
            Some("unless") => serde_json::json!({"!": {"arg": body}}),
            _ => {
                return Err(PartialError::Evaluation(format!(
                    "residual of `{}` has a condition of an unknown kind",
                    policy.id()
                )))
            }
        };
        joined = Some(match joined {
            None => part,
            Some(left) => serde_json::json!({"&&": {"left": left, "right": part}}),
        });
    }
    Ok(joined.unwrap_or_else(|| serde_json::json!({"Value": true})))
}

/// The entities the context's values name (records and sets included).
fn context_entities(context: &Context, json: Option<&Value>) -> Vec<EntityUid> {
    let mut refs = Vec::new();
    let mut named = Vec::new();
    for key in json
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.keys())
    {
        if let Some(value) = context.get(key) {
            crate::entities::collect_uids(&value, &mut refs, &mut named);
        }
    }
    named
}

/// The known entities: `roots` and the entities their attributes reach,
/// each with all its ancestors, as Cedar entities.
fn known_entities(
    pack: &PolicyPack,
    store: &EntityMap,
    roots: &[&EntityUid],
) -> Result<Vec<cedar_policy::Entity>, PartialError> {
    let depth = pack.slice_limits.depth.unwrap_or(u32::MAX);
    let mut seen: HashSet<&EntityUid> = HashSet::new();
    let mut queue: VecDeque<(&EntityUid, u32)> = roots.iter().map(|uid| (*uid, 0)).collect();
    let mut reached: Vec<&Arc<StoredEntity>> = Vec::new();
    while let Some((uid, level)) = queue.pop_front() {
        if reached.len() >= MAX_KNOWN {
            break;
        }
        if !seen.insert(uid) {
            continue;
        }
        let Some(entity) = store.get(uid) else {
            continue;
        };
        reached.push(entity);
        if level < depth {
            entity.for_each_uid(|next, in_set| {
                if !in_set {
                    queue.push_back((next, level.saturating_add(1)));
                }
            });
        }
    }
    reached
        .into_iter()
        .map(|entity| {
            entity
                .to_cedar(ancestors(store, entity))
                .map_err(|e| PartialError::Evaluation(e.to_string()))
        })
        .collect()
}

/// Every ancestor of `entity` in the store (a parent that is not stored
/// is still an ancestor, with none of its own).
pub fn ancestors(store: &EntityMap, entity: &StoredEntity) -> HashSet<EntityUid> {
    let mut found: HashSet<EntityUid> = HashSet::new();
    let mut stack: Vec<&EntityUid> = entity.parents.iter().collect();
    while let Some(uid) = stack.pop() {
        if found.insert(uid.clone()) {
            if let Some(parent) = store.get(uid) {
                stack.extend(parent.parents.iter());
            }
        }
    }
    found
}
