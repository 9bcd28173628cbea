//! One typed configuration for `serve`, from flags, `CEDAR_SIDECAR_*`
//! environment variables and an optional TOML file: flag > environment >
//! file > default. Parsed once at start; an invalid value fails start-up with
//! a message naming the key. No I/O here besides reading the named files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::engine::{
    PackSources, RequestEntityMode, RequestEntityPolicy, DEFAULT_MAX_REQUEST_ENTITIES,
};
use crate::freshness::FreshnessPolicy;
use crate::gateway::{GatewayArgs, GatewayConfig};
use crate::http::{ConnectionLimits, HttpLimits};
use crate::sync::{KeyLayout, RedisTarget, RedisWriter, SyncError, TlsFiles, Topology};
use crate::telemetry::{DecisionLogConfig, DecisionLogFilter, DecisionLogSink};

/// The bundled policy folder, relative to the working directory.
pub const DEFAULT_POLICIES: &str = "policies";
/// The bundled schema folder.
pub const DEFAULT_SCHEMA: &str = "schema";
/// The shipped policy test suite (run by `cedar-sidecar test` with no path).
pub const DEFAULT_TESTS: &str = "tests/policies";
/// The bundled demo entity data.
pub const DEFAULT_ENTITIES: &str = "demo/entities.json";
/// Where `serve` listens by default (loopback: a sidecar talks to its pod).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8180";

/// Policy pack and entity file locations (used by `check` as they are).
#[derive(Debug, Clone, Args)]
pub struct PackArgs {
    /// Folder of `*.cedar` policy files (searched recursively).
    #[arg(long, env = "CEDAR_SIDECAR_POLICIES", default_value = DEFAULT_POLICIES)]
    pub policies: PathBuf,
    /// Schema file, or folder of `*.cedarschema` / `*.cedarschema.json` files.
    #[arg(long, env = "CEDAR_SIDECAR_SCHEMA", default_value = DEFAULT_SCHEMA)]
    pub schema: PathBuf,
    /// Entities file (Cedar's entity JSON: an array of entities).
    #[arg(long, env = "CEDAR_SIDECAR_ENTITIES", default_value = DEFAULT_ENTITIES)]
    pub entities: PathBuf,
}

impl PackArgs {
    /// The policy and schema locations.
    pub fn sources(&self) -> PackSources {
        PackSources {
            policies: self.policies.clone(),
            schema: self.schema.clone(),
        }
    }
}

