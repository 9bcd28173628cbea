//! Caller trust over a real socket: entities sent with a request never
//! widen what stored data and policies grant unless the operator opted in;
//! caller tokens guard the decision API; readiness knows an emptied store.

use serde_json::{json, Value};

use crate::loopback::Sidecar;

/// One forged-entity attack on the shipped model: a request that is denied
/// on stored data, and the entities that would turn it into an Allow if
/// they were believed.
struct Attack {
    name: &'static str,
    request: Value,
    entities: Value,
}

fn attacks() -> Vec<Attack> {
    let acme_owned_by_adam = json!({
        "uid": {"type": "Org", "id": "acme"},
        "attrs": {"name": "Acme Corp", "sku": "enterprise",
                  "owner": {"type": "User", "id": "adam"},
                  "admins": {"type": "OrgAdmins", "id": "acme"}},
        "parents": []});
    let pete_the_platform_admin = json!({
        "uid": {"type": "User", "id": "pete"}, "attrs": {},
        "parents": [{"type": "PlatformAdmins", "id": "thunk"}]});
    vec![
        Attack {
            name: "a stored user joins the platform admins",
            request: json!({"principal": "User::\"pete\"", "action": "Action::\"CreateOrg\"", "resource": "Platform::\"thunk\""}),
            entities: json!([pete_the_platform_admin]),
        },
        Attack {
            name: "an admin rewrites the org's owner to remove the real one",
            request: json!({"principal": "User::\"adam\"", "action": "Action::\"RemoveMember\"", "resource": "Org::\"acme\"",
                            "context": {"target": {"type": "User", "id": "olivia"}}}),
            entities: json!([acme_owned_by_adam]),
        },
        Attack {
            name: "an unknown principal defines itself as a platform admin",
            request: json!({"principal": "User::\"ghost\"", "action": "Action::\"CreateOrg\"", "resource": "Platform::\"thunk\""}),
            entities: json!([{"uid": {"type": "User", "id": "ghost"}, "attrs": {},
                              "parents": [{"type": "PlatformAdmins", "id": "thunk"}]}]),
        },
        Attack {
            name: "the same uid twice, the forged one last",
            request: json!({"principal": "User::\"pete\"", "action": "Action::\"CreateOrg\"", "resource": "Platform::\"thunk\""}),
            entities: json!([{"uid": {"type": "User", "id": "pete"}, "attrs": {}, "parents": []}, pete_the_platform_admin]),
        },
    ]
}

fn with_entities(request: &Value, entities: &Value) -> String {
    let mut request = request.clone();
    request["entities"] = entities.clone();
    request.to_string()
}

/// The decision (or the error code) for each attack, alone and as a
/// batch item; the same request without entities must be denied first.
fn outcomes(sidecar: &Sidecar) -> Vec<(String, String, String)> {
    attacks()
        .into_iter()
        .map(|attack| {
            let (status, plain) = sidecar.send(
                "POST",
                "/v1/is_authorized",
                &attack.request.to_string(),
                &[],
            );
            assert_eq!(
                (status, plain["decision"].as_str()),
                (200, Some("Deny")),
                "{}",
                attack.name
            );
            let body = with_entities(&attack.request, &attack.entities);
            let (status, single) = sidecar.send("POST", "/v1/is_authorized", &body, &[]);
            let single = match status {
                200 => single["decision"].as_str().unwrap().to_string(),
                _ => format!("{status} {}", single["code"].as_str().unwrap()),
            };
            let batch = format!(r#"{{"requests": [{body}]}}"#);
            let (status, answer) = sidecar.send("POST", "/v1/is_authorized/batch", &batch, &[]);
            assert_eq!(status, 200, "{answer}");
            let item = &answer["responses"][0];
            let batched = item["decision"].as_str().map_or_else(
                || item["error"]["code"].as_str().unwrap().to_string(),
                str::to_string,
            );
            (attack.name.to_string(), single, batched)
        })
        .collect()
}

fn expect(sidecar: &Sidecar, expected: &[(&str, &str)]) {
    let got = outcomes(sidecar);
    for ((name, single, batched), (want_single, want_batched)) in got.iter().zip(expected) {
        assert_eq!(
            (single.as_str(), batched.as_str()),
            (*want_single, *want_batched),
            "{name}"
        );
    }
}

#[test]
fn off_by_default_refuses_every_forged_entity() {
    let mut sidecar = Sidecar::start(&[], &[]);
    let disabled = ("400 request_entities_disabled", "request_entities_disabled");
    expect(&sidecar, &[disabled, disabled, disabled, disabled]);
    // The message names the setting to change.
    let attack = &attacks()[0];
    let (_, body) = sidecar.send(
        "POST",
        "/v1/is_authorized",
        &with_entities(&attack.request, &attack.entities),
        &[],
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--request-entities"),
        "{body}"
    );
    // An empty list carries nothing and is not refused.
    let (status, body) = sidecar.send(
        "POST",
        "/v1/is_authorized",
        &with_entities(&attack.request, &json!([])),
        &[],
    );
    assert_eq!((status, body["decision"].as_str()), (200, Some("Deny")));
    // Each refusal is counted by code, and logged at WARN (rate-limited).
    let (_, metrics) = crate::loopback::http(sidecar.address, "GET", "/metrics", "", &[]);
    let refused: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"cedar_request_entities_refused_total{code="request_entities_disabled"} "#,
            )
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(refused, 9, "{metrics}");
    let stderr = sidecar.stderr();
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("request entities refused"))
        .count();
    assert!((1..9).contains(&warnings), "{warnings} lines:\n{stderr}");
}

