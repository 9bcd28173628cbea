//! Request contexts built straight from JSON where the schema leaves no
//! doubt about what each field is.
//!
//! Cedar's schema-directed context parser first tries each of its JSON value
//! forms in turn and builds an error for every form that does not fit; in the
//! generated request mix (some requests carry one entity reference) that was
//! a sixth of all decision instructions. Most contexts are flat: booleans, integers, strings and
//! entity references in the fields the action declares. Those are built here
//! directly; anything else (sets, records, extension values, a field the
//! schema does not declare, a value of the wrong kind) goes to Cedar's parser,
//! so every error a client sees is still Cedar's. Either way `Request::new`
//! then checks the context against the schema.

use std::collections::HashMap;

use cedar_policy::{Context, EntityId, EntityUid, RestrictedExpression, Schema};
use cedar_policy_core::validator::types::Type;
use serde_json::{Map, Value};

use super::TypeNames;

/// What a declared context field holds, where it can be built directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Bool,
    Long,
    String,
    Entity,
    /// Sets, records, extension types: left to Cedar's parser.
    Other,
}

/// The declared context fields of every action.
#[derive(Debug, Clone, Default)]
pub struct ContextShapes {
    by_action: HashMap<EntityUid, HashMap<Box<str>, FieldKind>>,
}

/// A context built from JSON, with the entities it names.
#[derive(Debug, Clone)]
pub struct BuiltContext {
    /// The context record.
    pub context: Context,
    /// Entities named by its fields (none of them inside a set).
    pub entities: Vec<EntityUid>,
}

impl ContextShapes {
    /// Reads the context type of each of `actions` from the schema.
    pub fn new<'a>(schema: &Schema, actions: impl IntoIterator<Item = &'a EntityUid>) -> Self {
        let validator = schema.as_ref();
        let by_action = actions
            .into_iter()
            .filter_map(|action| {
                let Some(Type::Record { attrs, .. }) = validator.context_type(action.as_ref())
                else {
                    return None;
                };
                let fields = attrs
                    .iter()
                    .map(|(name, attr)| (Box::from(name.as_str()), kind_of(&attr.attr_type)))
                    .collect();
                Some((action.clone(), fields))
            })
            .collect();
        Self { by_action }
    }

    /// Builds the context of a request for `action` from `json` when every
    /// field is a declared boolean, integer, string or entity reference
    /// whose type the schema names; `None` sends the request to Cedar's
    /// parser.
    pub fn build(
        &self,
        action: &EntityUid,
        json: &Map<String, Value>,
        type_names: &TypeNames,
    ) -> Option<BuiltContext> {
        let fields = self.by_action.get(action)?;
        let mut pairs = Vec::with_capacity(json.len());
        let mut entities = Vec::new();
        for (name, value) in json {
            let expression = match (fields.get(name.as_str())?, value) {
                (FieldKind::Bool, Value::Bool(b)) => RestrictedExpression::new_bool(*b),
                (FieldKind::Long, Value::Number(n)) => RestrictedExpression::new_long(n.as_i64()?),
                (FieldKind::String, Value::String(s)) => {
                    RestrictedExpression::new_string(s.clone())
                }
                (FieldKind::Entity, Value::Object(reference)) => {
                    let uid = entity_reference(reference, type_names)?;
                    entities.push(uid.clone());
                    RestrictedExpression::new_entity_uid(uid)
                }
                _ => return None,
            };
            pairs.push((name.clone(), expression));
        }
        let context = Context::from_pairs(pairs).ok()?;
        Some(BuiltContext { context, entities })
    }
}

fn kind_of(declared: &Type) -> FieldKind {
    match declared {
        Type::Bool(_) => FieldKind::Bool,
        Type::Long => FieldKind::Long,
        Type::String => FieldKind::String,
        Type::Entity(_) => FieldKind::Entity,
        _ => FieldKind::Other,
    }
}