/// Application log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// `serve` flags. Every value is optional here so that "not given" can fall
/// back to the config file, then to the default.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeFlags {
    /// TOML configuration file (flags and environment override it).
    #[arg(long, env = "CEDAR_SIDECAR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Folder of `*.cedar` policy files (searched recursively) [default: policies].
    #[arg(long, env = "CEDAR_SIDECAR_POLICIES")]
    pub policies: Option<PathBuf>,
    /// Schema file, or folder of schema fragments [default: schema].
    #[arg(long, env = "CEDAR_SIDECAR_SCHEMA")]
    pub schema: Option<PathBuf>,
    /// Entities file [default: demo/entities.json].
    #[arg(long, env = "CEDAR_SIDECAR_ENTITIES")]
    pub entities: Option<PathBuf>,
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
    #[arg(long, env = "CEDAR_SIDECAR_WATCH")]
    pub watch: Option<bool>,
    /// Quiet time after the last file event before reloading, in ms [default: 250].
    #[arg(long, env = "CEDAR_SIDECAR_WATCH_DEBOUNCE_MS")]
    pub watch_debounce_ms: Option<u64>,
    /// Decision log: `off`, `stdout` or a file path [default: off].
    #[arg(long, env = "CEDAR_SIDECAR_DECISION_LOG")]
    pub decision_log: Option<String>,
    /// Which decisions to log [default: all].
    #[arg(long, env = "CEDAR_SIDECAR_DECISION_LOG_FILTER", value_enum)]
    pub decision_log_filter: Option<DecisionLogFilter>,
    /// Keep one allow in N (denies are always kept) [default: 1].
    #[arg(long, env = "CEDAR_SIDECAR_DECISION_LOG_SAMPLE_ALLOWS")]
    pub decision_log_sample_allows: Option<u64>,
    /// Context keys whose values are masked in the decision log (comma-separated).
    #[arg(long, env = "CEDAR_SIDECAR_DECISION_LOG_MASK", value_delimiter = ',')]
    pub decision_log_mask: Option<Vec<String>>,
    /// Records buffered for the log writer before new ones are dropped [default: 8192].
    #[arg(long, env = "CEDAR_SIDECAR_DECISION_LOG_BUFFER")]
    pub decision_log_buffer: Option<usize>,
    /// Rotate the decision log file past this size in bytes [default: 104857600].
    #[arg(long, env = "CEDAR_SIDECAR_DECISION_LOG_MAX_BYTES")]
    pub decision_log_max_bytes: Option<u64>,
    /// Rotated decision log files kept [default: 5].
    #[arg(long, env = "CEDAR_SIDECAR_DECISION_LOG_MAX_FILES")]
    pub decision_log_max_files: Option<usize>,
    /// Entities sent with requests: `off` (refused), `new-only` (only new
    /// entities of `--request-entity-types`) or `override` (they replace
    /// stored ones: the caller is trusted) [default: off].
    #[arg(long = "request-entities", env = "CEDAR_SIDECAR_REQUEST_ENTITIES")]
    pub request_entities_mode: Option<RequestEntityMode>,
    /// With `new-only`: the entity types requests may describe (comma-separated).
    #[arg(
        long = "request-entity-types",
        env = "CEDAR_SIDECAR_REQUEST_ENTITY_TYPES",
        value_delimiter = ','
    )]
    pub request_entity_types: Option<Vec<String>>,
    /// Most entities one request, or one whole batch, may carry [default: 100].
    #[arg(long, env = "CEDAR_SIDECAR_REQUEST_ENTITIES_MAX")]
    pub request_entities_max: Option<usize>,
    /// File of caller tokens (one per line): the decision API then takes
    /// only `Authorization: Bearer <token>` callers [default: none].
    #[arg(long, env = "CEDAR_SIDECAR_CALLER_TOKENS_FILE")]
    pub caller_tokens_file: Option<PathBuf>,
    /// `/readyz` fails while fewer entities are loaded [default: 0].
    #[arg(long, env = "CEDAR_SIDECAR_MIN_ENTITIES")]
    pub min_entities: Option<usize>,
    /// Our shortcuts around Cedar's own checks (see ARCHITECTURE.md);
    /// `false` sends every request and entity through Cedar's code [default: true].
    #[arg(
        long,
        env = crate::shortcuts::SHORTCUTS_VAR,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub cedar_fast_paths: Option<bool>,
    /// Gateway doors (route map, principal, ext_authz, gRPC).
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// The configuration file; every key optional, unknown keys rejected.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    policies: Option<PathBuf>,
    schema: Option<PathBuf>,
    entities: Option<PathBuf>,
    listen: Option<SocketAddr>,
    probe_listen: Option<SocketAddr>,
    max_body_bytes: Option<usize>,
    max_batch: Option<usize>,
    max_concurrency: Option<usize>,
    request_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    max_header_bytes: Option<usize>,
    shutdown_timeout_ms: Option<u64>,
    shutdown_delay_ms: Option<u64>,
    admin_token_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    watch: Option<bool>,
    watch_debounce_ms: Option<u64>,
    caller_tokens_file: Option<PathBuf>,
    min_entities: Option<usize>,
    cedar_fast_paths: Option<bool>,
    #[serde(default)]
    request_entities: RequestEntitiesFile,
    #[serde(default)]
    decision_log: DecisionLogFile,
    #[serde(default)]
    redis: RedisFile,
    #[serde(default)]
    gateway: GatewayArgs,
}

