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

use tokio::sync::oneshot;

use crate::engine::{load_links_file, PackSources, PolicyPack};
use crate::entities::{load_entities_file, EntityMap, LinkMap};
use crate::gateway::Gateway;
use crate::publisher::{Checked, EntitySet, Event, PackOutcome, Publisher};
use crate::shadow::Shadow;
use crate::telemetry::Metrics;

mod watch;

pub use watch::{watch, Watching};

/// How long a reload waits for its pack to be published before it answers
/// that the pack is pending (a schema change waits for entities checked
/// against it, which from Redis means a fresh snapshot).
pub const SETTLE: Duration = Duration::from_secs(1);

/// What the last reloads did, for `/v1/status`.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// When the policy pack last loaded successfully (RFC 3339).
    pub last_ok_at: Option<String>,
    /// The last failed reload's error, cleared by the next success.
    pub last_error: Option<String>,
    /// When the last failure happened.
    pub last_error_at: Option<String>,
    /// When the entities file was last loaded.
    pub entities_loaded_at: Option<String>,
    /// A pack validated but not yet published: its schema changed and its
    /// entities are being checked against it.
    pub pending_version: Option<String>,
}

/// What a policy reload achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The pack with this version is what readers see.
    Published(String),
    /// The pack with this version is valid and waits for entities checked
    /// against its schema; the status shows when it is published or refused.
    Pending(String),
}

impl Reloaded {
    /// The new pack's version.
    pub fn version(&self) -> &str {
        match self {
            Self::Published(version) | Self::Pending(version) => version,
        }
    }
}

/// Performs reloads and keeps their status.
pub struct Reloader {
    /// Where the pack comes from.
    pub sources: PackSources,
    /// The entities file, when entities come from a file.
    pub entities_file: Option<PathBuf>,
    /// The template links file, read with the entities file and checked
    /// against each reloaded pack.
    pub links_file: Option<PathBuf>,
    /// The gateway, whose route map reloads with the pack.
    gateway: Option<Arc<Gateway>>,
    /// The shadow policy set, reloaded (from its folder) with the pack.
    shadow: Option<Arc<Shadow>>,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    /// A std mutex: held only to copy or update the status, never across an await.
    status: Arc<Mutex<ReloadStatus>>,
    /// One reload at a time (a tokio mutex: held across the reload's awaits),
    /// so that a schema change and an entities-file reload never interleave.
    serial: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader for the given sources, publishing through `publisher`.
    pub fn new(
        sources: PackSources,
        entities_file: Option<PathBuf>,
        publisher: Publisher,
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
            links_file: None,
            gateway: None,
            shadow: None,
            publisher,
            metrics,
            status: Arc::new(Mutex::new(status)),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// Reloads the gateway's route map and keys with every pack: the map is
    /// compiled against the new pack before the pack is sent for
    /// publishing, and a map that does not fit refuses the reload.
    pub fn with_gateway(mut self, gateway: Option<Arc<Gateway>>) -> Self {
        self.gateway = gateway;
        self
    }

    /// Reloads the shadow policy set from its folder (with the served
    /// schema) with every policy reload.
    pub fn with_shadow(mut self, shadow: Option<Arc<Shadow>>) -> Self {
        self.shadow = shadow;
        self
    }

    /// The shadow policy folder now (watched like the policies folder when
    /// the watcher starts).
    pub fn shadow_folder(&self) -> Option<PathBuf> {
        self.shadow.as_ref().and_then(|shadow| shadow.folder())
    }

    /// Loads the shadow policy set from `folder` with the served schema, on
    /// the blocking pool; later reloads read that folder.
    pub async fn load_shadow(&self, folder: PathBuf) -> Result<String, String> {
        let Some(shadow) = self.shadow.clone() else {
            return Err("this server runs no shadow".to_string());
        };
        let schema = self.sources.schema.clone();
        tokio::task::spawn_blocking(move || shadow.load(folder, schema))
            .await
            .map_err(|e| format!("the shadow load stopped unexpectedly: {e}"))?
    }

    /// The gateway's files (route map, keys), reloaded with the pack.
    pub fn gateway_files(&self) -> Vec<PathBuf> {
        self.gateway.as_ref().map(|g| g.files()).unwrap_or_default()
    }

    /// The same reloader, also reading template links from `links` (with
    /// the entities file).
    pub fn with_links(mut self, links: Option<PathBuf>) -> Self {
        self.links_file = links;
        self
    }

    /// A copy of the current status.
    pub fn status(&self) -> ReloadStatus {
        lock(&self.status).clone()
    }

    /// Reloads policies and schema. File I/O and validation run on the
    /// blocking pool; with a new schema and an entities file, the file is
    /// re-read against it there (that is the re-check) and published with
    /// the pack. Without a file (Redis) the publisher has the source load a
    /// fresh snapshot against the new schema; if that takes longer than
    /// [`SETTLE`] the answer is [`Reloaded::Pending`].
    pub async fn reload_policies(&self) -> Result<Reloaded, String> {
        let reloaded = self.reload_served_policies().await;
        self.reload_shadow().await;
        reloaded
    }

    /// Reloads the shadow policy set, if any, on the blocking pool; a
    /// failure keeps the last good shadow (the error is in its status).
    async fn reload_shadow(&self) {
        if let Some(folder) = self.shadow_folder() {
            let _ = self.load_shadow(folder).await;
        }
    }

    async fn reload_served_policies(&self) -> Result<Reloaded, String> {
        let _serial = self.serial.lock().await;
        let prepared = self.prepare_pack().await;
        let (pack, entities) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return Err(self.refused_here(error)),
        };
        let version = pack.version.clone();
        let pending = version.clone();
        let (reply, outcome) = oneshot::channel();
        let event = Event::Pack {
            pack,
            entities,
            reply,
        };
        if let Err(stopped) = self.publisher.send(event).await {
            return Err(self.refused_here(stopped.to_string()));
        }
        // The outcome is awaited and recorded by a task of its own, so that
        // it is recorded even when this caller stops waiting (or is
        // cancelled). It tells this caller the outcome, or `None` when the
        // pack is still pending after [`SETTLE`].
        let (early_tx, early) = oneshot::channel();
        let (status, metrics) = (self.status.clone(), self.metrics.clone());
        tokio::spawn(async move {
            let mut outcome = outcome;
            let outcome = match tokio::time::timeout(SETTLE, &mut outcome).await {
                Ok(outcome) => {
                    let _ = early_tx.send(Some(outcome.clone()));
                    outcome
                }
                Err(_) => {
                    tracing::info!(%version, "policy pack valid; waiting for entities checked against its schema");
                    lock(&status).pending_version = Some(version.clone());
                    let _ = early_tx.send(None);
                    outcome.await
                }
            };
            let outcome = outcome.unwrap_or_else(|_| {
                PackOutcome::Refused("the publisher stopped before publishing".to_string())
            });
            record_policy_outcome(&status, &metrics, &outcome);
        });
        match early.await {
            Ok(Some(Ok(PackOutcome::Published(version)))) => Ok(Reloaded::Published(version)),
            Ok(Some(Ok(PackOutcome::Refused(error)))) => Err(error),
            Ok(Some(Ok(PackOutcome::Superseded))) => {
                Err("superseded by a later reload before it took effect".to_string())
            }
            Ok(None) => Ok(Reloaded::Pending(pending)),
            Ok(Some(Err(_))) | Err(_) => Err("the publisher stopped before publishing".to_string()),
        }
    }

