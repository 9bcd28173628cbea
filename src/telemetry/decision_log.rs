//! The decision log: one JSON line per decision, the audit trail a security
//! team reads. Records go through a bounded channel to a writer thread, so
//! logging never blocks a decision; when the channel is full the record is
//! dropped and counted (metrics, and a warning), never silently lost.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use super::Metrics;

/// The marker that replaces masked context values.
pub const MASKED: &str = "[masked]";

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
impl Serialize for DecisionLogSink {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Off => s.serialize_str("off"),
            Self::Stdout => s.serialize_str("stdout"),
            Self::File(path) => s.serialize_str(&path.display().to_string()),
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

/// Decision log settings.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionLogConfig {
    /// Where records go.
    pub sink: DecisionLogSink,
    /// Which decisions.
    pub filter: DecisionLogFilter,
    /// Keep one allow in this many (1 keeps all). Denies are never sampled.
    pub sample_allows: u64,
    /// Context keys (at any depth) whose values are replaced by `[masked]`.
    #[serde(rename = "mask")]
    pub mask_keys: Vec<String>,
    /// Records that may wait for the writer before new ones are dropped.
    pub buffer: usize,
    /// A log file is rotated when it grows past this many bytes.
    pub max_file_bytes: u64,
    /// Rotated files kept (`FILE.1` is the newest).
    pub max_files: usize,
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
}

/// One entity sent with a request, as the audit trail keeps it: its uid,
/// and a digest of its JSON that shows whether two decisions saw the same
/// entity without logging attribute values.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RequestEntityRecord {
    /// `Type::"id"`.
    pub uid: String,
    /// SHA-256 of the entity's JSON (keys sorted, no blanks), hex.
    pub sha256: String,
}

impl RequestEntityRecord {
    /// The record of one request entity as sent.
    pub fn of(entity: &serde_json::Value) -> Self {
        use sha2::{Digest, Sha256};
        let uid = entity
            .get("uid")
            .map_or_else(|| "(no uid)".to_string(), crate::entities::uid_display);
        let json = serde_json::to_vec(entity).unwrap_or_default();
        Self {
            uid,
            sha256: format!("{:x}", Sha256::digest(&json)),
        }
    }
}

/// The decision logger shared by all requests.
pub struct DecisionLog {
    config: DecisionLogConfig,
    sender: Mutex<Option<SyncSender<DecisionRecord>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    allows_seen: AtomicU64,
    metrics: Arc<Metrics>,
}

impl DecisionLog {
    /// Starts the writer thread (unless the sink is `Off`).
    pub fn start(config: DecisionLogConfig, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let (sender, writer) = match &config.sink {
            DecisionLogSink::Off => (None, None),
            sink => {
                let output = Output::open(sink, &config)?;
                let (tx, rx) = sync_channel::<DecisionRecord>(config.buffer.max(1));
                let handle = std::thread::Builder::new()
                    .name("decision-log".into())
                    .spawn(move || write_loop(rx, output))?;
                (Some(tx), Some(handle))
            }
        };
        Ok(Self {
            config,
            sender: Mutex::new(sender),
            writer: Mutex::new(writer),
            allows_seen: AtomicU64::new(0),
            metrics,
        })
    }

    /// Starts a logger writing lines to `writer` (for embedding and tests);
    /// the sink in `config` is only reported, not opened.
    pub fn start_with_writer(
        config: DecisionLogConfig,
        metrics: Arc<Metrics>,
        writer: Box<dyn Write + Send>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<DecisionRecord>(config.buffer.max(1));
        let output = Output::Writer(writer);
        let handle = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_loop(rx, output))?;
        Ok(Self {
            config,
            sender: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            allows_seen: AtomicU64::new(0),
            metrics,
        })
    }

    /// A logger that logs nothing.
    pub fn off(metrics: Arc<Metrics>) -> Self {
        Self {
            config: DecisionLogConfig::default(),
            sender: Mutex::new(None),
            writer: Mutex::new(None),
            allows_seen: AtomicU64::new(0),
            metrics,
        }
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
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sender) = sender.as_ref() else {
            return;
        };
        match sender.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.record_decision_log_drop();
                let drops = self.metrics.decision_log_drops();
                if drops.is_power_of_two() {
                    tracing::warn!(
                        dropped_total = drops,
                        "decision log writer is behind; records dropped"
                    );
                }
            }
        }
    }

    /// Masks the configured context keys.
    pub fn mask(&self, context: &serde_json::Value) -> serde_json::Value {
        mask_context(context, &self.config.mask_keys)
    }

    /// Stops accepting records, writes out what is queued and flushes.
    pub fn shutdown(&self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("decision log writer thread failed");
            }
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
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    if keys.iter().any(|m| m == k) {
                        (k.clone(), Value::String(MASKED.to_string()))
                    } else {
                        (k.clone(), mask_context(v, keys))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| mask_context(v, keys)).collect()),
        other => other.clone(),
    }
}

enum Output {
    Stdout(BufWriter<std::io::Stdout>),
    File(RotatingFile),
    Writer(Box<dyn Write + Send>),
}

impl Output {
    fn open(sink: &DecisionLogSink, config: &DecisionLogConfig) -> std::io::Result<Self> {
        match sink {
            DecisionLogSink::File(path) => Ok(Self::File(RotatingFile::open(
                path.clone(),
                config.max_file_bytes,
                config.max_files,
            )?)),
            _ => Ok(Self::Stdout(BufWriter::new(std::io::stdout()))),
        }
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Stdout(out) => {
                out.write_all(line)?;
                out.write_all(b"\n")
            }
            Self::File(file) => file.write_line(line),
            Self::Writer(out) => {
                out.write_all(line)?;
                out.write_all(b"\n")
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Stdout(out) => out.flush(),
            Self::File(file) => file.out.flush(),
            Self::Writer(out) => out.flush(),
        }
    }
}

fn write_loop(rx: std::sync::mpsc::Receiver<DecisionRecord>, mut output: Output) {
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(record) => match serde_json::to_vec(&record) {
                Ok(line) => {
                    if let Err(error) = output.write_line(&line) {
                        tracing::error!(%error, "cannot write the decision log");
                    }
                }
                Err(error) => tracing::error!(%error, "cannot serialize a decision record"),
            },
            // Flush when idle so a tail -f sees records promptly.
            Err(RecvTimeoutError::Timeout) => {
                let _ = output.flush();
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Err(error) = output.flush() {
        tracing::error!(%error, "cannot flush the decision log");
    }
}

/// A log file that is renamed to `FILE.1` (older ones shifted) past a size.
struct RotatingFile {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    max_bytes: u64,
    max_files: usize,
}

impl RotatingFile {
    fn open(path: PathBuf, max_bytes: u64, max_files: usize) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path,
            out: BufWriter::new(file),
            written,
            max_bytes: max_bytes.max(1),
            max_files,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.written > 0 && self.written + line.len() as u64 + 1 > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        self.written += line.len() as u64 + 1;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if self.max_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for index in (1..self.max_files).rev() {
                let from = numbered(&self.path, index);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, index + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::new(file);
        self.written = 0;
        Ok(())
    }
}

fn numbered(path: &Path, index: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}