#[test]
fn new_only_admits_new_entities_of_listed_types_and_nothing_else() {
    let sidecar = Sidecar::start(
        &[
            "--request-entities",
            "new-only",
            "--request-entity-types",
            "User,Thunk",
        ],
        &[],
    );
    expect(
        &sidecar,
        &[
            ("400 request_entity_conflict", "request_entity_conflict"),
            (
                "400 request_entity_not_allowed",
                "request_entity_not_allowed",
            ),
            (
                "400 request_entity_not_allowed",
                "request_entity_not_allowed",
            ),
            ("400 duplicate_request_entity", "duplicate_request_entity"),
        ],
    );
    // What the mode is for: the application describes a thunk it has not
    // stored yet; the decision still rests on stored grants.
    let thunk = |environment: &str| {
        json!([{"uid": {"type": "Thunk", "id": "paula-new"}, "attrs": {
            "owner": {"type": "User", "id": "paula"},
            "environment": {"type": "Environment", "id": environment}}, "parents": []}])
    };
    let run = json!({"principal": "User::\"paula\"", "action": "Action::\"RunThunk\"", "resource": "Thunk::\"paula-new\""});
    for (environment, decision) in [("acme-prod", "Allow"), ("globex-prod", "Deny")] {
        let (status, body) = sidecar.send(
            "POST",
            "/v1/is_authorized",
            &with_entities(&run, &thunk(environment)),
            &[],
        );
        assert_eq!(
            (status, body["decision"].as_str()),
            (200, Some(decision)),
            "{environment}: {body}"
        );
    }
    // An entity that breaks the schema is still reported as such.
    let broken =
        json!([{"uid": {"type": "User", "id": "newcomer"}, "attrs": {"name": 7}, "parents": []}]);
    let (status, body) = sidecar.send(
        "POST",
        "/v1/is_authorized",
        &with_entities(&run, &broken),
        &[],
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_entity")),
        "{body}"
    );
}

#[test]
fn the_decision_log_names_the_request_entities_a_decision_used() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.log");
    let sidecar = Sidecar::start(
        &[
            "--request-entities",
            "new-only",
            "--request-entity-types",
            "Thunk",
            "--decision-log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    let thunk = json!({"uid": {"type": "Thunk", "id": "paula-new"}, "attrs": {
        "owner": {"type": "User", "id": "paula"},
        "environment": {"type": "Environment", "id": "acme-prod"}}, "parents": []});
    let run = json!({"principal": "User::\"paula\"", "action": "Action::\"RunThunk\"", "resource": "Thunk::\"paula-new\""});
    let (_, with) = sidecar.send(
        "POST",
        "/v1/is_authorized",
        &with_entities(&run, &json!([thunk])),
        &[],
    );
    let plain = json!({"principal": "User::\"paula\"", "action": "Action::\"RunThunk\"", "resource": "Thunk::\"paula-report\""});
    let (_, without) = sidecar.send("POST", "/v1/is_authorized", &plain.to_string(), &[]);
    let records = wait_for_records(&log, 2);
    let find = |id: &Value| {
        records
            .iter()
            .find(|r| r["decision_id"] == *id)
            .cloned()
            .unwrap()
    };
    let logged = find(&with["decision_id"]);
    assert_eq!(logged["decision"], "Allow");
    let entities = logged["request_entities"].as_array().unwrap();
    assert_eq!(entities.len(), 1, "{logged}");
    assert_eq!(entities[0]["uid"], "Thunk::\"paula-new\"");
    let digest = entities[0]["sha256"].as_str().unwrap();
    assert_eq!(digest.len(), 64);
    // The digest is of the entity's content: another content, another digest.
    let mut other = thunk.clone();
    other["attrs"]["name"] = json!("renamed");
    let (_, again) = sidecar.send(
        "POST",
        "/v1/is_authorized",
        &with_entities(&run, &json!([other])),
        &[],
    );
    let records = wait_for_records(&log, 3);
    let second = records
        .iter()
        .find(|r| r["decision_id"] == again["decision_id"])
        .unwrap();
    assert_ne!(
        second["request_entities"][0]["sha256"].as_str().unwrap(),
        digest
    );
    assert!(find(&without["decision_id"])
        .get("request_entities")
        .is_none());
}

