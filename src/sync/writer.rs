//! Writing entities and template links to Redis: every write is one call
//! of the write script, so it is one revision, atomic, and visible to
//! replicas as one stream entry. Entities are validated by the caller (see
//! `crate::entities`), and links checked against the templates (see
//! `crate::engine::check_link`), before they get here: this module only
//! moves bytes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::Value;

use super::keys::{decode_hash_value, KeyLayout};
use super::script::{write_script, MAX_CHANGES_PER_WRITE};
use super::supervise::{jittered, next_backoff, BACKOFF_START};
use super::target::{Conn, RedisTarget};
use super::SyncError;
use crate::entities::{StoredEntity, StoredLink};

/// Default approximate length the stream is trimmed to: replicas that fall
/// further behind than this reload the snapshot instead of replaying.
pub const DEFAULT_STREAM_MAXLEN: u64 = 100_000;

/// Attempts of a write that a read-only server refuses (a master demoted to
/// replica by a failover) before giving up: each reconnects, which with
/// Sentinel asks it for the master again. Waits back off from 50 ms to 2 s
/// (jittered): about 2.5 to 5 s in all.
pub const READONLY_ATTEMPTS: u32 = 8;

/// One entity to set or delete, in the form stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityWrite {
    /// Cedar's canonical uid text (`Type::"id"`): the hash field.
    pub uid: String,
    /// The entity's canonical JSON, or `None` to delete it.
    pub json: Option<String>,
}

impl EntityWrite {
    /// Sets a (validated) entity.
    pub fn put(entity: &StoredEntity) -> Result<Self, SyncError> {
        let json = entity
            .to_json_value()
            .map_err(|e| SyncError::Malformed(format!("cannot encode entity: {e}")))?;
        Ok(Self {
            uid: entity.uid().to_string(),
            json: Some(json.to_string()),
        })
    }

    /// Deletes the entity with this uid.
    pub fn delete(uid: &cedar_policy::EntityUid) -> Self {
        Self {
            uid: uid.to_string(),
            json: None,
        }
    }
}

/// One template link to set or delete, in the form stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkWrite {
    /// The link id: the hash field.
    pub id: String,
    /// The link in the Cedar CLI's `--template-linked` JSON, or `None` to
    /// delete it.
    pub json: Option<String>,
}

impl LinkWrite {
    /// Sets a (checked) link.
    pub fn put(link: &StoredLink) -> Self {
        Self {
            id: link.id.to_string(),
            json: Some(link.to_json().to_string()),
        }
    }

    /// Deletes the link with this id.
    pub fn delete(id: &str) -> Self {
        Self {
            id: id.to_string(),
            json: None,
        }
    }
}

/// An entity or a link as stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The hash field (uid text, or link id).
    pub uid: String,
    /// The revision that last wrote it.
    pub revision: u64,
    /// Its JSON.
    pub json: String,
}

/// Writes entity changes through the write script. Cheap to share: the
/// connection is multiplexed and reopened after a failure.
pub struct RedisWriter {
    target: Arc<RedisTarget>,
    keys: KeyLayout,
    maxlen: u64,
    script: redis::Script,
    /// The open connection; a tokio mutex because connecting awaits.
    conn: tokio::sync::Mutex<Option<Conn>>,
}

