//! The replica: keeps this sidecar's entity graph equal to the Redis
//! dataset. Loads a snapshot with `HSCAN`, then tails the stream with
//! `XREAD BLOCK` on a dedicated connection, and sends each snapshot and
//! each batch of changes to the [`Publisher`], tagged with the schema they
//! were checked against. The publisher decides what readers see; when it
//! wants a fresh snapshot (the schema changed, or it refused data checked
//! against another schema) the replica reloads, parsing on all cores off
//! the async workers, while the published data keeps serving.
//!
//! Nothing may be lost, so every doubt ends in a full reload: on every
//! reconnect and every idle timeout the replica checks that the dataset
//! generation is unchanged and that the stream entry at its cursor still
//! exists and is the very write it applied (same write id). A new
//! generation (Redis restarted empty), a trimmed cursor (too far behind),
//! a gap in revisions or a rewritten history (an older dataset restored, a
//! failover to a lagging Redis replica) all reload.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cedar_policy::EntityUid;
use redis::Value;
use tokio::sync::watch;

use super::keys::{decode_hash_value, entry_id, KeyLayout};
use super::log::{parse_range, parse_read, LogEntry, RawChange, RawKind};
use super::supervise::{jittered, next_backoff, supervise, Exit, BACKOFF_START};
use super::target::{Conn, RedisTarget};
use super::writer::scan_hash;
use super::SyncError;
use crate::engine::{check_link, PolicyPack};
use crate::entities::{
    parse_entity_str, parse_in_parallel, parse_link, EntityChange, EntityMap, LinkChange, LinkMap,
    StoredEntity, StoredLink,
};
use crate::freshness::Freshness;
use crate::publisher::{EntitySet, Event, Publisher, Wanted};
use crate::telemetry::Metrics;

/// Default time an idle `XREAD BLOCK` waits before the replica re-verifies
/// its cursor (and proves contact with Redis).
pub const DEFAULT_IDLE_CHECK: Duration = Duration::from_secs(1);
/// Most stream entries read in one round trip.
const READ_COUNT: usize = 1000;

/// Keeps one published entity set in step with one Redis dataset.
#[derive(Clone)]
pub struct Replica {
    /// Where Redis is.
    pub target: Arc<RedisTarget>,
    /// Which dataset.
    pub keys: KeyLayout,
    /// Where snapshots and changes are sent, and what entities are to be
    /// checked against ([`Publisher::wanted`]).
    pub publisher: Publisher,
    /// Where contact, errors and reloads are reported.
    pub freshness: Arc<Freshness>,
    /// How long an idle `XREAD BLOCK` waits before re-verifying.
    pub idle_check: Duration,
    /// Reconnects and reloads.
    pub metrics: Arc<Metrics>,
}

/// What the replica has applied: enough to recognise the same history
/// later, and the schema it checked entities against.
#[derive(Clone)]
struct Position {
    generation: Option<String>,
    revision: u64,
    write_id: Option<String>,
    against: Wanted,
}

/// Why the replica must reload rather than continue.
struct Reload(String);

/// Why a session ended.
enum End {
    /// Talking to Redis failed: reconnect.
    Sync(SyncError),
    /// The publisher is gone (shutting down): nothing left to do.
    Stopped,
}

impl From<SyncError> for End {
    fn from(error: SyncError) -> Self {
        Self::Sync(error)
    }
}

impl From<redis::RedisError> for End {
    fn from(error: redis::RedisError) -> Self {
        Self::Sync(error.into())
    }
}

