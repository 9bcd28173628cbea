//! The one owner of what gets published: a task that receives typed events
//! from every writer (policy reloads, the entities file, the Redis replica),
//! decides what readers may see, and publishes it into [`SharedState`].
//!
//! It holds the policy pack apart from the entities, so the latest good
//! pack is always the one published (even one reloaded before the first
//! entity snapshot), and it publishes entities only together with the
//! schema they were checked against:
//!
//! - a pack whose schema is the published one is published at once, with
//!   the published entities;
//! - a pack with another schema waits: its entities must be checked against
//!   it first. A file source sends them along (it re-read the file with the
//!   new schema); otherwise the owner asks the entity source, through
//!   [`Wanted`], for a fresh snapshot checked against the new schema, and
//!   publishes the pack and that snapshot together;
//! - entity changes and snapshots are tagged with the schema they were
//!   checked against ([`Checked`]); anything checked against another schema
//!   than the one it would be published with is refused, and the source is
//!   asked for a fresh snapshot.
//!
//! The owner only moves pointers and applies changes (time proportional to
//! the change): parsing and checking happen in the sources. (The Redis
//! replica still parses stream batches and builds a snapshot's map on an
//! async worker; a very large batch or snapshot holds that worker while it
//! does.) Readers never wait: they load the [`SharedState`] pointer.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cedar_policy::EntityUid;
use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::{check_link, check_links_kept, PolicyPack};
use crate::entities::{EntityChange, EntityMap, LinkChange, StoredLink};
use crate::freshness::Freshness;
use crate::state::{SharedState, Snapshot};
use crate::telemetry::Metrics;

/// Events waiting for the owner; senders wait when it is this far behind.
const QUEUE: usize = 256;
/// Most refused entities named when a schema change is refused.
const MAX_REFUSALS_SHOWN: usize = 10;

/// What entity sources are to check entities against, and when they are to
/// load a fresh snapshot: whenever `seq` moves.
#[derive(Clone)]
pub struct Wanted {
    /// The pack whose schema entities are checked against (the latest good
    /// pack: published, or waiting for its entities).
    pub pack: Arc<PolicyPack>,
    /// Bumped whenever a fresh snapshot is wanted: the schema changed, or the
    /// owner refused data checked against another schema.
    pub seq: u64,
    /// Why the last fresh snapshot was asked for, for logs and status.
    pub reason: Arc<str>,
}

impl Wanted {
    /// The tag for entities checked against this pack's schema.
    pub fn checked(&self) -> Checked {
        Checked {
            schema_version: self.pack.schema_version.clone(),
            seq: self.seq,
        }
    }
}

/// What a set of entities was checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The content hash of the schema ([`PolicyPack::schema_version`]).
    pub schema_version: String,
    /// The [`Wanted::seq`] the source was working from: the owner asks
    /// again for a snapshot only when the source has not been asked since.
    pub seq: u64,
}

/// A whole entity set from a source, checked against one schema.
pub struct EntitySet {
    /// The entities the schema accepted, at the source's revision.
    pub entities: EntityMap,
    /// The schema they were checked against.
    pub checked: Checked,
    /// Entities in the source that the schema refused (not in `entities`):
    /// uid as the source names it, and why.
    pub refused: Vec<(String, String)>,
}

/// Why entity data or a pack was not published.
pub type Refusal = String;

/// The final outcome of a reloaded pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackOutcome {
    /// Published: readers see the pack with this version.
    Published(String),
    /// Refused, for this reason; the published pack keeps serving.
    Refused(Refusal),
    /// A later pack replaced it before it could be published.
    Superseded,
}

/// What writers send the owner.
pub enum Event {
    /// A policy pack from a reload, strictly validated. `entities` are sent
    /// along when the source re-read them against this pack's schema (the
    /// entities file). `reply` hears the outcome once it is final: the
    /// pack's version when published, or why it was refused.
    Pack {
        /// The new pack.
        pack: Arc<PolicyPack>,
        /// Entities checked against `pack`'s schema, if the source has them.
        entities: Option<EntitySet>,
        /// The outcome.
        reply: oneshot::Sender<PackOutcome>,
    },
    /// Entity changes continuing the published revision `after`.
    Changes {
        /// The changes, in order.
        changes: Vec<EntityChange>,
        /// The revision they continue from.
        after: u64,
        /// The revision they produce.
        revision: u64,
        /// The schema they were checked against.
        checked: Checked,
        /// When the last of them was written at the source (Unix ms).
        written_at_ms: Option<u64>,
    },
    /// All entity data, replacing what is published.
    Snapshot {
        /// The entities.
        set: EntitySet,
        /// Hears the number of entities published, or why not.
        reply: Option<oneshot::Sender<Result<usize, Refusal>>>,
    },
}

