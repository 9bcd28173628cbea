//! Every `serve` setting in one struct, [`Settings`], read in layers:
//! defaults ([`DEFAULTS`]) < the TOML file < `CEDAR_SIDECAR_*` variables <
//! flags. Each layer is a `Settings` whose unset values are `None`; layers
//! are laid over one another key by key, so a flag or a variable can turn
//! off a boolean the file turned on, and `--print-config` prints the result
//! from the same struct. A new setting is one field here (its flag, variable,
//! file key and help) plus one line in [`DEFAULTS`]; its use reads it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ConfigError, LogFormat};
use crate::engine::RequestEntityMode;
use crate::gateway::GatewayArgs;
use crate::telemetry::{DecisionLogFilter, RequestEntityLogging};

/// Every default, as the configuration file would say it. Settings missing
/// here have no default: they are off until set.
pub const DEFAULTS: &str = r#"
policies = "policies"
schema = "schema"
entities = "demo/entities.json"
listen = "127.0.0.1:8180"
max_body_bytes = 1048576
max_batch = 100
max_concurrency = 1024
request_timeout_ms = 2000
body_read_timeout_ms = 1000
header_read_timeout_ms = 5000
idle_timeout_ms = 60000
max_connections = 4096
max_header_bytes = 16384
shutdown_timeout_ms = 10000
shutdown_delay_ms = 0
log_format = "human"
watch = true
watch_debounce_ms = 250
min_entities = 0
cedar_fast_paths = true
shadow_queue = 4096

[request_entities]
mode = "off"
types = []
max = 100

[decision_log]
sink = "off"
filter = "all"
sample_allows = 1
mask = []
buffer = 8192
max_file_bytes = 104857600
max_files = 5
request_entities = "digest"

[gateway]
principal_type = "User"
jwt_leeway_secs = 30
jwt_principal_claim = "sub"
ext_authz_prefix = "/ext_authz"

[redis]
cluster = false
prefix = "cedar"
partition = "p0"
stream_maxlen = 100000
stale_after_ms = 10000
serve_stale = false
consistency_wait_ms = 100
idle_check_ms = 1000
"#;