/// The `[redis]` table: where entities come from, and freshness settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RedisFile {
    url: Option<Vec<String>>,
    cluster: Option<bool>,
    sentinel_master: Option<String>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    prefix: Option<String>,
    partition: Option<String>,
    stream_maxlen: Option<u64>,
    stale_after_ms: Option<u64>,
    serve_stale: Option<bool>,
    consistency_wait_ms: Option<u64>,
    idle_check_ms: Option<u64>,
}

/// The `[request_entities]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RequestEntitiesFile {
    mode: Option<RequestEntityMode>,
    types: Option<Vec<String>>,
    max: Option<usize>,
}

/// What requests may carry as entities, as configured.
#[derive(Debug, Clone, Serialize)]
pub struct RequestEntitySettings {
    /// `off`, `new-only` or `override`.
    pub mode: RequestEntityMode,
    /// Entity types a request may describe with `new-only`.
    pub types: Vec<String>,
    /// Most entities per request and per batch.
    pub max: usize,
}

impl RequestEntitySettings {
    /// The rules the decision path applies; names a bad type.
    pub fn policy(&self) -> Result<RequestEntityPolicy, ConfigError> {
        let types = self
            .types
            .iter()
            .map(|name| {
                name.trim().parse().map_err(|error| ConfigError::Value {
                    key: "request_entities.types",
                    message: format!("`{name}` is not an entity type name: {error}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RequestEntityPolicy {
            mode: self.mode,
            types,
            max: self.max,
        })
    }
}

/// The `[decision_log]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DecisionLogFile {
    sink: Option<String>,
    filter: Option<DecisionLogFilter>,
    sample_allows: Option<u64>,
    mask: Option<Vec<String>>,
    buffer: Option<usize>,
    max_file_bytes: Option<u64>,
    max_files: Option<usize>,
}

/// The effective `serve` configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the admin token was read from, if from a file.
    pub admin_token_file: Option<PathBuf>,
    /// Policy folder.
    pub policies: PathBuf,
    /// Schema file or folder.
    pub schema: PathBuf,
    /// Entities file (the file entity source).
    pub entities: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// The probe-only listener, if any.
    pub probe_listen: Option<SocketAddr>,
    /// Request size limits, timeouts and concurrency.
    pub limits: HttpLimits,
    /// What one connection may hold: header and idle timeouts, the cap.
    pub connections: ConnectionLimits,
    /// Bound on the whole shutdown, from the signal to exit.
    pub shutdown_timeout: Duration,
    /// How long `/readyz` fails before the listeners close.
    pub shutdown_delay: Duration,
    /// The admin token, if configured (never printed).
    pub admin_token: Option<String>,
    /// Application log format.
    pub log_format: LogFormat,
    /// Watch files and reload.
    pub watch: bool,
    /// Debounce for file events.
    pub watch_debounce: Duration,
    /// Decision log settings.
    pub decision_log: DecisionLogConfig,
    /// Redis settings (entities come from Redis when a URL is set).
    pub redis: RedisArgs,
    /// Freshness and consistency settings for the Redis source.
    pub sync: SyncArgs,
    /// File of caller tokens guarding the decision API, if any.
    pub caller_tokens_file: Option<PathBuf>,
    /// Readiness fails while fewer entities are loaded.
    pub min_entities: usize,
    /// Our shortcuts around Cedar's checks are on.
    pub cedar_fast_paths: bool,
    /// What entities requests may carry.
    pub request_entities: RequestEntitySettings,
    /// The gateway settings as given (flags over `[gateway]`).
    pub gateway_args: GatewayArgs,
    /// The gateway doors, validated; `None` without a route map.
    pub gateway: Option<GatewayConfig>,
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a bad key or value.
    #[error("invalid config file `{path}`: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The TOML error, which names the key and position.
        message: String,
    },
    /// The Redis settings cannot be used: a bad URL, an unreadable or
    /// invalid TLS file (named in the message), TLS files with plain URLs.
    #[error("invalid Redis settings: {0}")]
    Redis(String),
    /// A value is out of range.
    #[error("invalid configuration: `{key}` {message}")]
    Value {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl ServeConfig {
    /// Merges flags (already merged with environment by clap) over the file
    /// over defaults. `admin_token_env` is `CEDAR_SIDECAR_ADMIN_TOKEN`.
    pub fn resolve(
        flags: &ServeFlags,
        redis: &RedisArgs,
        sync: &SyncArgs,
        admin_token_env: Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => read_config_file(path)?,
            None => ConfigFile::default(),
        };
        let log = &file.decision_log;
        let admin_token_file = flags.admin_token_file.clone().or(file.admin_token_file);
        let admin_token = match (
            admin_token_env.filter(|t| !t.trim().is_empty()),
            admin_token_file.clone(),
        ) {
            (Some(token), _) => Some(token.trim().to_string()),
            (None, Some(path)) => Some(read_token_file(&path)?),
            (None, None) => None,
        };
        let gateway_args = flags.gateway.or_file(&file.gateway);
        let gateway = gateway_args
            .config()
            .map_err(|(key, message)| ConfigError::Value { key, message })?;
        let config = Self {
            gateway_args,
            gateway,
            admin_token_file,
            policies: pick(&flags.policies, file.policies, DEFAULT_POLICIES.into()),
            schema: pick(&flags.schema, file.schema, DEFAULT_SCHEMA.into()),
            entities: pick(&flags.entities, file.entities, DEFAULT_ENTITIES.into()),
            listen: pick(
                &flags.listen,
                file.listen,
                SocketAddr::from(([127, 0, 0, 1], 8180)),
            ),
            probe_listen: flags.probe_listen.or(file.probe_listen),
            limits: HttpLimits {
                max_body_bytes: pick(&flags.max_body_bytes, file.max_body_bytes, 1024 * 1024),
                max_batch: pick(&flags.max_batch, file.max_batch, 100),
                max_concurrency: pick(&flags.max_concurrency, file.max_concurrency, 1024),
                request_timeout: Duration::from_millis(pick(
                    &flags.request_timeout_ms,
                    file.request_timeout_ms,
                    2000,
                )),
                body_read_timeout: Duration::from_millis(pick(
                    &flags.body_read_timeout_ms,
                    file.body_read_timeout_ms,
                    1000,
                )),
            },
            connections: ConnectionLimits {
                header_read_timeout: Duration::from_millis(pick(
                    &flags.header_read_timeout_ms,
                    file.header_read_timeout_ms,
                    5000,
                )),
                idle_timeout: Duration::from_millis(pick(
                    &flags.idle_timeout_ms,
                    file.idle_timeout_ms,
                    60_000,
                )),
                max_connections: pick(&flags.max_connections, file.max_connections, 4096),
                max_header_bytes: pick(&flags.max_header_bytes, file.max_header_bytes, 16 * 1024),
            },
            shutdown_timeout: Duration::from_millis(pick(
                &flags.shutdown_timeout_ms,
                file.shutdown_timeout_ms,
                10_000,
            )),
            shutdown_delay: Duration::from_millis(pick(
                &flags.shutdown_delay_ms,
                file.shutdown_delay_ms,
                0,
            )),
            admin_token,
            log_format: pick(&flags.log_format, file.log_format, LogFormat::Human),
            watch: pick(&flags.watch, file.watch, true),
            watch_debounce: Duration::from_millis(pick(
                &flags.watch_debounce_ms,
                file.watch_debounce_ms,
                250,
            )),
            decision_log: DecisionLogConfig {
                sink: pick(&flags.decision_log, log.sink.clone(), "off".into())
                    .parse()
                    .unwrap_or(DecisionLogSink::Off),
                filter: pick(
                    &flags.decision_log_filter,
                    log.filter,
                    DecisionLogFilter::All,
                ),
                sample_allows: pick(&flags.decision_log_sample_allows, log.sample_allows, 1),
                mask_keys: pick(&flags.decision_log_mask, log.mask.clone(), Vec::new()),
                buffer: pick(&flags.decision_log_buffer, log.buffer, 8192),
                max_file_bytes: pick(
                    &flags.decision_log_max_bytes,
                    log.max_file_bytes,
                    100 * 1024 * 1024,
                ),
                max_files: pick(&flags.decision_log_max_files, log.max_files, 5),
            },
            redis: redis.with_file(&file.redis),
            sync: sync.with_file(&file.redis),
            caller_tokens_file: flags.caller_tokens_file.clone().or(file.caller_tokens_file),
            min_entities: pick(&flags.min_entities, file.min_entities, 0),
            cedar_fast_paths: pick(&flags.cedar_fast_paths, file.cedar_fast_paths, true),
            request_entities: RequestEntitySettings {
                mode: pick(
                    &flags.request_entities_mode,
                    file.request_entities.mode,
                    RequestEntityMode::Off,
                ),
                types: pick(
                    &flags.request_entity_types,
                    file.request_entities.types.clone(),
                    Vec::new(),
                ),
                max: pick(
                    &flags.request_entities_max,
                    file.request_entities.max,
                    DEFAULT_MAX_REQUEST_ENTITIES,
                ),
            },
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = |key: &'static str, value: u64| {
            if value == 0 {
                Err(ConfigError::Value {
                    key,
                    message: "must be greater than 0".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("max_body_bytes", self.limits.max_body_bytes as u64)?;
        positive("max_batch", self.limits.max_batch as u64)?;
        positive("max_concurrency", self.limits.max_concurrency as u64)?;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        positive("request_timeout_ms", millis(self.limits.request_timeout))?;
        positive(
            "body_read_timeout_ms",
            millis(self.limits.body_read_timeout),
        )?;
        positive(
            "header_read_timeout_ms",
            millis(self.connections.header_read_timeout),
        )?;
        positive("idle_timeout_ms", millis(self.connections.idle_timeout))?;
        positive("max_connections", self.connections.max_connections as u64)?;
        positive("max_header_bytes", self.connections.max_header_bytes as u64)?;
        positive("shutdown_timeout_ms", millis(self.shutdown_timeout))?;
        if self.shutdown_delay >= self.shutdown_timeout {
            return Err(ConfigError::Value {
                key: "shutdown_delay_ms",
                message: format!(
                    "must be less than `shutdown_timeout_ms` ({} ms), which bounds the whole shutdown",
                    millis(self.shutdown_timeout)
                ),
            });
        }
        if self.probe_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(ConfigError::Value {
                key: "probe_listen",
                message: format!("must differ from `listen` ({})", self.listen),
            });
        }
        positive(
            "decision_log.sample_allows",
            self.decision_log.sample_allows,
        )?;
        positive("decision_log.buffer", self.decision_log.buffer as u64)?;
        positive("request_entities.max", self.request_entities.max as u64)?;
        let rules = self.request_entities.policy()?;
        if rules.mode == RequestEntityMode::NewOnly && rules.types.is_empty() {
            return Err(ConfigError::Value {
                key: "request_entities.types",
                message:
                    "must name at least one entity type when request_entities.mode is \"new-only\""
                        .into(),
            });
        }
        positive(
            "decision_log.max_file_bytes",
            self.decision_log.max_file_bytes,
        )?;
        // Build the Redis target once now: it parses the URLs and reads the
        // TLS files, so a bad one stops start-up before anything runs.
        if self.redis.enabled() {
            self.redis
                .target()
                .map_err(|e| ConfigError::Redis(e.to_string()))?;
        } else if !self.redis.tls().is_empty() {
            return Err(ConfigError::Redis(
                "TLS files (tls_ca, tls_cert, tls_key) are set but no Redis URL is".into(),
            ));
        }
        Ok(())
    }

    /// The policy and schema locations.
    pub fn sources(&self) -> PackSources {
        PackSources {
            policies: self.policies.clone(),
            schema: self.schema.clone(),
        }
    }

    /// The effective configuration as a config file that `--config` loads
    /// to the same settings. Secrets are left out: the admin token (its
    /// file's path is kept) and passwords in Redis URLs.
    pub fn to_display(&self) -> String {
        let mut text =
            String::from("# cedar-sidecar serve --print-config: the effective settings\n");
        if self.admin_token.is_some() && self.admin_token_file.is_none() {
            text.push_str("# admin token: from CEDAR_SIDECAR_ADMIN_TOKEN (not shown)\n");
        }
        match toml::to_string_pretty(&self.to_file()) {
            Ok(file) => text + &file,
            Err(error) => format!("# cannot render configuration: {error}\n"),
        }
    }

    /// These settings as the configuration file's keys.
    fn to_file(&self) -> ConfigFile {
        let ms = |d: Duration| Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let freshness = self.sync.freshness();
        let log = &self.decision_log;
        ConfigFile {
            policies: Some(self.policies.clone()),
            schema: Some(self.schema.clone()),
            entities: Some(self.entities.clone()),
            listen: Some(self.listen),
            probe_listen: self.probe_listen,
            max_body_bytes: Some(self.limits.max_body_bytes),
            max_batch: Some(self.limits.max_batch),
            max_concurrency: Some(self.limits.max_concurrency),
            request_timeout_ms: ms(self.limits.request_timeout),
            body_read_timeout_ms: ms(self.limits.body_read_timeout),
            header_read_timeout_ms: ms(self.connections.header_read_timeout),
            idle_timeout_ms: ms(self.connections.idle_timeout),
            max_connections: Some(self.connections.max_connections),
            max_header_bytes: Some(self.connections.max_header_bytes),
            shutdown_timeout_ms: ms(self.shutdown_timeout),
            shutdown_delay_ms: ms(self.shutdown_delay),
            admin_token_file: self.admin_token_file.clone(),
            log_format: Some(self.log_format),
            watch: Some(self.watch),
            watch_debounce_ms: ms(self.watch_debounce),
            caller_tokens_file: self.caller_tokens_file.clone(),
            min_entities: Some(self.min_entities),
            cedar_fast_paths: Some(self.cedar_fast_paths),
            request_entities: RequestEntitiesFile {
                mode: Some(self.request_entities.mode),
                types: Some(self.request_entities.types.clone()),
                max: Some(self.request_entities.max),
            },
            decision_log: DecisionLogFile {
                sink: Some(match &log.sink {
                    DecisionLogSink::Off => "off".to_string(),
                    DecisionLogSink::Stdout => "stdout".to_string(),
                    DecisionLogSink::File(path) => path.display().to_string(),
                }),
                filter: Some(log.filter),
                sample_allows: Some(log.sample_allows),
                mask: Some(log.mask_keys.clone()),
                buffer: Some(log.buffer),
                max_file_bytes: Some(log.max_file_bytes),
                max_files: Some(log.max_files),
            },
            redis: RedisFile {
                url: Some(
                    self.redis
                        .redis_url
                        .iter()
                        .map(|u| without_password(u))
                        .collect(),
                ),
                cluster: self.redis.redis_cluster,
                sentinel_master: self.redis.redis_sentinel_master.clone(),
                tls_ca: self.redis.redis_tls_ca.clone(),
                tls_cert: self.redis.redis_tls_cert.clone(),
                tls_key: self.redis.redis_tls_key.clone(),
                prefix: Some(
                    self.redis
                        .redis_prefix
                        .clone()
                        .unwrap_or_else(|| crate::sync::keys::DEFAULT_PREFIX.to_string()),
                ),
                partition: Some(
                    self.redis
                        .redis_partition
                        .clone()
                        .unwrap_or_else(|| crate::sync::keys::DEFAULT_PARTITION.to_string()),
                ),
                stream_maxlen: Some(self.redis.stream_maxlen()),
                stale_after_ms: ms(freshness.stale_after),
                serve_stale: Some(freshness.serve_stale),
                consistency_wait_ms: ms(freshness.max_wait),
                idle_check_ms: ms(self.sync.idle_check()),
            },
            gateway: self.gateway_args.clone(),
        }
    }
}

fn pick<T: Clone>(flag: &Option<T>, file: Option<T>, default: T) -> T {
    flag.clone().or(file).unwrap_or(default)
}

fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::File {
        path: path.to_path_buf(),
        message: error.to_string().trim_end().replace('\n', " "),
    })
}

fn read_token_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(ConfigError::Value {
            key: "admin_token_file",
            message: format!("`{}` is empty", path.display()),
        });
    }
    Ok(token)
}

