//! The bodies an operator reads: `/v1/policies`, `/healthz`, `/readyz`,
//! `/v1/status`, and the admin API's answers. Each is a type of its own, so
//! a field cannot change by accident when an internal type does; internal
//! types (the pack, the freshness report, the reload status) are not
//! serialisable at all and are copied into these.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{PolicyInfo, PolicyPack};
use crate::entities::StoredLink;
use crate::freshness::{FreshnessPolicy, FreshnessReport};
use crate::gateway::GatewayStatus;
use crate::reload::ReloadStatus;

/// `GET /v1/policies`.
#[derive(Debug, Serialize)]
pub struct PoliciesResponse {
    /// The policy set's version (a content hash).
    pub version: String,
    /// Every policy and template, sorted by file then position.
    pub policies: Vec<PolicyEntry>,
    /// How many template links are served. The links themselves are
    /// grants (who may use what): listed page by page by the admin route
    /// `GET /v1/policy-links`, not to every caller.
    pub link_count: usize,
}

/// `GET /v1/policy-links`: one page of the served links, by id.
#[derive(Debug, Serialize)]
pub struct LinksPage {
    /// The entity revision the links were read at.
    pub revision: u64,
    /// The links after `after`, at most `limit` of them.
    pub links: Vec<LinkEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `PUT /v1/policy-links`.
#[derive(Debug, Serialize)]
pub struct LinksWritten {
    /// The revision the write created.
    pub revision: u64,
    /// Links written.
    pub written: usize,
}

/// `DELETE /v1/policy-links`.
#[derive(Debug, Serialize)]
pub struct LinksDeleted {
    /// The revision the delete created.
    pub revision: u64,
    /// Links deleted.
    pub deleted: usize,
}

/// `GET /v1/policy-links/{id}`: a link as stored in Redis.
#[derive(Debug, Serialize)]
pub struct LinkRecordBody {
    /// The link's id.
    pub link_id: String,
    /// The revision that last wrote it.
    pub revision: u64,
    /// The link in the Cedar CLI's `--template-linked` form.
    pub link: serde_json::Value,
}

/// One template link, in the Cedar CLI's `--template-linked` form.
#[derive(Debug, Serialize)]
pub struct LinkEntry {
    /// The template it fills.
    pub template_id: String,
    /// The id decisions name.
    pub link_id: String,
    /// `?principal` and `?resource`, as entity uids (`User::"paula"`).
    pub args: BTreeMap<&'static str, String>,
}

impl From<&StoredLink> for LinkEntry {
    fn from(link: &StoredLink) -> Self {
        let mut args = BTreeMap::new();
        if let Some(uid) = &link.principal {
            args.insert("?principal", uid.to_string());
        }
        if let Some(uid) = &link.resource {
            args.insert("?resource", uid.to_string());
        }
        Self {
            template_id: link.template.to_string(),
            link_id: link.id.to_string(),
            args,
        }
    }
}

/// One policy or template of `GET /v1/policies`.
#[derive(Debug, Serialize)]
pub struct PolicyEntry {
    /// The id decisions name (`@id` or `file:index`).
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: &'static str,
    /// Source file relative to the policies folder.
    pub file: String,
    /// Templates decide nothing until linked.
    pub is_template: bool,
    /// A template's slots (`?principal`, `?resource`); absent for policies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<&'static str>,
}

impl PolicyEntry {
    /// The entry of `info`, with its slots when it is a template of `pack`.
    pub fn new(info: &PolicyInfo, pack: &PolicyPack) -> Self {
        let mut entry = Self::from(info);
        if let Some(rules) = pack.template_slots.get(&info.id) {
            if rules.principal.is_some() {
                entry.slots.push("?principal");
            }
            if rules.resource.is_some() {
                entry.slots.push("?resource");
            }
        }
        entry
    }
}

impl From<&PolicyInfo> for PolicyEntry {
    fn from(info: &PolicyInfo) -> Self {
        Self {
            slots: Vec::new(),
            id: info.id.clone(),
            effect: match info.effect {
                cedar_policy::Effect::Permit => "permit",
                cedar_policy::Effect::Forbid => "forbid",
            },
            file: info.file.clone(),
            is_template: info.is_template,
        }
    }
}

/// `GET /healthz`: `{"status": "ok"}`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: &'static str,
}

/// Where `/readyz` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    /// Policies and entities loaded, source in contact.
    Ready,
    /// Out of contact with the entity source for longer than the bound.
    Stale,
    /// Still loading, or fewer entities than `min_entities`.
    NotReady,
    /// Shutting down.
    Draining,
}

/// `GET /readyz`.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// Where readiness stands.
    pub status: ReadyStatus,
    /// Why it is not `ready`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The same reason, as a list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The policy set's version, when loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// Policies loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<usize>,
    /// Entities loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<usize>,
    /// The readiness floor, when the count is below it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_entities: Option<usize>,
    /// The entity revision served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Contact with the entity source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<ReadySync>,
}