/// The owner stopped (the process is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the publisher has stopped")]
pub struct Stopped;

/// A handle to the owner task: cheap to clone, one per writer.
#[derive(Clone)]
pub struct Publisher {
    events: mpsc::Sender<Event>,
    wanted: watch::Receiver<Wanted>,
    shared: Arc<SharedState>,
}

impl Publisher {
    /// Starts the owner of `shared` on the current runtime. `pack` is the
    /// pack to publish: already with the entities in `shared` (a file), or
    /// with the first snapshot a source sends (Redis). Published revisions
    /// are reported to `freshness`; write-to-publish lag to `metrics`.
    pub fn start(
        shared: Arc<SharedState>,
        pack: Arc<PolicyPack>,
        freshness: Arc<Freshness>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (events, receiver) = mpsc::channel(QUEUE);
        let (wanted_tx, wanted) = watch::channel(Wanted {
            pack: pack.clone(),
            seq: 0,
            reason: Arc::from("first load"),
        });
        let owner = Owner {
            shared: shared.clone(),
            latest: pack,
            waiting: Vec::new(),
            wanted: wanted_tx,
            freshness,
            metrics,
        };
        tokio::spawn(owner.run(receiver));
        Self {
            events,
            wanted,
            shared,
        }
    }

    /// Sends one event; waits while the owner is [`QUEUE`] events behind.
    pub async fn send(&self, event: Event) -> Result<(), Stopped> {
        self.events.send(event).await.map_err(|_| Stopped)
    }

    /// What sources are to check against; `changed()` on it means a fresh
    /// snapshot is wanted.
    pub fn wanted(&self) -> watch::Receiver<Wanted> {
        self.wanted.clone()
    }

    /// The latest good pack (published, or waiting for its entities).
    pub fn latest(&self) -> Arc<PolicyPack> {
        self.wanted.borrow().pack.clone()
    }

    /// What readers see now.
    pub fn published(&self) -> Option<Arc<Snapshot>> {
        self.shared.snapshot()
    }
}

/// The task's state. Only this task calls [`SharedState::swap`].
struct Owner {
    shared: Arc<SharedState>,
    /// The latest good pack: the published one, or one waiting for entities
    /// checked against its schema.
    latest: Arc<PolicyPack>,
    /// Reloads waiting for `latest` to be published.
    waiting: Vec<oneshot::Sender<PackOutcome>>,
    wanted: watch::Sender<Wanted>,
    freshness: Arc<Freshness>,
    metrics: Arc<Metrics>,
}

