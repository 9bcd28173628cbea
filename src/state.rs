//! The current snapshot of policies + entities, swapped atomically.
//!
//! Readers take the whole snapshot with one atomic pointer load and never
//! wait; writers serialize among themselves on a mutex, build the next
//! snapshot beside the current one (the entity map is persistent, so this
//! copies only what changed) and publish it with one atomic store.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;

use crate::engine::PolicyPack;
use crate::entities::{EntityChange, EntityMap};

/// What one decision (or one batch) is made against.
pub struct Snapshot {
    /// Policies and schema, validated together.
    pub pack: Arc<PolicyPack>,
    /// Entity data at one revision.
    pub entities: EntityMap,
    /// When the policy pack was loaded.
    pub pack_loaded_at: SystemTime,
}

/// Holder of the current snapshot; `None` until the first load completes.
#[derive(Default)]
pub struct SharedState {
    current: ArcSwapOption<Snapshot>,
    /// Serializes writers. A std mutex: it is never held across an await.
    writer: Mutex<()>,
}

impl SharedState {
    /// A state serving `snapshot` right away.
    pub fn ready(snapshot: Snapshot) -> Self {
        let state = Self::default();
        state.current.store(Some(Arc::new(snapshot)));
        state
    }

    /// The current snapshot, or `None` while not ready.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Publishes a first or replacement snapshot.
    pub fn publish(&self, snapshot: Snapshot) {
        let _guard = self.lock_writer();
        self.current.store(Some(Arc::new(snapshot)));
    }

    /// Applies entity changes on top of the current snapshot. Returns false
    /// (and changes nothing) when there is no snapshot yet.
    pub fn apply_entity_changes(
        &self,
        changes: impl IntoIterator<Item = EntityChange>,
        revision: u64,
    ) -> bool {
        self.update_entities(|current| {
            let mut entities = current.entities.clone();
            entities.apply(changes, revision);
            Some(entities)
        })
    }

    /// Swaps in a new policy pack with the current entities, after
    /// `check(new pack, current snapshot)` accepted them (for a changed
    /// schema); on `Err` nothing changes. Runs under the writer lock, so the
    /// entities checked are exactly the ones published with the pack.
    pub fn replace_pack(
        &self,
        pack: Arc<PolicyPack>,
        check: impl FnOnce(&PolicyPack, &Snapshot) -> Result<(), String>,
    ) -> Result<(), String> {
        let _guard = self.lock_writer();
        let Some(current) = self.current.load_full() else {
            return Err("no snapshot loaded yet".to_string());
        };
        check(&pack, &current)?;
        self.current.store(Some(Arc::new(Snapshot {
            pack,
            entities: current.entities.clone(),
            pack_loaded_at: SystemTime::now(),
        })));
        Ok(())
    }

    /// Replaces all entity data, which was checked against the schema with
    /// `schema_version`. If the pack changed schema meanwhile nothing is
    /// replaced and `false` is returned, so the caller checks again.
    pub fn replace_entities_checked(&self, entities: EntityMap, schema_version: &str) -> bool {
        self.update_entities(|current| {
            (current.pack.schema_version == schema_version).then_some(entities)
        })
    }

    /// Replaces all entity data (a fresh snapshot from a source).
    pub fn replace_entities(&self, entities: EntityMap) -> bool {
        self.update_entities(|_| Some(entities))
    }

    /// Under the writer lock, publishes the entities `next` derives from the
    /// current snapshot (with the same pack). False when there is no
    /// snapshot yet or `next` declines.
    fn update_entities(&self, next: impl FnOnce(&Snapshot) -> Option<EntityMap>) -> bool {
        let _guard = self.lock_writer();
        let Some(current) = self.current.load_full() else {
            return false;
        };
        let Some(entities) = next(&current) else {
            return false;
        };
        self.current.store(Some(Arc::new(Snapshot {
            pack: current.pack.clone(),
            entities,
            pack_loaded_at: current.pack_loaded_at,
        })));
        true
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}
