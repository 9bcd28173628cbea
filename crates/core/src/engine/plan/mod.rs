//! Query plans for data the sidecar does not hold: for a principal, an
//! action and a resource *type*, the condition a resource must meet to be
//! allowed, as a tree over the resource's attributes and its place in the
//! hierarchy, for an application to turn into its own database query
//! ([`sql`] is a reference translation to a SQL `WHERE` clause).
//!
//! The tree is what is left of the policies once everything known is
//! filled in (Cedar's type-aware partial evaluation with the resource
//! unknown, [`super::search::partial`]): allowed when some permit's residual
//! holds and no forbid's does. Entities named on the left of `in` against
//! the resource (`User::"ana" in resource.org`) become the exact list of
//! entities the attribute may be (ana and her ancestors, from the store).
//! A residual that does not fit the tree is refused (`Unsupported`),
//! never approximated. The format is in docs/plans.md.

pub mod sql;

use cedar_policy::{EntityTypeName, EntityUid};
use serde_json::{json, Value};

use super::search::narrow::{entity_json, entity_literal, entity_literals, single};
use super::search::partial::{ancestors, partially_evaluate, PartialError, Residuals, Unknown};
use super::PolicyPack;
use crate::entities::{EntityMap, EntityShapes};

/// What a plan says.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Every resource of the type is allowed.
    AlwaysAllow,
    /// No resource of the type is allowed.
    AlwaysDeny,
    /// Resources meeting the condition are allowed.
    Conditional(Condition),
}

/// A condition on one resource. A `path` is a chain of attributes from
/// the resource (empty: the resource itself).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Always true.
    True,
    /// Always false.
    False,
    /// Every one holds.
    And(Vec<Condition>),
    /// At least one holds.
    Or(Vec<Condition>),
    /// It does not hold.
    Not(Box<Condition>),
    /// The value at `path` equals `value`.
    Eq(Vec<String>, Literal),
    /// The value at `path` (a number) compares to `value` by `op`.
    Compare(Vec<String>, CompareOp, i64),
    /// The attribute at the end of `path` is present.
    Has(Vec<String>),
    /// The entity at `path` is one of `entities` or a descendant of one.
    In(Vec<String>, Vec<EntityUid>),
    /// The entity at `path` is exactly one of `entities`.
    OneOf(Vec<String>, Vec<EntityUid>),
    /// The entity at `path` is of this type.
    Is(Vec<String>, EntityTypeName),
}

/// A literal a path is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An entity.
    Entity(EntityUid),
    /// A string.
    String(String),
    /// A 64-bit integer.
    Long(i64),
    /// A boolean.
    Bool(bool),
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Why no plan was made.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The request does not fit the schema.
    #[error("{0}")]
    Request(String),
    /// A residual holds something the condition tree cannot say.
    #[error("the policies' residual cannot be written as a plan: {0}")]
    Unsupported(String),
}

/// The plan for `principal` doing `action` on resources of `resource_type`.
pub fn plan(
    pack: &PolicyPack,
    store: &EntityMap,
    principal: &EntityUid,
    action: &EntityUid,
    resource_type: &EntityTypeName,
    context: Option<&Value>,
) -> Result<Plan, PlanError> {
    if !pack.actions.contains_key(action) {
        return Err(PlanError::Request(format!(
            "unknown action `{action}`: the schema does not declare it"
        )));
    }
    let unknown = Unknown::Resource(resource_type.clone());
    let open = match partially_evaluate(pack, store, principal, action, &unknown, context) {
        Err(PartialError::Request(message)) => return Err(PlanError::Request(message)),
        // Decisions for an unknown principal deny (fail closed).
        Err(PartialError::NotStored(_)) => return Ok(Plan::AlwaysDeny),
        Err(PartialError::Evaluation(message)) => return Err(PlanError::Unsupported(message)),
        Ok(Residuals::Decided(cedar_policy::Decision::Allow)) => return Ok(Plan::AlwaysAllow),
        Ok(Residuals::Decided(cedar_policy::Decision::Deny)) => return Ok(Plan::AlwaysDeny),
        Ok(Residuals::Open(open)) => open,
    };
    // A forbid that errors whatever the resource: our decisions deny.
    if open.forbid_errors {
        return Ok(Plan::AlwaysDeny);
    }
    let reader = Reader {
        store,
        shapes: &pack.entity_shapes,
        resource_type,
    };
    let mut permits = open
        .permits
        .iter()
        .map(|permit| reader.condition(permit))
        .collect::<Result<Vec<_>, _>>()?;
    if open.permit_holds {
        permits.push(Condition::True);
    }
    let forbids = open
        .forbids
        .iter()
        .map(|forbid| reader.condition(forbid))
        .collect::<Result<Vec<_>, _>>()?;
    // Cedar gives residuals in no particular order: sorted, the same
    // question always gets the same plan.
    permits.sort_by_cached_key(|c| c.to_json().to_string());
    let mut forbids = forbids;
    forbids.sort_by_cached_key(|c| c.to_json().to_string());
    let allowed = simplify(Condition::And(vec![
        Condition::Or(permits),
        Condition::Not(Box::new(Condition::Or(forbids))),
    ]));
    Ok(match allowed {
        Condition::True => Plan::AlwaysAllow,
        Condition::False => Plan::AlwaysDeny,
        condition => Plan::Conditional(condition),
    })
}

