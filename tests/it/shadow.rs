//! The shadow: a candidate policy set decides every live decision again,
//! off the request path. Served answers are the same with and without it,
//! and it counts exactly the requests the candidate decides differently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use cedar_sidecar::engine::{PackSources, PolicyPack, RequestEntityPolicy};
use cedar_sidecar::http::{router, AppState};
use cedar_sidecar::shadow::Shadow;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::replay::{
    decide_all, demo_requests, disagreements_expected, policies_without, GRANT_POLICY,
};
use crate::support::{repo, shipped_state};

/// The answers without what differs on every call.
fn stable(answers: &[Value]) -> Vec<Value> {
    answers
        .iter()
        .map(|answer| {
            let mut answer = answer.clone();
            if let Some(fields) = answer.as_object_mut() {
                fields.remove("decision_id");
            }
            answer
        })
        .collect()
}

async fn get(app: &axum::Router, path: &str) -> String {
    let request = Request::builder().uri(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_shadow_counts_disagreements_and_never_changes_an_answer() {
    let requests = demo_requests();
    let candidate = policies_without(GRANT_POLICY);
    let expected = disagreements_expected(candidate.path(), &requests);
    assert!(expected >= 3, "the edit changes too little: {expected}");

    let plain = router(AppState::new(shipped_state()));
    let mut state = AppState::new(shipped_state());
    let shadow = Shadow::start(
        100_000,
        Arc::new(RequestEntityPolicy::default()),
        state.metrics.clone(),
    )
    .unwrap();
    shadow
        .load(candidate.path().to_path_buf(), repo().join("schema"))
        .unwrap();
    state.shadow = Some(Arc::new(shadow));
    let metrics = state.metrics.clone();
    let shadowed = router(state);

    let without = decide_all(&plain, &requests).await;
    let with = decide_all(&shadowed, &requests).await;
    assert_eq!(stable(&with), stable(&without));
    let decided = with.iter().filter(|a| a.get("decision").is_some()).count() as u64;
    assert!(decided > 400);

    let deadline = Instant::now() + Duration::from_secs(120);
    while metrics.shadow_decisions() + metrics.shadow_dropped() < decided {
        assert!(Instant::now() < deadline, "the shadow did not catch up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metrics.shadow_dropped(), 0);
    assert_eq!(metrics.shadow_decisions(), decided);
    assert_eq!(metrics.shadow_disagreements(), expected as u64);

    let status: Value = serde_json::from_str(&get(&shadowed, "/v1/status").await).unwrap();
    assert_eq!(status["shadow"]["decisions"], decided);
    assert_eq!(status["shadow"]["disagreements"], expected as u64);
    assert_eq!(status["shadow"]["dropped"], 0);
    let version = PolicyPack::load(&PackSources {
        policies: candidate.path().to_path_buf(),
        schema: repo().join("schema"),
    })
    .unwrap()
    .version;
    assert_eq!(status["shadow"]["version"], version.as_str());
    let exposition = get(&shadowed, "/metrics").await;
    assert!(
        exposition.contains(&format!("cedar_shadow_disagreements_total {expected}\n")),
        "{exposition}"
    );
    assert!(exposition.contains(&format!("cedar_shadow_decisions_total {decided}\n")));
    // Without a shadow, status says so.
    let status: Value = serde_json::from_str(&get(&plain, "/v1/status").await).unwrap();
    assert_eq!(status["shadow"], Value::Null);
}

#[tokio::test]
async fn a_shadow_that_agrees_counts_no_disagreement() {
    let requests = demo_requests();
    let mut state = AppState::new(shipped_state());
    let shadow = Shadow::start(
        100_000,
        Arc::new(RequestEntityPolicy::default()),
        state.metrics.clone(),
    )
    .unwrap();
    shadow
        .load(repo().join("policies"), repo().join("schema"))
        .unwrap();
    state.shadow = Some(Arc::new(shadow));
    let metrics = state.metrics.clone();
    let answers = decide_all(&router(state), &requests).await;
    let decided = answers
        .iter()
        .filter(|a| a.get("decision").is_some())
        .count() as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while metrics.shadow_decisions() < decided {
        assert!(Instant::now() < deadline, "the shadow did not catch up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metrics.shadow_disagreements(), 0);
}

/// `serve --shadow-policies DIR --watch true`: the shadow reloads when its
/// folder changes, keeps its last good set when an edit is broken, and the
/// served policies never change.
#[test]
fn the_shadow_folder_is_hot_reloaded_and_a_broken_edit_keeps_the_last_good_set() {
    use crate::loopback::Sidecar;
    let folder = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), folder.path().join(entry.file_name())).unwrap();
    }
    let shadow_dir = folder.path().to_str().unwrap().to_string();
    let sidecar = Sidecar::start(&["--watch", "true", "--shadow-policies", &shadow_dir], &[]);
    let status = || sidecar.send("GET", "/v1/status", "", &[]).1;
    let parker = r#"{"principal":"User::\"parker\"","action":"Action::\"UseEnvironment\"","resource":"Environment::\"acme-staging\""}"#;
    let decide = || {
        let (code, body) = sidecar.send("POST", "/v1/is_authorized", parker, &[]);
        assert_eq!(code, 200);
        assert_eq!(body["decision"], "Allow");
    };
    let wait_for = |what: &str, done: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = status();
            if done(&now) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "waited too long for {what}: {now:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let first = status();
    let served = first["policies"]["version"].clone();
    let same = first["shadow"]["version"].clone();
    assert_eq!(same, served, "the same policies have the same version");
    decide();
    wait_for("the first shadow decision", &|s| {
        s["shadow"]["decisions"] == 1
    });
    assert_eq!(status()["shadow"]["disagreements"], 0);

    // The edit: the grant policy removed from the shadow folder only.
    let edited = policies_without(GRANT_POLICY);
    std::fs::copy(
        edited.path().join("environments.cedar"),
        folder.path().join("environments.cedar"),
    )
    .unwrap();
    let reloaded = wait_for("the shadow reload", &|s| s["shadow"]["version"] != same);
    assert_eq!(reloaded["policies"]["version"], served);
    decide();
    let after = wait_for("the second shadow decision", &|s| {
        s["shadow"]["decisions"] == 2
    });
    assert_eq!(after["shadow"]["disagreements"], 1);

    // A broken edit: the last good shadow stays, and says why.
    std::fs::write(folder.path().join("broken.cedar"), "permit (principal,").unwrap();
    let broken = wait_for("the failed shadow reload", &|s| {
        s["shadow"]["last_error"].is_string()
    });
    assert_eq!(broken["shadow"]["version"], reloaded["shadow"]["version"]);
    assert!(broken["shadow"]["last_error"]
        .as_str()
        .unwrap()
        .contains("broken.cedar"));
    assert_eq!(broken["policies"]["version"], served);
    decide();
    let last = wait_for("the third shadow decision", &|s| {
        s["shadow"]["decisions"] == 3
    });
    assert_eq!(last["shadow"]["disagreements"], 2);
}
