//! In-process sidecars (router + replica task) against real Redis, and the
//! helpers tests share: entities, decisions, contents, polling.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cedar_sidecar::engine::{PackSources, PolicyPack};
use cedar_sidecar::entities::{parse_entity, StoredEntity};
use cedar_sidecar::freshness::{Freshness, FreshnessPolicy};
use cedar_sidecar::http::{router, AdminToken, AppState};
use cedar_sidecar::publisher::Publisher;
use cedar_sidecar::reload::Reloader;
use cedar_sidecar::state::SharedState;
use cedar_sidecar::sync::{
    EntityWrite, KeyLayout, RedisTarget, RedisWriter, Replica, TlsFiles, Topology,
};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// The shipped policy pack (loaded once per test binary).
pub fn pack() -> Arc<PolicyPack> {
    static PACK: std::sync::OnceLock<Arc<PolicyPack>> = std::sync::OnceLock::new();
    PACK.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        Arc::new(
            PolicyPack::load(&PackSources {
                policies: root.join("policies"),
                schema: root.join("schema"),
            })
            .expect("shipped pack loads"),
        )
    })
    .clone()
}

/// A sidecar replica running in this process.
pub struct Sidecar {
    /// Its HTTP state (call [`Sidecar::call`]).
    pub state: AppState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Settings for a test sidecar.
pub struct SidecarOptions {
    pub topology: Topology,
    pub policy: FreshnessPolicy,
    pub admin_token: Option<String>,
    pub idle_check: Duration,
    pub tls: TlsFiles,
    /// A folder with `policies/` and `schema/` to load the pack from and
    /// reload (the state gets a reloader); the shipped pack when `None`.
    pub pack_dir: Option<PathBuf>,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        Self {
            topology: Topology::Single,
            policy: FreshnessPolicy::default(),
            admin_token: None,
            idle_check: Duration::from_millis(200),
            tls: TlsFiles::default(),
            pack_dir: None,
        }
    }
}

/// The sources of a pack kept in `dir` (`policies/`, `schema/`).
pub fn pack_sources(dir: &Path) -> PackSources {
    PackSources {
        policies: dir.join("policies"),
        schema: dir.join("schema"),
    }
}

