//! Sources of entity data. Redis lives here and only here: this is the one
//! module that imports the `redis` crate.
//!
//! - [`keys`]: the key layout (`cedar:{p0}:ent|rev|log|gen|lnk`) and value encodings.
//! - [`script`]: the atomic write script every writer uses.
//! - [`target`]: single server, Cluster or Sentinel, behind one connection type.
//! - [`writer`]: [`RedisWriter`], for the CLI and the admin API.
//! - [`replica`]: [`Replica`], the task that keeps a sidecar's graph equal to Redis.
//! - [`log`]: parsing stream entries.
//! - [`supervise`]: backoff with jitter, and restarting a sync task that died.

pub mod keys;
mod log;
pub mod replica;
pub mod script;
pub mod supervise;
pub mod target;
pub mod writer;

pub use keys::KeyLayout;
pub use replica::Replica;
pub use supervise::{supervise, Exit};
pub use target::{RedisTarget, TlsFiles, Topology};
pub use writer::{EntityWrite, LinkWrite, RedisWriter, StoredRecord};

/// Why talking to Redis did not work.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The connection or a command failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The Redis settings are unusable.
    #[error("{0}")]
    Config(String),
    /// Data in Redis does not have the documented layout.
    #[error("malformed data in redis: {0}")]
    Malformed(String),
    /// The server kept refusing writes as read-only: it is a replica.
    #[error("redis at `{target}` refused the write as read-only {attempts} times (it is a replica): point the URL at the master, or use Sentinel (--redis-sentinel-master) to follow failovers")]
    ReadOnly {
        /// The addresses written to.
        target: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The dataset changed under a snapshot in a way that needs a retry.
    #[error("snapshot must be retried: {0}")]
    Moved(String),
    /// Compare-and-set failed: someone else wrote first.
    #[error("revision conflict: expected revision {expected}, current is {current}")]
    Conflict {
        /// What the writer expected.
        expected: u64,
        /// What Redis has.
        current: u64,
    },
    /// A single write carries too many changes.
    #[error(
        "one write holds at most {max} changes (entities and links together); this one has {got}"
    )]
    TooLarge {
        /// The limit.
        max: usize,
        /// What was asked.
        got: usize,
    },
    /// Entities name parents that exist neither in the write nor in Redis.
    #[error("parents do not exist: {}", .0.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", "))]
    MissingParents(Vec<String>),
    /// A write without changes.
    #[error("nothing to write")]
    Empty,
}