    /// Records and returns a reload refused before it reached the publisher.
    fn refused_here(&self, error: String) -> String {
        self.metrics.record_reload(false);
        tracing::error!("policy reload refused; the last good policy set keeps serving:\n{error}");
        let mut status = lock(&self.status);
        status.last_error = Some(error.clone());
        status.last_error_at = Some(now_rfc3339());
        error
    }

    /// Loads the pack and, when its schema changed and entities come from a
    /// file, the file checked against it; on the blocking pool. With a links
    /// file, the links are re-read against the new pack too (a template and
    /// its links may change in one edit), and published with it.
    async fn prepare_pack(&self) -> Result<(Arc<PolicyPack>, Option<EntitySet>), String> {
        let sources = self.sources.clone();
        let file = self.entities_file.clone();
        let links = self.links_file.clone();
        let latest = self.publisher.latest();
        let published = self.publisher.published();
        let revision = self.next_revision();
        let gateway = self.gateway.clone();
        let published_pack = published.as_ref().map(|s| s.pack.clone());
        // The maps to keep beside the new one: the published pack's, and
        // the latest pack's (it may still be published).
        let keep: Vec<String> = published_pack
            .iter()
            .map(|p| p.version.clone())
            .chain([latest.version.clone()])
            .collect();
        tokio::task::spawn_blocking(move || {
            if let Some(gateway) = &gateway {
                // Keys first, whatever the policies: a revoked key must not
                // wait for valid policies. (A bad key file is reported and
                // the keys in force stay; it does not hold policies back.)
                let _ = gateway.reload_keys();
            }
            let pack = match PolicyPack::load(&sources) {
                Ok(pack) => Arc::new(pack),
                Err(problems) => {
                    // A route edit still applies to the policies in force.
                    if let (Some(gateway), Some(published)) = (&gateway, &published_pack) {
                        gateway.restage(published);
                    }
                    return Err(problems.render());
                }
            };
            if let Some(gateway) = &gateway {
                let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
                gateway
                    .stage(&pack, published_pack.as_deref(), &keep)
                    .map_err(|report| {
                        format!("{report}the gateway route map does not fit the new policies; nothing was reloaded\n")
                    })?;
            }
            let entities = match (file, links, published) {
                (Some(path), links, _) if pack.schema_version != latest.schema_version => Some(
                    read_entities_file(&path, links.as_deref(), &pack, revision)?,
                ),
                (Some(_), Some(links), Some(published)) => {
                    let links = load_links_file(&links, &pack).map_err(|p| p.render())?;
                    let mut entities = published.entities.clone().with_links(links);
                    entities.apply([], revision);
                    Some(EntitySet {
                        entities,
                        checked: Checked {
                            schema_version: pack.schema_version.clone(),
                            seq: 0,
                        },
                        refused: Vec::new(),
                                    })
                }
                _ => None,
            };
            Ok((pack, entities))
        })
        .await
        .map_err(|e| format!("the reload stopped unexpectedly: {e}"))?
    }

