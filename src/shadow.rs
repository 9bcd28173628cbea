//! The shadow: a candidate policy set decided beside the served one, as a
//! dry run on live traffic. Every live decision is handed, with the entity
//! snapshot it was made on, to a worker thread through a bounded queue
//! (full: the job is dropped and counted; the request never waits), which
//! decides it again with the shadow pack and compares. A disagreement is
//! logged (one line with both decisions and their policies) and counted in
//! `cedar_shadow_disagreements_total`; the shadow's answer is never served.
//!
//! The shadow pack shares the served pack's schema (the entities were
//! checked against it) and is reloaded with it: on file changes under the
//! `shadow_policies` folder, on SIGHUP and on `POST /v1/admin/reload`. The
//! admin API loads another folder (`PUT /v1/admin/shadow`, reloaded with
//! the pack from then on but not watched) or clears it (`DELETE`). A shadow
//! that fails to reload keeps its last good pack, as the served one does.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::engine::{
    decide, DecisionRequest, PackSources, PolicyPack, RequestEntityPolicy, Verdict,
};
use crate::entities::EntityMap;
use crate::telemetry::Metrics;

/// Live decisions queued for the shadow by default before new ones drop.
pub const DEFAULT_QUEUE: usize = 4096;

/// What the shadow's last loads did, for `/v1/status`.
#[derive(Debug, Clone, Default)]
pub struct ShadowStatus {
    /// The shadow policy folder.
    pub policies: Option<PathBuf>,
    /// The shadow pack's version (content hash), when one is loaded.
    pub version: Option<String>,
    /// When it was loaded (RFC 3339).
    pub loaded_at: Option<String>,
    /// The last failed load's error, cleared by the next success.
    pub last_error: Option<String>,
}

/// One live decision, as the shadow decides it again.
struct Job {
    entities: EntityMap,
    request: DecisionRequest,
    decision_id: String,
    served: Verdict,
    served_policies: Vec<String>,
}

/// The shadow policy set and its worker.
pub struct Shadow {
    pack: Arc<ArcSwapOption<PolicyPack>>,
    status: Mutex<ShadowStatus>,
    sender: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

impl Shadow {
    /// Starts the worker thread; no pack yet (see [`Shadow::load`]). Jobs
    /// are admitted under `trust`, as the served decision's were.
    pub fn start(
        queue: usize,
        trust: Arc<RequestEntityPolicy>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let (sender, jobs) = sync_channel::<Job>(queue.max(1));
        let pack: Arc<ArcSwapOption<PolicyPack>> = Arc::default();
        let worker = Worker {
            pack: pack.clone(),
            trust,
            metrics: metrics.clone(),
        };
        std::thread::Builder::new()
            .name("shadow".into())
            .spawn(move || worker.run(&jobs))?;
        Ok(Self {
            pack,
            status: Mutex::new(ShadowStatus::default()),
            sender,
            metrics,
        })
    }

    /// Loads the shadow pack from `policies` with the served `schema`
    /// (blocking: file reads and validation). On failure the pack in force,
    /// if any, stays, and the error is kept for `/v1/status`.
    pub fn load(&self, policies: PathBuf, schema: PathBuf) -> Result<String, String> {
        let sources = PackSources {
            policies: policies.clone(),
            schema,
        };
        let loaded = PolicyPack::load(&sources).map_err(|problems| problems.render());
        let mut status = lock(&self.status);
        match loaded {
            Ok(pack) => {
                // The folder in force changes only with a pack that loads.
                status.policies = Some(policies);
                let version = pack.version.clone();
                self.set(Some(Arc::new(pack)));
                status.version = Some(version.clone());
                status.loaded_at = Some(crate::reload::now_rfc3339());
                status.last_error = None;
                tracing::info!(%version, "shadow policy set loaded; its decisions are compared, never served");
                Ok(version)
            }
            Err(error) => {
                tracing::error!(
                    "shadow policy set not loaded; the previous one (if any) stays:\n{error}"
                );
                status.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Sets the shadow pack directly (`None` stops shadowing).
    pub fn set(&self, pack: Option<Arc<PolicyPack>>) {
        self.pack.store(pack);
    }

    /// Stops shadowing: no pack, no folder (reloads load nothing until a
    /// folder is loaded again). Counters are kept.
    pub fn clear(&self) {
        self.set(None);
        *lock(&self.status) = ShadowStatus::default();
        tracing::info!("shadow policy set cleared");
    }

    /// The folder the shadow pack is loaded from, if any.
    pub fn folder(&self) -> Option<PathBuf> {
        lock(&self.status).policies.clone()
    }

    /// Whether a shadow pack is loaded (live decisions are then submitted).
    pub fn active(&self) -> bool {
        self.pack.load().is_some()
    }

    /// A copy of the status.
    pub fn status(&self) -> ShadowStatus {
        lock(&self.status).clone()
    }

    /// Hands a served decision to the shadow without waiting; a full queue
    /// drops it (counted). Costs a clone of the request and an O(1) copy
    /// of the entity snapshot, only while a shadow pack is loaded.
    pub fn submit(
        &self,
        entities: &EntityMap,
        request: &DecisionRequest,
        decision_id: &str,
        served: Verdict,
        served_policies: &[String],
    ) {
        if !self.active() {
            return;
        }
        let job = Job {
            entities: entities.clone(),
            request: request.clone(),
            decision_id: decision_id.to_string(),
            served,
            served_policies: served_policies.to_vec(),
        };
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.record_shadow_dropped();
            }
        }
    }
}

/// The thread that decides queued jobs with the shadow pack.
struct Worker {
    pack: Arc<ArcSwapOption<PolicyPack>>,
    trust: Arc<RequestEntityPolicy>,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn run(self, jobs: &Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            // Cleared since it was queued: nothing to compare with.
            let Some(pack) = self.pack.load_full() else {
                continue;
            };
            let (shadow, shadow_policies, error) =
                match decide(&pack, &job.entities, &job.request, &self.trust) {
                    Ok(decision) => (verdict_label(decision.verdict), decision.reasons, None),
                    Err(error) => ("Refused", Vec::new(), Some(error.to_string())),
                };
            self.metrics.record_shadow_decision();
            let served = verdict_label(job.served);
            if shadow != served {
                self.metrics.record_shadow_disagreement();
                tracing::info!(
                    decision_id = %job.decision_id,
                    principal = %job.request.principal,
                    action = %job.request.action,
                    resource = %job.request.resource,
                    served,
                    served_policies = ?job.served_policies,
                    shadow,
                    shadow_policies = ?shadow_policies,
                    shadow_error = error.as_deref().unwrap_or(""),
                    shadow_version = %pack.version,
                    "shadow decision disagrees with the served one"
                );
            }
        }
    }
}

fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "Allow",
        Verdict::Deny => "Deny",
    }
}

fn lock(status: &Mutex<ShadowStatus>) -> std::sync::MutexGuard<'_, ShadowStatus> {
    status.lock().unwrap_or_else(|p| p.into_inner())
}
