//! The per-request slice: exactly the entities a decision can read.
//!
//! Roots are the principal, action, resource and the entities named in the
//! context. An entity whose data a policy can read at dereference level `k`
//! (RFC 76; the roots are level 0) is included, and the entities its
//! attributes name are level `k + 1`. The policy set's validated maximum
//! level bounds the walk.
//!
//! Each included root is given as parents those of its ancestors (walked
//! here over the store's direct parents) that the request can *name*, so
//! `in` is answered exactly as on the whole store without the ancestors
//! themselves being in the slice. A policy can only test `e in x` for an
//! `x` it can write down: an entity literal of a policy, a request variable,
//! a value in the context, or an attribute or tag value of an entity in the
//! slice (Cedar has no way to enumerate ancestors, and no other way to make
//! an entity reference). Any other ancestor can never change a decision, so
//! it is left out, and Cedar's transitive closure (which it recomputes over
//! the slice for every request) stays small. Entities reached through
//! attributes get their named ancestors too, unless the policies never test
//! their ancestry ([`SliceLimits::ancestors_beyond_roots`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use cedar_policy::{Entities, EntityTypeName, EntityUid};
use cedar_policy_core::ast;
use cedar_policy_core::entities::{NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;

use super::stored::ConversionError;
use super::{EntityMap, StoredEntity};
use crate::diagnostics::one_line;

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

/// The attributes and tags a decision can read (the engine finds them in
/// the policies); a slice leaves the rest out of the entities it builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeReads {
    /// The attribute names that can be read; `None`: any.
    names: Option<HashSet<Box<str>, foldhash::fast::RandomState>>,
    /// Whether tags can be read.
    tags: bool,
}

impl AttributeReads {
    /// Every attribute and tag.
    pub fn all() -> Self {
        Self {
            names: None,
            tags: true,
        }
    }

    /// Only the attributes called one of `names`, and tags if `tags`.
    pub fn only(names: HashSet<Box<str>, foldhash::fast::RandomState>, tags: bool) -> Self {
        Self {
            names: Some(names),
            tags,
        }
    }

    /// Whether an attribute called `name` can be read.
    pub fn attribute(&self, name: &str) -> bool {
        self.names.as_ref().is_none_or(|names| names.contains(name))
    }

    /// Whether tags can be read.
    pub fn tags(&self) -> bool {
        self.tags
    }
}

/// A set of entity uids under a fast hasher (std's SipHash guards against
/// hash flooding by untrusted keys; these sets are filled from the schema,
/// the policies or the store, and probed on every request).
pub type UidSet = HashSet<EntityUid, foldhash::fast::RandomState>;

/// A set of entity type names under a fast hasher.
pub type TypeSet = HashSet<EntityTypeName, foldhash::fast::RandomState>;

/// A map from entity uids under a fast hasher (see [`UidSet`]).
pub type UidMap<V> = HashMap<EntityUid, V, foldhash::fast::RandomState>;

/// Where a request's entities come from, in order of precedence: entities
/// sent with the request, the schema's action entities, the store.
///
/// Request entities answer for what the request names (its principal,
/// resource and context, and what other request entities name). Unless
/// `overlay_everywhere`, stored data never reaches them: a parent of a
/// stored entity is looked up in stored data alone, and a stored attribute
/// naming a request entity fails the slice, so a request cannot fill in a
/// dangling reference of stored data with an entity of its own.
pub struct Slicer<'a> {
    /// Entities supplied with this request.
    pub overlay: &'a UidMap<Arc<StoredEntity>>,
    /// Request entities also stand in for stored ones where stored data
    /// refers to them (the `override` mode, whose callers are trusted).
    pub overlay_everywhere: bool,
    /// Action entities (with their action groups as parents), from the schema.
    pub actions: &'a UidMap<Arc<StoredEntity>>,
    /// The snapshot of stored entities this decision is made against.
    pub store: &'a EntityMap,
    /// Every entity literal in the policies (and template links): ancestors
    /// a policy can name whatever the request.
    pub policy_literals: &'a UidSet,
    /// The attributes and tags the policies can read; the rest are left out.
    pub reads: &'a AttributeReads,
    /// Entity types the schema gives no parent types: stored entities were
    /// checked against the schema, so theirs have no parents, and the
    /// ancestor walk does not look them up (at a million entities each
    /// look-up is a walk of cold memory).
    pub parentless: &'a TypeSet,
}

