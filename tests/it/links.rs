//! Templates and template links with the file source: listed by
//! `/v1/policies`, named in decisions, reloaded with the entities file, and
//! refused (with their position) when they do not fit the templates; a
//! policy edit that would orphan links is refused too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use cedar_sidecar::engine::{load_links_file, PackSources, PolicyPack};
use cedar_sidecar::entities::{load_entities_file, EntityMap};
use cedar_sidecar::http::{router, AppState};
use cedar_sidecar::publisher::Publisher;
use cedar_sidecar::reload::Reloader;
use cedar_sidecar::state::{SharedState, Snapshot};
use cedar_sidecar::telemetry::Metrics;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::fixture;

/// The `templates` engine fixture, copied so a test can edit it, served
/// with a reloader (no watcher: the test reloads when it wants).
struct Served {
    dir: tempfile::TempDir,
    shared: Arc<SharedState>,
    reloader: Reloader,
}

fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let from = fixture("engine/templates");
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    for name in [
        "schema.cedarschema",
        "entities.json",
        "links.json",
        "policies/grants.cedar",
    ] {
        std::fs::copy(from.join(name), dir.path().join(name)).unwrap();
    }
    let sources = PackSources {
        policies: dir.path().join("policies"),
        schema: dir.path().join("schema.cedarschema"),
    };
    let pack = Arc::new(PolicyPack::load(&sources).unwrap_or_else(|p| panic!("{}", p.render())));
    let entities = load_entities_file(&dir.path().join("entities.json"), &pack.schema).unwrap();
    let links = load_links_file(&dir.path().join("links.json"), &pack).unwrap();
    let shared = Arc::new(SharedState::ready(Snapshot {
        pack: pack.clone(),
        entities: EntityMap::from_entities(entities, 1).with_links(links),
        pack_loaded_at: std::time::SystemTime::now(),
    }));
    let metrics = Arc::new(Metrics::default());
    let freshness = Arc::new(cedar_sidecar::freshness::Freshness::untracked(
        cedar_sidecar::freshness::FreshnessPolicy::default(),
        1,
    ));
    let publisher = Publisher::start(shared.clone(), pack, freshness, metrics.clone());
    let reloader = Reloader::new(
        sources,
        Some(dir.path().join("entities.json")),
        publisher,
        metrics,
    )
    .with_links(Some(dir.path().join("links.json")));
    Served {
        dir,
        shared,
        reloader,
    }
}