/// The settings of `serve`: one layer (flags and variables, or the file),
/// or all layers merged ([`Settings::layered`]).
#[derive(Debug, Clone, Default, PartialEq, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Folder of `*.cedar` policy files (searched recursively) [default: policies].
    #[arg(long, env = "CEDAR_SIDECAR_POLICIES")]
    pub policies: Option<PathBuf>,
    /// Schema file, or folder of schema fragments [default: schema].
    #[arg(long, env = "CEDAR_SIDECAR_SCHEMA")]
    pub schema: Option<PathBuf>,
    /// Entities file [default: demo/entities.json].
    #[arg(long, env = "CEDAR_SIDECAR_ENTITIES")]
    pub entities: Option<PathBuf>,
    /// Template links file, in the Cedar CLI's `--template-linked` format,
    /// reloaded with the entities file (file source only: with Redis the
    /// links are in Redis, see `cedar-sidecar links`) [default: none].
    #[arg(long, env = "CEDAR_SIDECAR_LINKS")]
    pub links: Option<PathBuf>,
    /// A candidate policy folder decided as a shadow: every live decision
    /// is also decided with it off the request path, and disagreements are
    /// logged and counted, never served (same schema as `policies`; reloaded
    /// with them) [default: none].
    #[arg(long, env = "CEDAR_SIDECAR_SHADOW_POLICIES")]
    pub shadow_policies: Option<PathBuf>,
    /// Live decisions waiting for the shadow before new ones are dropped
    /// (and counted) [default: 4096].
    #[arg(long, env = "CEDAR_SIDECAR_SHADOW_QUEUE")]
    pub shadow_queue: Option<usize>,
    /// Address to listen on [default: 127.0.0.1:8180].
    #[arg(long, env = "CEDAR_SIDECAR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Also serve /healthz, /readyz and /metrics, and nothing else, on this
    /// address (for probes on 0.0.0.0 while decisions stay on loopback) [default: none].
    #[arg(long, env = "CEDAR_SIDECAR_PROBE_LISTEN")]
    pub probe_listen: Option<SocketAddr>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "CEDAR_SIDECAR_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most requests in one batch [default: 100].
    #[arg(long, env = "CEDAR_SIDECAR_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Requests handled at once; more are refused with 503 `overloaded` [default: 1024].
    #[arg(long, env = "CEDAR_SIDECAR_MAX_CONCURRENCY")]
    pub max_concurrency: Option<usize>,
    /// Per-request timeout in milliseconds [default: 2000].
    #[arg(long, env = "CEDAR_SIDECAR_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// A request body must arrive within this many ms, else 408 `body_timeout` [default: 1000].
    #[arg(long, env = "CEDAR_SIDECAR_BODY_READ_TIMEOUT_MS")]
    pub body_read_timeout_ms: Option<u64>,
    /// A request head (request line and headers) must be complete this many ms
    /// after its first byte, else the connection is closed [default: 5000].
    #[arg(long, env = "CEDAR_SIDECAR_HEADER_READ_TIMEOUT_MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// A connection with no request in progress is closed after this many ms [default: 60000].
    #[arg(long, env = "CEDAR_SIDECAR_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Open connections per listener; past it, new ones are closed at once [default: 4096].
    #[arg(long, env = "CEDAR_SIDECAR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Largest request head (request line and headers) in bytes; larger is 431 [default: 16384].
    #[arg(long, env = "CEDAR_SIDECAR_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Bound on the whole shutdown after SIGTERM/SIGINT (delay, in-flight
    /// requests, decision-log flush), in milliseconds [default: 10000].
    #[arg(long, env = "CEDAR_SIDECAR_SHUTDOWN_TIMEOUT_MS")]
    pub shutdown_timeout_ms: Option<u64>,
    /// On SIGTERM/SIGINT, /readyz answers 503 for this many ms, everything
    /// else still served, before the listeners close [default: 0].
    #[arg(long, env = "CEDAR_SIDECAR_SHUTDOWN_DELAY_MS")]
    pub shutdown_delay_ms: Option<u64>,
    /// File holding the admin token (or set CEDAR_SIDECAR_ADMIN_TOKEN).
    #[arg(long, env = "CEDAR_SIDECAR_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Application log format [default: human].
    #[arg(long, env = "CEDAR_SIDECAR_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Watch policies, schema and the entities file and reload on change [default: true].
    #[arg(
        long,
        env = "CEDAR_SIDECAR_WATCH",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub watch: Option<bool>,
    /// Quiet time after the last file event before reloading, in ms [default: 250].
    #[arg(long, env = "CEDAR_SIDECAR_WATCH_DEBOUNCE_MS")]
    pub watch_debounce_ms: Option<u64>,
    /// File of caller tokens (one per line): the decision API then takes
    /// only `Authorization: Bearer <token>` callers [default: none].
    #[arg(long, env = "CEDAR_SIDECAR_CALLER_TOKENS_FILE")]
    pub caller_tokens_file: Option<PathBuf>,
    /// The sidecar's public base URL, as AuthZEN's metadata document
    /// (`/.well-known/authzen-configuration`) names it; unset, `http://`
    /// and the listen address [default: none].
    #[arg(long, env = "CEDAR_SIDECAR_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// `/readyz` fails while fewer entities are loaded [default: 0].
    #[arg(long, env = "CEDAR_SIDECAR_MIN_ENTITIES")]
    pub min_entities: Option<usize>,
    /// Our shortcuts around Cedar's own checks (see ARCHITECTURE.md);
    /// `false` sends every request and entity through Cedar's code [default: true].
    #[arg(
        long,
        env = crate::shortcuts::SHORTCUTS_VAR,
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub cedar_fast_paths: Option<bool>,
    /// The `[request_entities]` table.
    #[command(flatten)]
    #[serde(default)]
    pub request_entities: RequestEntitiesSettings,
    /// The `[decision_log]` table.
    #[command(flatten)]
    #[serde(default)]
    pub decision_log: DecisionLogSettings,
    /// The `[gateway]` table: the route map, the principal, the doors.
    #[command(flatten)]
    #[serde(default)]
    pub gateway: GatewayArgs,
    /// The `[redis]` table; on the command line these are the Redis flags
    /// that `serve` shares with `entities`, parsed with the subcommand.
    #[arg(skip)]
    #[serde(default)]
    pub redis: RedisSettings,
}

/// What entities requests may carry (`[request_entities]`).
#[derive(Debug, Clone, Default, PartialEq, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestEntitiesSettings {
    /// Entities sent with requests: `off` (refused), `new-only` (only new
    /// entities of `--request-entity-types`) or `override` (they replace
    /// stored ones: the caller is trusted) [default: off].
    #[arg(
        id = "request_entities_mode",
        long = "request-entities",
        env = "CEDAR_SIDECAR_REQUEST_ENTITIES"
    )]
    pub mode: Option<RequestEntityMode>,
    /// With `new-only`: the entity types requests may describe (comma-separated).
    #[arg(
        id = "request_entities_types",
        long = "request-entity-types",
        env = "CEDAR_SIDECAR_REQUEST_ENTITY_TYPES",
        value_delimiter = ','
    )]
    pub types: Option<Vec<String>>,
    /// Most entities one request, or one whole batch, may carry [default: 100].
    #[arg(
        id = "request_entities_max",
        long = "request-entities-max",
        env = "CEDAR_SIDECAR_REQUEST_ENTITIES_MAX"
    )]
    pub max: Option<usize>,
}

