//! The short names test tables use: a bare `paula` is the one entity with
//! that id whose type the action accepts in that position, a bare
//! `UseModel` is `Action::"UseModel"`, and a string written `Type::"id"`
//! in a context or fixture is an entity reference.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{EntityTypeName, EntityUid, Schema};

use super::yaml_node::{Mistake, Node, Scalar, Value};
use crate::entities::{EntityMap, StoredEntity};

/// The entity data of a table, with an index from id to uids for name lookup.
#[derive(Debug, Clone)]
pub struct EntitySet {
    /// What the decisions are made against.
    pub map: Arc<EntityMap>,
    by_id: HashMap<String, Vec<EntityUid>>,
}

/// Which side of the request a name stands for.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// The principal.
    Principal,
    /// The resource.
    Resource,
}

impl EntitySet {
    /// Indexes entities (later duplicates replace earlier ones).
    pub fn new(entities: Vec<StoredEntity>) -> Self {
        let map = EntityMap::from_entities(entities, 0);
        let mut by_id: HashMap<String, Vec<EntityUid>> = HashMap::new();
        for entity in map.iter() {
            let uid = entity.uid();
            by_id
                .entry(uid.id().unescaped().to_string())
                .or_default()
                .push(uid);
        }
        for uids in by_id.values_mut() {
            uids.sort_by_cached_key(ToString::to_string);
        }
        Self {
            map: Arc::new(map),
            by_id,
        }
    }

    /// Every entity, for building a table's own set on top of the file's.
    pub fn entities(&self) -> Vec<StoredEntity> {
        self.map.iter().map(|e| StoredEntity::clone(e)).collect()
    }

    /// Resolves a written principal or resource for `action`.
    pub fn resolve(
        &self,
        written: &str,
        action: &EntityUid,
        role: Role,
        schema: &Schema,
    ) -> Result<EntityUid, String> {
        if written.contains("::") {
            return parse_uid(written);
        }
        let allowed: Vec<EntityTypeName> = match role {
            Role::Principal => schema
                .principals_for_action(action)
                .map(|types| types.cloned().collect())
                .unwrap_or_default(),
            Role::Resource => schema
                .resources_for_action(action)
                .map(|types| types.cloned().collect())
                .unwrap_or_default(),
        };
        let candidates: Vec<&EntityUid> = self
            .by_id
            .get(written)
            .map(|uids| {
                uids.iter()
                    .filter(|uid| allowed.contains(uid.type_name()))
                    .collect()
            })
            .unwrap_or_default();
        let role_word = match role {
            Role::Principal => "principal",
            Role::Resource => "resource",
        };
        let types = allowed
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(" or ");
        match candidates.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "no {types} entity has id `{written}` (the {role_word} of `{action}`); \
                 write it as `Type::\"{written}\"` to test an entity that does not exist"
            )),
            many => Err(format!(
                "`{written}` is ambiguous: {}; write the full uid",
                many.iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// Parses `Type::"id"`.
pub fn parse_uid(text: &str) -> Result<EntityUid, String> {
    EntityUid::from_str(text).map_err(|e| format!("`{text}` is not an entity uid: {e}"))
}

/// A bare action name or a full action uid.
pub fn action_uid(written: &str) -> Result<EntityUid, String> {
    if written.contains("::") {
        parse_uid(written)
    } else {
        parse_uid(&format!(
            "Action::{}",
            serde_json::Value::String(written.into())
        ))
    }
}

/// A YAML value (a context, fixture attributes or tags) as Cedar's JSON,
/// `Type::"id"` strings turned into `__entity` references. A record key
/// that is not a string is reported at the key.
pub fn yaml_to_cedar_json(node: &Node) -> Result<serde_json::Value, Mistake> {
    use serde_json::Value as J;
    Ok(match &node.value {
        Value::Scalar(text, scalar) => match scalar {
            Scalar::Null => J::Null,
            Scalar::Bool(b) => J::Bool(*b),
            Scalar::Int(n) => J::from(*n),
            Scalar::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Scalar::Str => entity_ref(text).unwrap_or_else(|| J::String(text.clone())),
        },
        Value::List(items) => J::Array(
            items
                .iter()
                .map(yaml_to_cedar_json)
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => {
            let mut out = serde_json::Map::new();
            for (key, value) in entries {
                let Some(name) = key.as_str() else {
                    return Err(Mistake::at(
                        key,
                        format!("record keys must be strings, found {}", key.describe()),
                    ));
                };
                out.insert(name.to_string(), yaml_to_cedar_json(value)?);
            }
            J::Object(out)
        }
    })
}

/// `{"__entity": {...}}` when `text` is written as an entity uid.
fn entity_ref(text: &str) -> Option<serde_json::Value> {
    if !text.contains("::\"") {
        return None;
    }
    let uid = EntityUid::from_str(text).ok()?;
    Some(serde_json::json!({
        "__entity": { "type": uid.type_name().to_string(), "id": uid.id().unescaped() }
    }))
}

/// Builds a request and checks it against the schema as the engine will:
/// the action exists, the principal and resource types fit it, the context
/// has the declared shape.
pub fn checked_request(
    schema: &Schema,
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: serde_json::Value,
) -> Result<crate::engine::DecisionRequest, String> {
    if schema.principals_for_action(&action).is_none() {
        return Err(format!(
            "unknown action `{action}`: the schema does not declare it"
        ));
    }
    let parsed = cedar_policy::Context::from_json_value(context.clone(), Some((schema, &action)))
        .map_err(|e| format!("context does not match the schema for `{action}`: {e}"))?;
    cedar_policy::Request::new(
        principal.clone(),
        action.clone(),
        resource.clone(),
        parsed,
        Some(schema),
    )
    .map_err(|e| format!("request does not fit the schema: {e}"))?;
    Ok(crate::engine::DecisionRequest {
        principal,
        action,
        resource,
        context: Some(context),
        entities: Vec::new(),
    })
}