/// The decision log's records once there are at least `count`.
fn wait_for_records(path: &std::path::Path, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let records: Vec<Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        if records.len() >= count || std::time::Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn override_is_an_explicit_opt_in_to_trusting_callers() {
    let mut sidecar = Sidecar::start(&["--request-entities", "override"], &[]);
    expect(
        &sidecar,
        &[
            ("Allow", "Allow"),
            ("Allow", "Allow"),
            ("Allow", "Allow"),
            ("400 duplicate_request_entity", "duplicate_request_entity"),
        ],
    );
    assert!(sidecar
        .stderr()
        .contains("request_entities.mode = \"override\""));
}

#[test]
fn request_entities_are_bounded_per_request_and_per_batch() {
    let sidecar = Sidecar::start(
        &[
            "--request-entities",
            "new-only",
            "--request-entity-types",
            "Thunk",
        ],
        &[("CEDAR_SIDECAR_REQUEST_ENTITIES_MAX", "3")],
    );
    let thunks = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| {
                    json!({"uid": {"type": "Thunk", "id": format!("t{i}")}, "attrs": {
                    "owner": {"type": "User", "id": "paula"},
                    "environment": {"type": "Environment", "id": "acme-prod"}}, "parents": []})
                })
                .collect(),
        )
    };
    let run = json!({"principal": "User::\"paula\"", "action": "Action::\"RunThunk\"", "resource": "Thunk::\"t0\""});
    let (status, body) = sidecar.send(
        "POST",
        "/v1/is_authorized",
        &with_entities(&run, &thunks(3)),
        &[],
    );
    assert_eq!(
        (status, body["decision"].as_str()),
        (200, Some("Allow")),
        "{body}"
    );
    let (status, body) = sidecar.send(
        "POST",
        "/v1/is_authorized",
        &with_entities(&run, &thunks(4)),
        &[],
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("too_many_request_entities")),
        "{body}"
    );
    // Two items of two entities each: four in one batch, over the bound.
    let item = with_entities(&run, &thunks(2));
    let (status, body) = sidecar.send(
        "POST",
        "/v1/is_authorized/batch",
        &format!(r#"{{"requests": [{item}, {item}]}}"#),
        &[],
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("too_many_request_entities")),
        "{body}"
    );
    let (status, body) = sidecar.send(
        "POST",
        "/v1/is_authorized/batch",
        &format!(r#"{{"requests": [{item}, {run}]}}"#),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["responses"][0]["decision"], "Allow");
    assert_eq!(
        body["responses"][1]["decision"], "Deny",
        "t0 is not stored: {body}"
    );
    // serde would take a struct's fields as an array too; the bound would
    // not see its entities. Bodies and items are objects.
    let array = json!([
        "User::\"paula\"",
        "Action::\"RunThunk\"",
        "Thunk::\"t0\"",
        null,
        thunks(3)
    ]);
    let (status, body) = sidecar.send("POST", "/v1/is_authorized", &array.to_string(), &[]);
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let (status, body) = sidecar.send(
        "POST",
        "/v1/is_authorized/batch",
        &format!(r#"{{"requests": [{array}, {array}]}}"#),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    for item in body["responses"].as_array().unwrap() {
        assert_eq!(item["error"]["code"], "invalid_request", "{body}");
    }
}

#[test]
fn settings_that_cannot_work_stop_start_up() {
    for (args, message) in [
        (vec!["--request-entities", "sometimes"], "sometimes"),
        (
            vec!["--request-entities", "new-only"],
            "request_entities.types",
        ),
        (
            vec![
                "--request-entities",
                "new-only",
                "--request-entity-types",
                "Thnuk",
            ],
            "Thnuk",
        ),
        (vec!["--request-entities-max", "0"], "request_entities.max"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
            .current_dir(crate::support::repo())
            .arg("serve")
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn caller_tokens_guard_the_decision_api_but_not_the_probes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callers");
    let first = "a-first-caller-token-of-32-bytes-or-more";
    let second = "a-second-caller-token-of-32-bytes-or-more";
    std::fs::write(&file, format!("# gateway\n{first}\n\n{second}\n")).unwrap();
    let sidecar = Sidecar::start(&["--caller-tokens-file", file.to_str().unwrap()], &[]);
    let request = r#"{"principal": "User::\"paula\"", "action": "Action::\"UseModel\"", "resource": "Model::\"acme-prod-gpt4o\""}"#;
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "Basic YTpi")],
        vec![(
            "Authorization",
            "Bearer a-first-caller-token-of-32-bytes-or-mor",
        )],
    ] {
        let (status, body) = sidecar.send("POST", "/v1/is_authorized", request, &headers);
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthorized")),
            "{headers:?}"
        );
        let (status, _) = sidecar.send("GET", "/v1/status", "", &headers);
        assert_eq!(status, 401);
    }
    for token in [
        format!("Bearer {first}"),
        format!("bearer  {second} "),
        format!("BEARER {first}"),
    ] {
        let (status, body) = sidecar.send(
            "POST",
            "/v1/is_authorized",
            request,
            &[("Authorization", &token)],
        );
        assert_eq!(
            (status, body["decision"].as_str()),
            (200, Some("Allow")),
            "{token}"
        );
    }
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(sidecar.send("GET", probe, "", &[]).0, 200, "{probe}");
    }
}

