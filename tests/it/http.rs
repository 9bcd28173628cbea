//! The HTTP API through the router, without a socket.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cedar_sidecar::http::{router, AppState, HttpLimits};
use cedar_sidecar::state::SharedState;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::shipped_state;

fn app() -> axum::Router {
    let mut state = AppState::new(shipped_state());
    state.limits = HttpLimits {
        max_body_bytes: 4096,
        max_batch: 3,
        ..HttpLimits::default()
    };
    router(state)
}

async fn send(
    app: axum::Router,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, value, headers)
}

async fn authorize(body: Value) -> (StatusCode, Value) {
    let (status, value, _) = send(app(), "POST", "/v1/is_authorized", &body.to_string()).await;
    (status, value)
}

#[tokio::test]
async fn allow_with_typed_uids() {
    let (status, body) = authorize(json!({
        "principal": {"type": "User", "id": "paula"},
        "action": {"type": "Action", "id": "UseModel"},
        "resource": {"type": "Model", "id": "acme-prod-gpt4o"}
    }))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["decision"], "Allow", "{body}");
    assert!(!body["diagnostics"]["reason"].as_array().unwrap().is_empty());
    assert_eq!(body["revision"], 1);
    uuid::Uuid::parse_str(body["decision_id"].as_str().unwrap()).unwrap();
}

#[tokio::test]
async fn deny_is_a_200_with_string_uids() {
    let (status, body) = authorize(json!({
        "principal": "User::\"pete\"",
        "action": "Action::\"UseModel\"",
        "resource": "Model::\"acme-prod-gpt4o\""
    }))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["decision"], "Deny");
    assert_eq!(body["diagnostics"]["reason"], json!([]));
}

#[tokio::test]
async fn unknown_principal_is_denied_with_an_explanation() {
    let (status, body) = authorize(json!({
        "principal": "User::\"nobody\"",
        "action": "Action::\"UseEnvironment\"",
        "resource": "Environment::\"acme-prod\""
    }))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["decision"], "Deny");
    let errors = body["diagnostics"]["errors"].to_string();
    assert!(errors.contains("nobody"), "{errors}");
}

#[tokio::test]
async fn context_is_checked_against_the_schema() {
    // Wrong kind, missing field, undeclared field, an entity of the wrong
    // type (built without Cedar's parser, then refused by the schema check).
    for context in [
        json!({"newOwner": 42}),
        json!({}),
        json!({"newOwner": {"type": "User", "id": "ana"}, "extra": true}),
        json!({"newOwner": {"type": "Org", "id": "acme"}}),
    ] {
        let (status, body) = authorize(json!({
            "principal": "User::\"ana\"",
            "action": "Action::\"TransferOrgOwnership\"",
            "resource": "Org::\"acme\"",
            "context": context
        }))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{context}: {body}");
        assert_eq!(
            body["code"], "request_schema_violation",
            "{context}: {body}"
        );
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("context"), "{context}: {message}");
    }
}