/// `scheme://user:secret@host` becomes `scheme://user@host`: printed
/// settings never hold a password.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) if !user.is_empty() => format!("{scheme}://{user}@{host}"),
        Some(_) => format!("{scheme}://{host}"),
        None => url.to_string(),
    }
}

/// Where the entity dataset lives in Redis (shared by `serve` and `entities`;
/// global, so they go before or after an `entities` subcommand).
#[derive(Debug, Clone, Args)]
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
    pub redis_url: Vec<String>,
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
    pub redis_cluster: Option<bool>,
    /// The URLs are Sentinels; use the master with this name.
    #[arg(
        long,
        global = true,
        env = "CEDAR_SIDECAR_REDIS_SENTINEL_MASTER",
        conflicts_with = "redis_cluster"
    )]
    pub redis_sentinel_master: Option<String>,
    /// PEM file of CA certificates to trust for `rediss://` URLs instead of
    /// the system's roots (a Redis behind a private CA).
    #[arg(long, global = true, env = "CEDAR_SIDECAR_REDIS_TLS_CA")]
    pub redis_tls_ca: Option<PathBuf>,
    /// PEM client certificate for a Redis that requires one (mutual TLS);
    /// needs `--redis-tls-key`.
    #[arg(long, global = true, env = "CEDAR_SIDECAR_REDIS_TLS_CERT")]
    pub redis_tls_cert: Option<PathBuf>,
    /// PEM private key of `--redis-tls-cert`.
    #[arg(long, global = true, env = "CEDAR_SIDECAR_REDIS_TLS_KEY")]
    pub redis_tls_key: Option<PathBuf>,
    /// First part of every key [default: cedar].
    #[arg(long, global = true, env = "CEDAR_SIDECAR_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// The dataset's partition (its hash tag) [default: p0].
    #[arg(long, global = true, env = "CEDAR_SIDECAR_REDIS_PARTITION")]
    pub redis_partition: Option<String>,
    /// Approximate length writers trim the change stream to [default: 100000].
    #[arg(long, global = true, env = "CEDAR_SIDECAR_STREAM_MAXLEN")]
    pub stream_maxlen: Option<u64>,
}

