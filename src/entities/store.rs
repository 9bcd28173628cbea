//! The persistent map of entities that snapshots share.

use std::sync::Arc;

use cedar_policy::EntityUid;

use super::StoredEntity;

/// One change to the store. A change carries the entity's full new state, so
/// applying the same change twice is harmless (sync sources rely on this).
#[derive(Debug, Clone)]
pub enum EntityChange {
    /// Insert or replace an entity.
    Upsert(Arc<StoredEntity>),
    /// Remove an entity (absent is fine).
    Delete(EntityUid),
}

/// Entities by uid, at a revision. Cloning is O(1) and clones share
/// structure, so a snapshot for readers is just a clone.
#[derive(Debug, Clone, Default)]
pub struct EntityMap {
    entities: imbl::HashMap<EntityUid, Arc<StoredEntity>>,
    revision: u64,
}

impl EntityMap {
    /// Builds a map at `revision` from entities (later duplicates win).
    pub fn from_entities(entities: impl IntoIterator<Item = StoredEntity>, revision: u64) -> Self {
        let entities = entities
            .into_iter()
            .map(|e| (e.uid(), Arc::new(e)))
            .collect();
        Self { entities, revision }
    }

    /// Looks up one entity.
    pub fn get(&self, uid: &EntityUid) -> Option<&Arc<StoredEntity>> {
        self.entities.get(uid)
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
                    self.entities.insert(entity.uid(), entity);
                }
                EntityChange::Delete(uid) => {
                    self.entities.remove(&uid);
                }
            }
        }
        self.revision = revision;
    }

    /// Every stored entity, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<StoredEntity>> {
        self.entities.values()
    }
}
