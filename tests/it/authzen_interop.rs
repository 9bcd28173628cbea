//! The AuthZEN interop scenarios against the two example packs that
//! reproduce them (`examples/packs/authzen-todo`, `authzen-search`), served
//! through the real router as their settings configure them. Every answer
//! is compared byte for byte; the expected decisions and result sets are
//! computed here from the scenarios' rules, never by asking the engine.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cedar_sidecar::config::Settings;
use cedar_sidecar::http::{router, AppState};
use cedar_sidecar::state::SharedState;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::{load_fixture, repo};

/// The router serving `examples/packs/<name>`, with the request-entity
/// rules of the pack's `cedar-sidecar.toml` when it has one (whose paths
/// must name the pack's own folders).
fn serve_pack(name: &str) -> AppState {
    let dir = repo().join("examples/packs").join(name);
    let mut state = AppState::new(Arc::new(SharedState::ready(load_fixture(&dir))));
    let config = dir.join("cedar-sidecar.toml");
    if config.exists() {
        let settings = Settings::from_file(&config).unwrap();
        let folder = PathBuf::from("examples/packs").join(name);
        assert_eq!(settings.policies, Some(folder.join("policies")));
        assert_eq!(settings.schema, Some(folder.join("schema")));
        assert_eq!(settings.entities, Some(folder.join("entities.json")));
        state.request_entities = Arc::new(settings.request_entities.policy().unwrap());
    }
    state
}