impl RedisArgs {
    /// True when a Redis URL was given.
    pub fn enabled(&self) -> bool {
        self.redis_url.iter().any(|u| !u.trim().is_empty())
    }

    /// How the URLs are to be read.
    pub fn topology(&self) -> Topology {
        match (
            &self.redis_sentinel_master,
            self.redis_cluster == Some(true),
        ) {
            (Some(master), _) => Topology::Sentinel {
                master: master.clone(),
            },
            (None, true) => Topology::Cluster,
            (None, false) => Topology::Single,
        }
    }

    /// The dataset's keys.
    pub fn keys(&self) -> KeyLayout {
        KeyLayout::new(
            self.redis_prefix
                .as_deref()
                .unwrap_or(crate::sync::keys::DEFAULT_PREFIX),
            self.redis_partition
                .as_deref()
                .unwrap_or(crate::sync::keys::DEFAULT_PARTITION),
        )
    }

    /// Approximate length writers trim the change stream to.
    pub fn stream_maxlen(&self) -> u64 {
        self.stream_maxlen
            .unwrap_or(crate::sync::writer::DEFAULT_STREAM_MAXLEN)
    }

    /// These settings, completed from the config file's `[redis]` table
    /// where no flag or environment variable gave them.
    fn with_file(&self, file: &RedisFile) -> Self {
        Self {
            redis_url: if self.enabled() {
                self.redis_url.clone()
            } else {
                file.url.clone().unwrap_or_default()
            },
            redis_cluster: Some(self.redis_cluster.or(file.cluster).unwrap_or(false)),
            redis_sentinel_master: self
                .redis_sentinel_master
                .clone()
                .or_else(|| file.sentinel_master.clone()),
            redis_tls_ca: self.redis_tls_ca.clone().or_else(|| file.tls_ca.clone()),
            redis_tls_cert: self
                .redis_tls_cert
                .clone()
                .or_else(|| file.tls_cert.clone()),
            redis_tls_key: self.redis_tls_key.clone().or_else(|| file.tls_key.clone()),
            redis_prefix: self.redis_prefix.clone().or_else(|| file.prefix.clone()),
            redis_partition: self
                .redis_partition
                .clone()
                .or_else(|| file.partition.clone()),
            stream_maxlen: self.stream_maxlen.or(file.stream_maxlen),
        }
    }

