//! Operating the sidecar: metrics, request ids, decision logs, hot reload,
//! configuration and graceful shutdown.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cedar_sidecar::engine::{PackSources, PolicyPack};
use cedar_sidecar::http::{router, AdminToken, AppState};
use cedar_sidecar::publisher::Publisher;
use cedar_sidecar::reload::{watch, Reloader};
use cedar_sidecar::state::{SharedState, Snapshot};
use cedar_sidecar::telemetry::{
    DecisionLog, DecisionLogConfig, DecisionLogFilter, DecisionLogSink, Metrics,
};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::{repo, shipped_state};

const PAULA_USES_PROD: &str = r#"{"principal":"User::\"paula\"","action":"Action::\"UseEnvironment\"","resource":"Environment::\"acme-prod\"","context":{}}"#;
const PETE_USES_PROD: &str = r#"{"principal":"User::\"pete\"","action":"Action::\"UseEnvironment\"","resource":"Environment::\"acme-prod\""}"#;

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(builder.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Parses Prometheus text; every sample line must be `name{labels} number`.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {line}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
            assert!(
                series
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_'),
                "bad name in {line}"
            );
            if let Some(labels) = series.split_once('{').map(|(_, l)| l) {
                assert!(labels.ends_with('}'), "bad labels in {line}");
            }
            (series.to_string(), value)
        })
        .collect()
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no series {series}"))
}