impl Readiness {
    /// A body with only a status and its reason.
    pub fn because(status: ReadyStatus, reason: String) -> Self {
        Self {
            status,
            reasons: vec![reason.clone()],
            reason: Some(reason),
            policy_version: None,
            policies: None,
            entities: None,
            min_entities: None,
            revision: None,
            sync: None,
        }
    }
}

/// The entity source as `/readyz` shows it.
#[derive(Debug, Serialize)]
pub struct ReadySync {
    /// The applied revision.
    pub revision: u64,
    /// Whether contact is tracked (false for a file).
    pub tracked: bool,
    /// Milliseconds since the source was last heard from.
    pub since_contact_ms: Option<u128>,
    /// The staleness bound.
    pub stale_after_ms: u128,
    /// Whether stale data is still served.
    pub serve_stale: bool,
    /// The last error talking to the source.
    pub last_error: Option<String>,
    /// Full reloads so far.
    pub reloads: u64,
    /// Why the last one happened.
    pub last_reload_reason: Option<String>,
    /// Entities the schema rejected, not served.
    pub invalid_entities: u64,
}

impl ReadySync {
    /// The report, with the policy's bound.
    pub fn new(report: &FreshnessReport, policy: &FreshnessPolicy) -> Self {
        Self {
            revision: report.revision,
            tracked: report.tracked,
            since_contact_ms: report.since_contact_ms,
            stale_after_ms: policy.stale_after.as_millis(),
            serve_stale: policy.serve_stale,
            last_error: report.last_error.clone(),
            reloads: report.reloads,
            last_reload_reason: report.last_reload_reason.clone(),
            invalid_entities: report.invalid_entities,
        }
    }
}

/// `GET /v1/status`.
#[derive(Debug, Serialize)]
pub struct StatusResponse {
    /// The binary's version.
    pub build_version: &'static str,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// A snapshot is published.
    pub ready: bool,
    /// The policy pack served (null before the first).
    pub policies: Option<PackStatus>,
    /// What the last reloads did (null without a reloader).
    pub last_reload: Option<ReloadBody>,
    /// The gateway route map and keys (null without a route map).
    pub gateway: Option<GatewayBody>,
    /// The entities served (null before the first snapshot).
    pub entities: Option<EntitiesStatus>,
    /// What callers may send.
    pub caller_trust: CallerTrust,
    /// The entity source.
    pub sync: SyncStatus,
    /// The audit trail's accounting.
    pub decision_log: DecisionLogStatus,
    /// The shadow policy set and its counters (null without one).
    pub shadow: Option<ShadowBody>,
}

/// The shadow policy set in `/v1/status`.
#[derive(Debug, Serialize)]
pub struct ShadowBody {
    /// The shadow policy folder.
    pub policies: Option<String>,
    /// The shadow pack's content hash (null until one loads).
    pub version: Option<String>,
    /// When it was loaded (RFC 3339).
    pub loaded_at: Option<String>,
    /// The last failed load's error, cleared by the next success.
    pub last_error: Option<String>,
    /// Live decisions decided again by the shadow.
    pub decisions: u64,
    /// Of those, the ones whose verdict differed from the served one.
    pub disagreements: u64,
    /// Live decisions not shadowed because its queue was full.
    pub dropped: u64,
}

/// The pack in `/v1/status`.
#[derive(Debug, Serialize)]
pub struct PackStatus {
    /// Content hash.
    pub version: String,
    /// When it was loaded (RFC 3339).
    pub loaded_at: String,
    /// Static policies.
    pub policies: usize,
    /// Templates.
    pub templates: usize,
    /// The slice's dereference depth (null: the policies need the whole graph).
    pub slice_depth: Option<u32>,
}

/// The reload status in `/v1/status`.
#[derive(Debug, Serialize)]
pub struct ReloadBody {
    /// When the pack last loaded (RFC 3339).
    pub last_ok_at: Option<String>,
    /// The last failed reload's error, cleared by the next success.
    pub last_error: Option<String>,
    /// When it failed.
    pub last_error_at: Option<String>,
    /// When the entities file was last loaded.
    pub entities_loaded_at: Option<String>,
    /// A pack validated and waiting for entities checked against its schema.
    pub pending_version: Option<String>,
}

impl From<ReloadStatus> for ReloadBody {
    fn from(status: ReloadStatus) -> Self {
        Self {
            last_ok_at: status.last_ok_at,
            last_error: status.last_error,
            last_error_at: status.last_error_at,
            entities_loaded_at: status.entities_loaded_at,
            pending_version: status.pending_version,
        }
    }
}

/// The gateway's route map and keys in `/v1/status`.
#[derive(Debug, Serialize)]
pub struct GatewayBody {
    /// The route map in force.
    pub routes_file: String,
    /// How many routes it has.
    pub routes: usize,
    /// How many signing keys are loaded (0 with a trusted header).
    pub keys: usize,
    /// The policy version the map in force was checked against.
    pub checked_against: String,
    /// When it was loaded (RFC 3339).
    pub loaded_at: Option<String>,
    /// The last refused edit, cleared by the next good one.
    pub last_error: Option<String>,
    /// When it was refused.
    pub last_error_at: Option<String>,
}

