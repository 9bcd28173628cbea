//! The results of the last few searches, so that a caller following a
//! search's pages does not search again for each page. An entry is bound
//! to the request and to the very snapshot it searched (not its revision:
//! a Redis that restarted empty counts revisions from 1 again, with other
//! data), so an entry is exactly what searching again would find. Bounded
//! by the number of results it holds, not of entries; a search with more
//! results than the whole budget is not kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};

use cedar_policy::EntityUid;

use crate::state::Snapshot;

/// Results kept at most, over every entry (about 100 bytes each).
pub const SEARCH_CACHE_RESULTS: usize = 100_000;

/// What a search's results depend on: the request without its `page`
/// (digest), and the snapshot searched.
#[derive(Debug, Clone)]
pub struct SearchKey {
    /// SHA-256 of the request without its `page`, and of the route.
    pub digest: [u8; 32],
    /// The snapshot searched. Weak: a kept entry does not keep old entity
    /// data alive, only the snapshot's allocation, so no later snapshot
    /// can take its address while the entry exists.
    pub snapshot: Weak<Snapshot>,
}

impl SearchKey {
    /// The key of a search of `snapshot`.
    pub fn new(digest: [u8; 32], snapshot: &Arc<Snapshot>) -> Self {
        Self {
            digest,
            snapshot: Arc::downgrade(snapshot),
        }
    }
}

impl PartialEq for SearchKey {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && Weak::ptr_eq(&self.snapshot, &other.snapshot)
    }
}

impl Eq for SearchKey {}

/// The last searches' results, oldest first.
pub struct SearchCache {
    entries: Mutex<VecDeque<(SearchKey, Arc<Vec<EntityUid>>)>>,
    budget: usize,
}

impl Default for SearchCache {
    fn default() -> Self {
        Self::with_budget(SEARCH_CACHE_RESULTS)
    }
}

impl SearchCache {
    /// A cache holding at most `budget` results in all.
    pub fn with_budget(budget: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            budget,
        }
    }

    /// The results kept for `key`.
    pub fn get(&self, key: &SearchKey) -> Option<Arc<Vec<EntityUid>>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .find(|(kept, _)| kept == key)
            .map(|(_, found)| found.clone())
    }

    /// Keeps `found` for `key`, dropping the oldest entries past the budget.
    pub fn put(&self, key: SearchKey, found: Arc<Vec<EntityUid>>) {
        if found.len() > self.budget {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|(kept, _)| *kept != key);
        entries.push_back((key, found));
        let mut held: usize = entries.iter().map(|(_, found)| found.len()).sum();
        while held > self.budget {
            match entries.pop_front() {
                Some((_, dropped)) => held -= dropped.len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn snapshot() -> Arc<Snapshot> {
        Arc::new(Snapshot {
            pack: Arc::new(
                crate::engine::PolicyPack::load(&crate::engine::PackSources {
                    policies: concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into(),
                    schema: concat!(env!("CARGO_MANIFEST_DIR"), "/schema").into(),
                })
                .unwrap(),
            ),
            entities: crate::entities::EntityMap::from_entities([], 1),
            pack_loaded_at: std::time::SystemTime::now(),
        })
    }

    fn uids(n: usize) -> Arc<Vec<EntityUid>> {
        Arc::new(
            (0..n)
                .map(|i| format!("Doc::\"{i}\"").parse().unwrap())
                .collect(),
        )
    }

    #[test]
    fn entries_are_bound_to_the_snapshot_and_bounded_by_results() {
        let (one, other) = (snapshot(), snapshot());
        let key = |n: u8, snapshot: &Arc<Snapshot>| SearchKey::new([n; 32], snapshot);
        let cache = SearchCache::with_budget(10);
        cache.put(key(1, &one), uids(4));
        assert_eq!(cache.get(&key(1, &one)).unwrap().len(), 4);
        // Another snapshot is another answer, whatever its revision.
        assert_eq!(one.entities.revision(), other.entities.revision());
        assert!(cache.get(&key(1, &other)).is_none());
        cache.put(key(2, &one), uids(4));
        cache.put(key(3, &one), uids(4));
        // Twelve results past a budget of ten: the oldest goes.
        assert!(cache.get(&key(1, &one)).is_none());
        assert!(cache.get(&key(2, &one)).is_some());
        assert!(cache.get(&key(3, &one)).is_some());
        // Larger than the whole budget: not kept, nothing dropped.
        cache.put(key(4, &one), uids(11));
        assert!(cache.get(&key(4, &one)).is_none());
        assert!(cache.get(&key(3, &one)).is_some());
    }
}