#[tokio::test]
async fn metrics_parse_and_move_with_decisions() {
    let app = router(AppState::new(shipped_state()));
    let (_, _, before) = call(&app, "GET", "/metrics", "", &[]).await;
    let before = parse_metrics(&before);
    assert_eq!(
        sample(
            &before,
            r#"cedar_decisions_total{decision="Allow",endpoint="is_authorized"}"#
        ),
        0.0
    );
    call(&app, "POST", "/v1/is_authorized", PAULA_USES_PROD, &[]).await;
    call(&app, "POST", "/v1/is_authorized", PETE_USES_PROD, &[]).await;
    let batch = format!(r#"{{"requests":[{PAULA_USES_PROD},{PETE_USES_PROD},{PETE_USES_PROD}]}}"#);
    call(&app, "POST", "/v1/is_authorized/batch", &batch, &[]).await;
    call(&app, "POST", "/v1/is_authorized", "{oops", &[]).await;
    let (status, headers, text) = call(&app, "GET", "/metrics", "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let after = parse_metrics(&text);
    assert_eq!(
        sample(
            &after,
            r#"cedar_decisions_total{decision="Allow",endpoint="is_authorized"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"cedar_decisions_total{decision="Deny",endpoint="is_authorized"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"cedar_decisions_total{decision="Deny",endpoint="batch"}"#
        ),
        2.0
    );
    assert_eq!(sample(&after, "cedar_decision_duration_seconds_count"), 5.0);
    assert_eq!(
        sample(
            &after,
            r#"cedar_decision_duration_seconds_bucket{le="+Inf"}"#
        ),
        5.0
    );
    assert_eq!(
        sample(
            &after,
            r#"cedar_http_requests_total{route="/v1/is_authorized",status="200"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &after,
            r#"cedar_http_requests_total{route="/v1/is_authorized",status="400"}"#
        ),
        1.0
    );
    assert!(sample(&after, "cedar_entities") > 40.0);
    assert_eq!(sample(&after, "cedar_entity_revision"), 1.0);
    assert!(text.contains("cedar_policy_info{version=\"sha256:"));
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = router(AppState::new(shipped_state()));
    let (_, headers, _) = call(
        &app,
        "POST",
        "/v1/is_authorized",
        PAULA_USES_PROD,
        &[("x-request-id", "abc-123")],
    )
    .await;
    assert_eq!(headers["x-request-id"], "abc-123");
    let (_, headers, body) = call(&app, "POST", "/v1/is_authorized", PAULA_USES_PROD, &[]).await;
    let generated = headers["x-request-id"].to_str().unwrap();
    uuid::Uuid::parse_str(generated).unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["policy_version"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(
        headers["x-cedar-policy-version"],
        body["policy_version"].as_str().unwrap()
    );
}

/// Collects written lines; can be held shut to simulate a stalled disk.
#[derive(Clone, Default)]
struct Capture {
    lines: Arc<Mutex<Vec<u8>>>,
    gate: Arc<Mutex<()>>,
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _open = self.gate.lock().unwrap();
        self.lines.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn records(&self) -> Vec<Value> {
        let bytes = self.lines.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn logged_app(
    config: DecisionLogConfig,
    capture: &Capture,
) -> (axum::Router, Arc<DecisionLog>, Arc<Metrics>) {
    let mut state = AppState::new(shipped_state());
    let log = Arc::new(
        DecisionLog::start_with_writer(config, state.metrics.clone(), Box::new(capture.clone()))
            .unwrap(),
    );
    state.decision_log = log.clone();
    let metrics = state.metrics.clone();
    (router(state), log, metrics)
}

fn log_config() -> DecisionLogConfig {
    DecisionLogConfig {
        sink: DecisionLogSink::Stdout,
        ..DecisionLogConfig::default()
    }
}

#[tokio::test]
async fn decision_log_records_allow_deny_and_errors() {
    let capture = Capture::default();
    let config = DecisionLogConfig {
        mask_keys: vec!["newOwner".into()],
        ..log_config()
    };
    let (app, log, _) = logged_app(config, &capture);
    let (_, headers, allow) = call(
        &app,
        "POST",
        "/v1/is_authorized",
        PAULA_USES_PROD,
        &[("x-request-id", "req-1")],
    )
    .await;
    call(&app, "POST", "/v1/is_authorized", PETE_USES_PROD, &[]).await;
    let unknown = r#"{"principal":"User::\"ghost\"","action":"Action::\"UseEnvironment\"","resource":"Environment::\"acme-prod\""}"#;
    call(&app, "POST", "/v1/is_authorized", unknown, &[]).await;
    let transfer = r#"{"principal":"User::\"ana\"","action":"Action::\"TransferOrgOwnership\"","resource":"Org::\"acme\"","context":{"newOwner":"User::\"adam\""}}"#;
    let transfer = transfer.replace(r#""User::\"adam\"""#, r#"{"type":"User","id":"adam"}"#);
    call(&app, "POST", "/v1/is_authorized", &transfer, &[]).await;
    log.shutdown();
    let records = capture.records();
    assert_eq!(records.len(), 4, "{records:?}");
    let allow: Value = serde_json::from_str(&allow).unwrap();
    let first = &records[0];
    assert_eq!(first["decision_id"], allow["decision_id"]);
    assert_eq!(first["request_id"], "req-1");
    assert_eq!(headers["x-request-id"], "req-1");
    assert_eq!(first["principal"], r#"User::"paula""#);
    assert_eq!(first["action"], r#"Action::"UseEnvironment""#);
    assert_eq!(first["resource"], r#"Environment::"acme-prod""#);
    assert_eq!(first["decision"], "Allow");
    assert_eq!(first["reasons"], allow["diagnostics"]["reason"]);
    assert!(!first["reasons"].as_array().unwrap().is_empty());
    assert_eq!(first["endpoint"], "is_authorized");
    assert_eq!(first["entity_revision"], 1);
    assert_eq!(first["policy_version"], allow["policy_version"]);
    assert!(first["latency_us"].as_u64().is_some());
    let timestamp = first["timestamp"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(timestamp).unwrap();
    assert_eq!(
        timestamp.split('.').nth(1).unwrap().len(),
        7,
        "microseconds + Z: {timestamp}"
    );
    assert_eq!(records[1]["decision"], "Deny");
    assert_eq!(records[2]["decision"], "Deny");
    assert!(records[2]["errors"][0].as_str().unwrap().contains("ghost"));
    assert_eq!(records[3]["context"]["newOwner"], "[masked]");
    assert!(!records[3].to_string().contains("adam"));
}

#[tokio::test]
async fn decision_log_deny_only_and_sampling() {
    let capture = Capture::default();
    let config = DecisionLogConfig {
        filter: DecisionLogFilter::DenyOnly,
        ..log_config()
    };
    let (app, log, _) = logged_app(config, &capture);
    for _ in 0..3 {
        call(&app, "POST", "/v1/is_authorized", PAULA_USES_PROD, &[]).await;
        call(&app, "POST", "/v1/is_authorized", PETE_USES_PROD, &[]).await;
    }
    log.shutdown();
    let records = capture.records();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r["decision"] == "Deny"));

    let capture = Capture::default();
    let config = DecisionLogConfig {
        sample_allows: 4,
        ..log_config()
    };
    let (app, log, _) = logged_app(config, &capture);
    for _ in 0..8 {
        call(&app, "POST", "/v1/is_authorized", PAULA_USES_PROD, &[]).await;
    }
    call(&app, "POST", "/v1/is_authorized", PETE_USES_PROD, &[]).await;
    log.shutdown();
    let records = capture.records();
    let allows = records.iter().filter(|r| r["decision"] == "Allow").count();
    let denies = records.iter().filter(|r| r["decision"] == "Deny").count();
    assert_eq!((allows, denies), (2, 1));
}

// The gate stalls the writer *thread*; holding it across awaits is the point.
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn a_stalled_decision_log_drops_and_counts_but_never_blocks() {
    let capture = Capture::default();
    let config = DecisionLogConfig {
        buffer: 4,
        ..log_config()
    };
    let (app, log, metrics) = logged_app(config, &capture);
    let stall = capture.gate.lock().unwrap();
    let started = Instant::now();
    for _ in 0..50 {
        let (status, _, _) = call(&app, "POST", "/v1/is_authorized", PAULA_USES_PROD, &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "decisions waited on the log"
    );
    // The writer holds what it took before it stalled, the channel 4 more.
    let drops = metrics.decision_log_drops();
    assert!(drops >= 25, "dropped {drops}");
    let (_, _, text) = call(&app, "GET", "/metrics", "", &[]).await;
    assert_eq!(
        sample(
            &parse_metrics(&text),
            r#"cedar_decision_log_dropped_total{cause="buffer_full"}"#
        ),
        drops as f64
    );
    drop(stall);
    log.shutdown();
    assert_eq!(metrics.decision_log_drops(), drops, "all for a full buffer");
    assert_eq!(capture.records().len() as u64, 50 - drops);
    assert_eq!(metrics.decision_log_written(), 50 - drops);
}

#[test]
fn decision_log_file_rotates_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    let config = DecisionLogConfig {
        sink: DecisionLogSink::File(path.clone()),
        max_file_bytes: 600,
        max_files: 2,
        ..DecisionLogConfig::default()
    };
    let metrics = Arc::new(Metrics::default());
    let log = DecisionLog::start(config, metrics).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut state = AppState::new(shipped_state());
    let log = Arc::new(log);
    state.decision_log = log.clone();
    let app = router(state);
    runtime.block_on(async {
        for _ in 0..12 {
            call(&app, "POST", "/v1/is_authorized", PAULA_USES_PROD, &[]).await;
        }
    });
    log.shutdown();
    let current = std::fs::read_to_string(&path).unwrap();
    let first = std::fs::read_to_string(dir.path().join("decisions.log.1")).unwrap();
    assert!(dir.path().join("decisions.log.2").exists());
    assert!(
        !dir.path().join("decisions.log.3").exists(),
        "keeps only 2 rotated files"
    );
    for text in [&current, &first] {
        assert!(text.len() <= 600 || text.lines().count() == 1);
        for line in text.lines() {
            serde_json::from_str::<Value>(line).unwrap();
        }
    }
}

/// A writable copy of the `basic` engine fixture (a pack of its own, so
/// these tests do not depend on the shipped policies' text).
struct PackDir {
    dir: tempfile::TempDir,
}

impl PackDir {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&crate::support::fixture("engine/basic"), dir.path());
        Self { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn sources(&self) -> PackSources {
        PackSources {
            policies: self.path("policies"),
            schema: self.path("schema.cedarschema"),
        }
    }
    /// Writes atomically (temp file + rename), as careful editors do.
    fn write(&self, rel: &str, text: &str) {
        let target = self.path(rel);
        let temp = target.with_extension("tmp~");
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, &target).unwrap();
    }
    fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.path(rel)).unwrap();
        assert!(text.contains(from), "{from} not in {rel}");
        self.write(rel, &text.replacen(from, to, 1));
    }
    fn snapshot(&self) -> Snapshot {
        let pack = PolicyPack::load(&self.sources()).unwrap_or_else(|p| panic!("{}", p.render()));
        let entities =
            cedar_sidecar::entities::load_entities_file(&self.path("entities.json"), &pack.schema)
                .unwrap();
        Snapshot {
            pack: Arc::new(pack),
            entities: cedar_sidecar::entities::EntityMap::from_entities(entities, 1),
            pack_loaded_at: std::time::SystemTime::now(),
        }
    }
    fn app(&self, token: Option<&str>) -> (axum::Router, Arc<Reloader>, Arc<Metrics>) {
        let snapshot = self.snapshot();
        let pack = snapshot.pack.clone();
        let shared = Arc::new(SharedState::ready(snapshot));
        let mut state = AppState::new(shared.clone());
        let publisher =
            Publisher::start(shared, pack, state.freshness.clone(), state.metrics.clone());
        let reloader = Arc::new(Reloader::new(
            self.sources(),
            Some(self.path("entities.json")),
            publisher,
            state.metrics.clone(),
        ));
        state.reloader = Some(reloader.clone());
        state.admin_token = token.map(|t| Arc::new(AdminToken::new(t.to_string())));
        let metrics = state.metrics.clone();
        (router(state), reloader, metrics)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

async fn decision(app: &axum::Router, body: &str) -> String {
    let (status, _, text) = call(app, "POST", "/v1/is_authorized", body, &[]).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["decision"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Alice owns `Doc::"plan"`; the `owners-edit` policy lets her edit it.
const ALICE_EDITS_PLAN: &str =
    r#"{"principal":"User::\"alice\"","action":"Action::\"edit\"","resource":"Doc::\"plan\""}"#;
const OWNERS_EDIT: &str = "@id(\"owners-edit\")\npermit (principal, action == Action::\"edit\", resource)\nwhen { resource.owner == principal };";

#[tokio::test]
async fn reload_applies_valid_edits_and_keeps_the_last_good_set_on_errors() {
    let pack = PackDir::new();
    let (app, reloader, metrics) = pack.app(None);
    assert_eq!(decision(&app, ALICE_EDITS_PLAN).await, "Allow");

    // A valid edit: the grant rule is gone.
    pack.edit("policies/docs.cedar", OWNERS_EDIT, "// owners may not edit");
    reloader.reload_policies().await.unwrap();
    assert_eq!(decision(&app, ALICE_EDITS_PLAN).await, "Deny");

    // An invalid edit: refused, old decisions stay, the error is visible.
    pack.write(
        "policies/broken.cedar",
        "permit (principal, action, resource)\nwhen { principal.nme == \"x\" };\n",
    );
    let error = reloader.reload_policies().await.unwrap_err();
    assert!(error.contains("broken.cedar:2:8"), "{error}");
    assert_eq!(decision(&app, ALICE_EDITS_PLAN).await, "Deny");
    let (_, _, status) = call(&app, "GET", "/v1/status", "", &[]).await;
    let status: Value = serde_json::from_str(&status).unwrap();
    assert!(status["last_reload"]["last_error"]
        .as_str()
        .unwrap()
        .contains("broken.cedar:2:8"));
    let (_, _, text) = call(&app, "GET", "/metrics", "", &[]).await;
    let samples = parse_metrics(&text);
    assert_eq!(
        sample(&samples, r#"cedar_policy_reloads_total{result="failed"}"#),
        1.0
    );
    assert_eq!(
        sample(&samples, r#"cedar_policy_reloads_total{result="ok"}"#),
        1.0
    );
    assert_eq!(metrics.decision_log_drops(), 0);

    // Fixing the file recovers without a restart.
    std::fs::remove_file(pack.path("policies/broken.cedar")).unwrap();
    pack.edit("policies/docs.cedar", "// owners may not edit", OWNERS_EDIT);
    reloader.reload_policies().await.unwrap();
    assert_eq!(decision(&app, ALICE_EDITS_PLAN).await, "Allow");
    let (_, _, status) = call(&app, "GET", "/v1/status", "", &[]).await;
    let status: Value = serde_json::from_str(&status).unwrap();
    assert!(status["last_reload"]["last_error"].is_null());
    assert_eq!(status["policies"]["policies"], 4);
    assert_eq!(status["entities"]["revision"], 1);
    assert_eq!(status["sync"]["tracked"], false);
    assert!(status["uptime_seconds"].is_u64() && status["build_version"].is_string());
}

#[tokio::test]
async fn a_schema_that_rejects_stored_entities_is_refused_naming_them() {
    let pack = PackDir::new();
    let (app, reloader, _) = pack.app(None);
    let before = call(&app, "GET", "/v1/policies", "", &[]).await.2;
    pack.edit(
        "schema.cedarschema",
        "public: Bool",
        "public: Bool, title: String",
    );
    let error = reloader.reload_policies().await.unwrap_err();
    assert!(error.contains("Doc::\"plan\""), "{error}");
    assert!(error.contains("title"), "{error}");
    assert_eq!(call(&app, "GET", "/v1/policies", "", &[]).await.2, before);
}

#[tokio::test]
async fn the_entities_file_reloads_too() {
    let pack = PackDir::new();
    let (app, reloader, _) = pack.app(None);
    assert_eq!(decision(&app, ALICE_EDITS_PLAN).await, "Allow");
    // Bob becomes the plan's owner.
    pack.edit(
        "entities.json",
        r#""attrs": {"owner": {"type": "User", "id": "alice"}, "public": false}"#,
        r#""attrs": {"owner": {"type": "User", "id": "bob"}, "public": false}"#,
    );
    reloader.reload_entities().await.unwrap();
    assert_eq!(decision(&app, ALICE_EDITS_PLAN).await, "Deny");
    let (_, headers, _) = call(&app, "POST", "/v1/is_authorized", ALICE_EDITS_PLAN, &[]).await;
    assert_eq!(headers["x-cedar-revision"], "2");
}

#[tokio::test]
async fn admin_reload_needs_the_token() {
    let pack = PackDir::new();
    let (app, _, _) = pack.app(Some("s3cret"));
    let (status, _, body) = call(&app, "POST", "/v1/admin/reload", "", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("\"code\":\"unauthorized\""));
    let (status, _, _) = call(
        &app,
        "POST",
        "/v1/admin/reload",
        "",
        &[("authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    pack.edit("policies/docs.cedar", OWNERS_EDIT, "// owners may not edit");
    let (status, _, body) = call(
        &app,
        "POST",
        "/v1/admin/reload",
        "",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(decision(&app, ALICE_EDITS_PLAN).await, "Deny");
    pack.write("policies/bad.cedar", "permit (");
    let (status, _, body) = call(
        &app,
        "POST",
        "/v1/admin/reload",
        "",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("reload_failed") && body.contains("bad.cedar:1:"),
        "{body}"
    );

    let (app, _, _) = PackDir::new().app(None);
    let (status, _, body) = call(
        &app,
        "POST",
        "/v1/admin/reload",
        "",
        &[("authorization", "Bearer x")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("admin_disabled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_edits_are_picked_up_by_the_watcher() {
    let pack = PackDir::new();
    let (app, reloader, _) = pack.app(None);
    let _watcher = watch(reloader, Duration::from_millis(50)).unwrap();
    assert_eq!(decision(&app, ALICE_EDITS_PLAN).await, "Allow");
    pack.edit("policies/docs.cedar", OWNERS_EDIT, "// owners may not edit");
    let deadline = Instant::now() + Duration::from_secs(10);
    while decision(&app, ALICE_EDITS_PLAN).await != "Deny" {
        assert!(Instant::now() < deadline, "edit not picked up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_storm_under_load_never_fails_a_request_or_mixes_sets() {
    let pack = PackDir::new();
    let original = std::fs::read_to_string(pack.path("policies/docs.cedar")).unwrap();
    let disabled = original.replacen(OWNERS_EDIT, "// owners may not edit", 1);
    // The version each on-disk state produces, and the decision it implies.
    let version_of = |text: &str| {
        let probe = PackDir::new();
        probe.write("policies/docs.cedar", text);
        PolicyPack::load(&probe.sources()).unwrap().version
    };
    let allow_version = version_of(&original);
    let deny_version = version_of(&disabled);
    let (app, reloader, _) = pack.app(None);
    let _watcher = watch(reloader, Duration::from_millis(5)).unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let editor = {
        let stop = stop.clone();
        let path = pack.path("policies/docs.cedar");
        std::thread::spawn(move || {
            let mut flip = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = if flip { &original } else { &disabled };
                let temp = path.with_extension("tmp~");
                std::fs::write(&temp, text).unwrap();
                std::fs::rename(&temp, &path).unwrap();
                flip = !flip;
                std::thread::sleep(Duration::from_millis(7));
            }
        })
    };
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut count = 0;
    while Instant::now() < deadline {
        let (status, headers, text) =
            call(&app, "POST", "/v1/is_authorized", ALICE_EDITS_PLAN, &[]).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        let version = headers["x-cedar-policy-version"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(body["policy_version"], version.as_str());
        let expected = if version == allow_version {
            "Allow"
        } else {
            assert_eq!(version, deny_version, "a version no file state produces");
            "Deny"
        };
        assert_eq!(
            body["decision"], expected,
            "decision does not match its policy set"
        );
        seen.insert(version);
        count += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    editor.join().unwrap();
    assert!(count > 50, "only {count} requests");
    assert_eq!(seen.len(), 2, "the storm never switched sets");
}

fn sidecar() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
}

#[test]
fn print_config_shows_precedence_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sidecar.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9001\"\nmax_batch = 7\nmax_body_bytes = 2048\nidle_timeout_ms = 30000\n[decision_log]\nsink = \"stdout\"\nmask = [\"password\"]\n[redis]\nurl = [\"redis://app:hunter2@10.1.2.3:6379\"]\nprefix = \"authz\"\nstale_after_ms = 5000\n",
    )
    .unwrap();
    let output = sidecar()
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .args(["--max-batch", "9"])
        .env("CEDAR_SIDECAR_MAX_BATCH", "8")
        .env("CEDAR_SIDECAR_MAX_BODY_BYTES", "4096")
        .env("CEDAR_SIDECAR_ADMIN_TOKEN", "very-secret")
        .env("CEDAR_SIDECAR_REDIS_PARTITION", "p7")
        .env("CEDAR_SIDECAR_PROBE_LISTEN", "0.0.0.0:8181")
        .args(["--shutdown-delay-ms", "3000"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("max_batch = 9"), "flag beats env: {text}");
    assert!(
        text.contains("max_body_bytes = 4096"),
        "env beats file: {text}"
    );
    assert!(
        text.contains("listen = \"127.0.0.1:9001\""),
        "file beats default: {text}"
    );
    assert!(text.contains("max_concurrency = 1024"), "default: {text}");
    for line in [
        "probe_listen = \"0.0.0.0:8181\"",
        "idle_timeout_ms = 30000",
        "shutdown_delay_ms = 3000",
        "header_read_timeout_ms = 5000",
        "body_read_timeout_ms = 1000",
        "max_connections = 4096",
        "max_header_bytes = 16384",
        "shutdown_timeout_ms = 10000",
        "partition = \"p7\"",
        "prefix = \"authz\"",
        "stale_after_ms = 5000",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    assert!(text.contains("password"), "{text}");
    // Secrets are left out: the token, and the password in the URL.
    assert!(
        !text.contains("very-secret") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(text.contains("redis://app@10.1.2.3:6379"), "{text}");
}

#[test]
fn invalid_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("max_batch = \"lots\"\n", "max_batch"),
        ("unknown_key = 1\n", "unknown_key"),
        (
            "[decision_log]\nsample_allows = 0\n",
            "decision_log.sample_allows",
        ),
        ("header_read_timeout_ms = 0\n", "header_read_timeout_ms"),
        ("idle_timeout_ms = 0\n", "idle_timeout_ms"),
        ("body_read_timeout_ms = 0\n", "body_read_timeout_ms"),
        ("max_connections = 0\n", "max_connections"),
        ("max_header_bytes = 0\n", "max_header_bytes"),
        ("shutdown_delay_ms = 10000\n", "shutdown_delay_ms"),
        (
            "listen = \"127.0.0.1:9000\"\nprobe_listen = \"127.0.0.1:9000\"\n",
            "probe_listen",
        ),
    ];
    for (text, key) in cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let output = sidecar()
            .args(["serve", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(key), "{text}: {stderr}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_post(port: u16, path: &str, body: &str) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream
}

fn read_response(mut stream: std::net::TcpStream) -> String {
    use std::io::Read;
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn sigterm_finishes_in_flight_requests_and_flushes_the_decision_log() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("decisions.log");
    let port = free_port();
    let mut child = sidecar()
        .args(["serve", "--watch", "false", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--decision-log")
        .arg(&log_path)
        .current_dir(repo())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let batch = format!(
        "{{\"requests\":[{}]}}",
        vec![PAULA_USES_PROD; 100].join(",")
    );
    let streams: Vec<_> = (0..8)
        .map(|_| http_post(port, "/v1/is_authorized/batch", &batch))
        .collect();
    let probe = |path: &str| {
        sidecar()
            .args([
                "probe",
                "--address",
                &format!("127.0.0.1:{port}"),
                "--path",
                path,
            ])
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(probe("/readyz"), Some(0));
    assert_eq!(probe("/no-such-path"), Some(1));
    std::thread::sleep(Duration::from_millis(50));
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    for stream in streams {
        let response = read_response(stream);
        assert!(response.starts_with("HTTP/1.1 200"), "{response:.200}");
        assert_eq!(response.matches("\"Allow\"").count(), 100);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        log.lines().count(),
        800,
        "every answered decision is in the flushed log"
    );
}

#[cfg(unix)]
#[test]
fn a_configmap_mount_loads_each_policy_once() {
    // Kubernetes mounts a ConfigMap as symlinks into a hidden, timestamped folder.
    let dir = tempfile::tempdir().unwrap();
    let versioned = dir.path().join("..2026_11_26_01_00_00.1");
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(
        versioned.join("a.cedar"),
        "@id(\"only\")\npermit (principal, action, resource);\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_26_01_00_00.1", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/a.cedar", dir.path().join("a.cedar")).unwrap();
    let (files, problems) = cedar_sidecar::engine::load_policy_dir(dir.path());
    assert!(problems.is_empty(), "{}", problems.render());
    assert_eq!(files.policy_count(), 1);
}

/// A request body that sends a little, then never finishes.
fn stalled_request() -> Request<Body> {
    let first = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{\"principal\":"))
    });
    let stream = futures_util::StreamExt::chain(first, futures_util::stream::pending());
    Request::builder()
        .method("POST")
        .uri("/v1/is_authorized")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// A decision that waits for an entity revision that never comes: it holds
/// its concurrency slot for the whole consistency wait.
fn waiting_request() -> Request<Body> {
    let body = PAULA_USES_PROD.replacen('{', r#"{"consistency":{"at_least":99},"#, 1);
    Request::builder()
        .method("POST")
        .uri("/v1/is_authorized")
        .body(Body::from(body))
        .unwrap()
}

/// The shipped state, where a consistency wait lasts `wait`.
fn state_with_wait(wait: Duration) -> AppState {
    let mut state = AppState::new(shipped_state());
    let policy = cedar_sidecar::freshness::FreshnessPolicy {
        max_wait: wait,
        ..Default::default()
    };
    state.freshness = Arc::new(cedar_sidecar::freshness::Freshness::untracked(policy, 1));
    state
}

fn render(metrics: &Arc<Metrics>) -> String {
    metrics.render(&cedar_sidecar::telemetry::SnapshotGauges {
        policy_version: "v",
        entities: 0,
        revision: 0,
        policies: 0,
        min_entities: 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_and_timeouts_answer_503_with_json() {
    let mut state = state_with_wait(Duration::from_secs(30));
    state.limits.max_concurrency = 1;
    state.limits.request_timeout = Duration::from_millis(400);
    let metrics = state.metrics.clone();
    let app = router(state);
    let mut slow = tokio::spawn(app.clone().oneshot(waiting_request()));
    // Once the waiting request holds the only slot, others are shed, not
    // queued. Until then a check may take the slot first and be answered,
    // and the waiting request be the one shed: then it is sent again.
    let (mut early_answers, mut shed_waiting) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = call(&app, "POST", "/v1/is_authorized", PAULA_USES_PROD, &[]).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(body.contains("\"code\":\"overloaded\""), "{body}");
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        early_answers += 1;
        if slow.is_finished() {
            let response = slow.await.unwrap().unwrap();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            shed_waiting += 1;
            slow = tokio::spawn(app.clone().oneshot(waiting_request()));
        }
        assert!(Instant::now() < deadline, "the slot was never taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The probes are outside the guard: never shed.
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let (status, _, body) = call(&app, "GET", probe, "", &[]).await;
        assert_eq!(status, StatusCode::OK, "{probe}: {body}");
    }
    let response = slow.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\"code\":\"timeout\""));
    // The slot is free again.
    assert_eq!(decision(&app, PAULA_USES_PROD).await, "Allow");
    let text = render(&metrics);
    let shed = format!(
        r#"cedar_http_requests_total{{route="unmatched",status="503"}} {}"#,
        2 + shed_waiting
    );
    assert!(text.contains(&shed), "{text}");
    let decided = format!(
        r#"cedar_http_requests_total{{route="/v1/is_authorized",status="200"}} {}"#,
        1 + early_answers
    );
    assert!(text.contains(&decided), "{text}");
    assert!(
        text.contains(r#"cedar_http_requests_total{route="/healthz",status="200"} 1"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_answers_408_and_holds_no_slot() {
    let mut state = AppState::new(shipped_state());
    state.limits.max_concurrency = 1;
    state.limits.body_read_timeout = Duration::from_millis(300);
    let app = router(state);
    let slow = tokio::spawn(app.clone().oneshot(stalled_request()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The slow body is being read outside the guard: the slot is free.
    assert_eq!(decision(&app, PAULA_USES_PROD).await, "Allow");
    let response = slow.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "body_timeout", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("300 ms"),
        "{body}"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_whether_declared_or_streamed() {
    let mut state = AppState::new(shipped_state());
    state.limits.max_body_bytes = 64;
    let app = router(state);
    let (status, _, body) = call(&app, "POST", "/v1/is_authorized", PAULA_USES_PROD, &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body.contains("\"code\":\"payload_too_large\""), "{body}");
    // No declared length: counted as it arrives.
    let chunks = PAULA_USES_PROD
        .as_bytes()
        .chunks(10)
        .map(|c| Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(c)))
        .collect::<Vec<_>>();
    let request = Request::builder()
        .method("POST")
        .uri("/v1/is_authorized")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_being_read_share_a_bounded_budget() {
    let mut state = AppState::new(shipped_state());
    // Bodies being read share 2 x 200 bytes.
    state.limits.max_concurrency = 2;
    state.limits.max_body_bytes = 200;
    state.limits.body_read_timeout = Duration::from_secs(30);
    let app = router(state);
    let partial = |n: usize| {
        let first = futures_util::stream::once(async move {
            Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; n]))
        });
        let stream = futures_util::StreamExt::chain(first, futures_util::stream::pending());
        Request::builder()
            .method("POST")
            .uri("/v1/is_authorized")
            .body(Body::from_stream(stream))
            .unwrap()
    };
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(app.clone().oneshot(partial(190))))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // 380 of 400 bytes are held by bodies still arriving: refused.
    let (status, _, body) = call(&app, "POST", "/v1/is_authorized", PAULA_USES_PROD, &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("\"code\":\"overloaded\""), "{body}");
    // Their clients give up: the budget is returned.
    for task in held {
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    }
    assert_eq!(decision(&app, PAULA_USES_PROD).await, "Allow");
}
