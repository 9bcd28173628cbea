//! What each action accepts (principal types, resource types, context
//! fields), so that plain requests are built and checked without Cedar's
//! JSON parser and without its per-request schema check.
//!
//! Cedar's schema-directed context parser first tries each of its JSON value
//! forms in turn and builds an error for every form that does not fit; in the
//! generated request mix (some requests carry one entity reference) that was
//! a sixth of all decision instructions. Most contexts are flat: booleans,
//! integers, strings and entity references in the fields the action
//! declares. Those are built here directly; anything else (sets, records,
//! extension values, a field the schema does not declare, a value of the
//! wrong kind) goes to Cedar's parser, so every error a client sees is still
//! Cedar's.
//!
//! `Request::new` with the schema then checks the whole request again (the
//! types in scope, the context against its type), cloning the context twice.
//! When a request was built here, its principal and resource are of types the
//! action applies to and its context has every required field, each of its
//! declared type, [`BuiltContext::conforms`] and
//! [`RequestShapes::scope_conforms`] say so and the request is built without
//! that second check. Anything less certain (an enumerated
//! type, whose ids Cedar checks; a context parsed by Cedar) keeps Cedar's
//! check. A test compares the two on every kind of request.

use std::collections::{HashMap, HashSet};

use cedar_policy::{Context, EntityId, EntityTypeName, EntityUid, RestrictedExpression, Schema};
use cedar_policy_core::validator::types::{EntityKind, Type};
use cedar_policy_core::validator::ValidatorEntityTypeKind;
use serde_json::{Map, Value};

use super::TypeNames;

/// What a declared context field holds, where it can be built directly.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FieldKind {
    Bool,
    Long,
    String,
    /// A reference to an entity; `Some` names the one type it must have
    /// when that type's ids need no check (not enumerated).
    Entity(Option<EntityTypeName>),
    /// Sets, records, extension types: left to Cedar's parser.
    Other,
}

#[derive(Debug, Clone)]
struct Field {
    kind: FieldKind,
    required: bool,
}

/// One action's scope and context, as declared.
#[derive(Debug, Clone, Default)]
struct ActionShape {
    fields: HashMap<Box<str>, Field, FastHash>,
    /// How many fields are required.
    required: usize,
    /// Principal and resource types the action applies to, enumerated
    /// types left out (their ids are Cedar's to check).
    principals: HashSet<EntityTypeName, FastHash>,
    resources: HashSet<EntityTypeName, FastHash>,
}

/// Looked up three times per decision: a cheap hasher (std's SipHash cost
/// 1.5% of a decision's instructions here).
type FastHash = foldhash::fast::RandomState;

/// What every action accepts.
#[derive(Debug, Clone, Default)]
pub struct RequestShapes {
    by_action: HashMap<EntityUid, ActionShape, FastHash>,
}

/// A context built from JSON, with the entities it names.
#[derive(Debug, Clone)]
pub struct BuiltContext {
    /// The context record.
    pub context: Context,
    /// Entities named by its fields (none of them inside a set).
    pub entities: Vec<EntityUid>,
    /// Every required field is present and every entity reference has the
    /// one type its field declares: the context conforms to the schema.
    pub conforms: bool,
}