/// Reads EST residuals (over `resource`) into conditions.
struct Reader<'a> {
    store: &'a EntityMap,
    /// What the schema declares, to type the entity at a path.
    shapes: &'a EntityShapes,
    /// The type of `resource`.
    resource_type: &'a EntityTypeName,
}

impl Reader<'_> {
    fn condition(&self, expr: &Value) -> Result<Condition, PlanError> {
        let unsupported = || PlanError::Unsupported(format!("`{expr}`"));
        // A boolean attribute used as a condition (`resource.public`).
        if let Some(path) = path(expr) {
            return Ok(Condition::Eq(path, Literal::Bool(true)));
        }
        let (op, operands) = single(expr).ok_or_else(unsupported)?;
        let operand = |name: &str| operands.get(name).ok_or_else(unsupported);
        Ok(match op {
            "Value" => match operands {
                Value::Bool(true) => Condition::True,
                Value::Bool(false) => Condition::False,
                _ => return Err(unsupported()),
            },
            "&&" => Condition::And(vec![
                self.condition(operand("left")?)?,
                self.condition(operand("right")?)?,
            ]),
            "||" => Condition::Or(vec![
                self.condition(operand("left")?)?,
                self.condition(operand("right")?)?,
            ]),
            "!" => Condition::Not(Box::new(self.condition(operand("arg")?)?)),
            "==" | "!=" => {
                let (left, right) = (operand("left")?, operand("right")?);
                let (path, value) = match (path(left), literal(right)) {
                    (Some(path), Some(value)) => (path, value),
                    _ => (
                        path(right).ok_or_else(unsupported)?,
                        literal(left).ok_or_else(unsupported)?,
                    ),
                };
                let equal = Condition::Eq(path, value);
                if op == "==" {
                    equal
                } else {
                    Condition::Not(Box::new(equal))
                }
            }
            "<" | "<=" | ">" | ">=" => {
                let (left, right) = (operand("left")?, operand("right")?);
                let long = |e: &Value| match literal(e) {
                    Some(Literal::Long(n)) => Some(n),
                    _ => None,
                };
                let (path, op, value) = match (path(left), long(right)) {
                    (Some(path), Some(n)) => (path, compare_op(op), n),
                    _ => (
                        path(right).ok_or_else(unsupported)?,
                        flip(compare_op(op)),
                        long(left).ok_or_else(unsupported)?,
                    ),
                };
                Condition::Compare(path, op, value)
            }
            "has" => {
                let mut path = path(operand("left")?).ok_or_else(unsupported)?;
                path.push(
                    operand("attr")?
                        .as_str()
                        .ok_or_else(unsupported)?
                        .to_string(),
                );
                Condition::Has(path)
            }
            "in" => self.membership(operand("left")?, operand("right")?)?,
            "is" => {
                let path = path(operand("left")?).ok_or_else(unsupported)?;
                let entity_type = operand("entity_type")?
                    .as_str()
                    .and_then(|name| name.parse().ok())
                    .ok_or_else(unsupported)?;
                let is = Condition::Is(path, entity_type);
                match operands.get("in") {
                    None => is,
                    Some(within) => {
                        Condition::And(vec![is, self.membership(operand("left")?, within)?])
                    }
                }
            }
            _ => return Err(unsupported()),
        })
    }

    /// `left in right`, where one side is a path from the resource and the
    /// other literal entities.
    fn membership(&self, left: &Value, right: &Value) -> Result<Condition, PlanError> {
        let unsupported = || PlanError::Unsupported(format!("`{left}` in `{right}`"));
        if let Some(path) = path(left) {
            let mut entities = entity_literals(right).ok_or_else(unsupported)?;
            sort_uids(&mut entities);
            return Ok(Condition::In(path, entities));
        }
        let path = path(right).ok_or_else(unsupported)?;
        let member = entity_literal(left).ok_or_else(unsupported)?;
        let mut entities: Vec<EntityUid> = match self.store.get(&member) {
            Some(stored) => ancestors(self.store, stored).into_iter().collect(),
            None => Vec::new(),
        };
        entities.push(member);
        // `one_of` says the path holds one entity. A set there (`principal
        // in resource.editors`) is another question, which the tree does
        // not ask: refused rather than answered wrong. The entity has one
        // declared type: the principal's ancestors of other types could
        // never match, and a plan does not tell the caller about them.
        let steps: Vec<&str> = path.iter().map(String::as_str).collect();
        let entity_type = self
            .shapes
            .entity_path_type(self.resource_type, &steps)
            .ok_or_else(unsupported)?;
        entities.retain(|entity| entity.type_name() == &entity_type);
        sort_uids(&mut entities);
        Ok(Condition::OneOf(path, entities))
    }
}

