//! AuthZEN 1.0 conformance: the specification's scenarios sent through the
//! router (evaluation, evaluations with each semantic and the error item,
//! transport errors, metadata), answers compared byte for byte.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use cedar_sidecar::engine::{RequestEntityMode, RequestEntityPolicy};
use cedar_sidecar::http::{router, AppState, CallerTokens};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::support::shipped_state;

fn state() -> AppState {
    AppState::new(shipped_state())
}

/// Sends `body` to `path` with `content_type` (none when `None`) and extra
/// headers; returns the status, the body as text and the headers.
async fn send_with(
    state: AppState,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String, HeaderMap) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router(state)
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap(), headers)
}

async fn post(path: &str, body: &str) -> (StatusCode, String) {
    let (status, body, _) =
        send_with(state(), "POST", path, Some("application/json"), &[], body).await;
    (status, body)
}

/// One row: a body sent to a path, and the exact answer.
struct Case {
    name: &'static str,
    path: &'static str,
    body: &'static str,
    status: StatusCode,
    answer: &'static str,
}

const EVALUATION: &str = "/access/v1/evaluation";
const EVALUATIONS: &str = "/access/v1/evaluations";

const PAULA_USES_MODEL: &str = r#"{"subject":{"type":"User","id":"paula"},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"acme-prod-gpt4o"}}"#;