impl From<GatewayStatus> for GatewayBody {
    fn from(status: GatewayStatus) -> Self {
        Self {
            routes_file: status.routes_file,
            routes: status.routes,
            keys: status.keys,
            checked_against: status.checked_against,
            loaded_at: status.loaded_at,
            last_error: status.last_error,
            last_error_at: status.last_error_at,
        }
    }
}

/// The entities in `/v1/status`.
#[derive(Debug, Serialize)]
pub struct EntitiesStatus {
    /// `file` or `redis`.
    pub source: String,
    /// Entities served.
    pub count: usize,
    /// Their revision.
    pub revision: u64,
    /// The readiness floor.
    pub min_entities: usize,
    /// The count is below it.
    pub below_minimum: bool,
}

/// What callers may send, in `/v1/status`.
#[derive(Debug, Serialize)]
pub struct CallerTrust {
    /// The request-entity rules.
    pub request_entities: RequestEntitiesStatus,
    /// Whether caller tokens guard the decision API.
    pub caller_tokens: bool,
}

/// The request-entity rules.
#[derive(Debug, Serialize)]
pub struct RequestEntitiesStatus {
    /// `off`, `new-only` or `override`.
    pub mode: &'static str,
    /// Types a request may describe.
    pub types: Vec<String>,
    /// Most entities per request or batch.
    pub max: usize,
}

/// The entity source in `/v1/status`: every counter of the freshness report.
#[derive(Debug, Serialize)]
pub struct SyncStatus {
    /// Whether contact is tracked (false for a file).
    pub tracked: bool,
    /// Milliseconds since the source was last heard from.
    pub since_contact_ms: Option<u128>,
    /// Out of contact for longer than the bound.
    pub stale: bool,
    /// The last error talking to the source.
    pub last_error: Option<String>,
    /// Full reloads so far.
    pub reloads: u64,
    /// Why the last one happened.
    pub last_reload_reason: Option<String>,
    /// Entities the schema rejected, not served.
    pub invalid_entities: u64,
    /// Restarts of the sync task.
    pub restarts: u64,
    /// Why it last restarted.
    pub last_restart_reason: Option<String>,
    /// Malformed change-stream entries skipped.
    pub malformed_entries: u64,
    /// What was wrong with the last one.
    pub last_malformed: Option<String>,
    /// The applied revision.
    pub revision: u64,
}

impl From<FreshnessReport> for SyncStatus {
    fn from(report: FreshnessReport) -> Self {
        Self {
            tracked: report.tracked,
            since_contact_ms: report.since_contact_ms,
            stale: report.stale,
            last_error: report.last_error,
            reloads: report.reloads,
            last_reload_reason: report.last_reload_reason,
            invalid_entities: report.invalid_entities,
            restarts: report.restarts,
            last_restart_reason: report.last_restart_reason,
            malformed_entries: report.malformed_entries,
            last_malformed: report.last_malformed,
            revision: report.revision,
        }
    }
}

/// The decision log's accounting in `/v1/status`.
#[derive(Debug, Serialize)]
pub struct DecisionLogStatus {
    /// `off`, `stdout` or the file's path.
    pub sink: String,
    /// Records written.
    pub written: u64,
    /// Records lost, all causes.
    pub dropped: u64,
    /// Records lost, by cause.
    pub dropped_by_cause: BTreeMap<&'static str, u64>,
    /// Records waiting for the writer.
    pub pending: u64,
    /// Times the file was reopened.
    pub reopens: u64,
    /// Rotations that failed.
    pub rotation_failures: u64,
}

/// `PUT /v1/admin/shadow`: the folder to load as the shadow policy set.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowRequest {
    /// A policy folder on the sidecar's file system.
    pub policies: String,
}

/// `PUT` and `DELETE /v1/admin/shadow`.
#[derive(Debug, Serialize)]
pub struct ShadowResponse {
    /// `loaded` or `cleared`.
    pub status: &'static str,
    /// The shadow pack's version, when loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
}

/// `POST /v1/admin/reload`.
#[derive(Debug, Serialize)]
pub struct ReloadResponse {
    /// `reloaded`, or `pending` while entities are checked against a new schema.
    pub status: &'static str,
    /// The new pack's version.
    pub policy_version: String,
}

/// `PUT /v1/entities`.
#[derive(Debug, Serialize)]
pub struct EntitiesWritten {
    /// The revision the write created.
    pub revision: u64,
    /// Entities written.
    pub written: usize,
}

/// `DELETE /v1/entities`.
#[derive(Debug, Serialize)]
pub struct EntitiesDeleted {
    /// The revision the delete created.
    pub revision: u64,
    /// Entities deleted.
    pub deleted: usize,
}

/// `GET /v1/entities/{type}/{id}`.
#[derive(Debug, Serialize)]
pub struct EntityRecordBody {
    /// The entity's uid.
    pub uid: String,
    /// The revision that last wrote it.
    pub revision: u64,
    /// The entity in Cedar's JSON.
    pub entity: serde_json::Value,
}

/// An error: `{"code", "message"}`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// Stable, machine-readable.
    pub code: &'static str,
    /// For people.
    pub message: String,
}