impl<'a> Slicer<'a> {
    /// Finds an entity by uid.
    pub fn get(&self, uid: &EntityUid) -> Option<&'a Arc<StoredEntity>> {
        if let Some(entity) = self.overlay.get(uid) {
            return Some(entity);
        }
        self.get_stored(uid)
    }

    /// Finds an entity in stored data (and the schema's actions) alone.
    fn get_stored(&self, uid: &EntityUid) -> Option<&'a Arc<StoredEntity>> {
        // Only action types (`Action`, `NS::Action`) can be in the schema's
        // actions; most look-ups are not for actions and skip that map.
        if uid.type_name().basename() == "Action" {
            if let Some(action) = self.actions.get(uid) {
                return Some(action);
            }
        }
        self.store.get(uid)
    }

    /// The entities a decision over `roots` can read, each with the
    /// ancestors the request can name, as Cedar's entity set. `context_named`
    /// holds every entity the context names, inside sets too.
    pub fn slice(
        &self,
        roots: &[EntityUid],
        context_named: &[EntityUid],
        limits: SliceLimits,
    ) -> Result<Entities, SliceError> {
        // Sized for a typical slice, so that the sets rarely grow.
        let mut included: HashSet<&EntityUid, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(16, Default::default());
        let mut reached: Vec<(&StoredEntity, u32)> = Vec::with_capacity(16);
        let mut named: HashSet<&EntityUid, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(32, Default::default());
        named.extend(roots.iter().chain(context_named));
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
            reached.push((stored, level));
            let guarded = !self.overlay_everywhere && !self.overlay.contains_key(uid);
            let mut borrowed = None;
            // Its values can be named even where the walk stops following them.
            let next = level + 1;
            let follow = limits.depth.is_none_or(|depth| next < depth);
            stored.for_each_uid(|r, in_set| {
                if guarded && self.overlay.contains_key(r) {
                    borrowed = Some(r);
                }
                named.insert(r);
                if follow && !in_set {
                    queue.push_back((r, next));
                }
            });
            if let Some(uid) = borrowed {
                return Err(SliceError::StoredDataNamesRequestEntity(uid.to_string()));
            }
        }
        let nameable = |uid: &EntityUid| named.contains(uid) || self.policy_literals.contains(uid);
        let entities = reached
            .into_iter()
            .map(|(stored, level)| {
                let (parents, indirect) = if level == 0 || limits.ancestors_beyond_roots {
                    self.ancestors_where(stored, nameable)
                } else {
                    Default::default()
                };
                stored.to_engine(parents, indirect, self.reads)
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Every entity carries all the ancestors a policy can ask about (see
        // the module doc), so Cedar is told not to compute a closure: that
        // was a third of a decision's cost, for nothing.
        let closure = if crate::shortcuts::enabled() {
            TCComputation::AssumeAlreadyComputed
        } else {
            TCComputation::ComputeNow
        };
        let entities = cedar_policy_core::entities::Entities::from_entities(
            entities,
            None::<&NoEntitiesSchema>,
            closure,
            Extensions::all_available(),
        )
        .map_err(|e| SliceError::Cedar(one_line(&e)))?;
        Ok(Entities::from(entities))
    }

    /// The ancestors of `entity` (its parents, theirs, and so on) for which
    /// `keep` holds, as Cedar's direct parents and indirect ancestors. A
    /// parent that does not exist is still an ancestor (as in Cedar); it just
    /// has none of its own.
    pub fn ancestors_where(
        &self,
        entity: &StoredEntity,
        keep: impl Fn(&EntityUid) -> bool,
    ) -> (HashSet<ast::EntityUID>, HashSet<ast::EntityUID>) {
        // Borrowed uids under a cheap hasher while walking; Cedar wants
        // owned std sets of what is kept.
        let mut seen: HashSet<&EntityUid, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(16, Default::default());
        // Each uid with whether a request entity named it (only those may
        // be request entities themselves; see the type's doc).
        let mut stack: Vec<(&EntityUid, bool)> = Vec::with_capacity(16);
        let mut parents = HashSet::with_capacity(entity.parents.len());
        let mut indirect = HashSet::new();
        let by_request = self.overlay_everywhere || self.overlay.contains_key(entity.uid_ref());
        for parent in entity.parents.iter() {
            if seen.insert(parent) {
                stack.push((parent, by_request));
                if keep(parent) {
                    parents.insert(parent.as_ref().clone());
                }
            }
        }
        while let Some((uid, by_request)) = stack.pop() {
            if self.parentless.contains(uid.type_name()) {
                continue;
            }
            let requested = if by_request {
                self.overlay.get(uid)
            } else {
                None
            };
            let Some(ancestor) = requested.or_else(|| self.get_stored(uid)) else {
                continue;
            };
            let by_request = self.overlay_everywhere || requested.is_some();
            for next in ancestor.parents.iter() {
                if seen.insert(next) {
                    stack.push((next, by_request));
                    if keep(next) {
                        indirect.insert(next.as_ref().clone());
                    }
                }
            }
        }
        (parents, indirect)
    }
}

/// Why a slice could not be built.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SliceError {
    /// A stored entity could not be turned into Cedar's form.
    #[error(transparent)]
    Conversion(#[from] ConversionError),
    /// Cedar refused the set of entities.
    #[error("{0}")]
    Cedar(String),
    /// A stored entity in the slice names an entity the request sent: the
    /// request would be filling in stored data.
    #[error("stored data refers to `{0}`, which the request describes; a request may not stand in for stored data")]
    StoredDataNamesRequestEntity(String),
}
