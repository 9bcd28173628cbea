//! Indexes over the stored entities, for "which?" questions (search and
//! plans): the entities of a type, the direct children of an entity, and
//! the entities whose attribute names an entity (`resource.owner ==
//! User::"ana"` read backwards).
//!
//! All three live in one persistent ordered set of small entries (kind, key
//! digest, member digest, member), so a snapshot shares it like the map and
//! a change costs O(log n) per entry it touches. An entry keeps a 64-bit
//! digest of its key, not the key (a uid is about 100 bytes; at a million
//! entities the keys would have doubled the store), so a look-up returns
//! every member under the digest and keeps only those that really have the
//! key: a digest collision costs a check, never a wrong answer.

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use cedar_policy::{EntityTypeName, EntityUid};
use imbl::shared_ptr::DefaultSharedPtr;

use super::{AttrValue, StoredEntity};

/// The three indexes.
#[derive(Debug, Clone, Default)]
pub struct EntityIndex {
    entries: imbl::GenericOrdSet<Entry, DefaultSharedPtr>,
}

/// Which index an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Kind {
    /// Key: the member's type.
    Type = 0,
    /// Key: one of the member's direct parents.
    Child = 1,
    /// Key: an attribute name and the entity its value names.
    Referrer = 2,
}

/// One index entry. `member` is `None` only in the bounds of a range.
#[derive(Debug, Clone)]
struct Entry {
    kind: Kind,
    key: u64,
    member_digest: u64,
    member: Option<Arc<StoredEntity>>,
}

impl Entry {
    fn order(&self) -> (Kind, u64, u64) {
        (self.kind, self.key, self.member_digest)
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order()
            .cmp(&other.order())
            .then_with(|| match (&self.member, &other.member) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(a), Some(b)) => a.uid_ref().cmp(b.uid_ref()),
            })
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

/// The per-process hasher for key digests (only trusted writers insert;
/// a collision costs a check, not an answer).
fn hasher() -> &'static foldhash::fast::RandomState {
    static HASHER: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    HASHER.get_or_init(foldhash::fast::RandomState::default)
}

fn type_key(entity_type: &EntityTypeName) -> u64 {
    hasher().hash_one((0u8, entity_type))
}

fn child_key(parent: &EntityUid) -> u64 {
    hasher().hash_one((1u8, parent))
}

fn referrer_key(attribute: &str, target: &EntityUid) -> u64 {
    hasher().hash_one((2u8, attribute, target))
}

/// Every entry an entity contributes.
fn entries_of(entity: &Arc<StoredEntity>) -> impl Iterator<Item = Entry> + '_ {
    let member_digest = hasher().hash_one(entity.uid_ref());
    let entry = move |kind, key| Entry {
        kind,
        key,
        member_digest,
        member: Some(entity.clone()),
    };
    let of_type = std::iter::once(entry(Kind::Type, type_key(entity.uid_ref().type_name())));
    let children = entity
        .parents
        .iter()
        .map(move |parent| entry(Kind::Child, child_key(parent)));
    let referrers = entity
        .entity_attrs()
        .map(move |(name, target)| entry(Kind::Referrer, referrer_key(name, target)));
    of_type.chain(children).chain(referrers)
}

impl EntityIndex {
    /// Indexes `entities` (distinct uids).
    pub fn build<'a>(entities: impl Iterator<Item = &'a Arc<StoredEntity>>) -> Self {
        let mut all: Vec<Entry> = entities.flat_map(entries_of).collect();
        all.sort_unstable();
        Self {
            entries: all.into_iter().collect(),
        }
    }

    /// Removes what `entity` contributed.
    pub fn remove(&mut self, entity: &Arc<StoredEntity>) {
        for entry in entries_of(entity) {
            self.entries.remove(&entry);
        }
    }

    /// Adds what `entity` contributes.
    pub fn insert(&mut self, entity: &Arc<StoredEntity>) {
        for entry in entries_of(entity) {
            self.entries.insert(entry);
        }
    }

    fn under(&self, kind: Kind, key: u64) -> impl Iterator<Item = &Arc<StoredEntity>> {
        let low = Entry {
            kind,
            key,
            member_digest: 0,
            member: None,
        };
        self.entries
            .range(low..)
            .take_while(move |entry| entry.kind == kind && entry.key == key)
            .filter_map(|entry| entry.member.as_ref())
    }

    /// The stored entities of `entity_type`.
    pub fn of_type<'a>(
        &'a self,
        entity_type: &'a EntityTypeName,
    ) -> impl Iterator<Item = &'a Arc<StoredEntity>> + 'a {
        self.under(Kind::Type, type_key(entity_type))
            .filter(move |member| member.uid_ref().type_name() == entity_type)
    }

    /// The stored entities that list `parent` as a direct parent.
    pub fn children<'a>(
        &'a self,
        parent: &'a EntityUid,
    ) -> impl Iterator<Item = &'a Arc<StoredEntity>> + 'a {
        self.under(Kind::Child, child_key(parent))
            .filter(move |member| member.parents.contains(parent))
    }

    /// The stored entities whose attribute `attribute` is `target`.
    pub fn referrers<'a>(
        &'a self,
        attribute: &'a str,
        target: &'a EntityUid,
    ) -> impl Iterator<Item = &'a Arc<StoredEntity>> + 'a {
        self.under(Kind::Referrer, referrer_key(attribute, target))
            .filter(move |member| {
                matches!(member.attr(attribute), Some(AttrValue::Entity(uid)) if **uid == *target)
            })
    }
}