/// A writable copy of the shipped pack (`policies/`, `schema/`).
pub fn shipped_pack_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for folder in ["policies", "schema"] {
        copy_dir(&root.join(folder), &dir.path().join(folder));
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Starts a replica against `urls` and returns the sidecar.
pub fn sidecar(urls: &[String], options: SidecarOptions) -> Sidecar {
    let target =
        Arc::new(RedisTarget::with_tls(urls, &options.topology, &options.tls).expect("target"));
    let shared = Arc::new(SharedState::default());
    let freshness = Arc::new(Freshness::tracked(options.policy));
    let mut state = AppState::new(shared.clone());
    state.freshness = freshness.clone();
    let pack = match &options.pack_dir {
        Some(dir) => Arc::new(
            PolicyPack::load(&pack_sources(dir)).unwrap_or_else(|p| panic!("{}", p.render())),
        ),
        None => pack(),
    };
    let publisher = Publisher::start(
        shared.clone(),
        pack,
        freshness.clone(),
        state.metrics.clone(),
    );
    if let Some(dir) = &options.pack_dir {
        state.reloader = Some(Arc::new(Reloader::new(
            pack_sources(dir),
            None,
            publisher.clone(),
            state.metrics.clone(),
        )));
    }
    if let Some(token) = options.admin_token {
        state.admin_token = Some(Arc::new(AdminToken::new(token)));
        state.entity_writer = Some(Arc::new(RedisWriter::new(
            target.clone(),
            KeyLayout::default(),
            1000,
        )));
    }
    let task = Replica {
        target,
        keys: KeyLayout::default(),
        publisher,
        freshness: freshness.clone(),
        idle_check: options.idle_check,
        metrics: state.metrics.clone(),
    }
    .spawn();
    Sidecar { state, task }
}

impl Sidecar {
    /// Sends one request through the router; returns status and JSON body.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request");
        let response = router(self.state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    /// Decides whether `User::"<user>"` may create an org (allowed exactly
    /// when the user is in `PlatformAdmins::"thunk"`).
    pub async fn may_create_org(&self, user: &str, at_least: Option<u64>) -> (StatusCode, Value) {
        let mut body = json!({
            "principal": {"type": "User", "id": user},
            "action": {"type": "Action", "id": "CreateOrg"},
            "resource": {"type": "Platform", "id": "thunk"},
        });
        if let Some(rev) = at_least {
            body["consistency"] = json!({ "at_least": rev });
        }
        self.call("POST", "/v1/is_authorized", None, Some(body))
            .await
    }

    /// The decision string for [`Sidecar::may_create_org`], asserting 200.
    pub async fn decision(&self, user: &str) -> String {
        let (status, body) = self.may_create_org(user, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["decision"].as_str().expect("decision").to_string()
    }

    /// The applied revision (0 before the first snapshot).
    pub fn revision(&self) -> u64 {
        self.state
            .shared
            .snapshot()
            .map_or(0, |s| s.entities.revision())
    }

    /// Every entity this replica serves, by uid, as canonical JSON.
    pub fn contents(&self) -> BTreeMap<String, Value> {
        let snapshot = self.state.shared.snapshot().expect("loaded");
        snapshot
            .entities
            .iter()
            .map(|e| {
                let json = e.to_json_value().expect("json");
                (e.uid().to_string(), normalized(json))
            })
            .collect()
    }

    /// How many full reloads the replica did (the first load not counted).
    pub fn reloads(&self) -> u64 {
        self.state.freshness.report().reloads
    }
}

/// A writer for the default dataset.
pub fn writer(urls: &[String], topology: Topology, maxlen: u64) -> RedisWriter {
    let target = Arc::new(RedisTarget::new(urls, &topology).expect("target"));
    RedisWriter::new(target, KeyLayout::default(), maxlen)
}

/// A writer for the default dataset over `rediss://` with these files.
pub fn tls_writer(urls: &[String], topology: Topology, tls: &TlsFiles) -> RedisWriter {
    let target = Arc::new(RedisTarget::with_tls(urls, &topology, tls).expect("target"));
    RedisWriter::new(target, KeyLayout::default(), 1000)
}

/// Everything in Redis, by uid.
pub async fn redis_contents(writer: &RedisWriter) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    writer
        .scan(|record| {
            let json = serde_json::from_str(&record.json).expect("json");
            out.insert(record.uid, normalized(json));
        })
        .await
        .expect("scan");
    out
}

/// Entity JSON with `parents` sorted (Cedar prints a set in any order).
fn normalized(mut json: Value) -> Value {
    if let Some(parents) = json.get_mut("parents").and_then(Value::as_array_mut) {
        parents.sort_by_key(ToString::to_string);
    }
    json
}

/// Polls `condition` every few ms until it holds; panics after `secs`.
pub async fn eventually(secs: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Parses one entity against the shipped schema.
pub fn entity(value: Value) -> StoredEntity {
    parse_entity(value, &pack().schema).expect("valid entity")
}

/// `User::"<id>"` with the given parents (`(type, id)` pairs).
pub fn user(id: &str, parents: &[(&str, &str)]) -> StoredEntity {
    let parents: Vec<Value> = parents
        .iter()
        .map(|(t, i)| json!({"type": t, "id": i}))
        .collect();
    entity(json!({"uid": {"type": "User", "id": id}, "attrs": {}, "parents": parents}))
}

/// The platform and its admin group: the parents `user` refers to.
pub fn platform() -> Vec<StoredEntity> {
    vec![
        entity(json!({"uid": {"type": "Platform", "id": "thunk"}, "attrs": {}, "parents": []})),
        entity(
            json!({"uid": {"type": "PlatformAdmins", "id": "thunk"}, "attrs": {}, "parents": []}),
        ),
    ]
}

/// Writes entities as one revision.
pub async fn put(writer: &RedisWriter, entities: &[StoredEntity]) -> u64 {
    let writes: Vec<EntityWrite> = entities
        .iter()
        .map(|e| EntityWrite::put(e).expect("encode"))
        .collect();
    writer.write(&writes, None).await.expect("write")
}

/// Deletes `User::"<id>"`s as one revision.
pub async fn delete_users(writer: &RedisWriter, ids: &[&str]) -> u64 {
    let writes: Vec<EntityWrite> = ids
        .iter()
        .map(|id| EntityWrite {
            uid: format!("User::\"{id}\""),
            json: None,
        })
        .collect();
    writer.write(&writes, None).await.expect("delete")
}

/// Waits until the replica has failed to connect at least once, then
/// checks it is not ready and decides nothing; returns its last error.
pub async fn refused(replica: &Sidecar) -> String {
    eventually(10, "a failed connection attempt", || {
        replica.state.freshness.report().last_error.is_some()
    })
    .await;
    let (status, body) = replica.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not_ready");
    let (status, body) = replica.may_create_org("ana", None).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "never decides: {body}"
    );
    assert_eq!(replica.revision(), 0);
    replica.state.freshness.report().last_error.unwrap()
}
