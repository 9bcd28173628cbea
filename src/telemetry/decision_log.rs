//! The decision log: one JSON line per decision, the audit trail a security
//! team reads. Records go through a bounded channel to a writer thread, so
//! logging never blocks a decision.
//!
//! **Every record is written or counted lost, by cause, exactly once.** A
//! record the filter and sampling want logged is either counted in
//! `cedar_decision_log_records_total` or in `cedar_decision_log_dropped_total`
//! under one [`DecisionLogLoss`]: `buffer_full` (the channel was full),
//! `write_error` (the write that should have carried it failed) or `shutdown`
//! (abandoned at shutdown). To know which records reached the file, the
//! writer keeps no hidden buffer: it gathers queued records into a batch,
//! writes the batch with plain `write` calls and counts the records whose
//! bytes the OS took in full.
//!
//! A file sink follows logrotate's conventions. On [`DecisionLog::reopen`]
//! (SIGHUP), and whenever the path no longer names the open file (moved,
//! replaced or removed; compared at most every 100 ms), the path is opened
//! again; records written to a moved file before that are in the moved file.
//! After each batch the writer asks whether the open file still has a name:
//! if it was removed, the batch is written again to a new file at the path,
//! so removing the log deletes only what was in it before, as `rm` does, and
//! nothing written after goes into a file no one can read.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{
    sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError,
};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{DecisionLogLoss, Metrics};

/// The marker that replaces masked context values.
pub const MASKED: &str = "[masked]";

/// How long [`DecisionLog::shutdown`] lets the writer finish what is queued.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

/// How long an idle writer waits before it looks at its file again (a
/// pending reopen, a moved or removed file, errors still to report).
const TICK: Duration = Duration::from_millis(100);

/// The path is compared with the open file at most this often.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// A batch is written once it holds this many bytes, or when the queue is
/// empty: a busy writer makes few large writes, an idle one writes at once.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// At most one error line this often; the ones in between are counted.
const ERROR_EVERY: Duration = Duration::from_secs(1);

/// A failed size rotation is tried again no sooner than this.
const ROTATE_RETRY: Duration = Duration::from_secs(1);

/// A batch that landed in a removed file is written again at most this often.
const REWRITES: u32 = 2;

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionLogSink {
    /// No decision log.
    Off,
    /// Standard output, one JSON line per decision.
    Stdout,
    /// A file, rotated by size.
    File(PathBuf),
}

/// Shown as written in configuration: `off`, `stdout` or the file path.
impl std::fmt::Display for DecisionLogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Stdout => f.write_str("stdout"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl std::str::FromStr for DecisionLogSink {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "off" | "" => Self::Off,
            "stdout" | "-" => Self::Stdout,
            path => Self::File(PathBuf::from(path)),
        })
    }
}

/// Which decisions are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionLogFilter {
    /// Every decision (allows may be sampled).
    All,
    /// Denies only.
    DenyOnly,
}

/// How a record keeps the entities a request carried.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum RequestEntityLogging {
    /// Uid and SHA-256 digest only: shows whether two decisions saw the same
    /// entity without logging its attributes (which may be personal data);
    /// such a record cannot be replayed.
    #[default]
    Digest,
    /// The entity's JSON as well (masked keys masked in `attrs` and `tags`),
    /// so that `cedar-sidecar replay` can decide the request again.
    Full,
}

/// Decision log settings.
#[derive(Debug, Clone)]
pub struct DecisionLogConfig {
    /// Where records go.
    pub sink: DecisionLogSink,
    /// Which decisions.
    pub filter: DecisionLogFilter,
    /// Keep one allow in this many (1 keeps all). Denies are never sampled.
    pub sample_allows: u64,
    /// Context keys (at any depth) whose values are replaced by `[masked]`.
    pub mask_keys: Vec<String>,
    /// Records that may wait for the writer before new ones are dropped.
    pub buffer: usize,
    /// A log file is rotated when it grows past this many bytes.
    pub max_file_bytes: u64,
    /// Rotated files kept (`FILE.1` is the newest).
    pub max_files: usize,
    /// Whether request entities are logged as digests or in full.
    pub request_entities: RequestEntityLogging,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            sink: DecisionLogSink::Off,
            filter: DecisionLogFilter::All,
            sample_allows: 1,
            mask_keys: Vec::new(),
            buffer: 8192,
            max_file_bytes: 100 * 1024 * 1024,
            max_files: 5,
            request_entities: RequestEntityLogging::Digest,
        }
    }
}

