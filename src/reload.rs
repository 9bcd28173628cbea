//! Hot reload: policies, schema and the entities file are re-read when they
//! change on disk (debounced), on SIGHUP and on `POST /v1/admin/reload`.
//!
//! A reload parses and strictly validates the whole new set and swaps it in
//! atomically with the entity view it was validated against; an invalid edit
//! never takes effect: the last good set keeps serving and the error is
//! logged, counted and shown in `/v1/status`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::engine::{PackSources, PolicyPack};
use crate::entities::{load_entities_file, recheck_entities, EntityMap};
use crate::state::SharedState;
use crate::telemetry::Metrics;

/// Most entity refusals listed when a schema change is refused.
const MAX_REFUSALS_SHOWN: usize = 10;

/// What the last reloads did, for `/v1/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    /// When the policy pack last loaded successfully (RFC 3339).
    pub last_ok_at: Option<String>,
    /// The last failed reload's error, cleared by the next success.
    pub last_error: Option<String>,
    /// When the last failure happened.
    pub last_error_at: Option<String>,
    /// When the entities file was last loaded.
    pub entities_loaded_at: Option<String>,
}

/// Performs reloads and keeps their status.
pub struct Reloader {
    /// Where the pack comes from.
    pub sources: PackSources,
    /// The entities file, when entities come from a file.
    pub entities_file: Option<PathBuf>,
    shared: Arc<SharedState>,
    metrics: Arc<Metrics>,
    /// A std mutex: held only to copy or update the status, never across an await.
    status: Mutex<ReloadStatus>,
}

impl Reloader {
    /// A reloader for the given sources.
    pub fn new(
        sources: PackSources,
        entities_file: Option<PathBuf>,
        shared: Arc<SharedState>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let status = ReloadStatus {
            last_ok_at: Some(now_rfc3339()),
            entities_loaded_at: entities_file.as_ref().map(|_| now_rfc3339()),
            ..ReloadStatus::default()
        };
        Self {
            sources,
            entities_file,
            shared,
            metrics,
            status: Mutex::new(status),
        }
    }

    /// A copy of the current status.
    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads policies and schema (blocking: file I/O and validation).
    /// Returns the new policy version.
    pub fn reload_policies(&self) -> Result<String, String> {
        let result = self.try_reload_policies();
        self.metrics.record_reload(result.is_ok());
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(version) => {
                tracing::info!(%version, "policy pack reloaded");
                status.last_ok_at = Some(now_rfc3339());
                status.last_error = None;
                status.last_error_at = None;
            }
            Err(error) => {
                tracing::error!(
                    "policy reload refused; the last good policy set keeps serving:\n{error}"
                );
                status.last_error = Some(error.clone());
                status.last_error_at = Some(now_rfc3339());
            }
        }
        result
    }

    fn try_reload_policies(&self) -> Result<String, String> {
        let pack = PolicyPack::load(&self.sources).map_err(|p| p.render())?;
        let version = pack.version.clone();
        self.shared.replace_pack(Arc::new(pack), |pack, current| {
            if current.pack.schema_version == pack.schema_version {
                return Ok(());
            }
            check_entities_against(pack, &current.entities)
        })?;
        Ok(version)
    }

    /// Reloads the entities file (when entities come from a file).
    pub fn reload_entities(&self) -> Result<usize, String> {
        let Some(path) = &self.entities_file else {
            return Ok(0);
        };
        let result = self.try_reload_entities(path);
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(count) => {
                tracing::info!(entities = count, "entities file reloaded");
                status.entities_loaded_at = Some(now_rfc3339());
            }
            Err(error) => {
                tracing::error!(
                    "entities reload refused; the last good entities keep serving:\n{error}"
                );
                status.last_error = Some(error.clone());
                status.last_error_at = Some(now_rfc3339());
            }
        }
        result
    }

    fn try_reload_entities(&self, path: &Path) -> Result<usize, String> {
        // The schema may change while we parse; retry against the new one.
        for _ in 0..3 {
            let Some(current) = self.shared.snapshot() else {
                return Err("no snapshot loaded yet".to_string());
            };
            let entities =
                load_entities_file(path, &current.pack.schema).map_err(|p| p.render())?;
            let count = entities.len();
            let revision = current.entities.revision() + 1;
            let map = EntityMap::from_entities(entities, revision);
            if self
                .shared
                .replace_entities_checked(map, &current.pack.schema_version)
            {
                return Ok(count);
            }
        }
        Err("the schema kept changing while the entities file was loaded".to_string())
    }

    /// Reloads everything (SIGHUP, admin endpoint).
    pub fn reload_all(&self) -> Result<String, String> {
        let version = self.reload_policies()?;
        self.reload_entities()?;
        Ok(version)
    }
}

/// Refuses a schema that the stored entities do not conform to.
fn check_entities_against(pack: &PolicyPack, entities: &EntityMap) -> Result<(), String> {
    recheck_entities(
        entities.iter().map(|e| &**e),
        &pack.schema,
        MAX_REFUSALS_SHOWN,
    )
    .map_err(|refusals| {
        format!(
            "the new schema does not accept stored entities:\n  {}",
            refusals.join("\n  ")
        )
    })
}

/// What a batch of file events asks for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Pending {
    policies: bool,
    entities: bool,
}

/// Watches the pack and the entities file; reloads after `debounce` of
/// quiet. The returned watcher must be kept alive.
pub fn watch(
    reloader: Arc<Reloader>,
    debounce: Duration,
) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
    let policies_dir = absolute(&reloader.sources.policies);
    let schema_path = absolute(&reloader.sources.schema);
    let entities_path = reloader.entities_file.as_deref().map(absolute);
    let classify = {
        let (policies_dir, schema_path, entities_path) = (
            policies_dir.clone(),
            schema_path.clone(),
            entities_path.clone(),
        );
        move |path: &Path| Pending {
            policies: path.starts_with(&policies_dir) || path.starts_with(&schema_path),
            entities: entities_path.as_deref().is_some_and(|e| path == e),
        }
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let mut pending = Pending::default();
        for path in &event.paths {
            let hit = classify(path);
            pending.policies |= hit.policies;
            pending.entities |= hit.entities;
        }
        if pending != Pending::default() {
            let _ = tx.send(pending);
        }
    })?;
    watcher.watch(&policies_dir, RecursiveMode::Recursive)?;
    // Editors save by rename: watch the folders holding files, not the files.
    let schema_watch = if schema_path.is_dir() {
        schema_path.clone()
    } else {
        parent_of(&schema_path)
    };
    watcher.watch(&schema_watch, RecursiveMode::NonRecursive)?;
    if let Some(entities) = &entities_path {
        watcher.watch(&parent_of(entities), RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut pending = first;
            // Debounce: keep collecting until the files have been quiet.
            while let Ok(Some(more)) = tokio::time::timeout(debounce, rx.recv()).await {
                pending.policies |= more.policies;
                pending.entities |= more.entities;
            }
            let reloader = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if pending.policies {
                    let _ = reloader.reload_policies();
                }
                if pending.entities {
                    let _ = reloader.reload_entities();
                }
            })
            .await;
        }
    });
    Ok(watcher)
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    })
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Now, RFC 3339 with microseconds, UTC.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// A time as RFC 3339 with microseconds, UTC.
pub fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