/// `{"type": T, "id": I}` or `{"__entity": {"type": T, "id": I}}`, with `T`
/// a type the schema declares; any other shape is Cedar's to judge.
fn entity_reference(json: &Map<String, Value>, type_names: &TypeNames) -> Option<EntityUid> {
    if let (1, Some(Value::Object(inner))) = (json.len(), json.get("__entity")) {
        return entity_reference(inner, type_names);
    }
    if json.len() != 2 {
        return None;
    }
    let type_name = type_names.get(json.get("type")?.as_str()?)?;
    let id = json.get("id")?.as_str()?;
    Some(EntityUid::from_type_name_and_id(
        type_name.clone(),
        EntityId::new(id),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"
        entity User;
        entity Env;
        action go appliesTo {
            principal: User, resource: Env,
            context: { who?: User, n?: Long, ok?: Bool, s?: String, tags?: Set<String>, at?: ipaddr }
        };
        action plain appliesTo { principal: User, resource: Env };
    "#;

    fn setup() -> (Schema, ContextShapes, TypeNames, EntityUid) {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        let go: EntityUid = r#"Action::"go""#.parse().unwrap();
        let plain: EntityUid = r#"Action::"plain""#.parse().unwrap();
        let shapes = ContextShapes::new(&schema, [&go, &plain]);
        let names = schema
            .entity_types()
            .map(|t| (t.to_string(), t.clone()))
            .collect();
        (schema, shapes, names, go)
    }

    /// The fast path must give exactly the context Cedar's parser gives.
    fn same_as_cedar(json: Value) {
        let (schema, shapes, names, go) = setup();
        let built = shapes
            .build(&go, json.as_object().unwrap(), &names)
            .unwrap_or_else(|| panic!("not built directly: {json}"));
        let cedar = Context::from_json_value(json.clone(), Some((&schema, &go))).unwrap();
        assert_eq!(built.context.as_ref(), cedar.as_ref(), "{json}");
    }

    #[test]
    fn flat_contexts_are_built_as_cedar_builds_them() {
        same_as_cedar(json!({"who": {"type": "User", "id": "ana"}, "n": -3, "ok": true, "s": "x"}));
        same_as_cedar(json!({"who": {"__entity": {"type": "User", "id": "a\"b"}}}));
        same_as_cedar(json!({}));
    }

    #[test]
    fn the_named_entities_are_returned() {
        let (_, shapes, names, go) = setup();
        let json = json!({"who": {"type": "User", "id": "ana"}, "n": 1});
        let built = shapes
            .build(&go, json.as_object().unwrap(), &names)
            .unwrap();
        let ana: EntityUid = r#"User::"ana""#.parse().unwrap();
        assert_eq!(built.entities, vec![ana]);
    }

    #[test]
    fn anything_unusual_is_left_to_cedar() {
        let (_, shapes, names, go) = setup();
        let plain: EntityUid = r#"Action::"plain""#.parse().unwrap();
        let left_to_cedar = [
            json!({"tags": ["a"]}),                              // a set
            json!({"at": "10.0.0.1"}),                           // an extension value
            json!({"nope": 1}),                                  // not declared
            json!({"n": "1"}),                                   // wrong kind
            json!({"n": 1.5}),                                   // not an integer
            json!({"n": 18446744073709551615u64}),               // out of range
            json!({"who": {"type": "Nope", "id": "a"}}),         // undeclared type
            json!({"who": {"type": "User", "id": "a", "x": 1}}), // extra key
            json!({"who": {"type": "User"}}),                    // no id
            json!({"who": "User::\"a\""}),                       // not an object
        ];
        for json in left_to_cedar {
            assert!(
                shapes
                    .build(&go, json.as_object().unwrap(), &names)
                    .is_none(),
                "{json}"
            );
        }
        let json = json!({"n": 1});
        assert!(shapes
            .build(&plain, json.as_object().unwrap(), &names)
            .is_none());
    }
}
