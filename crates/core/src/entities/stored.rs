//! One entity as the store keeps it: compact, and turned into a Cedar
//! `Entity` only when a request's slice needs it.
//!
//! Why not keep Cedar's `Entity`: it holds its attributes in a `BTreeMap`
//! whose first node is a fixed 11-slot array of 128-byte values, so even a
//! user with two attributes costs about 3.5 KiB. A million entities did not
//! fit the memory budget. This form keeps the same data in a quarter of
//! that, and a slice needs only a handful of entities per request, each
//! rebuilt in about a microsecond (`benches/engine.rs` measures it).

use std::collections::{HashMap, HashSet};

use cedar_policy::{Entity, EntityUid, EvalResult, RestrictedExpression};
use cedar_policy_core::ast;
use cedar_policy_core::evaluator::RestrictedEvaluator;
use cedar_policy_core::extensions::Extensions;

use super::AttributeReads;

/// An attribute or tag value, as validated when the entity was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// `true` or `false`.
    Bool(bool),
    /// A 64-bit integer.
    Long(i64),
    /// A string.
    String(Box<str>),
    /// A reference to another entity (which may not exist).
    Entity(Box<EntityUid>),
    /// A set (duplicates already removed by Cedar).
    Set(Box<[AttrValue]>),
    /// A record.
    Record(Box<[(Box<str>, AttrValue)]>),
    /// An extension value (`ip(..)`, `decimal(..)`, `datetime(..)`, ...) as
    /// Cedar prints it: a restricted expression that parses back to it.
    Extension(Box<str>),
}

/// Why a stored entity could not be turned into (or from) Cedar's form.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("entity `{uid}`: {message}")]
pub struct ConversionError {
    /// The entity concerned.
    pub uid: String,
    /// What went wrong.
    pub message: String,
}

/// An entity's uid, attributes, tags and direct parents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntity {
    uid: EntityUid,
    attrs: Box<[(Box<str>, AttrValue)]>,
    tags: Box<[(Box<str>, AttrValue)]>,
    /// Direct parents, sorted; ancestors are found by walking these.
    pub parents: Box<[EntityUid]>,
}

impl StoredEntity {
    /// Takes the data out of a parsed (and schema-checked) Cedar entity.
    pub fn new(entity: Entity) -> Result<Self, ConversionError> {
        let uid = entity.uid();
        let fail = |message: String| ConversionError {
            uid: uid.to_string(),
            message,
        };
        let convert = |(name, value): (&str, Result<EvalResult, _>)| {
            value
                .map(|v| (Box::<str>::from(name), AttrValue::from_eval(&v)))
                .map_err(|e: cedar_policy::PartialValueToValueError| fail(e.to_string()))
        };
        let mut attrs = entity.attrs().map(convert).collect::<Result<Vec<_>, _>>()?;
        attrs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tags = entity.tags().map(convert).collect::<Result<Vec<_>, _>>()?;
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        // Cedar offers the parents only by taking the entity apart.
        let (_, _, parents) = entity.into_inner();
        Ok(Self {
            uid,
            attrs: attrs.into_boxed_slice(),
            tags: tags.into_boxed_slice(),
            parents: canonical_parents(parents.into_iter().collect()),
        })
    }

    /// Assembles an entity whose parts were checked against the schema
    /// without Cedar (`conform`): attributes and tags sorted by name, set
    /// elements in Cedar's order. Parents are put in the same order as
    /// [`StoredEntity::new`] puts them, without repeats.
    pub(super) fn from_checked_parts(
        uid: EntityUid,
        attrs: Vec<(Box<str>, AttrValue)>,
        tags: Vec<(Box<str>, AttrValue)>,
        parents: Vec<EntityUid>,
    ) -> Self {
        Self {
            uid,
            attrs: attrs.into_boxed_slice(),
            tags: tags.into_boxed_slice(),
            parents: canonical_parents(parents),
        }
    }

