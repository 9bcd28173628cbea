//! The file watcher against the ways files really change: a Kubernetes
//! ConfigMap update (the kubelet's atomic swap of `..data`) repeated, and a
//! policies folder removed and restored.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use cedar_sidecar::engine::{PackSources, PolicyPack};
use cedar_sidecar::entities::{load_entities_file, EntityMap};
use cedar_sidecar::http::{router, AppState};
use cedar_sidecar::publisher::Publisher;
use cedar_sidecar::reload::{watch, Reloader, Watching};
use cedar_sidecar::state::{SharedState, Snapshot};
use cedar_sidecar::telemetry::Metrics;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::support::fixture;

const OWNERS_EDIT: &str = "@id(\"owners-edit\")\npermit (principal, action == Action::\"edit\", resource)\nwhen { resource.owner == principal };";
const PLAN_OWNER: &str = r#""owner": {"type": "User", "id": "alice"}"#;

/// A folder the way the kubelet mounts a ConfigMap: `..<stamp>/` with the
/// files, `..data -> ..<stamp>`, and `name -> ..data/name` per file.
struct Mount {
    dir: PathBuf,
    stamp: Option<String>,
    updates: u32,
}

impl Mount {
    fn new(dir: PathBuf, files: &[(&str, String)]) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut mount = Self {
            dir,
            stamp: None,
            updates: 0,
        };
        mount.update(files);
        mount
    }

    /// The kubelet's atomic update: a new timestamped folder, `..data_tmp`
    /// pointing at it renamed over `..data`, the old folder removed.
    fn update(&mut self, files: &[(&str, String)]) {
        self.updates += 1;
        let stamp = format!("..2026_11_29_{}", self.updates);
        std::fs::create_dir(self.dir.join(&stamp)).unwrap();
        for (name, text) in files {
            std::fs::write(self.dir.join(&stamp).join(name), text).unwrap();
            let link = self.dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
            }
        }
        std::os::unix::fs::symlink(&stamp, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        if let Some(old) = self.stamp.replace(stamp) {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

fn text(rel: &str) -> String {
    std::fs::read_to_string(fixture("engine/basic").join(rel)).unwrap()
}

/// A served pack + entities with a reloader and a running watcher.
struct Served {
    shared: Arc<SharedState>,
    reloader: Arc<Reloader>,
    _watching: Watching,
}

fn serve(sources: PackSources, entities: PathBuf) -> Served {
    let pack = Arc::new(PolicyPack::load(&sources).unwrap_or_else(|p| panic!("{}", p.render())));
    let loaded = load_entities_file(&entities, &pack.schema).unwrap();
    let shared = Arc::new(SharedState::ready(Snapshot {
        pack: pack.clone(),
        entities: EntityMap::from_entities(loaded, 1),
        pack_loaded_at: std::time::SystemTime::now(),
    }));
    let metrics = Arc::new(Metrics::default());
    let freshness = Arc::new(cedar_sidecar::freshness::Freshness::untracked(
        cedar_sidecar::freshness::FreshnessPolicy::default(),
        1,
    ));
    let publisher = Publisher::start(shared.clone(), pack, freshness, metrics.clone());
    let reloader = Arc::new(Reloader::new(sources, Some(entities), publisher, metrics));
    let watching = watch(reloader.clone(), Duration::from_millis(50)).unwrap();
    Served {
        shared,
        reloader,
        _watching: watching,
    }
}

impl Served {
    /// Whether alice may edit `Doc::"plan"` now.
    async fn alice_edits_plan(&self) -> bool {
        let request = Request::post("/v1/is_authorized")
            .body(Body::from(
                r#"{"principal":"User::\"alice\"","action":"Action::\"edit\"","resource":"Doc::\"plan\""}"#,
            ))
            .unwrap();
        let response = router(AppState::new(self.shared.clone()))
            .oneshot(request)
            .await
            .unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        body["decision"] == "Allow"
    }

    fn schema_version(&self) -> String {
        self.shared.snapshot().unwrap().pack.schema_version.clone()
    }

    /// Waits until alice's decision is `allowed`.
    async fn until_alice(&self, what: &str, allowed: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.alice_edits_plan().await != allowed {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {what}; last reload error: {:?}",
                self.reloader.status().last_error
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn until(&self, what: &str, condition: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {what}; last reload error: {:?}",
                self.reloader.status().last_error
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_updates_keep_being_picked_up_for_policies_schema_and_entities() {
    let root = tempfile::tempdir().unwrap();
    let policies = |enabled: bool| {
        let docs = text("policies/docs.cedar");
        let docs = if enabled {
            docs
        } else {
            docs.replacen(OWNERS_EDIT, "// owners may not edit", 1)
        };
        [("docs.cedar", docs)]
    };
    let schema = |edition: u32| {
        [(
            "schema.cedarschema",
            format!("{}// edition {edition}\n", text("schema.cedarschema")),
        )]
    };
    let entities = |owner: &str| {
        let owned = format!(r#""owner": {{"type": "User", "id": "{owner}"}}"#);
        [(
            "entities.json",
            text("entities.json").replacen(PLAN_OWNER, &owned, 1),
        )]
    };
    let mut policy_mount = Mount::new(root.path().join("policies"), &policies(true));
    let mut schema_mount = Mount::new(root.path().join("schema"), &schema(0));
    let mut entity_mount = Mount::new(root.path().join("entities"), &entities("alice"));
    let served = serve(
        PackSources {
            policies: policy_mount.dir.clone(),
            schema: schema_mount.dir.join("schema.cedarschema"),
        },
        entity_mount.dir.join("entities.json"),
    );
    assert!(served.alice_edits_plan().await);

    for round in 0..2 {
        policy_mount.update(&policies(false));
        served.until_alice("policy update applied", false).await;
        policy_mount.update(&policies(true));
        served.until_alice("policy update applied", true).await;

        entity_mount.update(&entities("bob"));
        served.until_alice("entities update applied", false).await;
        entity_mount.update(&entities("alice"));
        served.until_alice("entities update applied", true).await;

        let before = served.schema_version();
        schema_mount.update(&schema(round + 1));
        served
            .until("schema update applied", |s| s.schema_version() != before)
            .await;
    }
    assert!(served.reloader.status().last_error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policies_folder_removed_and_restored_is_watched_again() {
    let root = tempfile::tempdir().unwrap();
    let policies = root.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("docs.cedar"), text("policies/docs.cedar")).unwrap();
    std::fs::write(
        root.path().join("schema.cedarschema"),
        text("schema.cedarschema"),
    )
    .unwrap();
    std::fs::write(root.path().join("entities.json"), text("entities.json")).unwrap();
    let served = serve(
        PackSources {
            policies: policies.clone(),
            schema: root.path().join("schema.cedarschema"),
        },
        root.path().join("entities.json"),
    );
    assert!(served.alice_edits_plan().await);

    std::fs::remove_dir_all(&policies).unwrap();
    served
        .until("the failed reload recorded", |s| {
            s.reloader.status().last_error.is_some()
        })
        .await;
    assert!(
        served.alice_edits_plan().await,
        "the last good set keeps serving"
    );

    // Restored without the grant: picked up through the parent's watch.
    std::fs::create_dir(&policies).unwrap();
    let disabled = text("policies/docs.cedar").replacen(OWNERS_EDIT, "// owners may not edit", 1);
    std::fs::write(policies.join("docs.cedar"), &disabled).unwrap();
    served.until_alice("the restore applied", false).await;

    // An edit inside the restored folder: needs the folder watched again.
    let temp = root.path().join("docs.cedar.tmp");
    std::fs::write(&temp, text("policies/docs.cedar")).unwrap();
    std::fs::rename(&temp, policies.join("docs.cedar")).unwrap();
    served.until_alice("the edit applied", true).await;
}