    /// The TLS files for `rediss://` URLs.
    pub fn tls(&self) -> TlsFiles {
        TlsFiles {
            ca: self.redis_tls_ca.clone(),
            cert: self.redis_tls_cert.clone(),
            key: self.redis_tls_key.clone(),
        }
    }

    /// The resolved target (parses URLs and reads the TLS files; no network).
    pub fn target(&self) -> Result<Arc<RedisTarget>, SyncError> {
        RedisTarget::with_tls(&self.redis_url, &self.topology(), &self.tls()).map(Arc::new)
    }

    /// A writer for the dataset.
    pub fn writer(&self) -> Result<RedisWriter, SyncError> {
        Ok(RedisWriter::new(
            self.target()?,
            self.keys(),
            self.stream_maxlen(),
        ))
    }
}

/// Freshness and consistency settings of `serve` with Redis.
#[derive(Debug, Clone, Args)]
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

impl SyncArgs {
    /// The staleness and waiting policy.
    pub fn freshness(&self) -> FreshnessPolicy {
        FreshnessPolicy {
            stale_after: Duration::from_millis(self.stale_after_ms.unwrap_or(10_000)),
            serve_stale: self.serve_stale.unwrap_or(false),
            max_wait: Duration::from_millis(self.consistency_wait_ms.unwrap_or(100)),
        }
    }

    /// How often an idle replica verifies its cursor.
    pub fn idle_check(&self) -> Duration {
        Duration::from_millis(self.idle_check_ms.unwrap_or(1000).max(10))
    }

    /// These settings, completed from the config file's `[redis]` table.
    fn with_file(&self, file: &RedisFile) -> Self {
        Self {
            stale_after_ms: self.stale_after_ms.or(file.stale_after_ms),
            serve_stale: Some(self.serve_stale.or(file.serve_stale).unwrap_or(false)),
            consistency_wait_ms: self.consistency_wait_ms.or(file.consistency_wait_ms),
            idle_check_ms: self.idle_check_ms.or(file.idle_check_ms),
        }
    }
}
