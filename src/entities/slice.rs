//! The per-request slice: exactly the entities a decision can read.
//!
//! Roots are the principal, action, resource and the entities named in the
//! context. An entity whose data a policy can read at dereference level `k`
//! (RFC 76; the roots are level 0) is included with all of its ancestors
//! (so `in` is answered as on the full store); the entities its attributes
//! name are level `k + 1`. The policy set's validated maximum level bounds
//! the walk. Because every included entity is complete (its data and all its
//! ancestors), Cedar decides on the slice exactly as on the whole store.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use cedar_policy::{Entity, EntityUid};

use super::{EntityMap, StoredEntity};

/// How far the slice follows attribute references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceLimits {
    /// The policy set's maximum dereference level; `None` means the policies
    /// did not validate at any bounded level, so every reference is followed.
    pub depth: Option<u32>,
}

/// Where a request's entities come from, in order of precedence: entities
/// sent with the request, the schema's action entities, the store.
pub struct Slicer<'a> {
    /// Entities supplied with this request; they override stored ones.
    pub overlay: &'a HashMap<EntityUid, Arc<StoredEntity>>,
    /// Action entities (with their action groups as parents), from the schema.
    pub actions: &'a HashMap<EntityUid, Arc<StoredEntity>>,
    /// The snapshot of stored entities this decision is made against.
    pub store: &'a EntityMap,
}

impl Slicer<'_> {
    /// Finds an entity by uid.
    pub fn get(&self, uid: &EntityUid) -> Option<&Arc<StoredEntity>> {
        self.overlay
            .get(uid)
            .or_else(|| self.actions.get(uid))
            .or_else(|| self.store.get(uid))
    }

    /// The entities a decision over `roots` can read.
    pub fn slice(&self, roots: &[EntityUid], limits: SliceLimits) -> Vec<Entity> {
        let mut included: HashSet<EntityUid> = HashSet::new();
        let mut dereferenced: HashSet<EntityUid> = HashSet::new();
        let mut out = Vec::new();
        let mut queue: VecDeque<(EntityUid, u32)> =
            roots.iter().map(|uid| (uid.clone(), 0)).collect();
        // Breadth first, so an entity is first seen at its lowest level.
        while let Some((uid, level)) = queue.pop_front() {
            if !dereferenced.insert(uid.clone()) {
                continue;
            }
            let Some(stored) = self.get(&uid) else {
                continue;
            };
            self.include_with_ancestors(stored, &mut included, &mut out);
            let next = level + 1;
            if limits.depth.is_none_or(|depth| next < depth) {
                queue.extend(stored.refs.iter().map(|r| (r.clone(), next)));
            }
        }
        out
    }

    fn include_with_ancestors(
        &self,
        start: &Arc<StoredEntity>,
        included: &mut HashSet<EntityUid>,
        out: &mut Vec<Entity>,
    ) {
        let mut stack = vec![start.clone()];
        while let Some(stored) = stack.pop() {
            if !included.insert(stored.uid()) {
                continue;
            }
            for parent in stored.parents.iter() {
                if !included.contains(parent) {
                    if let Some(found) = self.get(parent) {
                        stack.push(found.clone());
                    }
                }
            }
            out.push(stored.entity.clone());
        }
    }
}