fn check(cases: &[Case], got: &[(StatusCode, String)]) {
    let wrong: Vec<String> = cases
        .iter()
        .zip(got)
        .filter(|(case, (status, body))| (*status, body.as_str()) != (case.status, case.answer))
        .map(|(case, (status, body))| format!("case `{}`: got {status} {body}", case.name))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

async fn run(cases: &[Case]) {
    let mut got = Vec::new();
    for case in cases {
        got.push(post(case.path, case.body).await);
    }
    check(cases, &got);
}

#[tokio::test]
async fn evaluation_answers_exactly_a_decision() {
    run(&[
        Case {
            name: "allow",
            path: EVALUATION,
            body: PAULA_USES_MODEL,
            status: StatusCode::OK,
            answer: r#"{"decision":true}"#,
        },
        Case {
            name: "deny is a 200",
            path: EVALUATION,
            body: r#"{"subject":{"type":"User","id":"pete"},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"acme-prod-gpt4o"}}"#,
            status: StatusCode::OK,
            answer: r#"{"decision":false}"#,
        },
        Case {
            name: "unknown subject is a deny",
            path: EVALUATION,
            body: r#"{"subject":{"type":"User","id":"nobody"},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"acme-prod-gpt4o"}}"#,
            status: StatusCode::OK,
            answer: r#"{"decision":false}"#,
        },
        Case {
            name: "unknown fields are ignored",
            path: EVALUATION,
            body: r#"{"subject":{"type":"User","id":"paula","x":1},"action":{"name":"UseModel","y":[]},"resource":{"type":"Model","id":"acme-prod-gpt4o"},"z":{}}"#,
            status: StatusCode::OK,
            answer: r#"{"decision":true}"#,
        },
        Case {
            name: "reasons when asked",
            path: EVALUATION,
            body: r#"{"subject":{"type":"User","id":"paula"},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"acme-prod-gpt4o"},"options":{"include_reasons":true}}"#,
            status: StatusCode::OK,
            answer: r#"{"decision":true,"context":{"reason_admin":{"policies":["participants-use-granted-environment-resources"],"errors":[]}}}"#,
        },
        Case {
            name: "context goes to the Cedar context, checked against the schema",
            path: EVALUATION,
            body: r#"{"subject":{"type":"User","id":"paula"},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"acme-prod-gpt4o"},"context":{"ip":"10.0.0.1"}}"#,
            status: StatusCode::BAD_REQUEST,
            answer: r#"{"error":{"status":400,"message":"context does not match the schema: while parsing context, record attribute `ip` should not exist according to the schema"}}"#,
        },
        Case {
            name: "action properties go to the Cedar context under action_properties",
            path: EVALUATION,
            body: r#"{"subject":{"type":"User","id":"paula"},"action":{"name":"UseModel","properties":{"soft":true}},"resource":{"type":"Model","id":"acme-prod-gpt4o"}}"#,
            status: StatusCode::BAD_REQUEST,
            answer: r#"{"error":{"status":400,"message":"context does not match the schema: while parsing context, record attribute `action_properties` should not exist according to the schema"}}"#,
        },
        Case {
            name: "empty properties are no properties",
            path: EVALUATION,
            body: r#"{"subject":{"type":"User","id":"paula","properties":{}},"action":{"name":"UseModel","properties":{}},"resource":{"type":"Model","id":"acme-prod-gpt4o","properties":{}}}"#,
            status: StatusCode::OK,
            answer: r#"{"decision":true}"#,
        },
        Case {
            name: "unknown action is a schema violation",
            path: EVALUATION,
            body: r#"{"subject":{"type":"User","id":"paula"},"action":{"name":"Fly"},"resource":{"type":"Model","id":"acme-prod-gpt4o"}}"#,
            status: StatusCode::BAD_REQUEST,
            answer: r#"{"error":{"status":400,"message":"unknown action `Action::\"Fly\"`: the schema does not declare it"}}"#,
        },
    ])
    .await;
}

/// pete may not use the model; paula may, and may use acme-prod.
const PETE: &str = r#"{"type":"User","id":"pete"}"#;

#[tokio::test]
async fn evaluations_apply_defaults_semantics_and_item_errors() {
    let items = r#"[
        {},
        {"subject":{"type":"User","id":"pete"}},
        {"subject":{"type":"User"}},
        {"action":{"name":"UseEnvironment"},"resource":{"type":"Environment","id":"acme-prod"}}
    ]"#;
    let defaults = r#""subject":{"type":"User","id":"paula"},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"acme-prod-gpt4o"}"#;
    let batch = |options: &str| format!(r#"{{{defaults},"evaluations":{items}{options}}}"#);
    let cases = [
        (
            batch(""),
            r#"{"evaluations":[{"decision":true},{"decision":false},{"decision":false,"context":{"error":{"status":400,"message":"missing field `id` at line 1 column 26"}}},{"decision":true}]}"#,
        ),
        (
            batch(r#","options":{"evaluations_semantic":"execute_all","unknown":1}"#),
            r#"{"evaluations":[{"decision":true},{"decision":false},{"decision":false,"context":{"error":{"status":400,"message":"missing field `id` at line 1 column 26"}}},{"decision":true}]}"#,
        ),
        (
            batch(r#","options":{"evaluations_semantic":"deny_on_first_deny"}"#),
            r#"{"evaluations":[{"decision":true},{"decision":false}]}"#,
        ),
        (
            batch(r#","options":{"evaluations_semantic":"permit_on_first_permit"}"#),
            r#"{"evaluations":[{"decision":true}]}"#,
        ),
        (
            // Whole-object replacement: the item's subject has no `id`, the
            // default's is not merged into it.
            format!(
                r#"{{{defaults},"evaluations":[{{"subject":{{"type":"User"}}}},{{"subject":{PETE}}}],"options":{{"evaluations_semantic":"deny_on_first_deny"}}}}"#
            ),
            r#"{"evaluations":[{"decision":false,"context":{"error":{"status":400,"message":"missing field `id` at line 1 column 26"}}}]}"#,
        ),
        (
            format!(
                r#"{{"evaluations":[{{"subject":{PETE}}},{{"subject":{PETE},"action":{{"name":"UseModel"}},"resource":{{"type":"Model","id":"acme-prod-gpt4o"}}}},"not an object"]}}"#
            ),
            r#"{"evaluations":[{"decision":false,"context":{"error":{"status":400,"message":"missing field `action`"}}},{"decision":false},{"decision":false,"context":{"error":{"status":400,"message":"an evaluations item must be a JSON object"}}}]}"#,
        ),
        (
            // No `evaluations`: a single evaluation, answered as one.
            format!("{{{defaults}}}"),
            r#"{"decision":true}"#,
        ),
        (
            format!(r#"{{{defaults},"evaluations":[]}}"#),
            r#"{"decision":true}"#,
        ),
        (
            format!(r#"{{{defaults},"evaluations":[{{}}],"options":{{"include_reasons":true}}}}"#),
            r#"{"evaluations":[{"decision":true,"context":{"reason_admin":{"policies":["participants-use-granted-environment-resources"],"errors":[]}}}]}"#,
        ),
        (
            batch(r#","options":{"evaluations_semantic":"first_one_wins"}"#),
            r#"{"error":{"status":400,"message":"unknown variant `first_one_wins`, expected one of `execute_all`, `deny_on_first_deny`, `permit_on_first_permit` at line 6 column 56"}}"#,
        ),
        (
            r#"{"evaluations":[]}"#.to_string(),
            r#"{"error":{"status":400,"message":"missing field `subject`"}}"#,
        ),
        (
            // An empty default is no default: each item names its own.
            format!(
                r#"{{"subject":{PETE},"action":{{}},"resource":{{}},"evaluations":[{{"action":{{"name":"UseModel"}},"resource":{{"type":"Model","id":"acme-prod-gpt4o"}}}},{{"subject":{{"type":"User","id":"paula"}},"action":{{"name":"UseModel"}},"resource":{{"type":"Model","id":"acme-prod-gpt4o"}}}},{{"action":{{"name":"UseModel"}}}}]}}"#
            ),
            r#"{"evaluations":[{"decision":false},{"decision":true},{"decision":false,"context":{"error":{"status":400,"message":"missing field `resource`"}}}]}"#,
        ),
        (
            // Without items it is a single evaluation, whose resource is `{}`.
            format!(r#"{{"subject":{PETE},"action":{{"name":"UseModel"}},"resource":{{}}}}"#),
            r#"{"error":{"status":400,"message":"missing field `type`"}}"#,
        ),
    ];
    let mut wrong = Vec::new();
    for (body, answer) in &cases {
        let (status, got) = post(EVALUATIONS, body).await;
        let expected = if answer.starts_with(r#"{"error""#) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        if (status, got.as_str()) != (expected, *answer) {
            wrong.push(format!("{body}\n  got {status} {got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn transport_errors_are_400s_in_authzen_shape() {
    let cases: &[(&str, Option<&str>, &str, &str)] = &[
        ("no content type", None, PAULA_USES_MODEL, "the request must be sent as `Content-Type: application/json`"),
        ("text/plain", Some("text/plain"), PAULA_USES_MODEL, "the request must be sent as `Content-Type: application/json`"),
        ("empty body", Some("application/json"), "", "the body is empty"),
        ("malformed", Some("application/json"), "{\"subject\":", "request body is not valid JSON: EOF while parsing a value at line 1 column 11"),
        ("not an object", Some("application/json"), "[1]", "the body must be a JSON object"),
        ("missing subject", Some("application/json"), r#"{"action":{"name":"UseModel"},"resource":{"type":"Model","id":"m"}}"#, "missing field `subject` at line 1 column 67"),
        ("missing action", Some("application/json"), r#"{"subject":{"type":"User","id":"paula"},"resource":{"type":"Model","id":"m"}}"#, "missing field `action` at line 1 column 77"),
        ("missing resource", Some("application/json"), r#"{"subject":{"type":"User","id":"paula"},"action":{"name":"UseModel"}}"#, "missing field `resource` at line 1 column 69"),
        ("missing type", Some("application/json"), r#"{"subject":{"id":"paula"},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"m"}}"#, "missing field `type` at line 1 column 25"),
        ("missing id", Some("application/json"), r#"{"subject":{"type":"User","id":"paula"},"action":{"name":"UseModel"},"resource":{"type":"Model"}}"#, "missing field `id` at line 1 column 96"),
        ("missing name", Some("application/json"), r#"{"subject":{"type":"User","id":"paula"},"action":{},"resource":{"type":"Model","id":"m"}}"#, "missing field `name` at line 1 column 51"),
        ("subject as a string", Some("application/json"), r#"{"subject":"User::\"paula\"","action":{"name":"UseModel"},"resource":{"type":"Model","id":"m"}}"#, "invalid type: string \"User::\\\"paula\\\"\", expected struct AuthzenEntity at line 1 column 28"),
        ("name as a number", Some("application/json"), r#"{"subject":{"type":"User","id":"paula"},"action":{"name":7},"resource":{"type":"Model","id":"m"}}"#, "invalid type: integer `7`, expected a string at line 1 column 58"),
        ("context as an array", Some("application/json"), r#"{"subject":{"type":"User","id":"paula"},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"m"},"context":[]}"#, "invalid type: sequence, expected a map at line 1 column 116"),
    ];
    let mut wrong = Vec::new();
    for (name, content_type, body, message) in cases {
        for path in [EVALUATION, EVALUATIONS] {
            let (status, got, _) = send_with(state(), "POST", path, *content_type, &[], body).await;
            let expected =
                serde_json::json!({"error": {"status": 400, "message": message}}).to_string();
            // A batch without `evaluations` is a single evaluation; its
            // messages lose serde's position (the fields are checked after
            // parsing; an empty default such as `"action": {}` is too).
            let loose = path == EVALUATIONS
                && name.starts_with("missing ")
                && [
                    "missing subject",
                    "missing action",
                    "missing resource",
                    "missing name",
                ]
                .contains(name);
            let matches = status == StatusCode::BAD_REQUEST
                && (got == expected
                    || (loose
                        && got.starts_with(
                            &expected[..expected.find(" at line").unwrap_or(expected.len())],
                        )));
            if !matches {
                wrong.push(format!("{name} on {path}: got {status} {got}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn request_id_is_echoed_and_versions_are_given() {
    let (status, body, headers) = send_with(
        state(),
        "POST",
        EVALUATION,
        Some("application/json; charset=utf-8"),
        &[("x-request-id", "pep-42")],
        PAULA_USES_MODEL,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"decision":true}"#)
    );
    assert_eq!(headers["x-request-id"], "pep-42");
    assert_eq!(headers["x-cedar-revision"], "1");
    // An error echoes it too.
    let (status, _, headers) = send_with(
        state(),
        "POST",
        EVALUATIONS,
        None,
        &[("x-request-id", "pep-43")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["x-request-id"], "pep-43");
}

#[tokio::test]
async fn metadata_names_the_public_url_and_only_what_is_served() {
    let mut state = state();
    state.public_url = Arc::from("https://pdp.example.com");
    let (status, body, headers) = send_with(
        state,
        "GET",
        "/.well-known/authzen-configuration",
        None,
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        r#"{"policy_decision_point":"https://pdp.example.com","access_evaluation_endpoint":"https://pdp.example.com/access/v1/evaluation","access_evaluations_endpoint":"https://pdp.example.com/access/v1/evaluations","search_subject_endpoint":"https://pdp.example.com/access/v1/search/subject","search_resource_endpoint":"https://pdp.example.com/access/v1/search/resource","search_action_endpoint":"https://pdp.example.com/access/v1/search/action"}"#
    );
    for url in ["https://pdp.example.com", "http://127.0.0.1:8180/base"] {
        assert_eq!(cedar_sidecar::http::check_public_url(url), Ok(()), "{url}");
    }
    for url in [
        "pdp.example.com",
        "https://",
        "https://x/?q=1",
        "https://x/#f",
        "ftp://x",
    ] {
        assert!(cedar_sidecar::http::check_public_url(url).is_err(), "{url}");
    }
}

#[tokio::test]
async fn caller_tokens_guard_evaluations_but_not_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callers");
    std::fs::write(&file, "a-caller-token-of-32-bytes-or-more-xx\n").unwrap();
    let mut state = state();
    state.callers = Some(Arc::new(CallerTokens::load(&file).unwrap()));
    for path in [EVALUATION, EVALUATIONS] {
        let (status, body, headers) = send_with(
            state.clone(),
            "POST",
            path,
            Some("application/json"),
            &[],
            PAULA_USES_MODEL,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            body,
            r#"{"error":{"status":401,"message":"a valid caller token is required (`Authorization: Bearer <token>`)"}}"#
        );
        assert_eq!(headers["www-authenticate"], "Bearer");
        let (status, body, _) = send_with(
            state.clone(),
            "POST",
            path,
            Some("application/json"),
            &[(
                "authorization",
                "Bearer a-caller-token-of-32-bytes-or-more-xx",
            )],
            PAULA_USES_MODEL,
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, r#"{"decision":true}"#),
            "{path}"
        );
    }
    let (status, _, _) = send_with(
        state,
        "GET",
        "/.well-known/authzen-configuration",
        None,
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// A model that is not stored, described by the caller, in acme-prod.
const NEW_MODEL: &str = r#"{"subject":{"type":"User","id":"paula"},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"pep-model","properties":{"environment":{"__entity":{"type":"Environment","id":"acme-prod"}}}}}"#;

#[tokio::test]
async fn properties_are_request_entities_under_the_trust_boundary() {
    // Default `off`: properties are refused, never silently used.
    let (status, body) = post(EVALUATION, NEW_MODEL).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with(r#"{"error":{"status":400,"message":"this sidecar does not accept entities with requests"#), "{body}");

    let mut trusting = state();
    trusting.request_entities = Arc::new(RequestEntityPolicy {
        mode: RequestEntityMode::NewOnly,
        types: vec!["Model".parse().unwrap()],
        ..RequestEntityPolicy::DEFAULT
    });
    let send = |body: &'static str| {
        send_with(
            trusting.clone(),
            "POST",
            EVALUATION,
            Some("application/json"),
            &[],
            body,
        )
    };
    // `new-only` with `Model` listed: a model the application describes.
    let (status, body, _) = send(NEW_MODEL).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"decision":true}"#)
    );
    // A stored resource may not be redescribed (no widening of stored data).
    let (status, body, _) = send(r#"{"subject":{"type":"User","id":"pete"},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"acme-prod-gpt4o","properties":{"environment":{"__entity":{"type":"Environment","id":"personal-pete"}}}}}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("is stored"), "{body}");
    // Nor may the subject describe itself (who asks is stored data's to say).
    let (status, body, _) = send(r#"{"subject":{"type":"User","id":"pete","properties":{"name":"Pete"}},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"acme-prod-gpt4o"}}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A model named without properties: a stored one is the stored one; one
    // that is not stored is a new model with no attributes, which this
    // schema refuses (a model has an environment). Under `off` the same
    // request names an unknown resource: a deny.
    let (status, body, _) = send(PAULA_USES_MODEL).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"decision":true}"#)
    );
    const UNDESCRIBED: &str = r#"{"subject":{"type":"User","id":"paula"},"action":{"name":"UseModel"},"resource":{"type":"Model","id":"pep-model"}}"#;
    let (status, body, _) = send(UNDESCRIBED).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("`environment`"), "{body}");
    let (status, body) = post(EVALUATION, UNDESCRIBED).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"decision":false}"#)
    );
    // In a batch, a refused item is an item error; the others are decided.
    let (status, body, _) = send_with(
        state(),
        "POST",
        EVALUATIONS,
        Some("application/json"),
        &[],
        &format!(r#"{{"evaluations":[{NEW_MODEL},{PAULA_USES_MODEL}]}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with(r#"{"evaluations":[{"decision":false,"context":{"error":{"status":400,"message":"this sidecar does not accept entities"#), "{body}");
    assert!(body.ends_with(r#"},{"decision":true}]}"#), "{body}");
}

#[tokio::test]
async fn decisions_are_counted_by_endpoint() {
    let state = state();
    let metrics = state.metrics.clone();
    let batch = format!(r#"{{"evaluations":[{PAULA_USES_MODEL},{PAULA_USES_MODEL}]}}"#);
    for (path, body) in [
        (EVALUATION, PAULA_USES_MODEL),
        (EVALUATIONS, batch.as_str()),
    ] {
        let (status, _, _) = send_with(
            state.clone(),
            "POST",
            path,
            Some("application/json"),
            &[],
            body,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let text = metrics.render(&cedar_sidecar::telemetry::SnapshotGauges {
        policy_version: "v",
        entities: 0,
        revision: 0,
        policies: 0,
        min_entities: 0,
    });
    assert!(
        text.contains(r#"cedar_decisions_total{decision="Allow",endpoint="authzen_evaluation"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"cedar_decisions_total{decision="Allow",endpoint="authzen_evaluations"} 2"#
        ),
        "{text}"
    );
}

// ---- search ---------------------------------------------------------------

const SEARCH_RESOURCE: &str = "/access/v1/search/resource";
const SEARCH_SUBJECT: &str = "/access/v1/search/subject";
const SEARCH_ACTION: &str = "/access/v1/search/action";

/// Every search over the demo data equals deciding every candidate: each
/// result is an Allow, and every Allow is a result. Exhaustive over the
/// stored users, the stored entities and the schema's actions.
#[test]
fn every_search_result_is_an_allow_and_every_allow_a_result() {
    use cedar_sidecar::engine::{
        decide, search, DecisionRequest, SearchRequest, Searched, Verdict,
    };
    let snapshot = crate::support::shipped();
    let (pack, store) = (&snapshot.pack, &snapshot.entities);
    let allowed = |principal: &cedar_policy::EntityUid,
                   action: &cedar_policy::EntityUid,
                   resource: &cedar_policy::EntityUid| {
        let request = DecisionRequest {
            principal: principal.clone(),
            action: action.clone(),
            resource: resource.clone(),
            context: None,
            entities: Vec::new(),
        };
        decide(pack, store, &request, &RequestEntityPolicy::DEFAULT)
            .is_ok_and(|d| d.verdict == Verdict::Allow)
    };
    let mut uids: Vec<_> = store.iter().map(|e| e.uid()).collect();
    uids.sort_by_key(ToString::to_string);
    let users: Vec<_> = uids
        .iter()
        .filter(|u| u.type_name().to_string() == "User")
        .collect();
    let mut actions: Vec<_> = pack.actions.keys().cloned().collect();
    actions.sort_by_key(ToString::to_string);
    let types: std::collections::BTreeSet<_> = uids.iter().map(|u| u.type_name().clone()).collect();
    let mut checked = 0;
    let mut allows = 0;
    for user in &users {
        for action in &actions {
            for entity_type in &types {
                let expected: Vec<_> = uids
                    .iter()
                    .filter(|r| r.type_name() == entity_type && allowed(user, action, r))
                    .cloned()
                    .collect();
                let found = search(
                    pack,
                    store,
                    &SearchRequest {
                        principal: Some((*user).clone()),
                        action: Some(action.clone()),
                        resource: None,
                        context: None,
                    },
                    &Searched::Resources(entity_type.clone()),
                );
                assert_eq!(found, expected, "{user} {action} {entity_type}");
                allows += found.len();
                checked += 1;
            }
        }
    }
    // Subject and action searches, over every stored resource.
    for resource in &uids {
        for action in &actions {
            let expected: Vec<_> = users
                .iter()
                .filter(|u| allowed(u, action, resource))
                .map(|u| (*u).clone())
                .collect();
            let found = search(
                pack,
                store,
                &SearchRequest {
                    principal: None,
                    action: Some(action.clone()),
                    resource: Some(resource.clone()),
                    context: None,
                },
                &Searched::Subjects("User".parse().unwrap()),
            );
            assert_eq!(found, expected, "subjects {action} {resource}");
        }
        for user in &users {
            let expected: Vec<_> = actions
                .iter()
                .filter(|a| allowed(user, a, resource))
                .cloned()
                .collect();
            let found = search(
                pack,
                store,
                &SearchRequest {
                    principal: Some((*user).clone()),
                    action: None,
                    resource: Some(resource.clone()),
                    context: None,
                },
                &Searched::Actions,
            );
            assert_eq!(found, expected, "actions {user} {resource}");
        }
    }
    // The data exercises the search: many combinations, many allows.
    assert!(
        checked > 1000 && allows > 100,
        "{checked} searches, {allows} allows"
    );
}

#[tokio::test]
async fn searches_answer_pages_with_tamper_evident_tokens() {
    let body = |page: &str| {
        format!(
            r#"{{"subject":{{"type":"User","id":"platform-svc"}},"action":{{"name":"ReadOrg"}},"resource":{{"type":"Org"}}{page}}}"#
        )
    };
    let (status, all) = post(SEARCH_RESOURCE, &body("")).await;
    assert_eq!(status, StatusCode::OK);
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    let total = all["page"]["total"].as_u64().unwrap();
    assert!(total >= 2, "{all}");
    assert_eq!(all["page"]["next_token"], "");
    // Page by one, following the tokens.
    let mut token = String::new();
    let mut paged = Vec::new();
    loop {
        let page = if token.is_empty() {
            r#","page":{"limit":1}"#.to_string()
        } else {
            format!(r#","page":{{"limit":1,"token":"{token}"}}"#)
        };
        let (status, answer) = post(SEARCH_RESOURCE, &body(&page)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["page"]["count"], 1);
        paged.extend(answer["results"].as_array().unwrap().clone());
        token = answer["page"]["next_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
        // A changed token, or the token with another request, is refused.
        let refused = r#"{"error":{"status":400,"message":"`page.token` is not a token for this request on the current data: search again without it"}}"#;
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        for (path, other) in [
            (
                SEARCH_RESOURCE,
                body(&format!(r#","page":{{"limit":1,"token":"{tampered}"}}"#)),
            ),
            (
                SEARCH_RESOURCE,
                body(&format!(r#","page":{{"limit":1,"token":"0{token}"}}"#)),
            ),
            (
                SEARCH_RESOURCE,
                format!(
                    r#"{{"subject":{{"type":"User","id":"pete"}},"action":{{"name":"ReadOrg"}},"resource":{{"type":"Org"}},"page":{{"limit":1,"token":"{token}"}}}}"#
                ),
            ),
        ] {
            assert_eq!(
                post(path, &other).await,
                (StatusCode::BAD_REQUEST, refused.to_string()),
                "{other}"
            );
        }
    }
    assert_eq!(serde_json::Value::Array(paged), all["results"]);
}

#[tokio::test]
async fn search_shapes_and_errors() {
    run(&[
        Case {
            name: "resource search",
            path: SEARCH_RESOURCE,
            body: r#"{"subject":{"type":"User","id":"pete"},"action":{"name":"UseEnvironment"},"resource":{"type":"Environment","id":"ignored"}}"#,
            status: StatusCode::OK,
            answer: r#"{"results":[{"type":"Environment","id":"personal-pete"}],"page":{"next_token":"","count":1,"total":1}}"#,
        },
        Case {
            name: "unknown type",
            path: SEARCH_RESOURCE,
            body: r#"{"subject":{"type":"User","id":"pete"},"action":{"name":"UseEnvironment"},"resource":{"type":"Spaceship"}}"#,
            status: StatusCode::OK,
            answer: r#"{"results":[],"page":{"next_token":"","count":0,"total":0}}"#,
        },
        Case {
            name: "unknown subject id",
            path: SEARCH_RESOURCE,
            body: r#"{"subject":{"type":"User","id":"nobody"},"action":{"name":"UseEnvironment"},"resource":{"type":"Environment"}}"#,
            status: StatusCode::OK,
            answer: r#"{"results":[],"page":{"next_token":"","count":0,"total":0}}"#,
        },
        Case {
            name: "resource search without subject.id",
            path: SEARCH_RESOURCE,
            body: r#"{"subject":{"type":"User"},"action":{"name":"UseEnvironment"},"resource":{"type":"Environment"}}"#,
            status: StatusCode::BAD_REQUEST,
            answer: r#"{"error":{"status":400,"message":"missing field `id`"}}"#,
        },
        Case {
            name: "subject search",
            path: SEARCH_SUBJECT,
            body: r#"{"subject":{"type":"User"},"action":{"name":"UseEnvironment"},"resource":{"type":"Environment","id":"personal-pete"}}"#,
            status: StatusCode::OK,
            answer: r#"{"results":[{"type":"User","id":"pete"}],"page":{"next_token":"","count":1,"total":1}}"#,
        },
        Case {
            name: "subject search without resource.id",
            path: SEARCH_SUBJECT,
            body: r#"{"subject":{"type":"User"},"action":{"name":"UseEnvironment"},"resource":{"type":"Environment"}}"#,
            status: StatusCode::BAD_REQUEST,
            answer: r#"{"error":{"status":400,"message":"missing field `id`"}}"#,
        },
        Case {
            name: "action search",
            path: SEARCH_ACTION,
            body: r#"{"subject":{"type":"User","id":"pete"},"resource":{"type":"Environment","id":"personal-pete"}}"#,
            status: StatusCode::OK,
            answer: r#"{"results":[{"name":"UseEnvironment"}],"page":{"next_token":"","count":1,"total":1}}"#,
        },
        Case {
            name: "properties are refused in a search",
            path: SEARCH_ACTION,
            body: r#"{"subject":{"type":"User","id":"pete","properties":{"a":1}},"resource":{"type":"Environment","id":"personal-pete"}}"#,
            status: StatusCode::BAD_REQUEST,
            answer: r#"{"error":{"status":400,"message":"subject: searches decide on stored entities only; `properties` are not accepted"}}"#,
        },
    ])
    .await;
}
