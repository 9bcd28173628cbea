//! Data-driven engine tests: every folder under `tests/fixtures/engine/`
//! holds a pack, entities and `requests.json` with expected decisions.

use cedar_sidecar::engine::{
    decide, DecisionRequest, RequestEntityMode, RequestEntityPolicy, Verdict,
};
use cedar_sidecar::http::WireUid;
use serde::Deserialize;

use crate::support::{fixture, load_fixture};

#[derive(Deserialize)]
struct Case {
    name: String,
    principal: WireUid,
    action: WireUid,
    resource: WireUid,
    #[serde(default)]
    context: Option<serde_json::Value>,
    #[serde(default)]
    entities: Vec<serde_json::Value>,
    decision: String,
    reason: Vec<String>,
    #[serde(default)]
    errors: usize,
}

/// The fixtures' request entities stand in for stored data, as a caller the
/// operator trusts with `override` would send them.
fn trusted() -> RequestEntityPolicy {
    RequestEntityPolicy {
        mode: RequestEntityMode::Override,
        ..RequestEntityPolicy::default()
    }
}

#[test]
fn engine_fixtures_decide_as_expected() {
    let root = fixture("engine");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 4, "fixtures missing under {}", root.display());
    let mut failures = Vec::new();
    let mut count = 0;
    for dir in dirs {
        let snapshot = load_fixture(&dir);
        let text = std::fs::read_to_string(dir.join("requests.json")).unwrap();
        let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
        for case in cases {
            count += 1;
            let request = DecisionRequest {
                principal: case.principal.to_uid("principal").unwrap(),
                action: case.action.to_uid("action").unwrap(),
                resource: case.resource.to_uid("resource").unwrap(),
                context: case.context,
                entities: case.entities,
            };
            let decision = decide(&snapshot.pack, &snapshot.entities, &request, &trusted())
                .unwrap_or_else(|e| panic!("{}: {}: rejected: {e}", dir.display(), case.name));
            let verdict = match decision.verdict {
                Verdict::Allow => "Allow",
                Verdict::Deny => "Deny",
            };
            if verdict != case.decision
                || decision.reasons != case.reason
                || decision.errors.len() != case.errors
            {
                failures.push(format!(
                    "{} / {}: expected {} {:?} with {} errors, got {verdict} {:?} with errors {:?}",
                    dir.file_name().unwrap().to_string_lossy(),
                    case.name,
                    case.decision,
                    case.reason,
                    case.errors,
                    decision.reasons,
                    decision.errors
                ));
            }
        }
    }
    assert!(count >= 20, "only {count} cases ran");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn schema_violations_are_request_errors_not_denies() {
    let snapshot = load_fixture(&fixture("engine/basic"));
    let base = DecisionRequest {
        principal: r#"User::"alice""#.parse().unwrap(),
        action: r#"Action::"view""#.parse().unwrap(),
        resource: r#"Doc::"faq""#.parse().unwrap(),
        context: None,
        entities: Vec::new(),
    };
    let cases = [
        (
            DecisionRequest {
                action: r#"Action::"delete""#.parse().unwrap(),
                ..base.clone()
            },
            "unknown action",
        ),
        (
            DecisionRequest {
                principal: r#"Doc::"faq""#.parse().unwrap(),
                ..base.clone()
            },
            "principal type",
        ),
        (
            DecisionRequest {
                context: Some(serde_json::json!({"unexpected": 1})),
                ..base.clone()
            },
            "context",
        ),
        (
            DecisionRequest {
                entities: vec![
                    serde_json::json!({"uid": {"type": "User", "id": "z"}, "attrs": {"active": "yes"}, "parents": []}),
                ],
                ..base.clone()
            },
            "attribute",
        ),
    ];
    for (request, expected) in cases {
        let error = decide(&snapshot.pack, &snapshot.entities, &request, &trusted())
            .expect_err("must be rejected")
            .to_string();
        assert!(
            error.contains(expected),
            "`{error}` should mention `{expected}`"
        );
    }
}

