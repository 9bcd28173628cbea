//! Searches are bounded and seen like decisions: a search whose request
//! timed out stops deciding candidates (its core goes back to live
//! requests), and searches and plans are counted in `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cedar_sidecar::engine::{PackSources, PolicyPack};
use cedar_sidecar::entities::{parse_entities_json, EntityMap};
use cedar_sidecar::http::{router, AppState};
use cedar_sidecar::state::{SharedState, Snapshot};
use cedar_sidecar::telemetry::{SearchEnd, SearchKind, SnapshotGauges};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

/// A pack whose one permit reads a number, which search cannot narrow:
/// every stored document is a candidate, each decided.
fn documents(count: usize) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/read.cedar"),
        "@id(\"read-leveled\")\npermit (principal, action == Action::\"read\", resource)\nwhen { resource.level > 0 };\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("schema.cedarschema"),
        "entity User;\nentity Doc { level: Long };\naction read appliesTo { principal: User, resource: Doc };\n",
    )
    .unwrap();
    let pack = PolicyPack::load(&PackSources {
        policies: dir.path().join("policies"),
        schema: dir.path().join("schema.cedarschema"),
    })
    .unwrap_or_else(|p| panic!("{}", p.render()));
    let mut values = vec![json!({"uid": {"type": "User", "id": "u"}, "attrs": {}, "parents": []})];
    values.extend((0..count).map(|i| {
        json!({"uid": {"type": "Doc", "id": format!("d{i:06}")},
               "attrs": {"level": i % 3}, "parents": []})
    }));
    let entities = parse_entities_json(values, &pack.schema).unwrap();
    Snapshot {
        pack: Arc::new(pack),
        entities: EntityMap::from_entities(entities, 1),
        pack_loaded_at: SystemTime::now(),
    }
}

const SEARCH: &str = r#"{"principal": {"type": "User", "id": "u"},
    "action": {"type": "Action", "id": "read"}, "resource": {"type": "Doc"}, "page": {"limit": 2}}"#;

async fn post(state: &AppState, path: &str, body: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn metrics_text(state: &AppState) -> String {
    state.metrics.render(&SnapshotGauges {
        policy_version: "v",
        entities: 0,
        revision: 0,
        policies: 0,
        min_entities: 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_whose_request_timed_out_stops() {
    let mut state = AppState::new(Arc::new(SharedState::ready(documents(60_000))));
    state.limits.request_timeout = Duration::from_millis(20);
    let (status, body) = post(&state, "/v1/search", SEARCH).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("\"code\":\"timeout\""), "{body}");
    // The search notices within a few decisions that nobody waits.
    let deadline = Instant::now() + Duration::from_secs(60);
    while state
        .metrics
        .search
        .searches(SearchKind::Resource, SearchEnd::Stopped)
        == 0
    {
        assert!(Instant::now() < deadline, "the search never stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        state
            .metrics
            .search
            .searches(SearchKind::Resource, SearchEnd::Answered),
        0
    );
    assert!(
        metrics_text(&state).contains("cedar_searches_total{kind=\"resource\",end=\"stopped\"} 1"),
        "{}",
        metrics_text(&state)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_and_plans_are_counted() {
    let state = AppState::new(Arc::new(SharedState::ready(documents(30))));
    let (status, body) = post(&state, "/v1/search", SEARCH).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    // Levels 1 and 2 of every three documents.
    assert_eq!(answer["page"]["total"], 20, "{body}");
    // The next pages come from the kept results: no search again.
    let token = answer["page"]["next_token"].as_str().unwrap();
    let next = SEARCH.replace(
        r#""page": {"limit": 2}"#,
        &format!(r#""page": {{"limit": 2, "token": "{token}"}}"#),
    );
    let (status, body) = post(&state, "/v1/search", &next).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""id":"d000004""#), "{body}");
    // The same body is another question to AuthZEN's search: searched.
    let (status, body) = post(&state, "/access/v1/search/resource", r#"{
        "subject": {"type": "User", "id": "u"}, "action": {"name": "read"}, "resource": {"type": "Doc"}}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(
        &state,
        "/v1/plan",
        r#"{"principal": {"type": "User", "id": "u"}, "action": {"type": "Action", "id": "read"},
            "resource_type": "Doc"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"kind\":\"conditional\""), "{body}");
    let text = metrics_text(&state);
    for line in [
        "cedar_searches_total{kind=\"resource\",end=\"answered\"} 2",
        "cedar_searches_total{kind=\"resource\",end=\"stopped\"} 0",
        "cedar_search_results_total 40",
        "cedar_search_duration_seconds_count 2",
        "cedar_plans_total{kind=\"conditional\"} 1",
        "cedar_plans_total{kind=\"always_allow\"} 0",
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
}

/// `principal in resource.editors` over a set: a plan's `one_of` would say
/// the attribute holds one entity (and its SQL `editors IN (...)`), which
/// selects the wrong rows; the plan is refused instead.
#[tokio::test]
async fn a_plan_over_a_set_of_entities_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/edit.cedar"),
        "@id(\"editors-edit\")\npermit (principal, action == Action::\"edit\", resource)\nwhen { principal in resource.editors };\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("schema.cedarschema"),
        "entity User;\nentity Doc { editors: Set<User> };\naction edit appliesTo { principal: User, resource: Doc };\n",
    )
    .unwrap();
    let pack = PolicyPack::load(&PackSources {
        policies: dir.path().join("policies"),
        schema: dir.path().join("schema.cedarschema"),
    })
    .unwrap_or_else(|p| panic!("{}", p.render()));
    let values = vec![
        json!({"uid": {"type": "User", "id": "u"}, "attrs": {}, "parents": []}),
        json!({"uid": {"type": "Doc", "id": "d"}, "attrs": {"editors": [{"__entity": {"type": "User", "id": "u"}}]}, "parents": []}),
    ];
    let entities = parse_entities_json(values, &pack.schema).unwrap();
    let state = AppState::new(Arc::new(SharedState::ready(Snapshot {
        pack: Arc::new(pack),
        entities: EntityMap::from_entities(entities, 1),
        pack_loaded_at: SystemTime::now(),
    })));
    let (status, body) = post(
        &state,
        "/v1/plan",
        r#"{"principal": {"type": "User", "id": "u"}, "action": {"type": "Action", "id": "edit"},
            "resource_type": "Doc"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("\"code\":\"plan_unsupported\""), "{body}");
    assert!(
        metrics_text(&state).contains("cedar_plans_total{kind=\"unsupported\"} 1"),
        "{}",
        metrics_text(&state)
    );
}
