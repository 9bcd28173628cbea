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
use crate::gateway::GatewayConfig;
use crate::http::{ConnectionLimits, HttpLimits};
use crate::sync::{KeyLayout, RedisTarget, RedisWriter, SyncError, TlsFiles, Topology};
use crate::telemetry::{DecisionLogConfig, DecisionLogFilter, DecisionLogSink};

mod settings;

pub use settings::{
    DecisionLogSettings, RedisArgs, RedisSettings, RequestEntitiesSettings, Settings, SyncArgs,
    DEFAULTS,
};

pub use cedar_policy_tools::paths::{
    PackArgs, DEFAULT_ENTITIES, DEFAULT_POLICIES, DEFAULT_SCHEMA, DEFAULT_TESTS,
};

/// Where `serve` listens by default (loopback: a sidecar talks to its pod).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8180";

/// Application log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// `serve` flags: where the configuration file is, and every setting as a
/// layer over it ([`Settings`]).
#[derive(Debug, Clone, Default, Args)]
pub struct ServeFlags {
    /// TOML configuration file (flags and environment override it).
    #[arg(long, env = "CEDAR_SIDECAR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Every setting given by flag or variable.
    #[command(flatten)]
    pub settings: Settings,
}

impl RequestEntitiesSettings {
    /// The rules the decision path applies; names a bad type.
    pub fn policy(&self) -> Result<RequestEntityPolicy, ConfigError> {
        let types = self
            .types
            .iter()
            .flatten()
            .map(|name| {
                name.trim().parse().map_err(|error| ConfigError::Value {
                    key: "request_entities.types",
                    message: format!("`{name}` is not an entity type name: {error}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RequestEntityPolicy {
            mode: self.mode.unwrap_or(RequestEntityMode::Off),
            types,
            max: self.max.unwrap_or(DEFAULT_MAX_REQUEST_ENTITIES),
        })
    }
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
    /// Template links file (with the file entity source), if any.
    pub links: Option<PathBuf>,
    /// The shadow policy folder, if any.
    pub shadow_policies: Option<PathBuf>,
    /// Live decisions queued for the shadow before new ones are dropped.
    pub shadow_queue: usize,
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
    pub request_entities: RequestEntitiesSettings,
    /// The gateway doors, validated; `None` without a route map.
    pub gateway: Option<GatewayConfig>,
    /// Every setting, all layers merged (what `--print-config` prints).
    pub settings: Settings,
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
    /// Lays flags and variables (merged by clap) over the file over the
    /// defaults. `admin_token_env` is `CEDAR_SIDECAR_ADMIN_TOKEN`.
    pub fn resolve(
        flags: &ServeFlags,
        redis: &RedisArgs,
        sync: &SyncArgs,
        admin_token_env: Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        let mut given = flags.settings.clone();
        given.redis = RedisSettings {
            target: redis.clone(),
            sync: sync.clone(),
        };
        let settings = Settings::layered(&[&Settings::defaults()?, &file, &given])?;
        let config = Self::from_settings(settings, admin_token_env)?;
        config.validate()?;
        Ok(config)
    }

    /// The typed configuration of merged settings. Every value is set by
    /// [`settings::DEFAULTS`] unless it has no default; `or_default` only
    /// keeps this total (zeros then fail validation: closed, not open).
    fn from_settings(s: Settings, admin_token_env: Option<String>) -> Result<Self, ConfigError> {
        fn set<T: Clone + Default>(value: &Option<T>) -> T {
            value.clone().unwrap_or_default()
        }
        let ms = |value: &Option<u64>| Duration::from_millis(set(value));
        let admin_token = match (
            admin_token_env.filter(|t| !t.trim().is_empty()),
            s.admin_token_file.clone(),
        ) {
            (Some(token), _) => Some(token.trim().to_string()),
            (None, Some(path)) => Some(read_token_file(&path)?),
            (None, None) => None,
        };
        let log = &s.decision_log;
        let gateway = s
            .gateway
            .config()
            .map_err(|(key, message)| ConfigError::Value { key, message })?;
        Ok(Self {
            gateway,
            admin_token_file: s.admin_token_file.clone(),
            policies: set(&s.policies),
            schema: set(&s.schema),
            entities: set(&s.entities),
            links: s.links.clone(),
            shadow_policies: s.shadow_policies.clone(),
            shadow_queue: set(&s.shadow_queue),
            listen: s
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            probe_listen: s.probe_listen,
            limits: HttpLimits {
                max_body_bytes: set(&s.max_body_bytes),
                max_batch: set(&s.max_batch),
                max_concurrency: set(&s.max_concurrency),
                request_timeout: ms(&s.request_timeout_ms),
                body_read_timeout: ms(&s.body_read_timeout_ms),
            },
            connections: ConnectionLimits {
                header_read_timeout: ms(&s.header_read_timeout_ms),
                idle_timeout: ms(&s.idle_timeout_ms),
                max_connections: set(&s.max_connections),
                max_header_bytes: set(&s.max_header_bytes),
            },
            shutdown_timeout: ms(&s.shutdown_timeout_ms),
            shutdown_delay: ms(&s.shutdown_delay_ms),
            admin_token,
            log_format: s.log_format.unwrap_or(LogFormat::Human),
            watch: set(&s.watch),
            watch_debounce: ms(&s.watch_debounce_ms),
            decision_log: DecisionLogConfig {
                sink: log
                    .sink
                    .as_deref()
                    .unwrap_or("off")
                    .parse()
                    .unwrap_or(DecisionLogSink::Off),
                filter: log.filter.unwrap_or(DecisionLogFilter::All),
                sample_allows: set(&log.sample_allows),
                mask_keys: set(&log.mask),
                buffer: set(&log.buffer),
                max_file_bytes: set(&log.max_file_bytes),
                max_files: set(&log.max_files),
                request_entities: log.request_entities.unwrap_or_default(),
            },
            redis: s.redis.target.clone(),
            sync: s.redis.sync.clone(),
            caller_tokens_file: s.caller_tokens_file.clone(),
            min_entities: set(&s.min_entities),
            cedar_fast_paths: set(&s.cedar_fast_paths),
            request_entities: s.request_entities.clone(),
            settings: s,
        })
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
        positive("shadow_queue", self.shadow_queue as u64)?;
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
        if self.links.is_some() && self.redis.enabled() {
            return Err(ConfigError::Value {
                key: "links",
                message: "is the file source's links file; with a Redis URL the links are in Redis (`cedar-sidecar links put`)".into(),
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
        positive(
            "request_entities.max",
            self.request_entities.max.unwrap_or_default() as u64,
        )?;
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
        if let Some(url) = &self.settings.public_url {
            crate::http::check_public_url(url).map_err(|message| ConfigError::Value {
                key: "public_url",
                message,
            })?;
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
        let mut shown = self.settings.clone();
        if let Some(urls) = &mut shown.redis.target.redis_url {
            for url in urls.iter_mut() {
                *url = without_password(url);
            }
        }
        match shown.to_toml() {
            Ok(file) => text + &file,
            Err(error) => format!("# cannot render configuration: {error}\n"),
        }
    }
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

impl RedisArgs {
    /// True when a Redis URL was given.
    pub fn enabled(&self) -> bool {
        self.redis_url
            .iter()
            .flatten()
            .any(|u| !u.trim().is_empty())
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
        RedisTarget::with_tls(
            self.redis_url.as_deref().unwrap_or_default(),
            &self.topology(),
            &self.tls(),
        )
        .map(Arc::new)
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
}