/// The audit trail (`[decision_log]`).
#[derive(Debug, Clone, Default, PartialEq, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogSettings {
    /// Decision log: `off`, `stdout` or a file path [default: off].
    #[arg(
        id = "decision_log_sink",
        long = "decision-log",
        env = "CEDAR_SIDECAR_DECISION_LOG"
    )]
    pub sink: Option<String>,
    /// Which decisions to log [default: all].
    #[arg(
        id = "decision_log_filter",
        long = "decision-log-filter",
        env = "CEDAR_SIDECAR_DECISION_LOG_FILTER",
        value_enum
    )]
    pub filter: Option<DecisionLogFilter>,
    /// Keep one allow in N (denies are always kept) [default: 1].
    #[arg(
        id = "decision_log_sample_allows",
        long = "decision-log-sample-allows",
        env = "CEDAR_SIDECAR_DECISION_LOG_SAMPLE_ALLOWS"
    )]
    pub sample_allows: Option<u64>,
    /// Context keys whose values are masked in the decision log (comma-separated).
    #[arg(
        id = "decision_log_mask",
        long = "decision-log-mask",
        env = "CEDAR_SIDECAR_DECISION_LOG_MASK",
        value_delimiter = ','
    )]
    pub mask: Option<Vec<String>>,
    /// Records buffered for the log writer before new ones are dropped [default: 8192].
    #[arg(
        id = "decision_log_buffer",
        long = "decision-log-buffer",
        env = "CEDAR_SIDECAR_DECISION_LOG_BUFFER"
    )]
    pub buffer: Option<usize>,
    /// Rotate the decision log file past this size in bytes [default: 104857600].
    #[arg(
        id = "decision_log_max_file_bytes",
        long = "decision-log-max-bytes",
        env = "CEDAR_SIDECAR_DECISION_LOG_MAX_BYTES"
    )]
    pub max_file_bytes: Option<u64>,
    /// Rotated decision log files kept [default: 5].
    #[arg(
        id = "decision_log_max_files",
        long = "decision-log-max-files",
        env = "CEDAR_SIDECAR_DECISION_LOG_MAX_FILES"
    )]
    pub max_files: Option<usize>,
    /// Entities sent with requests, as the log keeps them: `digest` (uid and
    /// SHA-256 only) or `full` (their JSON too, mask keys applied to
    /// `attrs` and `tags`: it may hold personal data; needed to replay
    /// those decisions) [default: digest].
    #[arg(
        id = "decision_log_request_entities",
        long = "decision-log-request-entities",
        env = "CEDAR_SIDECAR_DECISION_LOG_REQUEST_ENTITIES",
        value_enum
    )]
    pub request_entities: Option<RequestEntityLogging>,
}

/// The `[redis]` table: where entities come from, and how fresh they must be.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct RedisSettings {
    /// Where the dataset lives.
    #[serde(flatten)]
    pub target: RedisArgs,
    /// Freshness and consistency.
    #[serde(flatten)]
    pub sync: SyncArgs,
}