impl Replica {
    /// Runs the replica on the current tokio runtime until the publisher
    /// stops, supervised: if it dies it is restarted (and counted).
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        let (freshness, metrics) = (self.freshness.clone(), self.metrics.clone());
        supervise("redis sync", freshness, metrics, move || self.clone().run())
    }

    /// Loads, tails, verifies and reconnects until the publisher stops.
    /// Errors are reported to [`Freshness`] and the log; the last good data
    /// keeps being served. Waits between attempts back off, with jitter.
    pub async fn run(self) -> Exit {
        let mut wanted = self.publisher.wanted();
        let mut position = None;
        let mut backoff = BACKOFF_START;
        loop {
            let mut healthy = false;
            let error = match self.session(&mut wanted, &mut position, &mut healthy).await {
                End::Sync(error) => error,
                End::Stopped => return Exit::Done,
            };
            if healthy {
                backoff = BACKOFF_START;
            }
            let wait = jittered(backoff);
            tracing::warn!(redis = self.target.display(), %error, retry_in_ms = wait.as_millis() as u64, "redis sync interrupted");
            self.freshness.record_error(error.to_string());
            self.metrics.record_sync_reconnect();
            tokio::time::sleep(wait).await;
            backoff = next_backoff(backoff);
        }
    }

    /// One connection's lifetime. Returns only with what ended it.
    async fn session(
        &self,
        wanted: &mut watch::Receiver<Wanted>,
        position: &mut Option<Position>,
        healthy: &mut bool,
    ) -> End {
        match self.session_inner(wanted, position, healthy).await {
            Ok(never) => match never {},
            Err(end) => end,
        }
    }

    async fn session_inner(
        &self,
        wanted: &mut watch::Receiver<Wanted>,
        position: &mut Option<Position>,
        healthy: &mut bool,
    ) -> Result<std::convert::Infallible, End> {
        let mut conn = self.target.connect(Duration::from_secs(5)).await?;
        let mut tail = self
            .target
            .connect(self.idle_check + Duration::from_secs(5))
            .await?;
        loop {
            // The publisher asked for a fresh snapshot while we were away.
            if position.is_some() && wanted.has_changed().map_err(|_| End::Stopped)? {
                let reason = wanted.borrow().reason.to_string();
                self.reloading(reason);
                *position = None;
            }
            let mut current = match position.take() {
                Some(known) => match self.verify(&mut conn, &known).await? {
                    Ok(()) => known,
                    Err(Reload(reason)) => {
                        self.reloading(reason);
                        self.load(&mut conn, wanted).await?
                    }
                },
                None => self.load(&mut conn, wanted).await?,
            };
            *position = Some(current.clone());
            *healthy = true;
            self.freshness.record_contact();
            loop {
                let mut command = redis::cmd("XREAD");
                command
                    .arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("BLOCK")
                    .arg(self.idle_check.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&self.keys.log)
                    .arg(entry_id(current.revision));
                let read = command.query_async::<Value>(&mut tail);
                // A wanted snapshot interrupts the wait: the reply of the
                // abandoned read is discarded by the connection.
                let reply = tokio::select! {
                    reply = read => reply?,
                    changed = wanted.changed() => {
                        changed.map_err(|_| End::Stopped)?;
                        let reason = wanted.borrow().reason.to_string();
                        self.reloading(reason);
                        *position = None;
                        break;
                    }
                };
                self.freshness.record_contact();
                let entries = parse_read(reply)?;
                let outcome = if entries.is_empty() {
                    self.verify(&mut conn, &current).await?
                } else {
                    self.apply(&mut current, entries).await?
                };
                *position = Some(current.clone());
                if let Err(Reload(reason)) = outcome {
                    self.reloading(reason);
                    *position = None;
                    break;
                }
            }
        }
    }

    /// Counts and reports a malformed stream entry (once per entry).
    fn malformed(&self, what: &str) {
        if self.freshness.record_malformed(what.to_string()) {
            tracing::error!(
                entry = what,
                "malformed entry in the change stream: skipped, reloading from a snapshot"
            );
            self.metrics.record_sync_malformed();
        }
    }

    fn reloading(&self, reason: String) {
        tracing::info!(%reason, "reloading entity snapshot from redis");
        self.freshness.record_reload(reason);
        self.metrics.record_sync_reload();
    }

    /// Checks that Redis still holds the history this replica applied.
    async fn verify(
        &self,
        conn: &mut Conn,
        position: &Position,
    ) -> Result<Result<(), Reload>, SyncError> {
        let id = entry_id(position.revision);
        let (generation, entry): (Option<String>, Value) = redis::pipe()
            .cmd("GET")
            .arg(&self.keys.generation)
            .cmd("XRANGE")
            .arg(&self.keys.log)
            .arg(&id)
            .arg(&id)
            .query_async(conn)
            .await?;
        self.freshness.record_contact();
        if generation != position.generation {
            return Ok(Err(Reload(format!(
                "dataset generation changed from {:?} to {:?}",
                position.generation, generation
            ))));
        }
        if position.revision == 0 {
            return Ok(Ok(()));
        }
        Ok(match parse_range(entry)?.into_iter().next() {
            Some(found) if Some(&found.write_id) == position.write_id.as_ref() => Ok(()),
            Some(_) => Err(Reload(format!(
                "stream entry {id} is not the write this replica applied (history rewritten)"
            ))),
            None => Err(Reload(format!(
                "stream entry {id} is gone (trimmed or lost)"
            ))),
        })
    }

    /// Sends tailed entries, which must continue the history exactly, to
    /// the publisher as one batch of changes.
    async fn apply(
        &self,
        position: &mut Position,
        entries: Vec<LogEntry>,
    ) -> Result<Result<(), Reload>, End> {
        let mut changes = Vec::new();
        let mut next = position.clone();
        let mut last_written = None;
        for entry in entries {
            if entry.revision != next.revision + 1 {
                return Ok(Err(Reload(format!(
                    "gap in the stream: after revision {} came {}",
                    next.revision, entry.revision
                ))));
            }
            if let Some(what) = &entry.malformed {
                // Its changes cannot be read: the entity hash is the truth.
                self.malformed(what);
                return Ok(Err(Reload(format!("malformed stream entry: {what}"))));
            }
            if let Err(reload) = check_generation(&mut next, &entry) {
                return Ok(Err(reload));
            }
            next.revision = entry.revision;
            next.write_id = Some(entry.write_id);
            last_written = entry.written_at_ms.or(last_written);
            changes.extend(self.convert(&position.against.pack, entry.changes, None));
        }
        self.publisher
            .send(Event::Changes {
                changes,
                after: position.revision,
                revision: next.revision,
                checked: position.against.checked(),
                written_at_ms: last_written,
            })
            .await
            .map_err(|_| End::Stopped)?;
        *position = next;
        Ok(Ok(()))
    }

    /// Loads the whole dataset, checked against the wanted schema, and
    /// sends it to the publisher. Writes that land during the scan are
    /// replayed from the stream before sending, so the snapshot is exactly
    /// the dataset at one revision.
    async fn load(
        &self,
        conn: &mut Conn,
        wanted: &mut watch::Receiver<Wanted>,
    ) -> Result<Position, End> {
        let started = Instant::now();
        let against = wanted.borrow_and_update().clone();
        let pack = against.pack.clone();
        let (generation, revision): (Option<String>, Option<u64>) = redis::pipe()
            .cmd("GET")
            .arg(&self.keys.generation)
            .cmd("GET")
            .arg(&self.keys.revision)
            .query_async(conn)
            .await?;
        let base = revision.unwrap_or(0);
        // Parsing and schema-checking is most of a load: each chunk of scanned
        // entries is parsed on the blocking pool (on all cores) while the scan
        // goes on, and the async workers keep serving decisions meanwhile.
        let mut parsing = Vec::new();
        let mut chunk = Vec::with_capacity(PARSE_CHUNK);
        scan_hash(conn, &self.keys.entities, |uid, value| {
            chunk.push((uid, value));
            if chunk.len() == PARSE_CHUNK {
                parsing.push(parse_chunk(&pack, std::mem::take(&mut chunk)));
                // Redis is answering: a long load is not out of contact.
                self.freshness.record_contact();
            }
            Ok(())
        })
        .await?;
        parsing.push(parse_chunk(&pack, chunk));
        let mut refused = Vec::new();
        // Template links: few next to entities, parsed as they come. Whether
        // they fit the templates is the publisher's check (against the pack
        // it publishes them with).
        let mut links = Vec::new();
        let mut unreadable_links: Vec<Arc<str>> = Vec::new();
        scan_hash(conn, &self.keys.links, |id, value| {
            match parse_stored_link(&id, &value) {
                Ok(link) => links.push(link),
                Err(message) => {
                    tracing::error!(link = id, %message, "template link in redis is unreadable: decisions it may touch deny");
                    refused.push((format!("link `{id}`"), message));
                    unreadable_links.push(Arc::from(id.as_str()));
                }
            }
            Ok(())
        })
        .await?;
        let mut entities = Vec::new();
        for parsed in parsing {
            let parsed = parsed
                .await
                .map_err(|e| SyncError::Malformed(format!("snapshot parsing stopped: {e}")))?;
            for (uid, result) in parsed {
                match result {
                    Ok(entity) => entities.push(entity),
                    Err(message) => {
                        tracing::error!(uid, %message, "entity in redis is invalid: not served");
                        refused.push((uid, message));
                    }
                }
            }
        }
        let mut position = Position {
            generation,
            revision: base,
            write_id: None,
            against,
        };
        let mut changes = Vec::new();
        let mut start = if base == 0 {
            "-".to_string()
        } else {
            entry_id(base)
        };
        loop {
            let reply: Value = redis::cmd("XRANGE")
                .arg(&self.keys.log)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(READ_COUNT)
                .query_async(conn)
                .await?;
            self.freshness.record_contact();
            let entries = parse_range(reply)?;
            let Some(last) = entries.last().map(|e| e.revision) else {
                break;
            };
            for entry in entries {
                if let Some(what) = &entry.malformed {
                    // Written during the scan, what it wrote may or may not
                    // be in the scanned hash (the cursor may have passed the
                    // key): load again, from a base past it.
                    if entry.revision > base {
                        return Err(SyncError::Moved(format!(
                            "a malformed stream entry (revision {}) was written during the snapshot; loading again",
                            entry.revision
                        ))
                        .into());
                    }
                    // Skipped: what it wrote (if anything) is in the scanned hash.
                    if entry.revision > position.revision + 1 {
                        return Err(SyncError::Moved(format!(
                            "stream moved during the snapshot: after revision {} came {}",
                            position.revision, entry.revision
                        ))
                        .into());
                    }
                    self.malformed(what);
                    position.revision = position.revision.max(entry.revision);
                    position.write_id = Some(entry.write_id);
                    continue;
                }
                if entry.revision == base && base > 0 {
                    if Some(&entry.generation) != position.generation.as_ref() {
                        return Err(SyncError::Moved(
                            "generation changed during the snapshot".to_string(),
                        )
                        .into());
                    }
                    position.write_id = Some(entry.write_id);
                    continue;
                }
                if entry.revision != position.revision + 1 {
                    return Err(SyncError::Moved(format!(
                        "stream moved during the snapshot: after revision {} came {}",
                        position.revision, entry.revision
                    ))
                    .into());
                }
                check_generation(&mut position, &entry)
                    .map_err(|Reload(reason)| SyncError::Moved(reason))?;
                position.revision = entry.revision;
                position.write_id = Some(entry.write_id);
                changes.extend(self.convert(&pack, entry.changes, Some(&mut refused)));
            }
            start = entry_id(last + 1);
        }
        if position.revision > 0 && position.write_id.is_none() {
            return Err(SyncError::Moved(format!(
                "stream entry {} is missing: the stream was trimmed or deleted during the snapshot",
                entry_id(position.revision)
            ))
            .into());
        }
        let count = entities.len();
        let link_count = links.len();
        let mut map =
            EntityMap::from_entities(entities, base).with_links(LinkMap::from_links(links));
        // Unreadable values first, then the writes made during the scan: a
        // link written right or deleted since is placed again by its write
        // (what is still unplaced, the publisher resolves against what it
        // serves).
        map.apply(
            unreadable_links
                .into_iter()
                .map(|id| EntityChange::Link(LinkChange::Unreadable(id))),
            base,
        );
        map.apply(changes, position.revision);
        // An entity refused in the scan but written validly since is served.
        refused.retain(|(uid, _)| {
            EntityUid::from_str(uid).map_or(true, |uid| map.get(&uid).is_none())
        });
        refused.sort_by(|a, b| a.0.cmp(&b.0));
        refused.dedup_by(|a, b| a.0 == b.0);
        // Links that do not fit the templates are kept (decisions they could
        // apply to deny) and counted with what is not served as written.
        let unfit = map
            .links()
            .iter()
            .filter(|link| check_link(&pack, link).is_err())
            .count();
        let invalid = (refused.len() + unfit) as u64;
        self.publisher
            .send(Event::Snapshot {
                set: EntitySet {
                    entities: map,
                    checked: position.against.checked(),
                    refused,
                },
                reply: None,
            })
            .await
            .map_err(|_| End::Stopped)?;
        self.freshness.record_invalid(invalid, true);
        self.freshness.record_contact();
        tracing::info!(
            entities = count,
            links = link_count,
            invalid,
            revision = position.revision,
            schema = %position.against.pack.schema_version,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded entity snapshot from redis"
        );
        Ok(position)
    }

    /// Turns stream changes into store changes. An entity that fails
    /// validation, or a link that is not a link, is removed rather than
    /// served half-understood (and, in a snapshot, named in `refused`).
    fn convert(
        &self,
        pack: &PolicyPack,
        changes: Vec<RawChange>,
        mut refused: Option<&mut Vec<(String, String)>>,
    ) -> Vec<EntityChange> {
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            let mut refuse = |what: String, message: String| match refused.as_deref_mut() {
                Some(refused) => refused.push((what, message)),
                None => self.freshness.record_invalid(1, false),
            };
            if change.kind == RawKind::Link {
                let id: Arc<str> = Arc::from(change.key.as_str());
                match change.json {
                    None => out.push(EntityChange::Link(LinkChange::Delete(id))),
                    Some(json) => match parse_link_json(&change.key, json.as_bytes()) {
                        Ok(link) => {
                            out.push(EntityChange::Link(LinkChange::Upsert(Arc::new(link))));
                        }
                        Err(message) => {
                            tracing::error!(link = change.key, %message, "template link in stream is unreadable: decisions it may touch deny");
                            refuse(format!("link `{}`", change.key), message);
                            out.push(EntityChange::Link(LinkChange::Unreadable(id)));
                        }
                    },
                }
                continue;
            }
            let uid = match EntityUid::from_str(&change.key) {
                Ok(uid) => uid,
                Err(error) => {
                    self.freshness.record_invalid(1, false);
                    tracing::error!(uid = change.key, %error, "stream names an invalid uid: ignored");
                    continue;
                }
            };
            match change.json {
                None => out.push(EntityChange::Delete(uid)),
                Some(json) => match parse_json_entity(pack, &json) {
                    Ok(entity) => out.push(EntityChange::Upsert(Arc::new(entity))),
                    Err(message) => {
                        tracing::error!(uid = change.key, %message, "entity in stream is invalid: not served");
                        refuse(change.key, message);
                        out.push(EntityChange::Delete(uid));
                    }
                },
            }
        }
        out
    }
}