impl Owner {
    async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        while let Some(event) = events.recv().await {
            match event {
                Event::Pack {
                    pack,
                    entities,
                    reply,
                } => self.on_pack(pack, entities, reply),
                Event::Changes {
                    changes,
                    after,
                    revision,
                    checked,
                    written_at_ms,
                } => self.on_changes(changes, after, revision, &checked, written_at_ms),
                Event::Snapshot { set, reply } => {
                    let result = self.on_snapshot(set);
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                }
            }
        }
    }

    fn on_pack(
        &mut self,
        pack: Arc<PolicyPack>,
        entities: Option<EntitySet>,
        reply: oneshot::Sender<PackOutcome>,
    ) {
        // A newer pack replaces one still waiting for its entities.
        self.settle(&PackOutcome::Superseded);
        let current = self.shared.snapshot();
        // Template links are data checked against templates: a pack that
        // drops a linked template or changes what its slots take is refused
        // while links it would orphan are served (dropping a linked forbid
        // would widen access). Links that fit no pack do not hold it back.
        let before = current.as_ref().map(|c| c.pack.as_ref());
        let links = match (&entities, &current) {
            (Some(set), _) => Some(set.entities.links()),
            (None, Some(current)) => Some(current.entities.links()),
            (None, None) => None,
        };
        if let Some(Err(refusal)) = links.map(|links| check_links_kept(&pack, links, before)) {
            tracing::error!("policy pack refused; the published one keeps serving:\n{refusal}");
            let _ = reply.send(PackOutcome::Refused(refusal));
            return;
        }
        if let Some(set) = entities {
            if set.checked.schema_version != pack.schema_version {
                let _ = reply.send(PackOutcome::Refused(
                    "entities sent with the pack were checked against another schema".to_string(),
                ));
                return;
            }
            self.latest = pack.clone();
            self.want(pack.clone(), "the schema changed", false);
            let version = pack.version.clone();
            let revision = set.entities.revision();
            self.replace(Snapshot {
                pack,
                entities: set.entities,
                pack_loaded_at: SystemTime::now(),
            });
            self.freshness.record_applied(revision);
            let _ = reply.send(PackOutcome::Published(version));
            return;
        }
        self.latest = pack.clone();
        match current {
            Some(current) if current.pack.schema_version == pack.schema_version => {
                let version = pack.version.clone();
                // Back to the published schema: a source loading for a
                // pending one must load again.
                self.want(pack.clone(), "the schema changed back", false);
                self.shared.swap(Snapshot {
                    pack,
                    entities: current.entities.clone(),
                    pack_loaded_at: SystemTime::now(),
                });
                let _ = reply.send(PackOutcome::Published(version));
            }
            _ => {
                // Another schema (or nothing published yet): entities must
                // be checked against it before it is published.
                self.waiting.push(reply);
                self.want(pack, "the schema changed", false);
            }
        }
    }

    fn on_snapshot(&mut self, mut set: EntitySet) -> Result<usize, Refusal> {
        let current = self.shared.snapshot();
        // A link the source now holds unreadable must not vanish: one that
        // was served stays, unusable; one that was not stays unplaced and
        // every decision denies until it is fixed (fail closed: what it
        // applies to is unknown).
        let unplaced: Vec<Arc<str>> = set.entities.links().unplaced().cloned().collect();
        if let (false, Some(current)) = (unplaced.is_empty(), &current) {
            let revision = set.entities.revision();
            let mut changes = Vec::new();
            for id in unplaced {
                if let Some(served) = current.entities.links().get(&id) {
                    changes.push(EntityChange::Link(LinkChange::Upsert(served.clone())));
                    changes.push(EntityChange::Link(LinkChange::Unreadable(id)));
                }
            }
            set.entities.apply(changes, revision);
        }
        let count = set.entities.len();
        let revision = set.entities.revision();
        if set.checked.schema_version == self.latest.schema_version {
            self.count_unfit_links(&self.latest, set.entities.links().iter(), false);
            let pack_changes = current
                .as_ref()
                .is_none_or(|c| !Arc::ptr_eq(&c.pack, &self.latest));
            if let Some(current) = current.as_ref().filter(|_| pack_changes) {
                if let Err(refusal) = check_nothing_lost(&set.refused, &current.entities) {
                    return Err(self.refuse_schema(current, refusal));
                }
            }
            let loaded_at = match &current {
                Some(c) if !pack_changes => c.pack_loaded_at,
                _ => SystemTime::now(),
            };
            let version = self.latest.version.clone();
            self.replace(Snapshot {
                pack: self.latest.clone(),
                entities: set.entities,
                pack_loaded_at: loaded_at,
            });
            self.freshness.record_applied(revision);
            self.settle(&PackOutcome::Published(version));
            return Ok(count);
        }
        match current {
            // Checked against the published schema while a new one waits
            // for its own snapshot: still good for the published pack.
            Some(current) if current.pack.schema_version == set.checked.schema_version => {
                self.count_unfit_links(&current.pack, set.entities.links().iter(), false);
                self.replace(Snapshot {
                    pack: current.pack.clone(),
                    entities: set.entities,
                    pack_loaded_at: current.pack_loaded_at,
                });
                self.freshness.record_applied(revision);
                Ok(count)
            }
            _ => {
                let why = "an entity snapshot was checked against a schema that is neither published nor wanted";
                self.ask_again(&set.checked, why);
                Err(why.to_string())
            }
        }
    }

    fn on_changes(
        &mut self,
        changes: Vec<EntityChange>,
        after: u64,
        revision: u64,
        checked: &Checked,
        written_at_ms: Option<u64>,
    ) {
        let Some(current) = self.shared.snapshot() else {
            self.ask_again(checked, "entity changes arrived before any snapshot");
            return;
        };
        if current.pack.schema_version != checked.schema_version {
            self.ask_again(
                checked,
                "entity changes were checked against another schema than the published one",
            );
            return;
        }
        if current.entities.revision() != after {
            self.ask_again(
                checked,
                "entity changes do not continue the published revision",
            );
            return;
        }
        let upserts = changes.iter().filter_map(|change| match change {
            EntityChange::Link(LinkChange::Upsert(link)) => Some(link),
            _ => None,
        });
        self.count_unfit_links(&current.pack, upserts, true);
        let mut entities = current.entities.clone();
        entities.apply(changes, revision);
        self.shared.swap(Snapshot {
            pack: current.pack.clone(),
            entities,
            pack_loaded_at: current.pack_loaded_at,
        });
        self.freshness.record_applied(revision);
        if let Some(ms) = written_at_ms {
            self.metrics
                .record_sync_applied(std::time::UNIX_EPOCH + Duration::from_millis(ms));
        }
    }

    /// Template links that do not fit `pack` (written to Redis unchecked, or
    /// checked against other policies) are kept, so a pack that brings
    /// their template serves them, but decisions they could apply to deny
    /// (`engine::with_links`); each is logged and counted with the invalid
    /// entities when `count` (a snapshot's source counts its own).
    fn count_unfit_links<'a>(
        &self,
        pack: &PolicyPack,
        links: impl Iterator<Item = &'a Arc<StoredLink>>,
        count: bool,
    ) {
        let mut unfit = 0;
        for link in links {
            if let Err(error) = check_link(pack, link) {
                tracing::error!(link = %link.id, %error, "template link does not fit the policies: decisions it could apply to deny");
                unfit += 1;
            }
        }
        if count && unfit > 0 {
            self.freshness.record_invalid(unfit, false);
        }
    }

    /// A new schema would drop entities the published one serves: keep the
    /// published pack, tell the waiting reloads why, and have the source
    /// load against the published schema again.
    fn refuse_schema(&mut self, current: &Snapshot, refusal: Refusal) -> Refusal {
        tracing::error!(
            "schema change refused; the published policies and entities keep serving:\n{refusal}"
        );
        self.settle(&PackOutcome::Refused(refusal.clone()));
        self.latest = current.pack.clone();
        self.want(
            current.pack.clone(),
            "the new schema was refused; back to the published one",
            true,
        );
        refusal
    }

    /// Data checked against a schema it cannot be published with: dropped,
    /// and the source asked for a fresh snapshot unless it already was.
    fn ask_again(&mut self, checked: &Checked, why: &str) {
        if checked.seq == self.wanted.borrow().seq {
            tracing::info!(
                reason = why,
                "asking the entity source for a fresh snapshot"
            );
            self.want(self.latest.clone(), why, true);
        } else {
            tracing::debug!(
                reason = why,
                "dropped entity data the source is already reloading"
            );
        }
    }

    /// Points sources at `pack`; asks them for a fresh snapshot when its
    /// schema is not the one they check against, or when `fresh`.
    fn want(&self, pack: Arc<PolicyPack>, reason: &str, fresh: bool) {
        self.wanted.send_if_modified(|wanted| {
            let reload = fresh || wanted.pack.schema_version != pack.schema_version;
            wanted.pack = pack;
            if reload {
                wanted.seq += 1;
                wanted.reason = Arc::from(reason);
            }
            reload
        });
    }

    /// Publishes a whole new snapshot; the old one is freed on the blocking
    /// pool (dropping a million entities takes a while).
    fn replace(&self, snapshot: Snapshot) {
        if let Some(old) = self.shared.swap(snapshot) {
            tokio::task::spawn_blocking(move || drop(old));
        }
    }

    /// Answers every reload waiting for the latest pack.
    fn settle(&mut self, outcome: &PackOutcome) {
        for waiter in self.waiting.drain(..) {
            let _ = waiter.send(outcome.clone());
        }
    }
}

/// Fails when entities the new schema refused are served now: a schema
/// change must not silently drop data.
fn check_nothing_lost(refused: &[(String, String)], published: &EntityMap) -> Result<(), Refusal> {
    let lost: Vec<String> = refused
        .iter()
        .filter(|(uid, _)| EntityUid::from_str(uid).is_ok_and(|uid| published.get(&uid).is_some()))
        .map(|(uid, message)| format!("`{uid}`: {message}"))
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    let shown = lost.len().min(MAX_REFUSALS_SHOWN);
    let more = lost.len() - shown;
    Err(format!(
        "the new schema does not accept stored entities:\n  {}{}",
        lost[..shown].join("\n  "),
        if more > 0 {
            format!("\n  ... and {more} more")
        } else {
            String::new()
        }
    ))
}