#[test]
fn readiness_fails_below_min_entities() {
    let sidecar = Sidecar::start(&["--min-entities", "100000"], &[]);
    let (status, body) = sidecar.send("GET", "/readyz", "", &[]);
    assert_eq!(status, 503, "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("min_entities"),
        "{body}"
    );
    let (_, status) = sidecar.send("GET", "/v1/status", "", &[]);
    assert_eq!(status["entities"]["below_minimum"], true);
    let (_, metrics) = crate::loopback::http(sidecar.address, "GET", "/metrics", "", &[]);
    assert!(
        metrics.contains("cedar_entities_minimum 100000"),
        "{metrics}"
    );
    let enough = Sidecar::start(&["--min-entities", "10"], &[]);
    assert_eq!(enough.send("GET", "/readyz", "", &[]).0, 200);
}

#[test]
fn the_admin_token_is_trimmed_short_ones_warned_and_failures_logged_once_a_second() {
    let mut sidecar = Sidecar::start(
        &[],
        &[("CEDAR_SIDECAR_ADMIN_TOKEN", "  short-admin-token\n")],
    );
    for _ in 0..20 {
        let (status, _) = sidecar.send(
            "POST",
            "/v1/admin/reload",
            "",
            &[("Authorization", "Bearer nope")],
        );
        assert_eq!(status, 401);
    }
    let (status, body) = sidecar.send(
        "POST",
        "/v1/admin/reload",
        "",
        &[("Authorization", "bearer short-admin-token")],
    );
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("reloaded")),
        "{body}"
    );
    let stderr = sidecar.stderr();
    assert!(
        stderr.contains("admin token shorter than 32 bytes"),
        "{stderr}"
    );
    let failures = stderr
        .lines()
        .filter(|l| l.contains("admin endpoint called without a valid admin token"))
        .count();
    assert!(
        (1..20).contains(&failures),
        "{failures} lines for 20 failures:\n{stderr}"
    );
}