/// Accepts the entry's generation: the same as ours, or the first write
/// of a dataset that had none.
fn check_generation(position: &mut Position, entry: &LogEntry) -> Result<(), Reload> {
    match &position.generation {
        Some(known) if *known == entry.generation => Ok(()),
        None if position.revision == 0 => {
            position.generation = Some(entry.generation.clone());
            Ok(())
        }
        known => Err(Reload(format!(
            "stream entry {} belongs to generation {:?}, not {:?}",
            entry.revision, entry.generation, known
        ))),
    }
}

/// Scanned entries parsed per blocking task: large enough to amortise the
/// hand-off, small enough that parsing overlaps the scan.
const PARSE_CHUNK: usize = 16_384;

/// Parses scanned `(uid, value)` entries on the blocking pool, on all cores.
fn parse_chunk(
    pack: &Arc<PolicyPack>,
    raw: Vec<(String, Vec<u8>)>,
) -> tokio::task::JoinHandle<Vec<(String, Result<StoredEntity, String>)>> {
    let pack = pack.clone();
    tokio::task::spawn_blocking(move || {
        let results = parse_in_parallel(&raw, |(uid, value)| parse_stored(&pack, uid, value));
        raw.into_iter().map(|(uid, _)| uid).zip(results).collect()
    })
}