    /// Reloads the entities file (when entities come from a file), checked
    /// against the latest pack's schema, on the blocking pool.
    pub async fn reload_entities(&self) -> Result<usize, String> {
        let Some(path) = self.entities_file.clone() else {
            return Ok(0);
        };
        let _serial = self.serial.lock().await;
        let result = self.try_reload_entities(path).await;
        let mut status = lock(&self.status);
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

    async fn try_reload_entities(&self, path: PathBuf) -> Result<usize, String> {
        let pack = self.publisher.latest();
        let revision = self.next_revision();
        let links = self.links_file.clone();
        let set = tokio::task::spawn_blocking(move || {
            read_entities_file(&path, links.as_deref(), &pack, revision)
        })
        .await
        .map_err(|e| format!("the reload stopped unexpectedly: {e}"))??;
        let (reply, outcome) = oneshot::channel();
        let event = Event::Snapshot {
            set,
            reply: Some(reply),
        };
        self.publisher
            .send(event)
            .await
            .map_err(|e| e.to_string())?;
        outcome
            .await
            .unwrap_or_else(|_| Err("the publisher stopped before publishing".to_string()))
    }

    /// The revision a re-read entities file is published at.
    fn next_revision(&self) -> u64 {
        self.publisher
            .published()
            .map_or(1, |s| s.entities.revision() + 1)
    }

    /// Reloads everything (SIGHUP, admin endpoint).
    pub async fn reload_all(&self) -> Result<Reloaded, String> {
        let reloaded = self.reload_policies().await?;
        self.reload_entities().await?;
        Ok(reloaded)
    }
}

/// Reads the entities file checked against `pack`'s schema, and the links
/// file checked against its templates (blocking).
fn read_entities_file(
    path: &Path,
    links: Option<&Path>,
    pack: &PolicyPack,
    revision: u64,
) -> Result<EntitySet, String> {
    let entities = load_entities_file(path, &pack.schema).map_err(|p| p.render())?;
    let links = match links {
        Some(links) => load_links_file(links, pack).map_err(|p| p.render())?,
        None => LinkMap::default(),
    };
    Ok(EntitySet {
        entities: EntityMap::from_entities(entities, revision).with_links(links),
        checked: Checked {
            schema_version: pack.schema_version.clone(),
            seq: 0,
        },
        refused: Vec::new(),
    })
}

/// Records a pack's final outcome (a superseded pack leaves no trace: the
/// later one's outcome is recorded).
fn record_policy_outcome(status: &Mutex<ReloadStatus>, metrics: &Metrics, outcome: &PackOutcome) {
    if *outcome == PackOutcome::Superseded {
        return;
    }
    metrics.record_reload(matches!(outcome, PackOutcome::Published(_)));
    let mut status = lock(status);
    match outcome {
        PackOutcome::Superseded => {}
        PackOutcome::Published(version) => {
            status.pending_version = None;
            tracing::info!(%version, "policy pack reloaded");
            status.last_ok_at = Some(now_rfc3339());
            status.last_error = None;
            status.last_error_at = None;
        }
        PackOutcome::Refused(error) => {
            status.pending_version = None;
            tracing::error!(
                "policy reload refused; the last good policy set keeps serving:\n{error}"
            );
            status.last_error = Some(error.clone());
            status.last_error_at = Some(now_rfc3339());
        }
    }
}

fn lock(status: &Mutex<ReloadStatus>) -> std::sync::MutexGuard<'_, ReloadStatus> {
    status.lock().unwrap_or_else(|p| p.into_inner())
}

/// Now, RFC 3339 with microseconds, UTC.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// A time as RFC 3339 with microseconds, UTC.
pub fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