#[tokio::test]
async fn error_table() {
    let valid = r#"{"principal":"User::\"ana\"","action":"Action::\"ListOrgs\"","resource":"Platform::\"thunk\""}"#;
    let cases: Vec<(&str, &str, String, StatusCode, &str)> = vec![
        ("POST", "/v1/is_authorized", "{not json".into(), StatusCode::BAD_REQUEST, "invalid_json"),
        ("POST", "/v1/is_authorized", "".into(), StatusCode::BAD_REQUEST, "invalid_json"),
        ("POST", "/v1/is_authorized", r#"{"principal":"User::\"a\""}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("POST", "/v1/is_authorized", r#"{"principal":"User::ana","action":"Action::\"ListOrgs\"","resource":"Platform::\"thunk\""}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("POST", "/v1/is_authorized", r#"{"principal":{"type":"Us er","id":"a"},"action":"Action::\"ListOrgs\"","resource":"Platform::\"thunk\""}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("POST", "/v1/is_authorized", r#"{"principal":"User::\"ana\"","action":"Action::\"Fly\"","resource":"Platform::\"thunk\""}"#.into(), StatusCode::BAD_REQUEST, "request_schema_violation"),
        ("POST", "/v1/is_authorized", r#"{"principal":"User::\"ana\"","action":"Action::\"ListOrgs\"","resource":"Org::\"acme\""}"#.into(), StatusCode::BAD_REQUEST, "request_schema_violation"),
        ("POST", "/v1/is_authorized", r#"{"principal":"User::\"ana\"","action":"Action::\"ListOrgs\"","resource":"Platform::\"thunk\"","context":[1]}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("POST", "/v1/is_authorized", r#"{"principal":"User::\"ana\"","action":"Action::\"ListOrgs\"","resource":"Platform::\"thunk\"","entities":[{"uid":{"type":"User","id":"x"},"attrs":{"name":7},"parents":[]}]}"#.into(), StatusCode::BAD_REQUEST, "request_entities_disabled"),
        ("POST", "/v1/is_authorized", format!("{{\"pad\":\"{}\"}}", "x".repeat(5000)), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ("GET", "/v1/nothing-here", String::new(), StatusCode::NOT_FOUND, "not_found"),
        ("GET", "/v1/is_authorized", String::new(), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ("POST", "/v1/is_authorized/batch", format!("{{\"requests\":[{valid},{valid},{valid},{valid}]}}"), StatusCode::BAD_REQUEST, "batch_too_large"),
    ];
    for (method, path, body, status, code) in cases {
        let (got_status, got, _) = send(app(), method, path, &body).await;
        assert_eq!(got_status, status, "{method} {path} {body:.80}: {got}");
        assert_eq!(got["code"], code, "{method} {path} {body:.80}: {got}");
        assert!(got["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn batch_answers_in_order_and_isolates_bad_items() {
    let body = json!({"requests": [
        {"principal": "User::\"paula\"", "action": "Action::\"UseEnvironment\"", "resource": "Environment::\"acme-prod\""},
        {"principal": "User::\"paula\"", "action": "Action::\"Teleport\"", "resource": "Environment::\"acme-prod\""},
        {"principal": "User::\"pete\"", "action": "Action::\"UseEnvironment\"", "resource": "Environment::\"acme-prod\""}
    ]});
    let (status, value, headers) =
        send(app(), "POST", "/v1/is_authorized/batch", &body.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-cedar-revision"], "1");
    let responses = value["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 3);
    assert_eq!(responses[0]["decision"], "Allow");
    assert_eq!(responses[1]["error"]["code"], "request_schema_violation");
    assert_eq!(responses[2]["decision"], "Deny");
}

/// A batch large enough to be split over the cores answers every item in
/// order, exactly as the single-request route answers it.
async fn check_large_batch_matches_single_answers() {
    let mut state = AppState::new(shipped_state());
    state.limits.max_batch = 100;
    let app = router(state);
    let kinds = [
        json!({"principal": "User::\"paula\"", "action": "Action::\"UseEnvironment\"", "resource": "Environment::\"acme-prod\""}),
        json!({"principal": "User::\"pete\"", "action": "Action::\"UseEnvironment\"", "resource": "Environment::\"acme-prod\""}),
        json!({"principal": "User::\"paula\"", "action": "Action::\"Teleport\"", "resource": "Environment::\"acme-prod\""}),
        json!({"principal": {"type": "User", "id": "ana"}, "action": {"type": "Action", "id": "ListOrgs"}, "resource": {"type": "Platform", "id": "thunk"}}),
        json!(5),
    ];
    let items: Vec<Value> = (0..97)
        .map(|i| kinds[(i * 7) % kinds.len()].clone())
        .collect();
    let mut expected = Vec::new();
    for item in &items {
        let (_, answer, _) =
            send(app.clone(), "POST", "/v1/is_authorized", &item.to_string()).await;
        expected.push(
            answer["decision"]
                .as_str()
                .map_or_else(|| format!("error {}", answer["code"]), str::to_string),
        );
    }
    assert!(expected.iter().any(|e| e == "Allow") && expected.iter().any(|e| e == "Deny"));
    let body = json!({ "requests": items }).to_string();
    let (status, value, _) = send(app, "POST", "/v1/is_authorized/batch", &body).await;
    assert_eq!(status, StatusCode::OK);
    let got: Vec<String> = value["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["decision"]
                .as_str()
                .map_or_else(|| format!("error {}", r["error"]["code"]), str::to_string)
        })
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_large_batch_matches_single_answers_on_one_thread() {
    check_large_batch_matches_single_answers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_matches_single_answers_on_several_threads() {
    check_large_batch_matches_single_answers().await;
}

#[tokio::test]
async fn health_readiness_and_policy_listing() {
    let (status, body, _) = send(app(), "GET", "/healthz", "").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body, _) = send(app(), "GET", "/readyz", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["entities"].as_u64().unwrap() > 40);
    let (status, body, _) = send(app(), "GET", "/v1/policies", "").await;
    assert_eq!(status, StatusCode::OK);
    let policies = body["policies"].as_array().unwrap();
    assert!(policies
        .iter()
        .any(|p| p["id"] == "platform-admins-manage-tenants"
            && p["effect"] == "permit"
            && p["file"] == "platform.cedar"));
}

#[tokio::test]
async fn not_ready_state_fails_closed_with_503() {
    let app = router(AppState::new(std::sync::Arc::new(SharedState::default())));
    let (status, body, _) = send(app.clone(), "GET", "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "not_ready");
    let request = r#"{"principal":"User::\"ana\"","action":"Action::\"ListOrgs\"","resource":"Platform::\"thunk\""}"#;
    let (status, body, _) = send(app, "POST", "/v1/is_authorized", request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "not_ready");
}