impl RequestShapes {
    /// Reads the scope and context type of each of `actions` from the
    /// schema. Actions the schema does not define fully (external ones)
    /// get no shape.
    pub fn new<'a>(schema: &Schema, actions: impl IntoIterator<Item = &'a EntityUid>) -> Self {
        let validator = schema.as_ref();
        let plain_type = |name: &EntityTypeName| {
            validator
                .get_entity_type(name.as_ref())
                .is_some_and(|ty| matches!(ty.kind, ValidatorEntityTypeKind::Standard(_)))
        };
        let by_action = actions
            .into_iter()
            .filter_map(|action| {
                let Some(Type::Record { attrs, .. }) = validator.context_type(action.as_ref())
                else {
                    return None;
                };
                let fields: HashMap<Box<str>, Field, FastHash> = attrs
                    .iter()
                    .map(|(name, attr)| {
                        let field = Field {
                            kind: kind_of(&attr.attr_type, &plain_type),
                            required: attr.is_required,
                        };
                        (Box::from(name.as_str()), field)
                    })
                    .collect();
                let scope = |types: Option<Vec<EntityTypeName>>| -> HashSet<_, FastHash> {
                    types
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|ty| plain_type(ty))
                        .collect()
                };
                let shape = ActionShape {
                    required: fields.values().filter(|f| f.required).count(),
                    fields,
                    principals: scope(
                        schema
                            .principals_for_action(action)
                            .map(|types| types.cloned().collect()),
                    ),
                    resources: scope(
                        schema
                            .resources_for_action(action)
                            .map(|types| types.cloned().collect()),
                    ),
                };
                Some((action.clone(), shape))
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
        let shape = self.by_action.get(action)?;
        let mut pairs = Vec::with_capacity(json.len());
        let mut entities = Vec::new();
        let mut required = 0;
        let mut conforms = true;
        for (name, value) in json {
            let field = shape.fields.get(name.as_str())?;
            required += usize::from(field.required);
            let expression = match (&field.kind, value) {
                (FieldKind::Bool, Value::Bool(b)) => RestrictedExpression::new_bool(*b),
                (FieldKind::Long, Value::Number(n)) => RestrictedExpression::new_long(n.as_i64()?),
                (FieldKind::String, Value::String(s)) => {
                    RestrictedExpression::new_string(s.clone())
                }
                (FieldKind::Entity(expected), Value::Object(reference)) => {
                    let uid = entity_reference(reference, type_names)?;
                    conforms &= expected.as_ref() == Some(uid.type_name());
                    entities.push(uid.clone());
                    RestrictedExpression::new_entity_uid(uid)
                }
                _ => return None,
            };
            pairs.push((name.clone(), expression));
        }
        let context = Context::from_pairs(pairs).ok()?;
        Some(BuiltContext {
            context,
            entities,
            conforms: conforms && required == shape.required,
        })
    }

    /// Whether a request for `action` on these types, with a context that
    /// conforms (see [`BuiltContext::conforms`]; an empty context conforms
    /// when [`RequestShapes::takes_empty_context`]), needs no schema check:
    /// the action applies to both types, neither of them enumerated.
    pub fn scope_conforms(
        &self,
        action: &EntityUid,
        principal: &EntityTypeName,
        resource: &EntityTypeName,
    ) -> bool {
        self.by_action.get(action).is_some_and(|shape| {
            shape.principals.contains(principal) && shape.resources.contains(resource)
        })
    }

    /// Whether `action` declares no required context field, so that an empty
    /// context conforms.
    pub fn takes_empty_context(&self, action: &EntityUid) -> bool {
        self.by_action
            .get(action)
            .is_some_and(|shape| shape.required == 0)
    }
}

fn kind_of(declared: &Type, plain_type: &impl Fn(&EntityTypeName) -> bool) -> FieldKind {
    match declared {
        Type::Bool(cedar_policy_core::validator::types::BoolType::AnyBool) => FieldKind::Bool,
        Type::Long => FieldKind::Long,
        Type::String => FieldKind::String,
        Type::Entity(EntityKind::Entity(lub)) => FieldKind::Entity(
            lub.get_single_entity()
                .map(|ty| EntityTypeName::from(ty.clone()))
                .filter(|ty| plain_type(ty)),
        ),
        _ => FieldKind::Other,
    }
}

/// `{"type": T, "id": I}` or `{"__entity": {"type": T, "id": I}}` (one
/// wrapper at most, as Cedar takes it), with `T` a type the schema declares;
/// any other shape is Cedar's to judge.
fn entity_reference(json: &Map<String, Value>, type_names: &TypeNames) -> Option<EntityUid> {
    match (json.len(), json.get("__entity")) {
        (1, Some(Value::Object(inner))) => type_and_id(inner, type_names),
        _ => type_and_id(json, type_names),
    }
}