fn parse_stored(pack: &PolicyPack, uid: &str, value: &[u8]) -> Result<StoredEntity, String> {
    let (_, json) =
        decode_hash_value(value).ok_or_else(|| "not stored as `<rev>:<json>`".to_string())?;
    let json = std::str::from_utf8(json).map_err(|_| "not UTF-8".to_string())?;
    let entity = parse_json_entity(pack, json)?;
    if entity.uid().to_string() != uid {
        return Err(format!("stored under `{uid}` but is `{}`", entity.uid()));
    }
    Ok(entity)
}

fn parse_json_entity(pack: &PolicyPack, json: &str) -> Result<StoredEntity, String> {
    parse_entity_str(json, &pack.schema, &pack.entity_shapes).map_err(|e| e.to_string())
}

/// A link as stored in the links hash (`<rev>:<link JSON>`).
fn parse_stored_link(id: &str, value: &[u8]) -> Result<StoredLink, String> {
    let (_, json) =
        decode_hash_value(value).ok_or_else(|| "not stored as `<rev>:<json>`".to_string())?;
    parse_link_json(id, json)
}

/// A link's JSON, which must carry the id it is stored (or streamed) under.
fn parse_link_json(id: &str, json: &[u8]) -> Result<StoredLink, String> {
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    let link = parse_link(&value).map_err(|e| e.to_string())?;
    if &*link.id != id {
        return Err(format!(
            "stored under `{id}` but its link_id is `{}`",
            link.id
        ));
    }
    Ok(link)
}