/// The ways `new-only` was found to widen grants, each refused now: joining
/// a stored group whose type is listed, describing one's own principal, and
/// filling in a dangling reference of stored data.
#[test]
fn new_only_keeps_request_entities_out_of_stored_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut entities: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(crate::support::repo().join("demo/entities.json")).unwrap(),
    )
    .unwrap();
    // A thunk whose environment was deleted: stored data with a dangling reference.
    entities.push(json!({"uid": {"type": "Thunk", "id": "orphan"}, "attrs": {
        "owner": {"type": "User", "id": "pete"},
        "environment": {"type": "Environment", "id": "deleted-env"}}, "parents": []}));
    // A member of acme still in a group that was deleted.
    entities.push(
        json!({"uid": {"type": "User", "id": "drifter"}, "attrs": {},
        "parents": [{"type": "Org", "id": "acme"}, {"type": "Group", "id": "gone"}]}),
    );
    let file = dir.path().join("entities.json");
    std::fs::write(&file, Value::Array(entities).to_string()).unwrap();
    let sidecar = Sidecar::start(
        &[
            "--entities",
            file.to_str().unwrap(),
            "--request-entities",
            "new-only",
            "--request-entity-types",
            "User,Group,Org,Thunk,Environment",
        ],
        &[],
    );
    let refused = |body: &Value, entities: Value, code: &str| {
        let (status, answer) = sidecar.send(
            "POST",
            "/v1/is_authorized",
            &with_entities(body, &entities),
            &[],
        );
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{answer}"
        );
    };
    let denied = |body: &Value, entities: Value| {
        let (status, answer) = sidecar.send(
            "POST",
            "/v1/is_authorized",
            &with_entities(body, &entities),
            &[],
        );
        assert_eq!(
            (status, answer["decision"].as_str()),
            (200, Some("Deny")),
            "{answer}"
        );
    };
    // A new user naming a stored org and group (their types listed) as parents.
    let joins = json!([{"uid": {"type": "User", "id": "ghost"}, "attrs": {},
        "parents": [{"type": "Org", "id": "acme"}, {"type": "Group", "id": "acme-infra"}]}]);
    let use_staging = json!({"principal": "User::\"pete\"", "action": "Action::\"UseEnvironment\"", "resource": "Environment::\"acme-staging\""});
    refused(&use_staging, joins.clone(), "request_entity_not_allowed");
    // ... or as the principal itself.
    let as_ghost = json!({"principal": "User::\"ghost\"", "action": "Action::\"UseEnvironment\"", "resource": "Environment::\"acme-staging\""});
    refused(&as_ghost, joins, "request_entity_not_allowed");
    // A thunk invented as the principal, in an environment of its choosing.
    let evil = json!([{"uid": {"type": "Thunk", "id": "evil"}, "attrs": {
        "owner": {"type": "User", "id": "gina"},
        "environment": {"type": "Environment", "id": "globex-prod"}}, "parents": []}]);
    let evil_uses = json!({"principal": {"type": "Thunk", "id": "evil"}, "action": "Action::\"UseEnvironment\"", "resource": "Environment::\"globex-prod\""});
    refused(&evil_uses, evil, "request_entity_not_allowed");
    // The orphan's missing environment, supplied by the caller, named by the context too.
    let mine = json!([{"uid": {"type": "Environment", "id": "deleted-env"}, "attrs": {
        "owner": {"type": "User", "id": "pete"}}, "parents": []}]);
    let edit = json!({"principal": "User::\"pete\"", "action": "Action::\"EditThunk\"", "resource": "Thunk::\"orphan\""});
    denied(&edit, mine.clone());
    let moves = json!({"principal": "User::\"pete\"", "action": "Action::\"MoveThunk\"", "resource": "Thunk::\"orphan\"",
        "context": {"targetEnvironment": {"type": "Environment", "id": "deleted-env"}}});
    denied(&moves, mine);
    let acme_env = json!([{"uid": {"type": "Environment", "id": "deleted-env"}, "attrs": {
        "org": {"type": "Org", "id": "acme"}}, "parents": []}]);
    let adam_edits = json!({"principal": "User::\"adam\"", "action": "Action::\"EditThunk\"", "resource": "Thunk::\"orphan\""});
    denied(&adam_edits, acme_env);
    // The deleted group, described with a grant of a new environment: the
    // stored member's ancestry is stored data's alone.
    let regrown = json!([
        {"uid": {"type": "Group", "id": "gone"}, "attrs": {"org": {"type": "Org", "id": "acme"}},
         "parents": [{"type": "Environment", "id": "new-env"}]},
        {"uid": {"type": "Environment", "id": "new-env"}, "attrs": {"org": {"type": "Org", "id": "acme"}}, "parents": []}]);
    let drifter_uses = json!({"principal": "User::\"drifter\"", "action": "Action::\"UseEnvironment\"", "resource": "Environment::\"new-env\""});
    denied(&drifter_uses, regrown);
}
