//! The results of the last few searches, so that a caller following a
//! search's pages does not search again for each page: a page token is
//! bound to the request and the snapshot, and so is an entry here, so an
//! entry is exactly what searching again would find. Bounded by the number
//! of results it holds, not of entries; a search with more results than
//! the whole budget is not kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cedar_policy::EntityUid;

/// Results kept at most, over every entry (about 100 bytes each).
pub const SEARCH_CACHE_RESULTS: usize = 100_000;

/// What a search's results depend on: the request without its `page`
/// (digest), and the snapshot (entity revision, policy version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchKey {
    /// SHA-256 of the request without its `page`, and of the route.
    pub digest: [u8; 32],
    /// The snapshot's entity revision.
    pub revision: u64,
    /// The snapshot's policy version.
    pub policy_version: String,
}

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

    fn key(n: u8, revision: u64) -> SearchKey {
        SearchKey {
            digest: [n; 32],
            revision,
            policy_version: "v".into(),
        }
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
        let cache = SearchCache::with_budget(10);
        cache.put(key(1, 1), uids(4));
        assert_eq!(cache.get(&key(1, 1)).unwrap().len(), 4);
        // Another revision is another answer.
        assert!(cache.get(&key(1, 2)).is_none());
        cache.put(key(2, 1), uids(4));
        cache.put(key(3, 1), uids(4));
        // Twelve results past a budget of ten: the oldest goes.
        assert!(cache.get(&key(1, 1)).is_none());
        assert!(cache.get(&key(2, 1)).is_some());
        assert!(cache.get(&key(3, 1)).is_some());
        // Larger than the whole budget: not kept, nothing dropped.
        cache.put(key(4, 1), uids(11));
        assert!(cache.get(&key(4, 1)).is_none());
        assert!(cache.get(&key(3, 1)).is_some());
    }
}
