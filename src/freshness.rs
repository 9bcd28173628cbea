//! How fresh the served entity data is: the revision applied last (as a
//! watch channel, so a request can wait for a consistency token), when the
//! source was last heard from, and the policy for staleness.
//!
//! Sync sources write here; the HTTP layer reads. Nothing here does I/O.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Default bound on how long a request waits for `consistency.at_least`.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(100);
/// Default bound on how long a replica may be out of contact with its
/// source before it counts as stale.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(10);

/// What the operator decided about staleness and waiting.
#[derive(Debug, Clone, Copy)]
pub struct FreshnessPolicy {
    /// Out of contact for longer than this means stale.
    pub stale_after: Duration,
    /// Keep answering decisions while stale (otherwise 503 `stale`).
    pub serve_stale: bool,
    /// Longest wait for a requested revision.
    pub max_wait: Duration,
}

impl Default for FreshnessPolicy {
    fn default() -> Self {
        Self {
            stale_after: DEFAULT_STALE_AFTER,
            serve_stale: false,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// The freshness of one sidecar's entity data.
pub struct Freshness {
    policy: FreshnessPolicy,
    /// The revision applied last; requests wait on it.
    applied: watch::Sender<u64>,
    /// Contact bookkeeping. A std mutex: never held across an await.
    contact: Mutex<Contact>,
}

struct Contact {
    /// False for sources that cannot go stale (a file).
    tracked: bool,
    last_contact: Option<Instant>,
    last_error: Option<String>,
    last_reload_reason: Option<String>,
    reloads: u64,
    invalid_entities: u64,
    restarts: u64,
    last_restart_reason: Option<String>,
    malformed_entries: u64,
    last_malformed: Option<String>,
}

/// A point-in-time view for `/readyz` and logs.
#[derive(Debug, Clone, PartialEq)]
pub struct FreshnessReport {
    /// Whether contact is tracked at all (false for the file source).
    pub tracked: bool,
    /// Milliseconds since the source was last heard from.
    pub since_contact_ms: Option<u128>,
    /// Out of contact for longer than the bound.
    pub stale: bool,
    /// The last error talking to the source, if any since last contact.
    pub last_error: Option<String>,
    /// How many full reloads happened, and why the last one did.
    pub reloads: u64,
    /// The reason of the last reload.
    pub last_reload_reason: Option<String>,
    /// Entities in the source that failed schema validation and are not served.
    pub invalid_entities: u64,
    /// How often the sync task died and was restarted; a number that keeps
    /// growing means the sync cannot run.
    pub restarts: u64,
    /// Why the sync task was last restarted.
    pub last_restart_reason: Option<String>,
    /// Malformed change-stream entries skipped (each followed by a reload).
    pub malformed_entries: u64,
    /// What was wrong with the last one.
    pub last_malformed: Option<String>,
    /// The applied revision.
    pub revision: u64,
}

impl Freshness {
    /// A source that never goes stale (entities from a file).
    pub fn untracked(policy: FreshnessPolicy, revision: u64) -> Self {
        Self::new(policy, revision, false)
    }

    /// A source whose contact is tracked (Redis).
    pub fn tracked(policy: FreshnessPolicy) -> Self {
        Self::new(policy, 0, true)
    }

    fn new(policy: FreshnessPolicy, revision: u64, tracked: bool) -> Self {
        Self {
            policy,
            applied: watch::Sender::new(revision),
            contact: Mutex::new(Contact {
                tracked,
                last_contact: None,
                last_error: None,
                last_reload_reason: None,
                reloads: 0,
                invalid_entities: 0,
                restarts: 0,
                last_restart_reason: None,
                malformed_entries: 0,
                last_malformed: None,
            }),
        }
    }

    /// The operator's policy.
    pub fn policy(&self) -> FreshnessPolicy {
        self.policy
    }

    /// The source answered just now.
    pub fn record_contact(&self) {
        let mut contact = self.lock();
        contact.last_contact = Some(Instant::now());
        contact.last_error = None;
    }

    /// Talking to the source failed.
    pub fn record_error(&self, error: String) {
        self.lock().last_error = Some(error);
    }

    /// A full reload is starting, for `reason`.
    pub fn record_reload(&self, reason: String) {
        let mut contact = self.lock();
        contact.reloads += 1;
        contact.last_reload_reason = Some(reason);
    }

    /// The sync task died and is being restarted, for `reason`.
    pub fn record_restart(&self, reason: String) {
        let mut contact = self.lock();
        contact.restarts += 1;
        contact.last_restart_reason = Some(reason);
    }

    /// A malformed change-stream entry was skipped. Returns false (and
    /// counts nothing) when it is the one reported last: the replay of a
    /// reload meets the entry the tail met.
    pub fn record_malformed(&self, what: String) -> bool {
        let mut contact = self.lock();
        if contact.last_malformed.as_deref() == Some(what.as_str()) {
            return false;
        }
        contact.malformed_entries += 1;
        contact.last_malformed = Some(what);
        true
    }

    /// Entities that failed validation, found by the last load or change.
    pub fn record_invalid(&self, count: u64, replace: bool) {
        let mut contact = self.lock();
        if replace {
            contact.invalid_entities = count;
        } else {
            contact.invalid_entities += count;
        }
    }

    /// A revision has been applied and is visible to readers.
    pub fn record_applied(&self, revision: u64) {
        self.applied.send_replace(revision);
    }

    /// The revision applied last.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// How long the source has been out of contact beyond the bound, if it
    /// has; `None` while fresh (or never tracked).
    pub fn stale_for(&self) -> Option<Duration> {
        let contact = self.lock();
        if !contact.tracked {
            return None;
        }
        let since = contact.last_contact.map(|at| at.elapsed())?;
        (since > self.policy.stale_after).then_some(since)
    }

    /// Waits (bounded by the policy) until `revision` has been applied.
    /// True when it has.
    pub async fn wait_for(&self, revision: u64) -> bool {
        let mut receiver = self.applied.subscribe();
        let waited = tokio::time::timeout(
            self.policy.max_wait,
            receiver.wait_for(|applied| *applied >= revision),
        )
        .await;
        matches!(waited, Ok(Ok(_)))
    }

    /// A view for status endpoints.
    pub fn report(&self) -> FreshnessReport {
        let stale = self.stale_for().is_some();
        let contact = self.lock();
        FreshnessReport {
            tracked: contact.tracked,
            since_contact_ms: contact.last_contact.map(|at| at.elapsed().as_millis()),
            stale,
            last_error: contact.last_error.clone(),
            reloads: contact.reloads,
            last_reload_reason: contact.last_reload_reason.clone(),
            invalid_entities: contact.invalid_entities,
            restarts: contact.restarts,
            last_restart_reason: contact.last_restart_reason.clone(),
            malformed_entries: contact.malformed_entries,
            last_malformed: contact.last_malformed.clone(),
            revision: self.applied(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Contact> {
        self.contact
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_for_an_applied_revision_succeeds_and_a_future_one_times_out() {
        let policy = FreshnessPolicy {
            max_wait: Duration::from_millis(20),
            ..FreshnessPolicy::default()
        };
        let freshness = Freshness::tracked(policy);
        freshness.record_applied(5);
        assert!(freshness.wait_for(5).await);
        assert!(!freshness.wait_for(6).await);
    }

    #[test]
    fn contact_older_than_the_bound_is_stale() {
        let policy = FreshnessPolicy {
            stale_after: Duration::ZERO,
            ..FreshnessPolicy::default()
        };
        let freshness = Freshness::tracked(policy);
        assert_eq!(
            freshness.stale_for(),
            None,
            "no contact yet: not loaded, not stale"
        );
        freshness.record_contact();
        std::thread::sleep(Duration::from_millis(2));
        assert!(freshness.stale_for().is_some());
        assert_eq!(Freshness::untracked(policy, 1).stale_for(), None);
    }
}
