//! Plausible candidates from a residual: the entities of the searched type
//! that could make the residual condition true, found through the store's
//! indexes (children of an entity, entities whose attribute names one).
//!
//! Reading is conservative: a condition yields a candidate set only when
//! every entity that can satisfy it is in that set. `a && b` needs either
//! side's set (their intersection when both have one); `a || b` needs
//! both (their union); `v == E`, `v in E`, `E in v` and `v is T in E`,
//! where `v` is the unknown variable or a chain of its attributes and `E` a
//! literal entity (or a set of them for `in`), give sets; `false` gives the
//! empty set. Anything else gives none, and the search falls back to every
//! stored entity of the type: slower, never wrong. Every candidate is then
//! decided for real.

use std::collections::HashSet;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use serde_json::Value;

use crate::entities::{EntityMap, EntityShapes};

/// A set of uids.
pub type Candidates = HashSet<EntityUid, foldhash::fast::RandomState>;

/// The candidates that can satisfy `condition` (an EST expression over the
/// variable `var`), of `entity_type`, or `None` when they cannot be
/// narrowed.
pub fn candidates(
    store: &EntityMap,
    shapes: &EntityShapes,
    condition: &Value,
    var: &str,
    entity_type: &EntityTypeName,
) -> Option<Candidates> {
    let narrowing = Narrowing {
        store,
        shapes,
        var,
        var_type: entity_type,
    };
    narrowing.of(condition).map(|found| {
        found
            .into_iter()
            .filter(|uid| uid.type_name() == entity_type)
            .collect()
    })
}

struct Narrowing<'a> {
    store: &'a EntityMap,
    shapes: &'a EntityShapes,
    var: &'a str,
    /// The searched variable's type: paths are read from it.
    var_type: &'a EntityTypeName,
}

impl Narrowing<'_> {
    /// Entities (of any type; the caller keeps the searched one) that can
    /// satisfy `expr`, or `None`.
    fn of(&self, expr: &Value) -> Option<Candidates> {
        let (op, operands) = single(expr)?;
        match op {
            "Value" => match operands {
                Value::Bool(false) => Some(Candidates::default()),
                _ => None,
            },
            "&&" => {
                let left = self.of(operands.get("left")?);
                let right = self.of(operands.get("right")?);
                match (left, right) {
                    (Some(left), Some(right)) => {
                        let (small, large) = if left.len() <= right.len() {
                            (left, right)
                        } else {
                            (right, left)
                        };
                        Some(
                            small
                                .into_iter()
                                .filter(|uid| large.contains(uid))
                                .collect(),
                        )
                    }
                    (Some(one), None) | (None, Some(one)) => Some(one),
                    (None, None) => None,
                }
            }
            "||" => {
                let mut left = self.of(operands.get("left")?)?;
                left.extend(self.of(operands.get("right")?)?);
                Some(left)
            }
            "==" => {
                let (left, right) = (operands.get("left")?, operands.get("right")?);
                let (path, entity) = match (self.path(left), entity_literal(right)) {
                    (Some(path), Some(entity)) => (path, entity),
                    _ => (self.path(right)?, entity_literal(left)?),
                };
                self.reverse(&path, std::iter::once(entity).collect())
            }
            "in" => self.membership(operands.get("left")?, operands.get("right")?),
            "is" => self.membership(operands.get("left")?, operands.get("in")?),
            _ => None,
        }
    }

    /// `left in right`.
    fn membership(&self, left: &Value, right: &Value) -> Option<Candidates> {
        if let Some(path) = self.path(left) {
            let targets = entity_literals(right)?;
            let mut within = Candidates::default();
            for target in targets {
                self.descendants_or_self(target, &mut within);
            }
            return self.reverse(&path, within);
        }
        let path = self.path(right)?;
        let member = entity_literal(left)?;
        self.reverse(&path, self.ancestors_or_self(member))
    }

    /// `var.a.b...` as its attribute names (empty for `var` itself).
    fn path<'v>(&self, expr: &'v Value) -> Option<Vec<&'v str>> {
        let (op, operands) = single(expr)?;
        match op {
            "Var" if operands.as_str() == Some(self.var) => Some(Vec::new()),
            "." => {
                let mut path = self.path(operands.get("left")?)?;
                path.push(operands.get("attr")?.as_str()?);
                Some(path)
            }
            _ => None,
        }
    }

    /// The entities whose value at `path` is in `targets`: the referrer
    /// index read backwards from the last attribute to the first. `None`
    /// (no narrowing) unless every attribute on the path holds one entity:
    /// the index knows only those, and a record or set on the way would
    /// read as "no entity" (a missed Allow).
    fn reverse(&self, path: &[&str], targets: Candidates) -> Option<Candidates> {
        if !self.shapes.entity_path(self.var_type, path) {
            return None;
        }
        let mut current = targets;
        for attribute in path.iter().rev() {
            let mut previous = Candidates::default();
            for target in &current {
                previous.extend(
                    self.store
                        .referrers(attribute, target)
                        .map(|entity| entity.uid()),
                );
            }
            current = previous;
        }
        Some(current)
    }

    /// `root` and every stored entity below it.
    fn descendants_or_self(&self, root: EntityUid, found: &mut Candidates) {
        let mut stack = vec![root];
        while let Some(uid) = stack.pop() {
            if found.contains(&uid) {
                continue;
            }
            stack.extend(self.store.children(&uid).map(|child| child.uid()));
            found.insert(uid);
        }
    }

    /// `member` and every ancestor of it.
    fn ancestors_or_self(&self, member: EntityUid) -> Candidates {
        let mut found = Candidates::default();
        let mut stack = vec![member];
        while let Some(uid) = stack.pop() {
            if found.contains(&uid) {
                continue;
            }
            if let Some(entity) = self.store.get(&uid) {
                stack.extend(entity.parents.iter().cloned());
            }
            found.insert(uid);
        }
        found
    }
}

/// An EST node's one key and its operands.
pub fn single(expr: &Value) -> Option<(&str, &Value)> {
    let fields = expr.as_object()?;
    if fields.len() != 1 {
        return None;
    }
    fields
        .iter()
        .next()
        .map(|(key, value)| (key.as_str(), value))
}

/// A literal entity (`{"Value": {"__entity": {"type", "id"}}}`).
pub fn entity_literal(expr: &Value) -> Option<EntityUid> {
    let (op, value) = single(expr)?;
    if op != "Value" {
        return None;
    }
    entity_json(value)
}

/// An entity in Cedar's JSON value form (`{"__entity": {...}}`, or the
/// bare `{"type", "id"}`).
pub fn entity_json(value: &Value) -> Option<EntityUid> {
    let uid = value.get("__entity").unwrap_or(value);
    let entity_type: EntityTypeName = uid.get("type")?.as_str()?.parse().ok()?;
    let id: EntityId = uid.get("id")?.as_str()?.parse().ok()?;
    Some(EntityUid::from_type_name_and_id(entity_type, id))
}

/// A literal entity, or a literal set of them.
pub fn entity_literals(expr: &Value) -> Option<Vec<EntityUid>> {
    if let Some(one) = entity_literal(expr) {
        return Some(vec![one]);
    }
    let (op, items) = single(expr)?;
    match op {
        "Set" => items.as_array()?.iter().map(entity_literal).collect(),
        "Value" => items.as_array()?.iter().map(entity_json).collect(),
        _ => None,
    }
}