/// One logged decision.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    /// The decision's id (also in the response body).
    pub decision_id: String,
    /// RFC 3339 with microseconds, UTC.
    pub timestamp: String,
    /// The caller's request id (`X-Request-ID`, or one we generated).
    pub request_id: String,
    /// Which API was called (`is_authorized` or `batch`).
    pub endpoint: &'static str,
    /// The caller's address, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `Type::"id"` strings.
    pub principal: String,
    /// The action uid.
    pub action: String,
    /// The resource uid.
    pub resource: String,
    /// The context, with masked keys replaced.
    pub context: serde_json::Value,
    /// `Allow` or `Deny`.
    pub decision: &'static str,
    /// Determining policy ids.
    pub reasons: Vec<String>,
    /// Errors and fail-closed explanations.
    pub errors: Vec<String>,
    /// Content hash of the policy set.
    pub policy_version: String,
    /// Entity revision.
    pub entity_revision: u64,
    /// Time to decide, in microseconds.
    pub latency_us: u64,
    /// Entities the request carried (only with `request_entities` not
    /// `off`): what, besides stored data, this decision was made on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_entities: Vec<RequestEntityRecord>,
    /// How the request's entities were admitted (`new-only` or
    /// `override`), so a replay admits them the same way; absent when the
    /// request carried none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_entities_mode: Option<&'static str>,
    /// Set when masking replaced a value: the record no longer holds what
    /// was decided, so it cannot be replayed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub masked: bool,
    /// From a gateway door: the original method, path and matched route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<serde_json::Value>,
}

/// `value` with every object's keys in sorted order, so that the same
/// entity sent with its keys in another order has the same digest.
fn sorted_keys(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

/// One entity sent with a request, as the audit trail keeps it: its uid,
/// and a digest of its JSON that shows whether two decisions saw the same
/// entity without logging attribute values.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RequestEntityRecord {
    /// `Type::"id"`.
    pub uid: String,
    /// SHA-256 of the entity's JSON as sent (object keys sorted, no
    /// blanks), hex: the same entity in another form (an `__entity`
    /// wrapper, a set in another order) has another digest.
    pub sha256: String,
    /// The entity's JSON, with `decision_log.request_entities = "full"`
    /// only (masked keys masked in its `attrs` and `tags`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<serde_json::Value>,
}

impl RequestEntityRecord {
    /// The record of one request entity as sent.
    pub fn of(entity: &serde_json::Value) -> Self {
        use sha2::{Digest, Sha256};
        let uid = entity
            .get("uid")
            .map_or_else(|| "(no uid)".to_string(), crate::entities::uid_display);
        let json = serde_json::to_vec(&sorted_keys(entity)).unwrap_or_default();
        Self {
            uid,
            sha256: format!("{:x}", Sha256::digest(&json)),
            entity: None,
        }
    }
}

/// What a record keeps of a request: its context and entities as the
/// masking and `request_entities` settings allow.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    /// The context, masked.
    pub context: serde_json::Value,
    /// The entities, as digests or in full.
    pub request_entities: Vec<RequestEntityRecord>,
    /// The trust mode they were admitted under (when there are any).
    pub request_entities_mode: Option<&'static str>,
    /// Whether masking replaced anything.
    pub masked: bool,
}