/// An object of exactly the two string fields `type` and `id`.
fn type_and_id(json: &Map<String, Value>, type_names: &TypeNames) -> Option<EntityUid> {
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
    use cedar_policy::Request;
    use serde_json::json;

    const SCHEMA: &str = r#"
        entity User;
        entity Env;
        entity Bot;
        entity Color enum ["red"];
        action go appliesTo {
            principal: [User, Color], resource: Env,
            context: { who?: User, n?: Long, ok?: Bool, s?: String, tags?: Set<String>, at?: ipaddr, hue?: Color }
        };
        action strict appliesTo {
            principal: User, resource: [Env, Color], context: { who: User, n: Long }
        };
        action plain appliesTo { principal: User, resource: Env };
    "#;

    fn action(name: &str) -> EntityUid {
        format!("Action::{name:?}").parse().unwrap()
    }

    fn setup() -> (Schema, RequestShapes, TypeNames, EntityUid) {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        let go = action("go");
        let shapes = RequestShapes::new(&schema, [&go, &action("strict"), &action("plain")]);
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
        let plain = action("plain");
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
            json!({"who": {"__entity": {"__entity": {"type": "User", "id": "a"}}}}), // two wrappers
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

    /// What `decide` concludes: whether the request needs Cedar's check.
    fn conforms(
        shapes: &RequestShapes,
        names: &TypeNames,
        action: &EntityUid,
        principal: &EntityUid,
        resource: &EntityUid,
        json: &Value,
    ) -> Option<Context> {
        let fields = json.as_object().unwrap();
        let (context, context_conforms) = if fields.is_empty() {
            (Context::empty(), shapes.takes_empty_context(action))
        } else {
            let built = shapes.build(action, fields, names)?;
            (built.context, built.conforms)
        };
        let scope = shapes.scope_conforms(action, principal.type_name(), resource.type_name());
        (context_conforms && scope).then_some(context)
    }

    #[test]
    fn requests_that_skip_cedars_check_pass_it() {
        let (schema, shapes, names, _) = setup();
        let uid = |text: &str| -> EntityUid { text.parse().unwrap() };
        let principals = [
            uid(r#"User::"a""#),
            uid(r#"Bot::"b""#),
            uid(r#"Color::"red""#),
            uid(r#"Color::"blue""#),
            uid(r#"Env::"e""#),
        ];
        let resources = [
            uid(r#"Env::"e""#),
            uid(r#"Color::"red""#),
            uid(r#"Color::"blue""#),
            uid(r#"User::"a""#),
        ];
        let user = json!({"type": "User", "id": "u"});
        let contexts = [
            json!({}),
            json!({"who": user}),
            json!({"who": {"type": "Bot", "id": "b"}}),
            json!({"who": {"type": "Env", "id": "e"}}),
            json!({"n": 1}),
            json!({"who": user, "n": 1}),
            json!({"who": user, "n": 1, "ok": true}),
            json!({"who": {"__entity": {"type": "User", "id": "u"}}, "n": 2}),
            json!({"n": 1, "ok": true, "s": "x"}),
            json!({"hue": {"type": "Color", "id": "red"}}),
            json!({"hue": {"type": "Color", "id": "blue"}}),
            json!({"ok": 1}),
        ];
        let (mut skipped, mut checked) = (0, 0);
        for action in ["go", "strict", "plain"].map(action) {
            for principal in &principals {
                for resource in &resources {
                    for json in &contexts {
                        let Some(context) =
                            conforms(&shapes, &names, &action, principal, resource, json)
                        else {
                            checked += 1;
                            continue;
                        };
                        skipped += 1;
                        let request = Request::new(
                            principal.clone(),
                            action.clone(),
                            resource.clone(),
                            context,
                            Some(&schema),
                        );
                        assert!(
                            request.is_ok(),
                            "{action} {principal} {resource} {json}: {request:?}"
                        );
                    }
                }
            }
        }
        // Plain requests do skip it: `go` by a user on an environment with
        // any of the seven flat contexts that conform, `strict` with the two
        // that have both of its required fields and no other, `plain` with
        // the empty one.
        assert_eq!(skipped, 7 + 2 + 1, "checked by Cedar: {checked}");
    }
}