impl RedisWriter {
    /// A writer for the dataset at `keys`, trimming the stream to about `maxlen`.
    pub fn new(target: Arc<RedisTarget>, keys: KeyLayout, maxlen: u64) -> Self {
        Self {
            target,
            keys,
            maxlen: maxlen.max(1),
            script: write_script(),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Writes entity `changes` as ONE revision (at most
    /// [`MAX_CHANGES_PER_WRITE`]). With `expected`, the write happens only
    /// if the current revision is exactly that (compare-and-set). Returns
    /// the new revision.
    pub async fn write(
        &self,
        changes: &[EntityWrite],
        expected: Option<u64>,
    ) -> Result<u64, SyncError> {
        self.write_all(changes, &[], expected).await
    }

    /// Writes template link changes as ONE revision, like [`Self::write`].
    pub async fn write_links(
        &self,
        links: &[LinkWrite],
        expected: Option<u64>,
    ) -> Result<u64, SyncError> {
        self.write_all(&[], links, expected).await
    }

    /// Writes entity and link changes together as ONE revision: the same
    /// script, counter and stream for both.
    pub async fn write_all(
        &self,
        changes: &[EntityWrite],
        links: &[LinkWrite],
        expected: Option<u64>,
    ) -> Result<u64, SyncError> {
        let count = changes.len() + links.len();
        if count == 0 {
            return Err(SyncError::Empty);
        }
        if count > MAX_CHANGES_PER_WRITE {
            return Err(SyncError::TooLarge {
                max: MAX_CHANGES_PER_WRITE,
                got: count,
            });
        }
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(&self.keys.entities)
            .key(&self.keys.revision)
            .key(&self.keys.log)
            .key(&self.keys.generation)
            .key(&self.keys.links)
            .arg(expected.map(|e| e.to_string()).unwrap_or_default())
            .arg(self.maxlen)
            .arg(uuid::Uuid::new_v4().to_string())
            .arg(uuid::Uuid::new_v4().to_string());
        for change in changes {
            invocation
                .arg("e")
                .arg(&change.uid)
                .arg(change.json.as_deref().unwrap_or(""));
        }
        for link in links {
            invocation
                .arg("l")
                .arg(&link.id)
                .arg(link.json.as_deref().unwrap_or(""));
        }
        let mut backoff = BACKOFF_START;
        let mut attempt = 1;
        let reply: (String, u64) = loop {
            let mut conn = self.conn().await?;
            match invocation.invoke_async(&mut conn).await {
                Ok(reply) => break reply,
                // Refused before anything was written: reconnect and retry.
                Err(error) if error.code() == Some("READONLY") => {
                    *self.conn.lock().await = None;
                    if attempt == READONLY_ATTEMPTS {
                        return Err(SyncError::ReadOnly {
                            target: self.target.display().to_string(),
                            attempts: attempt,
                        });
                    }
                    tracing::warn!(
                        redis = self.target.display(),
                        attempt,
                        "redis refused a write as read-only (a replica); reconnecting"
                    );
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = next_backoff(backoff);
                    attempt += 1;
                }
                Err(error) => return Err(self.failed(error).await),
            }
        };
        match reply {
            (status, revision) if status == "ok" => Ok(revision),
            (_, current) => Err(SyncError::Conflict {
                expected: expected.unwrap_or_default(),
                current,
            }),
        }
    }

    /// Writes validated entities as one revision, after checking that every
    /// parent they name is in the write or already in Redis.
    pub async fn put_entities(
        &self,
        entities: &[StoredEntity],
        expected: Option<u64>,
    ) -> Result<u64, SyncError> {
        self.check_parents(entities).await?;
        let writes = entities
            .iter()
            .map(EntityWrite::put)
            .collect::<Result<Vec<_>, _>>()?;
        self.write(&writes, expected).await
    }

    /// Fails with [`SyncError::MissingParents`] when `entities` name parents
    /// that exist neither among them nor in Redis.
    pub async fn check_parents(&self, entities: &[StoredEntity]) -> Result<(), SyncError> {
        let written: HashSet<String> = entities.iter().map(|e| e.uid().to_string()).collect();
        let mut wanted: Vec<String> = entities
            .iter()
            .flat_map(|e| e.parents.iter().map(ToString::to_string))
            .filter(|uid| !written.contains(uid))
            .collect();
        wanted.sort();
        wanted.dedup();
        let mut missing = Vec::new();
        for part in wanted.chunks(MAX_CHANGES_PER_WRITE) {
            let found = self.exists(part).await?;
            missing.extend(
                part.iter()
                    .zip(found)
                    .filter(|(_, found)| !found)
                    .map(|(uid, _)| uid.clone()),
            );
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SyncError::MissingParents(missing))
        }
    }

    /// Writes many changes in consecutive revisions of at most `chunk`
    /// changes each (a bulk import); `progress` hears how many are done.
    /// Returns the last revision.
    pub async fn write_chunked(
        &self,
        changes: &[EntityWrite],
        chunk: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<u64, SyncError> {
        let mut revision = self.revision().await?;
        let mut done = 0;
        for part in changes.chunks(chunk.clamp(1, MAX_CHANGES_PER_WRITE)) {
            revision = self.write(part, None).await?;
            done += part.len();
            progress(done);
        }
        Ok(revision)
    }

    /// The current revision (0 for an empty dataset).
    pub async fn revision(&self) -> Result<u64, SyncError> {
        let mut conn = self.conn().await?;
        let reply: Option<u64> = match redis::cmd("GET")
            .arg(&self.keys.revision)
            .query_async(&mut conn)
            .await
        {
            Ok(reply) => reply,
            Err(error) => return Err(self.failed(error).await),
        };
        Ok(reply.unwrap_or(0))
    }

    /// Reads one entity as stored.
    pub async fn get(&self, uid: &str) -> Result<Option<StoredRecord>, SyncError> {
        self.get_field(&self.keys.entities, uid).await
    }

    /// Reads one template link as stored.
    pub async fn get_link(&self, id: &str) -> Result<Option<StoredRecord>, SyncError> {
        self.get_field(&self.keys.links, id).await
    }

    async fn get_field(&self, hash: &str, uid: &str) -> Result<Option<StoredRecord>, SyncError> {
        let mut conn = self.conn().await?;
        let reply: Option<Vec<u8>> = match redis::cmd("HGET")
            .arg(hash)
            .arg(uid)
            .query_async(&mut conn)
            .await
        {
            Ok(reply) => reply,
            Err(error) => return Err(self.failed(error).await),
        };
        reply
            .map(|value| record(uid.to_string(), &value))
            .transpose()
    }

    /// Reads which of `uids` exist (one round trip).
    pub async fn exists(&self, uids: &[String]) -> Result<Vec<bool>, SyncError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let reply: Vec<Option<Vec<u8>>> = match redis::cmd("HMGET")
            .arg(&self.keys.entities)
            .arg(uids)
            .query_async(&mut conn)
            .await
        {
            Ok(reply) => reply,
            Err(error) => return Err(self.failed(error).await),
        };
        Ok(reply.iter().map(Option::is_some).collect())
    }

    /// Visits every stored entity with `HSCAN` (never `HGETALL`, which
    /// blocks Redis on big datasets).
    pub async fn scan(&self, visit: impl FnMut(StoredRecord)) -> Result<(), SyncError> {
        self.scan_field(&self.keys.entities, visit).await
    }

    /// Visits every stored template link with `HSCAN`.
    pub async fn scan_links(&self, visit: impl FnMut(StoredRecord)) -> Result<(), SyncError> {
        self.scan_field(&self.keys.links, visit).await
    }

    async fn scan_field(
        &self,
        hash: &str,
        mut visit: impl FnMut(StoredRecord),
    ) -> Result<(), SyncError> {
        let mut conn = self.conn().await?;
        let result = scan_hash(&mut conn, hash, |uid, value| {
            visit(record(uid, &value)?);
            Ok(())
        })
        .await;
        match result {
            Err(SyncError::Redis(error)) => Err(self.failed(error).await),
            other => other,
        }
    }

    async fn conn(&self) -> Result<Conn, SyncError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.target.connect(Duration::from_secs(5)).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the connection after an I/O failure so the next call reconnects.
    async fn failed(&self, error: redis::RedisError) -> SyncError {
        if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
            *self.conn.lock().await = None;
        }
        SyncError::Redis(error)
    }
}

/// Walks a hash with `HSCAN`, handing each field and value to `visit`.
pub(crate) async fn scan_hash(
    conn: &mut impl ConnectionLike,
    key: &str,
    mut visit: impl FnMut(String, Vec<u8>) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let mut cursor: u64 = 0;
    loop {
        let (next, items): (u64, Vec<Value>) = redis::cmd("HSCAN")
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        let mut items = items.into_iter();
        while let (Some(field), Some(value)) = (items.next(), items.next()) {
            let (Value::BulkString(field), Value::BulkString(value)) = (field, value) else {
                return Err(SyncError::Malformed(format!(
                    "hash `{key}` holds a non-string"
                )));
            };
            let field = String::from_utf8(field)
                .map_err(|_| SyncError::Malformed(format!("a field of `{key}` is not UTF-8")))?;
            visit(field, value)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

fn record(uid: String, value: &[u8]) -> Result<StoredRecord, SyncError> {
    let (revision, json) = decode_hash_value(value)
        .ok_or_else(|| SyncError::Malformed(format!("`{uid}` is not stored as `<rev>:<json>`")))?;
    let json = String::from_utf8(json.to_vec())
        .map_err(|_| SyncError::Malformed(format!("`{uid}` is not UTF-8")))?;
    Ok(StoredRecord {
        uid,
        revision,
        json,
    })
}
