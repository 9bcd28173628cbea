//! The per-request slice: exactly the entities a decision can read.
//!
//! Roots are the principal, action, resource and the entities named in the
//! context. An entity whose data a policy can read at dereference level `k`
//! (RFC 76; the roots are level 0) is included, and the entities its
//! attributes name are level `k + 1`. The policy set's validated maximum
//! level bounds the walk.
//!
//! Each included root is given *all* of its ancestors as parents (walked
//! here over the store's direct parents), so `in` is answered exactly as on
//! the whole store without the ancestors themselves being in the slice (a
//! policy can read an ancestor's data only by reaching it as a value, and
//! then it is included on its own). The slice stays at a few entities, and
//! Cedar finds its transitive closure already complete. Entities reached
//! through attributes get their ancestors too, unless the policies never
//! test their ancestry ([`SliceLimits::ancestors_beyond_roots`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use cedar_policy::{Entity, EntityUid};

use super::stored::ConversionError;
use super::{EntityMap, StoredEntity};

/// How far the slice follows attribute references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceLimits {
    /// The policy set's maximum dereference level; `None` means the policies
    /// did not validate at any bounded level, so every reference is followed.
    pub depth: Option<u32>,
    /// Whether entities reached through attributes need their ancestors:
    /// false when the policies test ancestry (`in`) only on roots.
    pub ancestors_beyond_roots: bool,
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

impl<'a> Slicer<'a> {
    /// Finds an entity by uid.
    pub fn get(&self, uid: &EntityUid) -> Option<&'a Arc<StoredEntity>> {
        self.overlay
            .get(uid)
            .or_else(|| self.actions.get(uid))
            .or_else(|| self.store.get(uid))
    }

    /// The entities a decision over `roots` can read, each with all of its
    /// ancestors as parents.
    pub fn slice(
        &self,
        roots: &[EntityUid],
        limits: SliceLimits,
    ) -> Result<Vec<Entity>, ConversionError> {
        let mut included: HashSet<&EntityUid, foldhash::fast::RandomState> = HashSet::default();
        let mut out = Vec::new();
        let mut queue: VecDeque<(&EntityUid, u32)> = roots.iter().map(|uid| (uid, 0)).collect();
        // Breadth first, so an entity is first seen at its lowest level.
        while let Some((uid, level)) = queue.pop_front() {
            if included.contains(uid) {
                continue;
            }
            let Some(stored) = self.get(uid) else {
                continue;
            };
            included.insert(stored.uid_ref());
            let ancestors = if level == 0 || limits.ancestors_beyond_roots {
                self.ancestors(stored)
            } else {
                HashSet::new()
            };
            out.push(stored.to_cedar(ancestors)?);
            let next = level + 1;
            if limits.depth.is_none_or(|depth| next < depth) {
                stored.for_each_ref(|r| queue.push_back((r, next)));
            }
        }
        Ok(out)
    }

    /// Every ancestor of `entity`: its parents, theirs, and so on. A parent
    /// that does not exist is still an ancestor (as in Cedar); it just has
    /// none of its own.
    pub fn ancestors(&self, entity: &StoredEntity) -> HashSet<EntityUid> {
        // Borrowed uids under a cheap hasher while walking; Cedar wants an
        // owned std set, built once at the end.
        let mut seen: HashSet<&EntityUid, foldhash::fast::RandomState> = HashSet::default();
        let mut stack: Vec<&EntityUid> = entity.parents.iter().collect();
        while let Some(uid) = stack.pop() {
            if !seen.insert(uid) {
                continue;
            }
            if let Some(parent) = self.get(uid) {
                stack.extend(parent.parents.iter());
            }
        }
        seen.into_iter().cloned().collect()
    }
}