    /// The entity's uid.
    pub fn uid(&self) -> EntityUid {
        self.uid.clone()
    }

    /// The entity's uid, borrowed.
    pub fn uid_ref(&self) -> &EntityUid {
        &self.uid
    }

    /// The value of attribute `name`, if the entity has it.
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attrs
            .binary_search_by(|(attr, _)| attr.as_ref().cmp(name))
            .ok()
            .and_then(|at| self.attrs.get(at))
            .map(|(_, value)| value)
    }

    /// The attributes whose value is an entity reference (not inside a set
    /// or record): what the referrer index keys on.
    pub fn entity_attrs(&self) -> impl Iterator<Item = (&str, &EntityUid)> {
        self.attrs.iter().filter_map(|(name, value)| match value {
            AttrValue::Entity(uid) => Some((name.as_ref(), uid.as_ref())),
            _ => None,
        })
    }

    /// Calls `visit(uid, in_set)` with every entity an attribute or tag value
    /// names. Outside sets (`in_set` false) are the only places a policy can
    /// dereference; a set's elements can only be named (compared, or used on
    /// the right of `in`, which needs the *left* side's data, never theirs).
    pub fn for_each_uid<'a>(&'a self, mut visit: impl FnMut(&'a EntityUid, bool)) {
        for (_, value) in self.attrs.iter().chain(self.tags.iter()) {
            value.for_each_uid(false, &mut visit);
        }
    }

    /// Builds Cedar's entity with the given parents (the slice passes the
    /// ancestors a request can name, so Cedar has no closure left to
    /// compute).
    pub fn to_cedar(&self, parents: HashSet<EntityUid>) -> Result<Entity, ConversionError> {
        let fail = |message: String| ConversionError {
            uid: self.uid.to_string(),
            message,
        };
        let attrs = expressions(&self.attrs).map_err(fail)?;
        let tags = expressions(&self.tags).map_err(fail)?;
        Entity::new_with_tags(self.uid.clone(), attrs, parents, tags)
            .map_err(|e| fail(e.to_string()))
    }

    /// Builds the engine's own form of the entity, with the given ancestors
    /// (split into direct `parents` and `indirect` ones) taken as its
    /// complete set of ancestors, and only the attributes and tags `reads`
    /// allows. Values are built directly, not evaluated from expressions as
    /// [`StoredEntity::to_cedar`] has Cedar do.
    pub fn to_engine(
        &self,
        parents: HashSet<ast::EntityUID>,
        indirect: HashSet<ast::EntityUID>,
        reads: &AttributeReads,
    ) -> Result<ast::Entity, ConversionError> {
        let fail = |message: String| ConversionError {
            uid: self.uid.to_string(),
            message,
        };
        let read_attrs = self.attrs.iter().filter(|(name, _)| reads.attribute(name));
        let attrs = engine_values(read_attrs).map_err(fail)?;
        let read_tags = self.tags.iter().filter(|_| reads.tags());
        let tags = engine_values(read_tags).map_err(fail)?;
        Ok(ast::Entity::new_with_attr_partial_value(
            self.uid.as_ref().clone(),
            attrs,
            indirect,
            parents,
            tags,
        ))
    }

    /// Builds Cedar's entity with the direct parents only (for JSON output
    /// and re-validation).
    pub fn to_cedar_direct(&self) -> Result<Entity, ConversionError> {
        self.to_cedar(self.parents.iter().cloned().collect())
    }

    /// The entity in Cedar's JSON entity format.
    pub fn to_json_value(&self) -> Result<serde_json::Value, ConversionError> {
        self.to_cedar_direct()?
            .to_json_value()
            .map_err(|e| ConversionError {
                uid: self.uid.to_string(),
                message: e.to_string(),
            })
    }
}

/// Parents sorted by their text (a stable order, whatever order the writer
/// listed them in), each once.
fn canonical_parents(mut parents: Vec<EntityUid>) -> Box<[EntityUid]> {
    parents.sort_by_cached_key(ToString::to_string);
    parents.dedup();
    parents.into_boxed_slice()
}