#[test]
fn action_groups_from_the_schema_apply() {
    // Forgetting the schema's action entities would turn this Allow into a Deny.
    let snapshot = crate::support::shipped();
    let request = DecisionRequest {
        principal: r#"User::"ana""#.parse().unwrap(),
        action: r#"Action::"CreateOrg""#.parse().unwrap(),
        resource: r#"Platform::"thunk""#.parse().unwrap(),
        context: None,
        entities: Vec::new(),
    };
    let decision = decide(&snapshot.pack, &snapshot.entities, &request, &trusted()).unwrap();
    assert_eq!(decision.verdict, Verdict::Allow, "{decision:?}");
}

#[test]
fn slice_depth_is_the_validated_dereference_level() {
    // The deep-hierarchy pack reads `resource.folder.org` (level 2).
    let snapshot = load_fixture(&fixture("engine/deep-hierarchy"));
    assert_eq!(snapshot.pack.slice_limits.depth, Some(2));
    let snapshot = load_fixture(&fixture("engine/basic"));
    assert_eq!(snapshot.pack.slice_limits.depth, Some(1));
}

/// Under `new-only`, a request may not describe an entity a template link
/// names (as it may not describe one a policy names): `Folder::"drafts"`
/// is not stored, and a link grants bob the docs in it.
#[test]
fn a_request_may_not_describe_what_a_link_names() {
    let snapshot = load_fixture(&fixture("engine").join("template-literals"));
    let new_only = RequestEntityPolicy {
        mode: RequestEntityMode::NewOnly,
        types: vec!["Folder".parse().unwrap(), "Doc".parse().unwrap()],
        ..RequestEntityPolicy::default()
    };
    let request = |entities: serde_json::Value| DecisionRequest {
        principal: r#"User::"bob""#.parse().unwrap(),
        action: r#"Action::"read""#.parse().unwrap(),
        resource: r#"Doc::"x""#.parse().unwrap(),
        context: Some(serde_json::json!({"n": 1})),
        entities: serde_json::from_value(entities).unwrap(),
    };
    let drafts = serde_json::json!([
        {"uid": {"type": "Folder", "id": "drafts"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Doc", "id": "x"}, "attrs": {"owner": {"type": "User", "id": "bob"}},
         "parents": [{"type": "Folder", "id": "drafts"}]}
    ]);
    let error = decide(
        &snapshot.pack,
        &snapshot.entities,
        &request(drafts),
        &new_only,
    )
    .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains(r#"`Folder::"drafts"` is named by a policy or a template link"#),
        "{error}"
    );
    // A folder no link names may be described (and grants nothing).
    let other = serde_json::json!([
        {"uid": {"type": "Folder", "id": "mine"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Doc", "id": "x"}, "attrs": {"owner": {"type": "User", "id": "bob"}},
         "parents": [{"type": "Folder", "id": "mine"}]}
    ]);
    let decision = decide(
        &snapshot.pack,
        &snapshot.entities,
        &request(other),
        &new_only,
    )
    .unwrap();
    assert_eq!(decision.verdict, Verdict::Deny);
}

/// Search sees template links stored as data: a folder granted by a link
/// is found (the partial evaluation leaves links out, so search confirms
/// every entity of the type), and equals deciding every candidate.
#[test]
fn search_finds_what_links_grant() {
    use cedar_sidecar::engine::{search, search_every_candidate, SearchRequest, Searched};
    let snapshot = load_fixture(&fixture("engine").join("templates"));
    let request = SearchRequest {
        principal: Some(r#"User::"bob""#.parse().unwrap()),
        action: Some(r#"Action::"read""#.parse().unwrap()),
        resource: None,
        context: Some(serde_json::json!({"n": 1})),
    };
    let searched = Searched::Resources("Doc".parse().unwrap());
    let found = search(&snapshot.pack, &snapshot.entities, &request, &searched);
    let expected: Vec<cedar_policy::EntityUid> = vec![r#"Doc::"pay""#.parse().unwrap()];
    assert_eq!(found, expected, "bob reads hr's docs through his link");
    assert_eq!(
        found,
        search_every_candidate(&snapshot.pack, &snapshot.entities, &request, &searched)
    );
}
