//! `cedar-sidecar replay`: decisions logged by the real router, decided
//! again by the real binary against a candidate policy set. The known edit:
//! removing `participants-use-granted-environments` (the policy that turns
//! environment grants in the data, such as the acme-infra group's grant of
//! `acme-staging`, into access) must flip exactly the logged Allows that
//! policy alone determined, and nothing else.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cedar_sidecar::engine::{RequestEntityMode, RequestEntityPolicy};
use cedar_sidecar::http::{router, AppState};
use cedar_sidecar::telemetry::{
    DecisionLog, DecisionLogConfig, DecisionLogSink, RequestEntityLogging,
};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::{repo, shipped, shipped_state};

/// The policy the known edit removes.
pub const GRANT_POLICY: &str = "participants-use-granted-environments";

/// Uids of one type in the demo data.
fn uids(ty: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("demo/entities.json")).unwrap();
    let entities: Vec<Value> = serde_json::from_str(&text).unwrap();
    entities
        .iter()
        .filter(|e| e["uid"]["type"] == ty)
        .map(|e| e["uid"]["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every conforming request of a few actions over the demo data (about
/// 500), plus one for a principal nobody created (a fail-closed deny).
pub fn demo_requests() -> Vec<Value> {
    let request = |p: (&str, &str), action: &str, r: (&str, &str)| {
        json!({
            "principal": {"type": p.0, "id": p.1},
            "action": {"type": "Action", "id": action},
            "resource": {"type": r.0, "id": r.1},
            "context": {},
        })
    };
    let users = uids("User");
    let thunks = uids("Thunk");
    let mut principals: Vec<(&str, &str)> = users.iter().map(|u| ("User", u.as_str())).collect();
    principals.extend(thunks.iter().map(|t| ("Thunk", t.as_str())));
    let mut requests = Vec::new();
    let resources = [
        ("UseEnvironment", "Environment"),
        ("UseModel", "Model"),
        ("UseMcpServer", "McpServer"),
        ("UseOAuthConnection", "OAuthConnection"),
    ];
    for (action, ty) in resources {
        for resource in uids(ty) {
            for principal in &principals {
                requests.push(request(*principal, action, (ty, &resource)));
            }
        }
    }
    for (action, ty) in [
        ("UpdateEnvironment", "Environment"),
        ("RunThunk", "Thunk"),
        ("ReadOrg", "Org"),
    ] {
        for resource in uids(ty) {
            for user in &users {
                requests.push(request(("User", user), action, (ty, &resource)));
            }
        }
    }
    requests.push(request(
        ("User", "nobody"),
        "UseEnvironment",
        ("Environment", "acme-staging"),
    ));
    requests
}

/// Sends `requests` in batches of 100; returns every item's answer.
pub async fn decide_all(app: &axum::Router, requests: &[Value]) -> Vec<Value> {
    let mut answers = Vec::new();
    for batch in requests.chunks(100) {
        let body = json!({ "requests": batch }).to_string();
        let request = Request::builder()
            .method("POST")
            .uri("/v1/is_authorized/batch")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let mut body: Value = serde_json::from_slice(&bytes).unwrap();
        answers.append(body["responses"].as_array_mut().unwrap());
    }
    answers
}

/// Decides `requests` through the router with the decision log on, into
/// `log`; returns the answers. Every record must reach the file.
async fn log_decisions(
    log: &Path,
    requests: &[Value],
    tune: impl FnOnce(&mut DecisionLogConfig, &mut AppState),
) -> Vec<Value> {
    let mut state = AppState::new(shipped_state());
    let mut config = DecisionLogConfig {
        sink: DecisionLogSink::File(log.to_path_buf()),
        ..DecisionLogConfig::default()
    };
    tune(&mut config, &mut state);
    let decision_log = Arc::new(DecisionLog::start(config, state.metrics.clone()).unwrap());
    state.decision_log = decision_log.clone();
    let metrics = state.metrics.clone();
    let answers = decide_all(&router(state), requests).await;
    decision_log.shutdown();
    let decided = answers
        .iter()
        .filter(|a| a.get("decision").is_some())
        .count() as u64;
    assert_eq!(metrics.decision_log_written(), decided);
    assert_eq!(metrics.decision_log_drops(), 0);
    answers
}

/// A copy of the shipped policies with `policy` removed.
pub fn policies_without(policy: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut removed = false;
    for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let marker = format!("@id(\"{policy}\")");
        let text = match text.find(&marker) {
            Some(start) => {
                // The policy runs to the `;` that ends it (its `when` block's).
                let end = start + text[start..].find("};").unwrap() + 2;
                removed = true;
                format!("{}{}", &text[..start], &text[end..])
            }
            None => text,
        };
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    assert!(removed, "{policy} is not in the shipped policies");
    dir
}

fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
        .arg("replay")
        .args(["--schema", "schema", "--entities", "demo/entities.json"])
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn flipped_ids(report: &Value) -> BTreeSet<String> {
    report["flips"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["examples"].as_array().unwrap().iter())
        .map(|example| example["decision_id"].as_str().unwrap().to_string())
        .collect()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn removing_the_grant_policy_flips_exactly_the_allows_it_alone_determined() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.log");
    let requests = demo_requests();
    log_decisions(&log, &requests, |_, _| {}).await;
    let logged = records(&log);
    assert!(logged.len() > 400, "{} records", logged.len());
    let expected: BTreeSet<String> = logged
        .iter()
        .filter(|r| r["decision"] == "Allow" && r["reasons"] == json!([GRANT_POLICY]))
        .map(|r| r["decision_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        expected.len() >= 3,
        "too few decisions depend on the grant: {expected:?}"
    );
    // Some Allows name the policy beside another one: they must not flip.
    let shared = logged
        .iter()
        .filter(|r| {
            let reasons = r["reasons"].as_array().unwrap();
            reasons.len() > 1 && reasons.contains(&json!(GRANT_POLICY))
        })
        .count();

    let candidate = policies_without(GRANT_POLICY);
    let output = replay(&[
        "--decisions",
        path(&log),
        "--policies",
        path(candidate.path()),
        "--format",
        "json",
        "--examples",
        "100000",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(flipped_ids(&report), expected, "shared Allows: {shared}");
    assert_eq!(report["flipped"], json!(expected.len()));
    assert_eq!(report["records"], json!(logged.len()));
    assert_eq!(report["replayed"], json!(logged.len()));
    assert_eq!(report["unchanged"], json!(logged.len() - expected.len()));
    assert_eq!(report["not_replayable"]["total"], json!(0));
    assert_eq!(report["malformed"], json!([]));
    // One group: Allow → Deny on UseEnvironment, was the grant, now nothing.
    let flips = report["flips"].as_array().unwrap();
    assert_eq!(flips.len(), 1, "{flips:#?}");
    assert_eq!(flips[0]["action"], r#"Action::"UseEnvironment""#);
    assert_eq!(flips[0]["from"], "Allow");
    assert_eq!(flips[0]["to"], "Deny");
    assert_eq!(flips[0]["was"], json!([GRANT_POLICY]));
    assert_eq!(flips[0]["now"], json!([]));
    assert_eq!(flips[0]["count"], json!(expected.len()));

    // The same edit with the reviewer's consent exits 0 and reports the same.
    let allowed = replay(&[
        "--decisions",
        path(&log),
        "--policies",
        path(candidate.path()),
        "--allow-flips",
    ]);
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed));
    let human = String::from_utf8_lossy(&allowed.stdout);
    assert!(
        human.contains(&format!("flipped: {}", expected.len())),
        "{human}"
    );
    assert!(
        human.contains(&format!(
            "{} × Action::\"UseEnvironment\": Allow → Deny",
            expected.len()
        )),
        "{human}"
    );

    // The unchanged pack flips nothing: exit 0.
    let same = replay(&[
        "--decisions",
        path(&log),
        "--policies",
        "policies",
        "--format",
        "json",
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    let report: Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(report["flipped"], json!(0));
    assert_eq!(report["unchanged"], json!(logged.len()));
    assert_eq!(report["reasons_changed"], json!(0));
}

#[tokio::test]
async fn junit_has_one_failing_case_per_flip_group() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.log");
    log_decisions(&log, &demo_requests(), |_, _| {}).await;
    let candidate = policies_without(GRANT_POLICY);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--decisions",
            path(&log),
            "--policies",
            path(candidate.path()),
            "--format",
            "junit",
        ];
        args.extend_from_slice(extra);
        replay(&args)
    };
    let output = run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let xml = String::from_utf8(output.stdout).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("failures"), Some("1"));
    assert_eq!(suite.attribute("tests"), Some("2"));
    let failing: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter(|n| n.children().any(|c| c.has_tag_name("failure")))
        .collect();
    assert_eq!(failing.len(), 1);
    assert_eq!(
        failing[0].attribute("name"),
        Some(r#"Action::"UseEnvironment": Allow → Deny"#)
    );
    let failure = failing[0]
        .children()
        .find(|c| c.has_tag_name("failure"))
        .unwrap();
    assert!(failure.text().unwrap().contains(GRANT_POLICY));

    let accepted = run(&["--allow-flips"]);
    assert_eq!(accepted.status.code(), Some(0));
    let xml = String::from_utf8(accepted.stdout).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert!(
        !doc.descendants().any(|n| n.has_tag_name("failure")),
        "{xml}"
    );
}

#[tokio::test]
async fn malformed_lines_are_reported_with_their_place_and_masked_records_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.log");
    // AddMember's context names a target user; the mask makes the record
    // unreplayable (it no longer holds what was decided).
    let masked = json!({
        "principal": "User::\"olivia\"",
        "action": "Action::\"AddMember\"",
        "resource": "Org::\"acme\"",
        "context": {"target": {"type": "User", "id": "paula"}},
    });
    let plain = json!({
        "principal": "User::\"paula\"",
        "action": "Action::\"UseEnvironment\"",
        "resource": "Environment::\"acme-prod\"",
    });
    log_decisions(&log, &[plain.clone(), masked, plain], |config, _| {
        config.mask_keys = vec!["target".to_string()];
    })
    .await;
    let mut lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[1].contains("\"masked\":true"), "{}", lines[1]);
    // Line 4: not JSON; line 5: a torn record; line 6: a bad uid.
    lines.push("hello".to_string());
    lines.push(lines[0][..30].to_string());
    lines.push(lines[0].replace(r#""principal":"User::\"paula\"""#, r#""principal":"paula""#));
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();

    let output = replay(&["--decisions", path(&log), "--policies", "policies"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let shown = text(&output);
    let name = log.display().to_string();
    for place in [
        format!("{name}:4:1: not a decision record"),
        format!("{name}:5:30: not a decision record"),
        format!("{name}:6:"),
        format!("{name}:2: masked"),
        "not replayable: 1 (masked: 1)".to_string(),
        "malformed lines: 3".to_string(),
        "error: 3 lines are not decision records".to_string(),
    ] {
        assert!(shown.contains(&place), "`{place}` not in:\n{shown}");
    }

    let output = replay(&[
        "--decisions",
        path(&log),
        "--policies",
        "policies",
        "--allow-malformed",
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let malformed: Vec<(u64, u64)> = report["malformed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["line"].as_u64().unwrap(), m["column"].as_u64().unwrap()))
        .collect();
    assert_eq!(malformed.len(), 3);
    assert_eq!(malformed[0], (4, 1));
    assert_eq!(malformed[1], (5, 30));
    assert_eq!(malformed[2].0, 6);
    assert!(report["malformed"][2]["message"]
        .as_str()
        .unwrap()
        .contains("`principal`"));
    assert_eq!(report["records"], json!(6));
    assert_eq!(report["replayed"], json!(2));
    assert_eq!(report["not_replayable"]["by_cause"], json!({"masked": 1}));
}

#[tokio::test]
async fn request_entities_replay_only_when_logged_in_full() {
    // A request carrying a new group (allowed by `new-only`): logged as a
    // digest by default, in full with `request_entities = "full"`.
    let request = json!({
        "principal": "User::\"paula\"",
        "action": "Action::\"UseEnvironment\"",
        "resource": "Environment::\"acme-prod\"",
        "entities": [{"uid": {"type": "Group", "id": "visitors"}, "attrs": {"name": "Visitors", "org": {"type": "Org", "id": "acme"}}, "parents": []}],
    });
    let trust = |state: &mut AppState| {
        state.request_entities = Arc::new(RequestEntityPolicy {
            mode: RequestEntityMode::NewOnly,
            types: vec!["Group".parse().unwrap()],
            max: 10,
        });
    };
    let dir = tempfile::tempdir().unwrap();
    let digest_log = dir.path().join("digest.log");
    let full_log = dir.path().join("full.log");
    let masked_log = dir.path().join("masked.log");
    log_decisions(&digest_log, std::slice::from_ref(&request), |_, state| {
        trust(state);
    })
    .await;
    log_decisions(
        &full_log,
        std::slice::from_ref(&request),
        |config, state| {
            config.request_entities = RequestEntityLogging::Full;
            trust(state);
        },
    )
    .await;
    log_decisions(
        &masked_log,
        std::slice::from_ref(&request),
        |config, state| {
            config.request_entities = RequestEntityLogging::Full;
            config.mask_keys = vec!["name".to_string()];
            trust(state);
        },
    )
    .await;
    let full = records(&full_log);
    assert_eq!(
        full[0]["request_entities"][0]["entity"]["attrs"]["name"],
        "Visitors"
    );
    assert_eq!(full[0]["request_entities_mode"], "new-only");
    let masked = records(&masked_log);
    assert_eq!(
        masked[0]["request_entities"][0]["entity"]["attrs"]["name"],
        "[masked]"
    );
    assert_eq!(masked[0]["masked"], true);
    assert!(records(&digest_log)[0]["request_entities"][0]
        .get("entity")
        .is_none());

    let report = |log: &PathBuf| -> Value {
        let output = replay(&[
            "--decisions",
            path(log),
            "--policies",
            "policies",
            "--format",
            "json",
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let digest = report(&digest_log);
    assert_eq!(
        digest["not_replayable"]["by_cause"],
        json!({"request_entities_not_logged": 1})
    );
    assert_eq!(digest["replayed"], json!(0));
    let full = report(&full_log);
    assert_eq!(full["replayed"], json!(1));
    assert_eq!(full["unchanged"], json!(1));
    assert_eq!(full["reasons_changed"], json!(0));
    let masked = report(&masked_log);
    assert_eq!(masked["not_replayable"]["by_cause"], json!({"masked": 1}));
}

/// The candidate decides each request as `decide` does: the expected
/// disagreement count for the shadow test.
pub fn disagreements_expected(candidate: &Path, requests: &[Value]) -> usize {
    use cedar_sidecar::engine::{decide, PackSources, PolicyPack};
    use cedar_sidecar::http::AuthorizeRequest;
    let served = shipped();
    let pack = PolicyPack::load(&PackSources {
        policies: candidate.to_path_buf(),
        schema: repo().join("schema"),
    })
    .unwrap();
    let trust = RequestEntityPolicy::default();
    requests
        .iter()
        .filter(|raw| {
            let wire: AuthorizeRequest = serde_json::from_value((*raw).clone()).unwrap();
            let request = wire.into_decision_request(&served.pack.type_names).unwrap();
            let old = decide(&served.pack, &served.entities, &request, &trust).unwrap();
            let new = decide(&pack, &served.entities, &request, &trust).unwrap();
            old.verdict != new.verdict
        })
        .count()
}
