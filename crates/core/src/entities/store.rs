//! The persistent map of entities that snapshots share.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use cedar_policy::{EntityTypeName, EntityUid};

use super::index::EntityIndex;
use super::{LinkChange, LinkMap, StoredEntity};

/// One change to the store. A change carries the entity's full new state, so
/// applying the same change twice is harmless (sync sources rely on this).
#[derive(Debug, Clone)]
pub enum EntityChange {
    /// Insert or replace an entity.
    Upsert(Arc<StoredEntity>),
    /// Remove an entity (absent is fine).
    Delete(EntityUid),
    /// Insert, replace or remove a template link: links are data kept and
    /// versioned with the entities.
    Link(LinkChange),
}

/// Entities by uid, at a revision. Cloning is O(1) and clones share
/// structure, so a snapshot for readers is just a clone.
#[derive(Debug, Clone, Default)]
pub struct EntityMap {
    /// A map of keys only: the key is the entity, found by its uid. The
    /// map's nodes hold their entries inline, so an entry of one pointer
    /// instead of a 120-byte uid plus a pointer makes the map about eight
    /// times smaller.
    entities: imbl::GenericHashMap<ByUid, (), UidHasher, imbl::shared_ptr::DefaultSharedPtr>,
    /// Template links, at the same revision: one snapshot holds both.
    links: LinkMap,
    /// Entities by type, children by parent, referrers by attribute value:
    /// what search and plans enumerate instead of the whole store.
    index: EntityIndex,
    revision: u64,
}

/// foldhash (seeded per process) instead of SipHash: a uid is hashed on
/// every look-up, a dozen per decision, and SipHash over a uid's type name
/// and id was a measurable part of one. Only trusted writers insert.
type UidHasher = foldhash::fast::RandomState;

/// A stored entity that hashes and compares as its uid.
#[derive(Debug, Clone)]
struct ByUid(Arc<StoredEntity>);

impl Hash for ByUid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.uid_ref().hash(state);
    }
}

impl PartialEq for ByUid {
    fn eq(&self, other: &Self) -> bool {
        self.0.uid_ref() == other.0.uid_ref()
    }
}

impl Eq for ByUid {}

impl Borrow<EntityUid> for ByUid {
    fn borrow(&self) -> &EntityUid {
        self.0.uid_ref()
    }
}

impl EntityMap {
    /// Builds a map at `revision` from entities (later duplicates win).
    pub fn from_entities(entities: impl IntoIterator<Item = StoredEntity>, revision: u64) -> Self {
        let entities: imbl::GenericHashMap<ByUid, (), UidHasher, _> = entities
            .into_iter()
            .map(|e| (ByUid(Arc::new(e)), ()))
            .collect();
        let index = EntityIndex::build(entities.keys().map(|key| &key.0));
        Self {
            entities,
            links: LinkMap::default(),
            index,
            revision,
        }
    }

    /// The same entities with `links` as the template links.
    pub fn with_links(mut self, links: LinkMap) -> Self {
        self.links = links;
        self
    }

    /// The template links at this revision.
    pub fn links(&self) -> &LinkMap {
        &self.links
    }

    /// Looks up one entity.
    pub fn get(&self, uid: &EntityUid) -> Option<&Arc<StoredEntity>> {
        self.entities.get_key_value(uid).map(|(key, ())| &key.0)
    }

    /// Number of stored entities.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// The revision of the data source this map reflects.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Applies changes in order and moves to `revision`. Costs O(changes x
    /// log n): only the touched paths of the persistent map are copied.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = EntityChange>, revision: u64) {
        for change in changes {
            match change {
                EntityChange::Upsert(entity) => {
                    if let Some(old) = self.get(entity.uid_ref()).cloned() {
                        self.index.remove(&old);
                    }
                    self.index.insert(&entity);
                    // Replaces the key too (imbl swaps the whole entry).
                    self.entities.insert(ByUid(entity), ());
                }
                EntityChange::Delete(uid) => {
                    if let Some((old, ())) = self.entities.remove_with_key(&uid) {
                        self.index.remove(&old.0);
                    }
                }
                EntityChange::Link(change) => self.links.apply([change]),
            }
        }
        self.revision = revision;
    }

    /// The stored entities of `entity_type`, in no particular order.
    pub fn of_type<'a>(
        &'a self,
        entity_type: &'a EntityTypeName,
    ) -> impl Iterator<Item = &'a Arc<StoredEntity>> + 'a {
        self.index.of_type(entity_type)
    }

    /// The stored entities that list `parent` as a direct parent.
    pub fn children<'a>(
        &'a self,
        parent: &'a EntityUid,
    ) -> impl Iterator<Item = &'a Arc<StoredEntity>> + 'a {
        self.index.children(parent)
    }

    /// The stored entities whose attribute `attribute` names `target`.
    pub fn referrers<'a>(
        &'a self,
        attribute: &'a str,
        target: &'a EntityUid,
    ) -> impl Iterator<Item = &'a Arc<StoredEntity>> + 'a {
        self.index.referrers(attribute, target)
    }

    /// Every stored entity, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<StoredEntity>> {
        self.entities.keys().map(|key| &key.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn entity(id: &str, name: &str) -> Arc<StoredEntity> {
        let json = serde_json::json!({
            "uid": {"type": "User", "id": id}, "attrs": {"name": name}, "parents": [],
        });
        let parsed = cedar_policy::Entity::from_json_value(json, None).unwrap();
        Arc::new(StoredEntity::new(parsed).unwrap())
    }

    #[test]
    fn an_upsert_replaces_and_old_snapshots_keep_their_version() {
        let mut map = EntityMap::from_entities([], 0);
        map.apply([EntityChange::Upsert(entity("ana", "old"))], 1);
        let before = map.clone();
        map.apply([EntityChange::Upsert(entity("ana", "new"))], 2);
        let uid = entity("ana", "x").uid();
        assert_eq!(map.len(), 1);
        assert!(Arc::ptr_eq(
            map.get(&uid).unwrap(),
            &map.iter().next().unwrap().clone()
        ));
        assert_eq!(
            map.get(&uid).unwrap().as_ref(),
            entity("ana", "new").as_ref()
        );
        assert_eq!(
            before.get(&uid).unwrap().as_ref(),
            entity("ana", "old").as_ref()
        );
        map.apply([EntityChange::Delete(uid.clone())], 3);
        assert!(map.get(&uid).is_none());
        assert!(before.get(&uid).is_some());
    }
}