fn expressions(
    values: &[(Box<str>, AttrValue)],
) -> Result<HashMap<String, RestrictedExpression>, String> {
    values
        .iter()
        .map(|(name, value)| Ok((name.to_string(), value.to_expression()?)))
        .collect()
}

fn engine_values<'a>(
    values: impl Iterator<Item = &'a (Box<str>, AttrValue)>,
) -> Result<Vec<(smol_str::SmolStr, ast::PartialValue)>, String> {
    values
        .map(|(name, value)| Ok((name.as_ref().into(), value.to_engine()?.into())))
        .collect()
}

impl AttrValue {
    /// Converts Cedar's value.
    pub fn from_eval(value: &EvalResult) -> Self {
        match value {
            EvalResult::Bool(b) => Self::Bool(*b),
            EvalResult::Long(n) => Self::Long(*n),
            EvalResult::String(s) => Self::String(s.as_str().into()),
            EvalResult::EntityUid(uid) => Self::Entity(Box::new(uid.clone())),
            EvalResult::Set(set) => Self::Set(set.iter().map(Self::from_eval).collect()),
            EvalResult::Record(record) => Self::Record(
                record
                    .iter()
                    .map(|(k, v)| (Box::<str>::from(k.as_str()), Self::from_eval(v)))
                    .collect(),
            ),
            EvalResult::ExtensionValue(text) => Self::Extension(text.as_str().into()),
        }
    }

    /// Converts back to an expression Cedar evaluates to the same value.
    fn to_expression(&self) -> Result<RestrictedExpression, String> {
        Ok(match self {
            Self::Bool(b) => RestrictedExpression::new_bool(*b),
            Self::Long(n) => RestrictedExpression::new_long(*n),
            Self::String(s) => RestrictedExpression::new_string(s.to_string()),
            Self::Entity(uid) => RestrictedExpression::new_entity_uid(EntityUid::clone(uid)),
            Self::Set(items) => RestrictedExpression::new_set(
                items
                    .iter()
                    .map(Self::to_expression)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Self::Record(fields) => RestrictedExpression::new_record(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.to_string(), v.to_expression()?)))
                    .collect::<Result<Vec<_>, String>>()?,
            )
            .map_err(|e| e.to_string())?,
            Self::Extension(text) => text
                .parse()
                .map_err(|e: cedar_policy::RestrictedExpressionParseError| e.to_string())?,
        })
    }

    /// The engine's value, built directly; only extension values go through
    /// Cedar's parser and evaluator (their text is all the store keeps).
    fn to_engine(&self) -> Result<ast::Value, String> {
        Ok(match self {
            Self::Bool(b) => (*b).into(),
            Self::Long(n) => (*n).into(),
            Self::String(s) => ast::Value::from(s.as_ref()),
            Self::Entity(uid) => ast::Value::from(AsRef::<ast::EntityUID>::as_ref(&**uid).clone()),
            Self::Set(items) => ast::Value::set(
                items
                    .iter()
                    .map(Self::to_engine)
                    .collect::<Result<Vec<_>, _>>()?,
                None,
            ),
            Self::Record(fields) => ast::Value::record(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.as_ref(), v.to_engine()?)))
                    .collect::<Result<Vec<_>, String>>()?,
                None,
            ),
            Self::Extension(text) => {
                let expr: ast::RestrictedExpr = text.parse().map_err(|e| format!("{e}"))?;
                RestrictedEvaluator::new(Extensions::all_available())
                    .interpret(expr.as_borrowed())
                    .map_err(|e| e.to_string())?
            }
        })
    }

    fn for_each_uid<'a>(&'a self, in_set: bool, visit: &mut impl FnMut(&'a EntityUid, bool)) {
        match self {
            Self::Entity(uid) => visit(uid, in_set),
            Self::Set(items) => {
                for item in items.iter() {
                    item.for_each_uid(true, visit);
                }
            }
            Self::Record(fields) => {
                for (_, value) in fields.iter() {
                    value.for_each_uid(in_set, visit);
                }
            }
            _ => {}
        }
    }
}