/// Where the entity dataset lives in Redis (shared by `serve` and `entities`;
/// global, so they go before or after an `entities` subcommand).
#[derive(Debug, Clone, Default, PartialEq, Args, Deserialize, Serialize)]
pub struct RedisArgs {
    /// Redis URL: `redis://[user:password@]host:port[/db]`, `rediss://` (TLS)
    /// or `redis+unix:///path`. Several (comma-separated or repeated) with
    /// `--redis-cluster` (seed nodes) or `--redis-sentinel-master` (Sentinels).
    /// Without it, `serve` reads entities from the file.
    #[arg(
        global = true,
        long = "redis-url",
        env = "CEDAR_SIDECAR_REDIS_URL",
        value_delimiter = ','
    )]
    #[serde(rename = "url")]
    pub redis_url: Option<Vec<String>>,
    /// The URLs are Redis Cluster seed nodes (`--redis-cluster false`
    /// turns off `cluster = true` from the config file).
    #[arg(
        long,
        global = true,
        env = "CEDAR_SIDECAR_REDIS_CLUSTER",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    #[serde(rename = "cluster")]
    pub redis_cluster: Option<bool>,
    /// The URLs are Sentinels; use the master with this name.
    #[arg(
        long,
        global = true,
        env = "CEDAR_SIDECAR_REDIS_SENTINEL_MASTER",
        conflicts_with = "redis_cluster"
    )]
    #[serde(rename = "sentinel_master")]
    pub redis_sentinel_master: Option<String>,
    /// PEM file of CA certificates to trust for `rediss://` URLs instead of
    /// the system's roots (a Redis behind a private CA).
    #[arg(long, global = true, env = "CEDAR_SIDECAR_REDIS_TLS_CA")]
    #[serde(rename = "tls_ca")]
    pub redis_tls_ca: Option<PathBuf>,
    /// PEM client certificate for a Redis that requires one (mutual TLS);
    /// needs `--redis-tls-key`.
    #[arg(long, global = true, env = "CEDAR_SIDECAR_REDIS_TLS_CERT")]
    #[serde(rename = "tls_cert")]
    pub redis_tls_cert: Option<PathBuf>,
    /// PEM private key of `--redis-tls-cert`.
    #[arg(long, global = true, env = "CEDAR_SIDECAR_REDIS_TLS_KEY")]
    #[serde(rename = "tls_key")]
    pub redis_tls_key: Option<PathBuf>,
    /// First part of every key [default: cedar].
    #[arg(long, global = true, env = "CEDAR_SIDECAR_REDIS_PREFIX")]
    #[serde(rename = "prefix")]
    pub redis_prefix: Option<String>,
    /// The dataset's partition (its hash tag) [default: p0].
    #[arg(long, global = true, env = "CEDAR_SIDECAR_REDIS_PARTITION")]
    #[serde(rename = "partition")]
    pub redis_partition: Option<String>,
    /// Approximate length writers trim the change stream to [default: 100000].
    #[arg(long, global = true, env = "CEDAR_SIDECAR_STREAM_MAXLEN")]
    pub stream_maxlen: Option<u64>,
}

/// Freshness and consistency settings of `serve` with Redis.
#[derive(Debug, Clone, Default, PartialEq, Args, Deserialize, Serialize)]
pub struct SyncArgs {
    /// Out of contact with Redis for longer than this (ms) = stale: `/readyz`
    /// and decisions answer 503 unless `--serve-stale`.
    #[arg(long, env = "CEDAR_SIDECAR_STALE_AFTER_MS")]
    pub stale_after_ms: Option<u64>,
    /// Keep answering decisions from stale data (`--serve-stale false`
    /// turns off `serve_stale = true` from the config file).
    #[arg(
        long,
        env = "CEDAR_SIDECAR_SERVE_STALE",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub serve_stale: Option<bool>,
    /// Longest wait (ms) for a request's `consistency.at_least` revision.
    #[arg(long, env = "CEDAR_SIDECAR_CONSISTENCY_WAIT_MS")]
    pub consistency_wait_ms: Option<u64>,
    /// An idle replica re-verifies its stream cursor this often (ms).
    #[arg(long, env = "CEDAR_SIDECAR_IDLE_CHECK_MS")]
    pub idle_check_ms: Option<u64>,
}

impl Settings {
    /// [`DEFAULTS`] as a layer.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::from_toml(DEFAULTS, Path::new("<defaults>"))
    }

    /// A configuration file as a layer.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Configuration-file text as a layer: a wrong type or an unknown key is
    /// refused, naming the key and its line.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file_error = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            message,
        };
        let settings: Self = toml::from_str(text)
            .map_err(|e| file_error(e.to_string().trim_end().replace('\n', " ")))?;
        // `[redis]` is read through two flattened structs, for which serde
        // cannot refuse unknown keys: check them against the known ones.
        if let Ok(table) = text.parse::<toml::Table>() {
            if let Some(toml::Value::Table(redis)) = table.get("redis") {
                let known = keys_of(&RedisSettings::default());
                if let Some(key) = redis.keys().find(|key| !known.contains(key)) {
                    let mut expected: Vec<&str> = known.iter().map(String::as_str).collect();
                    expected.sort_unstable();
                    return Err(file_error(format!(
                        "line {}: unknown key `{key}` in [redis], expected one of {}",
                        line_of_key(text, key),
                        expected.join(", ")
                    )));
                }
            }
        }
        Ok(settings)
    }

    /// `layers` laid over one another in order, a later layer's set values
    /// replacing an earlier one's, key by key (a list is one value).
    pub fn layered(layers: &[&Settings]) -> Result<Self, ConfigError> {
        let mut merged = Value::Object(Map::new());
        for layer in layers {
            overlay(&mut merged, to_json(layer)?);
        }
        serde_json::from_value(merged).map_err(|error| ConfigError::Value {
            key: "settings",
            message: error.to_string(),
        })
    }

    /// These settings as a configuration file; unset ones are left out.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|error| ConfigError::Value {
            key: "settings",
            message: format!("cannot be printed: {error}"),
        })
    }
}