/// POSTs `body` as JSON; the status and the body as text.
async fn post(state: &AppState, path: &str, body: &Value) -> (StatusCode, String) {
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

/// Sends every `(body, expected answer)` to `path`; fails listing each
/// request whose answer is not a 200 with exactly the expected text.
async fn expect_all(state: &AppState, path: &str, cases: &[(Value, String)]) {
    let mut wrong = Vec::new();
    for (body, expected) in cases {
        let (status, got) = post(state, path, body).await;
        if (status, got.as_str()) != (StatusCode::OK, expected.as_str()) {
            wrong.push(format!(
                "{body}\n  expected {expected}\n  got {status} {got}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} requests to {path} answered wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

fn decision(allowed: bool) -> String {
    format!(r#"{{"decision":{allowed}}}"#)
}

const EVALUATION: &str = "/access/v1/evaluation";
const EVALUATIONS: &str = "/access/v1/evaluations";

// ---- the Todo application ---------------------------------------------------

/// The five users: subject id, email, roles.
const PEOPLE: [(&str, &str, &[&str]); 5] = [
    (
        "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "rick@the-citadel.com",
        &["admin", "evil_genius"],
    ),
    (
        "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "morty@the-citadel.com",
        &["editor"],
    ),
    (
        "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "summer@the-smiths.com",
        &["editor"],
    ),
    (
        "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "beth@the-smiths.com",
        &["viewer"],
    ),
    (
        "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "jerry@the-smiths.com",
        &["viewer"],
    ),
];

const MORTY: &str = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";

/// The Todo scenario's rules, as the scenario states them. `owner` is the
/// todo's `ownerID` (`None`: a todo named without properties).
fn todo_allows(roles: &[&str], email: &str, action: &str, owner: Option<&str>) -> bool {
    let has = |role: &str| roles.contains(&role);
    let owns = owner == Some(email);
    match action {
        "can_read_user" | "can_read_todos" => true,
        "can_create_todo" => has("admin") || has("editor"),
        "can_update_todo" => has("evil_genius") || (has("editor") && owns),
        "can_delete_todo" => has("admin") || (has("editor") && owns),
        other => panic!("no rule for {other}"),
    }
}

/// A todo as the backend describes it: with its owner, or (listing,
/// creating) the interop's `todo-1` without properties.
fn todo(id: &str, owner: Option<&str>) -> Value {
    match owner {
        Some(owner) => json!({"type": "todo", "id": id, "properties": {"ownerID": owner}}),
        None => json!({"type": "todo", "id": id}),
    }
}

#[tokio::test]
async fn todo_every_user_and_permission_is_decided_as_the_scenario_says() {
    let state = serve_pack("authzen-todo");
    // Todos of each user and of someone unknown, and one without an owner.
    let mut owners: Vec<Option<&str>> = PEOPLE.iter().map(|p| Some(p.1)).collect();
    owners.extend([Some("squanchy@the-citadel.com"), None]);
    let mut cases = Vec::new();
    for (subject, email, roles) in PEOPLE {
        let ask = |action: &str, resource: Value| {
            json!({"subject": {"type": "user", "id": subject}, "action": {"name": action},
                   "resource": resource, "context": {}})
        };
        // Every profile, by email and by subject id.
        for (other_subject, other_email, _) in PEOPLE {
            for id in [other_email, other_subject] {
                let resource = json!({"type": "user", "id": id});
                cases.push((ask("can_read_user", resource), decision(true)));
            }
        }
        for action in ["can_read_todos", "can_create_todo"] {
            let allowed = todo_allows(roles, email, action, None);
            cases.push((ask(action, todo("todo-1", None)), decision(allowed)));
        }
        for action in ["can_update_todo", "can_delete_todo"] {
            for (n, owner) in owners.iter().enumerate() {
                let id = format!("7240d0db-8ff0-41ec-98b2-34a096273b{n:02}");
                let allowed = todo_allows(roles, email, action, *owner);
                cases.push((ask(action, todo(&id, *owner)), decision(allowed)));
            }
        }
    }
    assert_eq!(cases.len(), 5 * (10 + 2 + 2 * 7));
    // Both answers occur: the rules are not trivially all-allow.
    assert!(cases.iter().any(|(_, answer)| answer.contains("false")));
    expect_all(&state, EVALUATION, &cases).await;
}

#[tokio::test]
async fn todo_gateway_routes_are_decided_for_every_identity() {
    let state = serve_pack("authzen-todo");
    // The scenario's five requests, and methods on routes it does not grant.
    let routes: [(&str, &str, Option<&[&str]>); 10] = [
        ("GET", "/users/{userId}", None),
        ("GET", "/todos", None),
        ("POST", "/todos", Some(&["admin", "editor"])),
        ("PUT", "/todos/{todoId}", Some(&["evil_genius", "editor"])),
        ("DELETE", "/todos/{todoId}", Some(&["admin", "editor"])),
        ("GET", "/todos/{todoId}", Some(&[])),
        ("POST", "/todos/{todoId}", Some(&[])),
        ("PUT", "/todos", Some(&[])),
        ("DELETE", "/todos", Some(&[])),
        ("DELETE", "/users/{userId}", Some(&[])),
    ];
    let mut cases = Vec::new();
    for (subject, _, roles) in PEOPLE {
        for (method, route, granted_to) in routes {
            // `None`: everyone.
            let allowed =
                granted_to.is_none_or(|granted| granted.iter().any(|r| roles.contains(r)));
            let body = json!({"subject": {"type": "identity", "id": subject},
                              "action": {"name": method},
                              "resource": {"type": "route", "id": route}, "context": {}});
            cases.push((body, decision(allowed)));
        }
    }
    expect_all(&state, EVALUATION, &cases).await;
    // The application's types are not the gateway's: an identity does not
    // read todos, a user does not call routes (the schema says which
    // principal each action takes).
    for body in [
        json!({"subject": {"type": "identity", "id": MORTY}, "action": {"name": "can_read_todos"},
               "resource": {"type": "todo", "id": "todo-1"}}),
        json!({"subject": {"type": "user", "id": MORTY}, "action": {"name": "GET"},
               "resource": {"type": "route", "id": "/todos"}}),
    ] {
        let (status, got) = post(&state, EVALUATION, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {got}");
        assert!(
            got.starts_with(r#"{"error":{"status":400,"message":"#),
            "{got}"
        );
    }
}

#[tokio::test]
async fn todo_batches_decide_each_todo_under_each_semantic() {
    let state = serve_pack("authzen-todo");
    let rick = "rick@the-citadel.com";
    let morty = "morty@the-citadel.com";
    // Morty's update rights on four todos (owners Rick, Morty, Morty,
    // Rick), as the Todo backend asks them: one default subject and
    // action, an empty default resource, each item naming its todo.
    let owners = [rick, morty, morty, rick];
    let items: Vec<Value> = owners
        .iter()
        .enumerate()
        .map(|(n, owner)| json!({"resource": todo(&format!("t{n}"), Some(owner))}))
        .collect();
    let expected: Vec<bool> = owners
        .iter()
        .map(|owner| todo_allows(&["editor"], morty, "can_update_todo", Some(owner)))
        .collect();
    assert_eq!(expected, [false, true, true, false]);
    let answer = |decisions: &[bool]| {
        let items: Vec<String> = decisions.iter().map(|d| decision(*d)).collect();
        format!(r#"{{"evaluations":[{}]}}"#, items.join(","))
    };
    let batch = |semantic: Option<&str>| {
        let mut body = json!({"subject": {"type": "user", "id": MORTY},
                              "action": {"name": "can_update_todo"},
                              "resource": {}, "context": {}, "evaluations": items});
        if let Some(semantic) = semantic {
            body["options"] = json!({"evaluations_semantic": semantic});
        }
        body
    };
    // Where each semantic stops: after the first deny (item 0), after the
    // first permit (item 1).
    let first_deny = expected.iter().position(|d| !d).unwrap();
    let first_permit = expected.iter().position(|d| *d).unwrap();
    let cases = [
        (batch(None), answer(&expected)),
        (batch(Some("execute_all")), answer(&expected)),
        (
            batch(Some("deny_on_first_deny")),
            answer(&expected[..=first_deny]),
        ),
        (
            batch(Some("permit_on_first_permit")),
            answer(&expected[..=first_permit]),
        ),
    ];
    expect_all(&state, EVALUATIONS, &cases).await;

    // An item replaces a default as a whole; an item that cannot be
    // decided is an error in its place, and the others are decided.
    let body = json!({
    "subject": {"type": "user", "id": MORTY}, "action": {"name": "can_delete_todo"},
    "evaluations": [
        {"resource": todo("t0", Some(morty))},
        {"resource": {"type": "todo"}},
        {"subject": {"type": "user", "id": PEOPLE[0].0}, "resource": todo("t1", Some(morty))},
        {"action": {"name": "can_read_user"},
         "resource": {"type": "user", "id": "evil@example.com",
                      "properties": {"name": "Evil", "email": "evil@example.com"}}},
        {"action": {"name": "can_create_todo"}, "resource": todo("todo-1", None)},
    ]});
    let (status, got) = post(&state, EVALUATIONS, &body).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let got: Value = serde_json::from_str(&got).unwrap();
    let items = got["evaluations"].as_array().unwrap();
    let decisions: Vec<&Value> = items.iter().map(|item| &item["decision"]).collect();
    assert_eq!(
        decisions,
        [
            &json!(true),
            &json!(false),
            &json!(true),
            &json!(false),
            &json!(true)
        ]
    );
    assert_eq!(items[0], json!({"decision": true}));
    assert_eq!(items[1]["context"]["error"]["status"], json!(400));
    assert!(items[1]["context"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing field `id`"));
    // Only todos may be described: a user with properties is refused.
    assert_eq!(items[3]["context"]["error"]["status"], json!(400));
    assert!(items[3]["context"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requests may not describe entities of type `user`"));
}

#[tokio::test]
async fn todo_requests_cannot_widen_what_the_data_grants() {
    let state = serve_pack("authzen-todo");
    let refused = [
        // Morty may not give himself a role, nor describe himself.
        json!({"subject": {"type": "user", "id": MORTY, "properties": {"name": "Morty", "email": "rick@the-citadel.com"}},
               "action": {"name": "can_delete_todo"}, "resource": todo("t", Some("rick@the-citadel.com"))}),
        // A route is stored data.
        json!({"subject": {"type": "identity", "id": MORTY}, "action": {"name": "GET"},
               "resource": {"type": "route", "id": "/admin", "properties": {"x": 1}}}),
        // A todo has an `ownerID` string and nothing else.
        json!({"subject": {"type": "user", "id": MORTY}, "action": {"name": "can_update_todo"},
               "resource": {"type": "todo", "id": "t", "properties": {"ownerID": 7}}}),
        json!({"subject": {"type": "user", "id": MORTY}, "action": {"name": "can_update_todo"},
               "resource": {"type": "todo", "id": "t", "properties": {"ownerID": "morty@the-citadel.com", "editors": ["x"]}}}),
    ];
    for body in refused {
        let (status, got) = post(&state, EVALUATION, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {got}");
        assert!(
            got.starts_with(r#"{"error":{"status":400,"message":"#),
            "{got}"
        );
    }
    // A stored entity is never described: a stored profile named with
    // properties is refused, and without them it is what the data says.
    let profile = |properties: Option<Value>| {
        let mut resource = json!({"type": "user", "id": "rick@the-citadel.com"});
        if let Some(properties) = properties {
            resource["properties"] = properties;
        }
        json!({"subject": {"type": "user", "id": MORTY}, "action": {"name": "can_read_user"},
               "resource": resource})
    };
    let (status, _) = post(&state, EVALUATION, &profile(Some(json!({"name": "R"})))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, got) = post(&state, EVALUATION, &profile(None)).await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::OK, r#"{"decision":true}"#)
    );
    // Unknown people and profiles are denied, not described.
    for (subject, resource) in [
        (
            "nobody",
            json!({"type": "user", "id": "rick@the-citadel.com"}),
        ),
        (MORTY, json!({"type": "user", "id": "nobody@example.com"})),
    ] {
        let body = json!({"subject": {"type": "user", "id": subject},
                          "action": {"name": "can_read_user"}, "resource": resource});
        let (status, got) = post(&state, EVALUATION, &body).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::OK, r#"{"decision":false}"#),
            "{body}"
        );
    }
}

// ---- search -----------------------------------------------------------------

/// The six users: id, role, department.
const USERS: [(&str, &str, &str); 6] = [
    ("alice", "manager", "Sales"),
    ("bob", "employee", "Legal"),
    ("carol", "contractor", "Legal"),
    ("dan", "manager", "Finance"),
    ("erin", "employee", "Finance"),
    ("felix", "contractor", "Accounting"),
];

/// The twenty records: id, department, owner.
const RECORDS: [(&str, &str, &str); 20] = [
    ("101", "Legal", "alice"),
    ("102", "Legal", "bob"),
    ("103", "Legal", "carol"),
    ("104", "Accounting", "dan"),
    ("105", "Legal", "erin"),
    ("106", "Accounting", "felix"),
    ("107", "Sales", "alice"),
    ("108", "Legal", "bob"),
    ("109", "Accounting", "carol"),
    ("110", "Sales", "dan"),
    ("111", "Accounting", "erin"),
    ("112", "Legal", "felix"),
    ("113", "Sales", "alice"),
    ("114", "Accounting", "bob"),
    ("115", "Finance", "carol"),
    ("116", "Legal", "dan"),
    ("117", "Legal", "erin"),
    ("118", "Accounting", "felix"),
    ("119", "Legal", "alice"),
    ("120", "Accounting", "bob"),
];

/// In the order search answers them (by name).
const ACTIONS: [&str; 3] = ["delete", "edit", "view"];

/// The search scenario's rules, as it states them.
fn search_allows(user: &str, action: &str, record: &str) -> bool {
    let (_, role, department) = USERS.iter().find(|u| u.0 == user).unwrap();
    let (_, record_department, owner) = RECORDS.iter().find(|r| r.0 == record).unwrap();
    let owns = owner == &user;
    let same_department = record_department == department;
    let manager = *role == "manager";
    match action {
        "view" => owns || same_department || manager,
        "edit" => owns || (manager && same_department),
        "delete" => owns,
        other => panic!("no rule for {other}"),
    }
}

/// A whole answer of one page holding all of `results`.
fn one_page(results: &[Value]) -> String {
    json!({"results": results,
           "page": {"next_token": "", "count": results.len(), "total": results.len()}})
    .to_string()
}

#[tokio::test]
async fn search_subject_finds_exactly_who_may_act_on_each_record() {
    let state = serve_pack("authzen-search");
    let mut cases = Vec::new();
    for (record, _, _) in RECORDS {
        for action in ACTIONS {
            let found: Vec<Value> = USERS
                .iter()
                .filter(|(user, _, _)| search_allows(user, action, record))
                .map(|(user, _, _)| json!({"type": "user", "id": user}))
                .collect();
            let body = json!({"subject": {"type": "user"}, "action": {"name": action},
                              "resource": {"type": "record", "id": record}});
            cases.push((body, one_page(&found)));
        }
    }
    // The scenario's own example: who may view record 105.
    assert!(cases.iter().any(|(body, answer)| body["resource"]["id"] == "105"
        && body["action"]["name"] == "view"
        && answer.starts_with(r#"{"results":[{"type":"user","id":"alice"},{"type":"user","id":"bob"},{"type":"user","id":"carol"},{"type":"user","id":"dan"},{"type":"user","id":"erin"}]"#)));
    // An `id` on the searched subject is ignored; an unknown record or
    // action finds nobody.
    cases.push((
        json!({"subject": {"type": "user", "id": "ignored"}, "action": {"name": "delete"},
               "resource": {"type": "record", "id": "101"}}),
        one_page(&[json!({"type": "user", "id": "alice"})]),
    ));
    for (action, record) in [("view", "999"), ("share", "101")] {
        cases.push((
            json!({"subject": {"type": "user"}, "action": {"name": action},
                   "resource": {"type": "record", "id": record}}),
            one_page(&[]),
        ));
    }
    expect_all(&state, "/access/v1/search/subject", &cases).await;
}

#[tokio::test]
async fn search_resource_finds_exactly_the_records_each_user_may_act_on() {
    let state = serve_pack("authzen-search");
    let mut cases = Vec::new();
    for (user, _, _) in USERS {
        for action in ACTIONS {
            let found: Vec<Value> = RECORDS
                .iter()
                .filter(|(record, _, _)| search_allows(user, action, record))
                .map(|(record, _, _)| json!({"type": "record", "id": record}))
                .collect();
            let body = json!({"subject": {"type": "user", "id": user},
                              "action": {"name": action}, "resource": {"type": "record"}});
            cases.push((body, one_page(&found)));
        }
    }
    // The scenario's own example: which records erin may view.
    let erin = cases
        .iter()
        .find(|(body, _)| body["subject"]["id"] == "erin" && body["action"]["name"] == "view")
        .unwrap();
    assert!(erin.1.starts_with(r#"{"results":[{"type":"record","id":"105"},{"type":"record","id":"111"},{"type":"record","id":"115"},{"type":"record","id":"117"}],"#));
    // An unknown user finds nothing.
    cases.push((
        json!({"subject": {"type": "user", "id": "mallory"}, "action": {"name": "view"},
               "resource": {"type": "record"}}),
        one_page(&[]),
    ));
    expect_all(&state, "/access/v1/search/resource", &cases).await;
    // The subject's id is required.
    let body = json!({"subject": {"type": "user"}, "action": {"name": "view"},
                      "resource": {"type": "record"}});
    let (status, got) = post(&state, "/access/v1/search/resource", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
    assert!(
        got.starts_with(r#"{"error":{"status":400,"message":"#),
        "{got}"
    );
}

#[tokio::test]
async fn search_action_finds_exactly_what_each_user_may_do_to_each_record() {
    let state = serve_pack("authzen-search");
    let mut cases = Vec::new();
    for (user, _, _) in USERS {
        for (record, _, _) in RECORDS {
            let found: Vec<Value> = ACTIONS
                .iter()
                .filter(|action| search_allows(user, action, record))
                .map(|action| json!({"name": action}))
                .collect();
            let body = json!({"subject": {"type": "user", "id": user},
                              "resource": {"type": "record", "id": record}});
            cases.push((body, one_page(&found)));
        }
    }
    // Some users may do everything to some record, some nothing at all.
    assert!(cases
        .iter()
        .any(|(_, answer)| answer.contains(r#""count":3"#)));
    assert!(cases
        .iter()
        .any(|(_, answer)| answer.contains(r#""count":0"#)));
    expect_all(&state, "/access/v1/search/action", &cases).await;
}

#[tokio::test]
async fn search_pages_are_the_whole_answer_in_order() {
    let state = serve_pack("authzen-search");
    let path = "/access/v1/search/resource";
    // dan (a manager) may view all twenty records: pages of 7, 7 and 6.
    let expected: Vec<Value> = RECORDS
        .iter()
        .filter(|(record, _, _)| search_allows("dan", "view", record))
        .map(|(record, _, _)| json!({"type": "record", "id": record}))
        .collect();
    assert_eq!(expected.len(), 20);
    let request = |page: Value| {
        json!({"subject": {"type": "user", "id": "dan"}, "action": {"name": "view"},
               "resource": {"type": "record"}, "page": page})
    };
    let mut page = json!({"limit": 7});
    let mut seen = Vec::new();
    let mut counts = Vec::new();
    loop {
        let (status, got) = post(&state, path, &request(page.clone())).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        let got: Value = serde_json::from_str(&got).unwrap();
        let results = got["results"].as_array().unwrap();
        assert_eq!(got["page"]["total"], json!(20), "{got}");
        assert_eq!(got["page"]["count"], json!(results.len()), "{got}");
        counts.push(results.len());
        seen.extend(results.iter().cloned());
        let token = got["page"]["next_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
        assert!(counts.len() < 5, "paging does not end");
        // A token is bound to its request: another user's search refuses it.
        let other = json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "view"},
                           "resource": {"type": "record"}, "page": {"limit": 7, "token": token}});
        let (status, refused) = post(&state, path, &other).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        page = json!({"limit": 7, "token": token});
    }
    assert_eq!(counts, [7, 7, 6]);
    assert_eq!(seen, expected);
}