impl Served {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn get(&self, uri: &str) -> Value {
        let response = router(AppState::new(self.shared.clone()))
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// `(decision, diagnostics.reason)` for `principal` reading `resource`.
    async fn reads(&self, principal: &str, resource: &str) -> (String, Vec<String>) {
        let body = serde_json::json!({
            "principal": principal, "action": "Action::\"read\"", "resource": resource,
            "context": {"n": 1},
        });
        let response = router(AppState::new(self.shared.clone()))
            .oneshot(
                Request::post("/v1/is_authorized")
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let reasons = body["diagnostics"]["reason"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        (body["decision"].as_str().unwrap().to_string(), reasons)
    }
}

fn write_links(path: &Path, links: Value) {
    std::fs::write(path, serde_json::to_string_pretty(&links).unwrap()).unwrap();
}

#[tokio::test]
async fn policies_lists_templates_with_slots_and_links() {
    let served = serve();
    let body = served.get("/v1/policies").await;
    let readers = body["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "folder-readers")
        .unwrap()
        .clone();
    assert_eq!(readers["is_template"], true);
    assert_eq!(
        readers["slots"],
        serde_json::json!(["?principal", "?resource"])
    );
    let blocked = body["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "blocked-on-bulk")
        .unwrap()
        .clone();
    assert_eq!(blocked["slots"], serde_json::json!(["?principal"]));
    // Links are grants: `/v1/policies` counts them; the list is an admin
    // route (off here: no admin token).
    assert_eq!(body["link_count"], 4);
    assert!(body.get("links").is_none(), "{body}");
    let listed = served.get("/v1/policy-links").await;
    assert_eq!(listed["code"], "admin_disabled", "{listed}");
}

#[tokio::test]
async fn links_reload_with_the_entities_file_and_bad_links_keep_the_last_good_set() {
    let served = serve();
    let ann_reads_pay = || served.reads("User::\"ann\"", "Doc::\"pay\"");
    assert_eq!(ann_reads_pay().await.0, "Deny");

    // A new grant as data: ann may read the hr folder.
    let mut links: Value =
        serde_json::from_str(&std::fs::read_to_string(served.path("links.json")).unwrap()).unwrap();
    links.as_array_mut().unwrap().push(serde_json::json!({
        "template_id": "folder-readers", "link_id": "ann-reads-hr",
        "args": {"?principal": "User::\"ann\"", "?resource": "Folder::\"hr\""},
    }));
    write_links(&served.path("links.json"), links.clone());
    served.reloader.reload_entities().await.unwrap();
    assert_eq!(
        ann_reads_pay().await,
        ("Allow".to_string(), vec!["ann-reads-hr".to_string()])
    );

    // A link to a missing template, and one with the wrong slot type: both
    // refused with their position, nothing of the file is taken.
    let mut bad = links.clone();
    bad.as_array_mut().unwrap().push(serde_json::json!({
        "template_id": "no-such-template", "link_id": "x",
        "args": {"?principal": "User::\"bob\""},
    }));
    bad.as_array_mut().unwrap().push(serde_json::json!({
        "template_id": "doc-writer", "link_id": "y",
        "args": {"?principal": "User::\"bob\"", "?resource": "Folder::\"hr\""},
    }));
    bad.as_array_mut().unwrap()[4] = serde_json::json!({
        "template_id": "folder-readers", "link_id": "ann-reads-hr",
        "args": {"?principal": "User::\"ann\""},
    });
    write_links(&served.path("links.json"), bad);
    let error = served.reloader.reload_entities().await.unwrap_err();
    let shown = served.path("links.json").display().to_string();
    for expected in [
        format!("{shown}:33:3: link `ann-reads-hr`: template `folder-readers` has a `?resource` slot the link does not fill"),
        format!("{shown}:40:3: link `x` names template `no-such-template`, which the policies do not define"),
        format!("{shown}:47:3: link `y`: `?resource` of template `doc-writer` takes `Doc`, not `Folder::\"hr\"`"),
    ] {
        assert!(error.contains(&expected), "missing `{expected}` in:\n{error}");
    }
    assert_eq!(
        ann_reads_pay().await.0,
        "Allow",
        "the last good links serve"
    );
    assert!(served.reloader.status().last_error.is_some());

    // Removing the link takes the grant away.
    links.as_array_mut().unwrap().pop();
    write_links(&served.path("links.json"), links);
    served.reloader.reload_entities().await.unwrap();
    assert_eq!(ann_reads_pay().await.0, "Deny");
}

#[tokio::test]
async fn a_policy_edit_that_orphans_links_is_refused_unless_the_links_follow() {
    let served = serve();
    let policies = served.path("policies/grants.cedar");
    let original = std::fs::read_to_string(&policies).unwrap();
    let renamed = original.replace("@id(\"folder-readers\")", "@id(\"readers\")");
    std::fs::write(&policies, &renamed).unwrap();
    let error = served.reloader.reload_policies().await.unwrap_err();
    assert!(
        error.contains("names template `folder-readers`, which the policies do not define"),
        "{error}"
    );
    assert_eq!(
        served.reads("User::\"ann\"", "Doc::\"api\"").await,
        ("Allow".to_string(), vec!["eng-reads-specs".to_string()])
    );

    // The same rename with the links file edited to match: both are taken.
    let links = std::fs::read_to_string(served.path("links.json"))
        .unwrap()
        .replace("\"folder-readers\"", "\"readers\"");
    std::fs::write(served.path("links.json"), links).unwrap();
    served.reloader.reload_policies().await.unwrap();
    assert_eq!(
        served.reads("User::\"ann\"", "Doc::\"api\"").await,
        ("Allow".to_string(), vec!["eng-reads-specs".to_string()])
    );
    let body = served.get("/v1/policies").await;
    assert!(body["policies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == "readers" && p["is_template"] == true));
}

/// The figure for BENCHMARKS.md / the report: decisions with 100k links
/// that cannot apply vs none (a debug build gives the ratio, not the
/// release numbers). Run with `cargo test --test it links::figure -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn figure_decisions_with_100k_links() {
    use cedar_sidecar::engine::{decide, DecisionRequest, RequestEntityPolicy};
    use cedar_sidecar::entities::{LinkChange, StoredLink};
    use std::time::Instant;

    let base = crate::support::load_fixture(&fixture("engine/templates"));
    let mut many = base.entities.clone();
    let mut links = many.links().clone();
    links.apply((0..100_000).map(|i| {
        LinkChange::Upsert(Arc::new(StoredLink {
            id: Arc::from(format!("grant-{i}")),
            template: Arc::from("folder-readers"),
            principal: Some(format!("User::\"u{i}\"").parse().unwrap()),
            resource: Some(format!("Folder::\"f{}\"", i % 1000).parse().unwrap()),
        }))
    }));
    many = many.with_links(links);
    let request = DecisionRequest {
        principal: r#"User::"ann""#.parse().unwrap(),
        action: r#"Action::"read""#.parse().unwrap(),
        resource: r#"Doc::"api""#.parse().unwrap(),
        context: Some(serde_json::json!({"n": 1})),
        entities: Vec::new(),
    };
    let trust = RequestEntityPolicy::default();
    let mut no_links = base.entities.clone();
    no_links = no_links.with_links(Default::default());
    for (name, store) in [
        ("no links (static policies only)", &no_links),
        ("4 links", &base.entities),
        ("100k links", &many),
    ] {
        let first = decide(&base.pack, store, &request, &trust).unwrap();
        let mut times = Vec::with_capacity(20_000);
        let start = Instant::now();
        for _ in 0..20_000 {
            let t = Instant::now();
            let decision = decide(&base.pack, store, &request, &trust).unwrap();
            times.push(t.elapsed());
            assert_eq!(decision, first);
        }
        let total = start.elapsed();
        times.sort();
        println!(
            "{name}: {:?} {:?}; p50 {:?}, p99 {:?}, {:.0} decisions/s",
            first.verdict,
            first.reasons,
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            times.len() as f64 / total.as_secs_f64()
        );
    }
}
