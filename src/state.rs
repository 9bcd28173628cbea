//! The current snapshot of policies + entities, swapped atomically.
//!
//! Readers take the whole snapshot with one atomic pointer load and never
//! wait. There is one writer: the publisher task ([`crate::publisher`]),
//! which builds the next snapshot beside the current one (the entity map is
//! persistent, so this copies only what changed) and stores it with one
//! atomic swap. No lock is shared between readers and the writer.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;

use crate::engine::PolicyPack;
use crate::entities::EntityMap;

/// What one decision (or one batch) is made against.
pub struct Snapshot {
    /// Policies and schema, validated together.
    pub pack: Arc<PolicyPack>,
    /// Entity data at one revision, checked against `pack`'s schema.
    pub entities: EntityMap,
    /// When the policy pack was loaded.
    pub pack_loaded_at: SystemTime,
}

/// Holder of the current snapshot; `None` until the first load completes.
#[derive(Default)]
pub struct SharedState {
    current: ArcSwapOption<Snapshot>,
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

    /// Publishes the next snapshot and returns the one it replaces. Only the
    /// publisher task calls this: it is the one owner of what is published.
    pub(crate) fn swap(&self, snapshot: Snapshot) -> Option<Arc<Snapshot>> {
        self.current.swap(Some(Arc::new(snapshot)))
    }
}