/// The entity uids in a value: every one goes to `named` (a policy can name
/// it), and those reachable through records but not sets also to `refs` (a
/// policy can dereference them).
pub fn collect_uids(value: &EvalResult, refs: &mut Vec<EntityUid>, named: &mut Vec<EntityUid>) {
    collect_uids_in(value, false, refs, named);
}

fn collect_uids_in(
    value: &EvalResult,
    in_set: bool,
    refs: &mut Vec<EntityUid>,
    named: &mut Vec<EntityUid>,
) {
    match value {
        EvalResult::EntityUid(uid) => {
            if !in_set {
                refs.push(uid.clone());
            }
            named.push(uid.clone());
        }
        EvalResult::Record(record) => {
            for (_, field) in record.iter() {
                collect_uids_in(field, in_set, refs, named);
            }
        }
        EvalResult::Set(items) => {
            for item in items.iter() {
                collect_uids_in(item, true, refs, named);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn round_trip(json: serde_json::Value) {
        let entity = Entity::from_json_value(json.clone(), None).unwrap_or_else(|e| panic!("{e}"));
        let stored = StoredEntity::new(entity.clone()).unwrap_or_else(|e| panic!("{e}"));
        let rebuilt = stored.to_cedar_direct().unwrap_or_else(|e| panic!("{e}"));
        assert!(rebuilt.deep_eq(&entity), "{json}\n{rebuilt:?}\n{entity:?}");
    }

    #[test]
    fn every_kind_of_value_survives_the_compact_form() {
        round_trip(serde_json::json!({
            "uid": {"type": "User", "id": "ana"},
            "attrs": {
                "name": "Ana",
                "age": -7,
                "admin": true,
                "manager": {"__entity": {"type": "User", "id": "bo"}},
                "groups": [{"__entity": {"type": "Group", "id": "g"}}, "x", 3],
                "address": {"city": "Lyon", "owner": {"__entity": {"type": "User", "id": "cy"}},
                            "inner": {"deep": [[1, 2], []]}},
                "ip": {"__extn": {"fn": "ip", "arg": "10.0.0.0/8"}},
                "cost": {"__extn": {"fn": "decimal", "arg": "12.3400"}},
                "when": {"__extn": {"fn": "datetime", "arg": "2024-10-15T11:35:00.000Z"}},
                "ttl": {"__extn": {"fn": "duration", "arg": "1h30m"}},
            },
            "parents": [{"type": "Org", "id": "o"}, {"type": "Group", "id": "g"}],
            "tags": {"team": "red", "lead": {"__entity": {"type": "User", "id": "dee"}}},
        }));
        round_trip(serde_json::json!({
            "uid": {"type": "Org", "id": "o"}, "attrs": {}, "parents": [],
        }));
    }

    #[test]
    fn refs_are_attribute_and_tag_entities_outside_sets() {
        let entity = Entity::from_json_value(
            serde_json::json!({
                "uid": {"type": "User", "id": "ana"},
                "attrs": {
                    "manager": {"__entity": {"type": "User", "id": "bo"}},
                    "groups": [{"__entity": {"type": "Group", "id": "g"}}],
                    "address": {"owner": {"__entity": {"type": "User", "id": "cy"}}},
                },
                "parents": [],
                "tags": {"lead": {"__entity": {"type": "User", "id": "dee"}}},
            }),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let stored = StoredEntity::new(entity).unwrap_or_else(|e| panic!("{e}"));
        let mut refs = Vec::new();
        stored.for_each_uid(|uid, in_set| {
            if !in_set {
                refs.push(uid.to_string());
            }
        });
        refs.sort();
        assert_eq!(refs, [r#"User::"bo""#, r#"User::"cy""#, r#"User::"dee""#]);
    }
}