fn to_json(settings: &Settings) -> Result<Value, ConfigError> {
    serde_json::to_value(settings).map_err(|error| ConfigError::Value {
        key: "settings",
        message: error.to_string(),
    })
}

/// Lays `top` over `base`: objects key by key, anything else replaced
/// unless `top` leaves it unset (null).
fn overlay(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(base), Value::Object(top)) => {
            for (key, value) in top {
                match base.get_mut(&key) {
                    Some(slot) => overlay(slot, value),
                    None if !value.is_null() => {
                        base.insert(key, value);
                    }
                    None => {}
                }
            }
        }
        (_, Value::Null) => {}
        (slot, value) => *slot = value,
    }
}

/// The keys a struct serialises to (unset ones included, as null).
fn keys_of<T: Serialize>(value: &T) -> Vec<String> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The 1-based line on which `key` is set in TOML `text` (0 if not found).
fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(0, |index| index + 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Settings that are off until set; every other one has its default in
    /// [`DEFAULTS`], so no value is left to a type's zero.
    const NO_DEFAULT: &[&str] = &[
        "probe_listen",
        "links",
        "shadow_policies",
        "admin_token_file",
        "caller_tokens_file",
        "public_url",
        "redis.url",
        "redis.sentinel_master",
        "redis.tls_ca",
        "redis.tls_cert",
        "redis.tls_key",
    ];

    fn unset_keys(value: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Object(map) = value {
            for (key, value) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match value {
                    Value::Null => out.push(path),
                    Value::Object(_) => unset_keys(value, &path, out),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn every_setting_has_a_default_or_is_off_until_set() {
        let defaults = Settings::layered(&[&Settings::defaults().unwrap()]).unwrap();
        let mut unset = Vec::new();
        unset_keys(&serde_json::to_value(&defaults).unwrap(), "", &mut unset);
        unset.sort();
        let mut expected: Vec<String> = NO_DEFAULT.iter().map(ToString::to_string).collect();
        expected.sort();
        assert_eq!(unset, expected);
    }

    #[test]
    fn defaults_agree_with_the_constants_other_commands_use() {
        let d = Settings::defaults().unwrap();
        assert_eq!(
            d.redis.target.redis_prefix.as_deref(),
            Some(crate::sync::keys::DEFAULT_PREFIX)
        );
        assert_eq!(
            d.redis.target.redis_partition.as_deref(),
            Some(crate::sync::keys::DEFAULT_PARTITION)
        );
        assert_eq!(
            d.redis.target.stream_maxlen,
            Some(crate::sync::writer::DEFAULT_STREAM_MAXLEN)
        );
        assert_eq!(
            d.request_entities.max,
            Some(crate::engine::DEFAULT_MAX_REQUEST_ENTITIES)
        );
        assert_eq!(
            d.listen.map(|a| a.to_string()).as_deref(),
            Some(super::super::DEFAULT_LISTEN)
        );
    }

    #[test]
    fn a_later_layer_replaces_key_by_key_and_unset_keeps() {
        let file = Settings::from_toml(
            "max_batch = 7\nwatch = true\n[redis]\nserve_stale = true\nprefix = \"authz\"\n",
            Path::new("f.toml"),
        )
        .unwrap();
        let mut flags = Settings {
            watch: Some(false),
            ..Settings::default()
        };
        flags.redis.sync.serve_stale = Some(false);
        let merged = Settings::layered(&[&Settings::defaults().unwrap(), &file, &flags]).unwrap();
        assert_eq!(merged.max_batch, Some(7));
        assert_eq!(merged.watch, Some(false));
        assert_eq!(merged.redis.sync.serve_stale, Some(false));
        assert_eq!(merged.redis.target.redis_prefix.as_deref(), Some("authz"));
        assert_eq!(merged.max_concurrency, Some(1024));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let error = Settings::from_toml(
            "max_batch = 7\n[redis]\nprefix = \"a\"\nstale_after = 5\n",
            Path::new("f.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("line 4") && error.contains("`stale_after`"),
            "{error}"
        );
        let error = Settings::from_toml("max_batchs = 7\n", Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("max_batchs"), "{error}");
        let error = Settings::from_toml("[decision_log]\nfile = \"x\"\n", Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("file"), "{error}");
    }
}