/// The decision logger shared by all requests.
pub struct DecisionLog {
    config: DecisionLogConfig,
    /// Taken at shutdown. Read-locked by every submit (shared: submits never wait for each
    /// other), write-locked once by shutdown, so that once shutdown holds
    /// it the number of accepted records is final.
    sender: RwLock<Option<SyncSender<DecisionRecord>>>,
    /// The writer thread; put back when a shutdown gave up waiting, so a
    /// later call can wait again.
    writer: Mutex<Option<WriterThread>>,
    /// Whether this logger logs at all: a record submitted after shutdown is
    /// a loss only if it does.
    enabled: bool,
    allows_seen: AtomicU64,
    /// What became of the records handed to the writer.
    ledger: Arc<Ledger>,
    /// Set by [`DecisionLog::reopen`], taken by the writer.
    reopen: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl DecisionLog {
    /// Starts the writer thread (unless the sink is `Off`).
    pub fn start(config: DecisionLogConfig, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let sink = match &config.sink {
            DecisionLogSink::Off => return Ok(Self::without_writer(config, metrics)),
            DecisionLogSink::Stdout => Sink::Stream(Box::new(std::io::stdout())),
            DecisionLogSink::File(path) => Sink::File(LogFile::open(
                path.clone(),
                config.max_file_bytes,
                config.max_files,
                CHECK_EVERY,
            )?),
        };
        Self::with_sink(config, metrics, sink)
    }

    /// Starts a logger writing lines to `writer` (for embedding and tests);
    /// the sink in `config` is only reported, not opened. A record counts as
    /// written once `writer` took all its bytes and the flush after them
    /// succeeded.
    pub fn start_with_writer(
        config: DecisionLogConfig,
        metrics: Arc<Metrics>,
        writer: Box<dyn Write + Send>,
    ) -> std::io::Result<Self> {
        Self::with_sink(config, metrics, Sink::Stream(writer))
    }

    /// A logger that logs nothing.
    pub fn off(metrics: Arc<Metrics>) -> Self {
        Self::without_writer(DecisionLogConfig::default(), metrics)
    }

    /// The settings in force.
    pub fn config(&self) -> &DecisionLogConfig {
        &self.config
    }

    /// Whether a decision with this outcome should be logged (filter and
    /// sampling); call before building the record so skipped ones cost nothing.
    pub fn wants(&self, allowed: bool) -> bool {
        if self.config.sink == DecisionLogSink::Off {
            return false;
        }
        if !allowed {
            return true;
        }
        if self.config.filter == DecisionLogFilter::DenyOnly {
            return false;
        }
        let n = self.allows_seen.fetch_add(1, Ordering::Relaxed);
        n.is_multiple_of(self.config.sample_allows.max(1))
    }

    /// Hands a record to the writer without waiting; counts it if dropped.
    pub fn submit(&self, record: DecisionRecord) {
        let sender = self.sender.read().unwrap_or_else(|p| p.into_inner());
        let Some(sender) = sender.as_ref() else {
            if self.enabled {
                self.metrics
                    .record_decision_log_lost(DecisionLogLoss::Shutdown, 1);
            }
            return;
        };
        match sender.try_send(record) {
            // Counted while the sender is held: once shutdown has taken it,
            // the number of accepted records is final.
            Ok(()) => {
                self.ledger.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                self.metrics
                    .record_decision_log_lost(DecisionLogLoss::BufferFull, 1);
                let drops = self.metrics.decision_log_lost(DecisionLogLoss::BufferFull);
                if drops.is_power_of_two() {
                    tracing::warn!(
                        dropped_total = drops,
                        "decision log writer is behind; records dropped"
                    );
                }
            }
            // The writer thread is gone, which only a bug can cause.
            Err(TrySendError::Disconnected(_)) => {
                self.metrics
                    .record_decision_log_lost(DecisionLogLoss::WriteError, 1);
            }
        }
    }

    /// Masks the configured context keys.
    pub fn mask(&self, context: &serde_json::Value) -> serde_json::Value {
        mask_context(context, &self.config.mask_keys)
    }

    /// The request's part of a record: the context masked, the entities as
    /// digests or (with `request_entities = "full"`) in full with their
    /// `attrs` and `tags` masked by the same keys, and whether anything was
    /// masked (a masked record cannot be replayed).
    pub fn logged_request(
        &self,
        context: &serde_json::Value,
        entities: &[serde_json::Value],
        mode: crate::engine::RequestEntityMode,
    ) -> LoggedRequest {
        let keys = &self.config.mask_keys;
        let mut masked = false;
        let context = mask_flagged(context, keys, &mut masked);
        let full = self.config.request_entities == RequestEntityLogging::Full;
        let request_entities = entities
            .iter()
            .map(|entity| {
                let mut record = RequestEntityRecord::of(entity);
                if full {
                    record.entity = Some(mask_entity(entity, keys, &mut masked));
                }
                record
            })
            .collect();
        LoggedRequest {
            context,
            request_entities,
            request_entities_mode: (!entities.is_empty()).then(|| mode.as_str()),
            masked,
        }
    }

    /// Opens the log file's path again, as logrotate expects after it moved
    /// the file (`postrotate kill -HUP`). Returns at once; the writer opens
    /// the path before its next write, or within 100 ms when idle. Records
    /// written until then are in the moved file. Nothing to do for stdout.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// Records handed to the writer and not yet written or counted lost.
    pub fn pending(&self) -> u64 {
        self.ledger.pending()
    }

    /// Stops accepting records, writes out what is queued and flushes,
    /// waiting at most 5 s for a stuck sink (see [`DecisionLog::shutdown_within`]).
    pub fn shutdown(&self) {
        self.shutdown_within(SHUTDOWN_BOUND);
    }

    /// Stops accepting records and lets the writer write out what is queued
    /// for at most `bound`. Returns whether it finished; if not (a sink that
    /// blocks), every record not yet written is counted lost as `shutdown`
    /// and stays counted so even if the stuck write completes later. Records
    /// submitted after this are counted as `shutdown` too.
    pub fn shutdown_within(&self, bound: Duration) -> bool {
        drop(
            self.sender
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let mut writer = lock(&self.writer);
        let Some(thread) = writer.take() else {
            return true;
        };
        match thread.done.recv_timeout(bound) {
            Err(RecvTimeoutError::Timeout) => {
                let abandoned = self.ledger.close(&self.metrics, DecisionLogLoss::Shutdown);
                tracing::error!(
                    abandoned,
                    bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
                    "decision log writer did not finish in time; records abandoned"
                );
                *writer = Some(thread);
                false
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let cause = if thread.handle.join().is_err() {
                    tracing::error!("decision log writer thread failed");
                    DecisionLogLoss::WriteError
                } else {
                    DecisionLogLoss::Shutdown
                };
                // Nothing is left when the writer ended normally.
                self.ledger.close(&self.metrics, cause);
                true
            }
        }
    }

    fn with_sink(
        config: DecisionLogConfig,
        metrics: Arc<Metrics>,
        sink: Sink,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<DecisionRecord>(config.buffer.max(1));
        let ledger = Arc::new(Ledger::default());
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer::new(sink, ledger.clone(), metrics.clone(), reopen.clone());
        let (done_tx, done) = sync_channel::<()>(1);
        let handle = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || {
                writer.run(&rx);
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            config,
            sender: RwLock::new(Some(tx)),
            writer: Mutex::new(Some(WriterThread { handle, done })),
            enabled: true,
            allows_seen: AtomicU64::new(0),
            ledger,
            reopen,
            metrics,
        })
    }

    fn without_writer(config: DecisionLogConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            config,
            sender: RwLock::new(None),
            writer: Mutex::new(None),
            enabled: false,
            allows_seen: AtomicU64::new(0),
            ledger: Arc::new(Ledger::default()),
            reopen: Arc::new(AtomicBool::new(false)),
            metrics,
        }
    }
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Replaces the values of `keys` (at any depth) with the masking marker.
pub fn mask_context(value: &serde_json::Value, keys: &[String]) -> serde_json::Value {
    mask_flagged(value, keys, &mut false)
}

/// [`mask_context`], setting `masked` when a value was replaced.
fn mask_flagged(
    value: &serde_json::Value,
    keys: &[String],
    masked: &mut bool,
) -> serde_json::Value {
    use serde_json::Value;
    if keys.is_empty() {
        return value.clone();
    }
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    if keys.iter().any(|m| m == k) {
                        *masked = true;
                        (k.clone(), Value::String(MASKED.to_string()))
                    } else {
                        (k.clone(), mask_flagged(v, keys, masked))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| mask_flagged(v, keys, masked))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An entity's JSON with the mask keys applied to its `attrs` and `tags`
/// only: its uid and parents are not personal data the keys could mean.
fn mask_entity(
    entity: &serde_json::Value,
    keys: &[String],
    masked: &mut bool,
) -> serde_json::Value {
    let serde_json::Value::Object(fields) = entity else {
        return entity.clone();
    };
    serde_json::Value::Object(
        fields
            .iter()
            .map(|(k, v)| match k.as_str() {
                "attrs" | "tags" => (k.clone(), mask_flagged(v, keys, masked)),
                _ => (k.clone(), v.clone()),
            })
            .collect(),
    )
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The writer thread and the signal it sends when it ends.
struct WriterThread {
    handle: JoinHandle<()>,
    /// Receives once the writer is done (or disconnects if it panicked),
    /// which a `JoinHandle` cannot be waited on for with a bound.
    done: Receiver<()>,
}

/// What became of the records handed to the writer, so that shutdown can
/// count exactly those it abandons, and a stuck write that completes later
/// is not counted a second time.
#[derive(Default)]
struct Ledger {
    /// Records the channel took.
    accepted: AtomicU64,
    /// A lock: held to add one batch's outcome, never across I/O.
    settled: Mutex<Settled>,
}

#[derive(Default)]
struct Settled {
    /// Records counted as written or lost by the writer.
    records: u64,
    /// Set when shutdown counted the rest as lost; the writer counts no more.
    closed: bool,
}

impl Ledger {
    /// Counts a batch's outcome, unless shutdown already counted its records.
    fn settle(&self, metrics: &Metrics, written: u64, lost: u64) {
        let mut settled = lock(&self.settled);
        if settled.closed {
            return;
        }
        settled.records += written + lost;
        metrics.record_decision_log_written(written);
        metrics.record_decision_log_lost(DecisionLogLoss::WriteError, lost);
    }

    /// Counts every record not yet settled as lost to `cause` and stops the
    /// writer's counting; returns how many that was.
    fn close(&self, metrics: &Metrics, cause: DecisionLogLoss) -> u64 {
        let mut settled = lock(&self.settled);
        if settled.closed {
            return 0;
        }
        settled.closed = true;
        let open = self
            .accepted
            .load(Ordering::Relaxed)
            .saturating_sub(settled.records);
        metrics.record_decision_log_lost(cause, open);
        open
    }

    fn pending(&self) -> u64 {
        let settled = lock(&self.settled);
        if settled.closed {
            return 0;
        }
        self.accepted
            .load(Ordering::Relaxed)
            .saturating_sub(settled.records)
    }
}

/// Where the writer puts lines.
enum Sink {
    File(LogFile),
    /// Standard output or an embedder's writer: written, then flushed.
    Stream(Box<dyn Write + Send>),
}

/// Serialized records waiting to be written together, and where each ends.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Offset just past each record's newline.
    ends: Vec<usize>,
}

impl Batch {
    fn push(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.bytes.push(b'\n');
        self.ends.push(self.bytes.len());
    }

    fn records(&self) -> usize {
        self.ends.len()
    }

    /// Records wholly inside the first `done` bytes.
    fn complete(&self, done: usize) -> usize {
        self.ends.partition_point(|end| *end <= done)
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

/// The writer thread's state.
struct Writer {
    sink: Sink,
    batch: Batch,
    /// One record's JSON, reused.
    line: Vec<u8>,
    ledger: Arc<Ledger>,
    metrics: Arc<Metrics>,
    reopen: Arc<AtomicBool>,
    errors: Throttle,
}

impl Writer {
    fn new(
        sink: Sink,
        ledger: Arc<Ledger>,
        metrics: Arc<Metrics>,
        reopen: Arc<AtomicBool>,
    ) -> Self {
        Self {
            sink,
            batch: Batch::default(),
            line: Vec::new(),
            ledger,
            metrics,
            reopen,
            errors: Throttle::new(ERROR_EVERY),
        }
    }

    /// Writes records until every sender is gone and the queue is empty.
    fn run(mut self, rx: &Receiver<DecisionRecord>) {
        loop {
            match rx.recv_timeout(TICK) {
                Ok(record) => {
                    self.add(&record);
                    let mut open = true;
                    while self.batch.bytes.len() < MAX_BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(record) => self.add(&record),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                open = false;
                                break;
                            }
                        }
                    }
                    self.write_batch();
                    if !open {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.idle(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.write_batch();
        if self.errors.suppressed > 0 {
            tracing::error!(
                suppressed = self.errors.suppressed,
                "decision log errors not reported one by one"
            );
        }
    }

    fn add(&mut self, record: &DecisionRecord) {
        self.line.clear();
        if let Err(error) = serde_json::to_writer(&mut self.line, record) {
            self.ledger.settle(&self.metrics, 0, 1);
            self.errors
                .report("cannot serialize a decision record; record lost", &error);
            return;
        }
        let line = std::mem::take(&mut self.line);
        self.add_line(&line);
        self.line = line;
    }

    /// Adds one serialized record, rotating the file first if it would
    /// outgrow its size.
    fn add_line(&mut self, line: &[u8]) {
        if let Sink::File(file) = &self.sink {
            if file.rotation_due(self.batch.bytes.len(), line.len() + 1) {
                self.write_batch();
                self.rotate();
            }
        }
        self.batch.push(line);
    }

    /// Writes the batch and counts each of its records written or lost.
    fn write_batch(&mut self) {
        if self.batch.records() == 0 {
            return;
        }
        let records = self.batch.records();
        let written = match &mut self.sink {
            Sink::File(file) => {
                let asked = self.reopen.swap(false, Ordering::AcqRel);
                file.follow(asked, &self.metrics, &mut self.errors);
                file.write_batch(&self.batch, &self.metrics, &mut self.errors)
            }
            Sink::Stream(out) => {
                let (done, error) = write_counted(out.as_mut(), &self.batch.bytes);
                let (written, error) = match error {
                    Some(error) => (self.batch.complete(done), Some(error)),
                    // What a stream buffers is out only once flushed; if the
                    // flush fails, which records it kept is unknown, so none
                    // count as written.
                    None => match out.flush() {
                        Ok(()) => (records, None),
                        Err(error) => (0, Some(error)),
                    },
                };
                if let Some(error) = error {
                    self.errors
                        .report("cannot write the decision log; records lost", &error);
                }
                written
            }
        };
        self.ledger.settle(
            &self.metrics,
            written as u64,
            records.saturating_sub(written) as u64,
        );
        self.batch.clear();
    }

    fn rotate(&mut self) {
        let Sink::File(file) = &mut self.sink else {
            return;
        };
        let now = Instant::now();
        match file.rotate() {
            Ok(()) => file.rotate_after = None,
            Err(error) => {
                self.metrics.record_decision_log_rotation_failure();
                file.rotate_after = Some(now + ROTATE_RETRY);
                self.errors.report(
                    "cannot rotate the decision log; writing on to the current file",
                    &error,
                );
            }
        }
    }

    /// Nothing queued: act on a reopen request or a moved file, and report
    /// errors held back.
    fn idle(&mut self) {
        let asked = self.reopen.swap(false, Ordering::AcqRel);
        if let Sink::File(file) = &mut self.sink {
            file.follow(asked, &self.metrics, &mut self.errors);
        }
        if let Some(suppressed) = self.errors.overdue(Instant::now()) {
            tracing::error!(suppressed, "decision log errors not reported one by one");
        }
    }
}

/// A log file that is renamed to `FILE.1` (older ones shifted) past a size,
/// and opened again when its path names another file or none.
struct LogFile {
    path: PathBuf,
    file: File,
    /// (device, inode) of the open file if it is a regular file; `None` for
    /// devices and pipes (`/dev/full`, a FIFO), which are never rotated,
    /// followed or checked for removal.
    id: Option<(u64, u64)>,
    /// Bytes in the open file, refreshed from its metadata after each write
    /// (so a `copytruncate` is noticed).
    len: u64,
    /// The last write stopped inside a line: the next one starts a new line.
    torn: bool,
    max_bytes: u64,
    max_files: usize,
    /// How often, at most, the path is compared with the open file.
    check_every: Duration,
    checked_at: Instant,
    /// A failed rotation is not tried again before this.
    rotate_after: Option<Instant>,
}

impl LogFile {
    fn open(
        path: PathBuf,
        max_bytes: u64,
        max_files: usize,
        check_every: Duration,
    ) -> std::io::Result<Self> {
        let file = open_append(&path)?;
        let meta = file.metadata()?;
        Ok(Self {
            path,
            file,
            id: regular_id(&meta),
            len: meta.len(),
            torn: false,
            max_bytes: max_bytes.max(1),
            max_files,
            check_every,
            checked_at: Instant::now(),
            rotate_after: None,
        })
    }

    /// Opens the path (creating the file) in place of the open file.
    fn reopen(&mut self) -> std::io::Result<()> {
        let file = open_append(&self.path)?;
        let meta = file.metadata()?;
        self.id = regular_id(&meta);
        self.len = meta.len();
        self.file = file;
        self.torn = false;
        self.checked_at = Instant::now();
        Ok(())
    }

    /// Whether the path still names the open file.
    fn path_is_ours(&self) -> bool {
        let Some(id) = self.id else {
            return true;
        };
        std::fs::metadata(&self.path).is_ok_and(|meta| regular_id(&meta) == Some(id))
    }

    /// Opens the path again if `asked`, or if (looked at no more often than
    /// `check_every`) it no longer names the open file. On failure the open
    /// file is kept: a moved file is still a file someone can read.
    fn follow(&mut self, asked: bool, metrics: &Metrics, errors: &mut Throttle) {
        if !asked {
            if self.id.is_none() || self.checked_at.elapsed() < self.check_every {
                return;
            }
            self.checked_at = Instant::now();
            if self.path_is_ours() {
                return;
            }
        }
        match self.reopen() {
            Ok(()) => metrics.record_decision_log_reopen(),
            Err(error) => errors.report(
                "cannot reopen the decision log; writing on to the file already open",
                &error,
            ),
        }
    }

    /// Writes the batch; returns how many of its records reached a file that
    /// still has a name.
    fn write_batch(&mut self, batch: &Batch, metrics: &Metrics, errors: &mut Throttle) -> usize {
        let mut rewrites = 0;
        loop {
            let (done, error) = self.write_bytes(&batch.bytes);
            if !self.removed() {
                if let Some(error) = error {
                    errors.report("cannot write the decision log; records lost", &error);
                }
                return batch.complete(done);
            }
            // The file was removed before or during this write: whatever the
            // batch put there no one can read, so it goes to a new file.
            if rewrites == REWRITES {
                errors.report(
                    "the decision log keeps being removed; records lost",
                    &"removed again after being created again",
                );
                return 0;
            }
            rewrites += 1;
            match self.reopen() {
                Ok(()) => metrics.record_decision_log_reopen(),
                Err(error) => {
                    errors.report(
                        "the decision log was removed and cannot be created again; records lost",
                        &error,
                    );
                    return 0;
                }
            }
        }
    }

    /// Writes `bytes`, first ending a line a failed write left torn.
    fn write_bytes(&mut self, bytes: &[u8]) -> (usize, Option<std::io::Error>) {
        if self.torn {
            match write_counted(&mut self.file, b"\n") {
                (1, None) => self.torn = false,
                (_, error) => return (0, error),
            }
        }
        let (done, error) = write_counted(&mut self.file, bytes);
        if done > 0 {
            self.torn = bytes[..done].last() != Some(&b'\n');
        }
        self.len += done as u64;
        (done, error)
    }

    /// Whether the open file was removed (no name links to it any more);
    /// also refreshes its length.
    fn removed(&mut self) -> bool {
        if self.id.is_none() {
            return false;
        }
        match self.file.metadata() {
            Ok(meta) => {
                self.len = meta.len();
                links(&meta) == 0
            }
            Err(_) => false,
        }
    }

    /// Whether adding `line` bytes after `pending` unwritten ones would take
    /// the file past its size (and a failed rotation is not too recent).
    fn rotation_due(&self, pending: usize, line: usize) -> bool {
        let size = self.len + pending as u64;
        self.id.is_some()
            && size > 0
            && size + line as u64 > self.max_bytes
            && self
                .rotate_after
                .is_none_or(|after| Instant::now() >= after)
    }

    /// Moves the file to `FILE.1` (see [`shift_out`]) and opens a new one.
    fn rotate(&mut self) -> std::io::Result<()> {
        if !self.path_is_ours() {
            // Moved or removed by someone else: the path is free already,
            // and our rotated files must not be shifted for a file not ours.
            return self.reopen();
        }
        shift_out(
            &self.path,
            self.max_files,
            &mut |from, to| std::fs::rename(from, to),
            &mut |path| std::fs::remove_file(path),
        )?;
        self.reopen()
    }
}

/// Renames `path` to `path.1`, making room by shifting `path.1`.. up to the
/// first free number; only when all `max_files` numbers are taken is the
/// oldest, `path.<max_files>`, removed first. No step renames onto an
/// existing file, so a step that fails loses nothing, and trying again
/// later shifts only below the gap it left (never removes a second file).
fn shift_out(
    path: &Path,
    max_files: usize,
    rename: &mut dyn FnMut(&Path, &Path) -> std::io::Result<()>,
    remove: &mut dyn FnMut(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if max_files == 0 {
        return remove(path);
    }
    let gap = match (1..=max_files).find(|index| is_free(&numbered(path, *index))) {
        Some(index) => index,
        None => {
            remove(&numbered(path, max_files))?;
            max_files
        }
    };
    for index in (1..gap).rev() {
        rename(&numbered(path, index), &numbered(path, index + 1))?;
    }
    rename(path, &numbered(path, 1))
}

/// Whether nothing (not even a dangling link) has this name; an error other
/// than "not found" counts as taken.
fn is_free(path: &Path) -> bool {
    matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == ErrorKind::NotFound)
}

fn numbered(path: &Path, index: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(unix)]
fn regular_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    meta.is_file().then(|| (meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn regular_id(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(unix)]
fn links(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.nlink()
}

#[cfg(not(unix))]
fn links(_meta: &std::fs::Metadata) -> u64 {
    1
}

/// Writes all of `bytes` with plain `write` calls; returns how many bytes
/// were taken, and the error that stopped it.
fn write_counted(out: &mut dyn Write, bytes: &[u8]) -> (usize, Option<std::io::Error>) {
    let mut done = 0;
    while done < bytes.len() {
        match out.write(&bytes[done..]) {
            Ok(0) => return (done, Some(ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return (done, Some(error)),
        }
    }
    (done, None)
}

/// At most one error line per period: a full disk must not turn every
/// record into a line on stderr. Lines held back are counted and the count
/// goes out with the next line.
struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether a line may go out now, with the count held back since the
    /// last one; if not, this one is counted.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }

    /// The count held back, once a period has passed since the last line
    /// (so a burst of errors that stopped is still reported).
    fn overdue(&mut self, now: Instant) -> Option<u64> {
        let recent = self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.every);
        if self.suppressed == 0 || recent {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }

    fn report(&mut self, message: &'static str, error: &dyn std::fmt::Display) {
        if let Some(suppressed) = self.admit(Instant::now()) {
            tracing::error!(%error, suppressed, "{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::cell::Cell;

    #[test]
    fn the_throttle_lets_one_line_out_per_period_and_counts_the_rest() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        // (milliseconds, admit or overdue, what it answers)
        let rows: &[(u64, bool, Option<u64>)] = &[
            (0, true, Some(0)),
            (100, true, None),
            (500, false, None),
            (999, true, None),
            (1000, true, Some(2)),
            (1500, true, None),
            (1999, false, None),
            (2000, false, Some(1)),
            (2600, true, None),
            (4000, false, Some(1)),
            (9000, false, None),
            (9000, true, Some(0)),
        ];
        let mut throttle = Throttle::new(Duration::from_secs(1));
        for (ms, admit, expected) in rows {
            let got = if *admit {
                throttle.admit(at(*ms))
            } else {
                throttle.overdue(at(*ms))
            };
            assert_eq!(got, *expected, "at {ms} ms (admit: {admit})");
        }
    }

    #[test]
    fn a_batch_counts_only_records_wholly_written() {
        let mut batch = Batch::default();
        batch.push(b"ab");
        batch.push(b"c");
        for (done, complete) in [(0, 0), (2, 0), (3, 1), (4, 1), (5, 2)] {
            assert_eq!(batch.complete(done), complete, "{done} bytes");
        }
    }

    fn files(path: &Path) -> Vec<Option<String>> {
        (0..=3)
            .map(|index| {
                let name = if index == 0 {
                    path.to_path_buf()
                } else {
                    numbered(path, index)
                };
                std::fs::read_to_string(name).ok()
            })
            .collect()
    }

    /// A step that fails, even every time it is tried, loses no file but the
    /// oldest (dropped on purpose, once); the retry that works ends where a
    /// rotation that never failed would.
    #[test]
    fn a_failed_rotation_step_clobbers_nothing() {
        // (the step that fails, the contents that must be left)
        let rows: &[(&str, &[&str])] = &[
            ("remove log.3", &["a", "b", "c", "cur"]),
            ("rename log.2", &["a", "b", "cur"]),
            ("rename log.1", &["a", "b", "cur"]),
            ("rename log", &["a", "b", "cur"]),
        ];
        for (failing, left) in rows {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log");
            for (name, text) in [
                ("log", "cur"),
                ("log.1", "a"),
                ("log.2", "b"),
                ("log.3", "c"),
            ] {
                std::fs::write(dir.path().join(name), text).unwrap();
            }
            let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
            let fail = |step: String| -> std::io::Result<()> {
                if step == *failing {
                    Err(std::io::Error::other("injected"))
                } else {
                    Ok(())
                }
            };
            for _ in 0..3 {
                let result = shift_out(
                    &path,
                    3,
                    &mut |from, to| {
                        fail(format!("rename {}", name(from)))?;
                        std::fs::rename(from, to)
                    },
                    &mut |p| {
                        fail(format!("remove {}", name(p)))?;
                        std::fs::remove_file(p)
                    },
                );
                assert!(result.is_err(), "{failing}");
            }
            let mut found: Vec<String> = files(&path).into_iter().flatten().collect();
            found.sort();
            assert_eq!(found, *left, "{failing}");
            let removed = Cell::new(0);
            shift_out(
                &path,
                3,
                &mut |from, to| std::fs::rename(from, to),
                &mut |p| {
                    removed.set(removed.get() + 1);
                    std::fs::remove_file(p)
                },
            )
            .unwrap();
            let expected = [None, Some("cur"), Some("a"), Some("b")].map(|t| t.map(String::from));
            assert_eq!(files(&path), expected, "{failing}");
        }
    }

    fn batch(lines: &[&str]) -> Batch {
        let mut batch = Batch::default();
        for line in lines {
            batch.push(line.as_bytes());
        }
        batch
    }

    fn unwatched(path: &Path) -> LogFile {
        LogFile::open(path.to_path_buf(), u64::MAX, 1, Duration::from_secs(3600)).unwrap()
    }

    #[test]
    fn a_requested_reopen_follows_a_moved_file_without_waiting_for_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let moved = dir.path().join("log.moved");
        let metrics = Metrics::default();
        let mut errors = Throttle::new(ERROR_EVERY);
        let mut file = unwatched(&path);
        assert_eq!(file.write_batch(&batch(&["1"]), &metrics, &mut errors), 1);
        std::fs::rename(&path, &moved).unwrap();
        file.follow(false, &metrics, &mut errors);
        assert_eq!(file.write_batch(&batch(&["2"]), &metrics, &mut errors), 1);
        file.follow(true, &metrics, &mut errors);
        assert_eq!(file.write_batch(&batch(&["3"]), &metrics, &mut errors), 1);
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "1\n2\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "3\n");
        assert_eq!(metrics.decision_log_reopens(), 1);
    }

    #[test]
    fn a_batch_that_lands_in_a_removed_file_is_written_again_to_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let metrics = Metrics::default();
        let mut errors = Throttle::new(ERROR_EVERY);
        let mut file = unwatched(&path);
        assert_eq!(file.write_batch(&batch(&["1"]), &metrics, &mut errors), 1);
        std::fs::remove_file(&path).unwrap();
        // The path is not looked at before the write; the removal is seen after it.
        assert_eq!(
            file.write_batch(&batch(&["2", "3"]), &metrics, &mut errors),
            2
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "2\n3\n");
        assert_eq!(metrics.decision_log_reopens(), 1);
    }

    #[test]
    fn the_size_of_a_device_sink_is_never_a_reason_to_rotate() {
        let metrics = Metrics::default();
        let mut errors = Throttle::new(Duration::from_secs(3600));
        let mut file = LogFile::open(PathBuf::from("/dev/full"), 1, 1, CHECK_EVERY).unwrap();
        assert!(file.id.is_none());
        assert!(!file.rotation_due(10, 10));
        assert_eq!(
            file.write_batch(&batch(&["1", "2"]), &metrics, &mut errors),
            0
        );
        assert_eq!(errors.suppressed, 0, "one line for the first error");
        assert_eq!(file.write_batch(&batch(&["3"]), &metrics, &mut errors), 0);
        assert_eq!(errors.suppressed, 1, "the next one is held back");
    }
}

#[cfg(test)]
mod request_entity_digests {
    use super::*;

    #[test]
    fn the_digest_does_not_depend_on_key_order() {
        let a: serde_json::Value = serde_json::from_str(
            r#"{"uid":{"type":"T","id":"x"},"attrs":{"b":1,"a":2},"parents":[]}"#,
        )
        .unwrap_or_default();
        let b: serde_json::Value = serde_json::from_str(
            r#"{"parents":[],"attrs":{"a":2,"b":1},"uid":{"id":"x","type":"T"}}"#,
        )
        .unwrap_or_default();
        let c: serde_json::Value = serde_json::from_str(
            r#"{"parents":[],"attrs":{"a":3,"b":1},"uid":{"id":"x","type":"T"}}"#,
        )
        .unwrap_or_default();
        assert_eq!(RequestEntityRecord::of(&a), RequestEntityRecord::of(&b));
        assert_ne!(
            RequestEntityRecord::of(&a).sha256,
            RequestEntityRecord::of(&c).sha256
        );
        assert_eq!(RequestEntityRecord::of(&a).uid, r#"T::"x""#);
    }
}