fn sort_uids(uids: &mut Vec<EntityUid>) {
    uids.sort_by_cached_key(ToString::to_string);
    uids.dedup();
}

fn compare_op(op: &str) -> CompareOp {
    match op {
        "<" => CompareOp::Lt,
        "<=" => CompareOp::Le,
        ">" => CompareOp::Gt,
        _ => CompareOp::Ge,
    }
}

/// `n op path` as `path op' n`.
fn flip(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::Le => CompareOp::Ge,
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::Ge => CompareOp::Le,
    }
}

/// `resource.a.b...` as its attribute names.
fn path(expr: &Value) -> Option<Vec<String>> {
    let (op, operands) = single(expr)?;
    match op {
        "Var" if operands.as_str() == Some("resource") => Some(Vec::new()),
        "." => {
            let mut path = path(operands.get("left")?)?;
            path.push(operands.get("attr")?.as_str()?.to_string());
            Some(path)
        }
        _ => None,
    }
}

fn literal(expr: &Value) -> Option<Literal> {
    let (op, value) = single(expr)?;
    if op != "Value" {
        return None;
    }
    match value {
        Value::Bool(b) => Some(Literal::Bool(*b)),
        Value::String(s) => Some(Literal::String(s.clone())),
        Value::Number(n) => n.as_i64().map(Literal::Long),
        Value::Object(_) => entity_json(value).map(Literal::Entity),
        _ => None,
    }
}

/// Folds constants: `true`/`false` operands, one-element `and`/`or`,
/// double negation, `in`/`one_of` of no entities.
pub fn simplify(condition: Condition) -> Condition {
    match condition {
        Condition::And(parts) => {
            let mut kept = Vec::new();
            for part in parts.into_iter().map(simplify) {
                match part {
                    Condition::True => {}
                    Condition::False => return Condition::False,
                    Condition::And(inner) => kept.extend(inner),
                    other => kept.push(other),
                }
            }
            match kept.len() {
                0 => Condition::True,
                1 => kept.pop().unwrap_or(Condition::True),
                _ => Condition::And(kept),
            }
        }
        Condition::Or(parts) => {
            let mut kept = Vec::new();
            for part in parts.into_iter().map(simplify) {
                match part {
                    Condition::False => {}
                    Condition::True => return Condition::True,
                    Condition::Or(inner) => kept.extend(inner),
                    other => kept.push(other),
                }
            }
            match kept.len() {
                0 => Condition::False,
                1 => kept.pop().unwrap_or(Condition::False),
                _ => Condition::Or(kept),
            }
        }
        Condition::Not(inner) => match simplify(*inner) {
            Condition::True => Condition::False,
            Condition::False => Condition::True,
            Condition::Not(twice) => *twice,
            other => Condition::Not(Box::new(other)),
        },
        Condition::In(_, ref entities) | Condition::OneOf(_, ref entities)
            if entities.is_empty() =>
        {
            Condition::False
        }
        other => other,
    }
}

fn uid_json(uid: &EntityUid) -> Value {
    json!({"type": uid.type_name().to_string(), "id": uid.id().unescaped()})
}

impl Condition {
    /// The condition in its documented JSON form (docs/plans.md).
    pub fn to_json(&self) -> Value {
        let uids = |entities: &[EntityUid]| entities.iter().map(uid_json).collect::<Vec<_>>();
        match self {
            Condition::True => json!({"op": "true"}),
            Condition::False => json!({"op": "false"}),
            Condition::And(parts) => {
                json!({"op": "and", "args": parts.iter().map(Condition::to_json).collect::<Vec<_>>()})
            }
            Condition::Or(parts) => {
                json!({"op": "or", "args": parts.iter().map(Condition::to_json).collect::<Vec<_>>()})
            }
            Condition::Not(inner) => json!({"op": "not", "arg": inner.to_json()}),
            Condition::Eq(path, value) => {
                json!({"op": "eq", "path": path, "value": value.to_json()})
            }
            Condition::Compare(path, op, value) => {
                let op = match op {
                    CompareOp::Lt => "lt",
                    CompareOp::Le => "le",
                    CompareOp::Gt => "gt",
                    CompareOp::Ge => "ge",
                };
                json!({"op": op, "path": path, "value": value})
            }
            Condition::Has(path) => json!({"op": "has", "path": path}),
            Condition::In(path, entities) => {
                json!({"op": "in", "path": path, "entities": uids(entities)})
            }
            Condition::OneOf(path, entities) => {
                json!({"op": "one_of", "path": path, "entities": uids(entities)})
            }
            Condition::Is(path, entity_type) => {
                json!({"op": "is", "path": path, "type": entity_type.to_string()})
            }
        }
    }
}

impl Literal {
    fn to_json(&self) -> Value {
        match self {
            Literal::Entity(uid) => uid_json(uid),
            Literal::String(s) => json!(s),
            Literal::Long(n) => json!(n),
            Literal::Bool(b) => json!(b),
        }
    }
}
