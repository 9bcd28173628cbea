//! `cedar-sidecar test` and `cedar-sidecar fmt` run as a user runs them:
//! the real binary over fixture folders, asserting exit codes and output.

use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURES: &str = "tests/fixtures/runner";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sidecar(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the binary runs");
    Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// `test` over fixture folders with the runner's tiny pack.
fn run_fixture(folders: &[&str], extra: &[&str]) -> Run {
    let policies = format!("{FIXTURES}/pack/policies");
    let schema = format!("{FIXTURES}/pack/schema.cedarschema");
    let paths: Vec<String> = folders.iter().map(|f| format!("{FIXTURES}/{f}")).collect();
    let mut args = vec!["test", "--policies", &policies, "--schema", &schema];
    args.extend(paths.iter().map(String::as_str));
    args.extend(extra);
    sidecar(&args)
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

#[test]
fn both_formats_parse_and_pass() {
    let run = run_fixture(&["passing"], &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // 2 Cedar JSON tests + 9 table cells + 2 listed cases.
    assert_eq!(last_line(&run.stdout), "13 passed, 0 failed");
}

#[test]
fn a_failing_case_is_reported_and_fails_the_run() {
    let run = run_fixture(&["failing"], &[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(
        "FAIL tests/fixtures/runner/failing/suite.yaml  wrong on purpose: bob view plan"
    ));
    assert!(run
        .stdout
        .contains("expected:             allow(owners-view)"));
    assert!(run.stdout.contains("decided:              deny"));
    assert!(run.stdout.contains("determining policies: (none)"));
    assert!(run.stdout.contains("expected allow, decided deny"));
    assert!(
        !run.stdout.contains("alice view plan"),
        "passing cases stay quiet"
    );
    assert_eq!(last_line(&run.stdout), "1 passed, 1 failed");
}

#[test]
fn skipped_cases_are_counted_and_do_not_fail() {
    let run = run_fixture(&["skipping"], &[]);
    assert_eq!(run.code, 0);
    assert_eq!(last_line(&run.stdout), "1 passed, 0 failed, 1 skipped");
}

#[test]
fn malformed_yaml_is_an_error_with_file_line_and_column() {
    let run = run_fixture(&["malformed-yaml"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains(
            "tests/fixtures/runner/malformed-yaml/suite.yaml:7:29: tables[0].rows[1]: `maybe` is not a decision"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "no test runs: {}", run.stdout);
}

#[test]
fn malformed_cedar_json_is_an_error_with_file_line_and_column() {
    let run = run_fixture(&["malformed-json"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("tests/fixtures/runner/malformed-json/bad.tests.json:4:48:"),
        "{}",
        run.stderr
    );
}

#[test]
fn yaml_mistakes_point_at_the_node_they_are_about() {
    let dir = tempfile::tempdir().unwrap();
    let entities = root().join(FIXTURES).join("passing/entities.json");
    let entities = entities.display();
    let cases = [
        // An unknown name in a row: at its cell.
        (
            format!("entities: {entities}\ntables:\n  - name: t\n    cases:\n      - [alice, view, plan, allow]\n      - [alicia, view, plan, allow]\n"),
            ":6:10:",
            "tables[0].cases[1]: no `User` entity has id `alicia`",
        ),
        // An unknown principal column: at its name in `principals`.
        (
            format!("entities: {entities}\ntables:\n  - name: t\n    principals: [alice, bobby]\n    rows:\n      - [view, plan, allow, deny]\n"),
            ":4:25:",
            "tables[0].rows[0]: no `User` entity has id `bobby`",
        ),
        // A mapping case's field of the wrong kind: at its value.
        (
            format!("entities: {entities}\ntables:\n  - name: t\n    cases:\n      - {{principal: alice, action: view, resource: plan,\n         decision: allow, errors: many}}\n"),
            ":6:35:",
            "expected `errors` to be a count or a list of strings, found the string `many`",
        ),
        // A row with the wrong number of cells.
        (
            format!("entities: {entities}\ntables:\n  - name: t\n    principals: [alice, bob]\n    rows:\n      - [view, plan, allow]\n"),
            ":6:9:",
            "this row has 3 cells",
        ),
        // A context that breaks the schema (view takes no context).
        (
            format!("entities: {entities}\ntables:\n  - name: t\n    cases:\n      - [alice, view, plan, allow, {{reason: audit}}]\n"),
            ":5:9:",
            "context does not match the schema",
        ),
        // An unknown key.
        (
            "tables:\n  - name: t\n    colums: [alice]\n".to_string(),
            ":3:5:",
            "unknown field `colums`",
        ),
        // A fixture that breaks the schema.
        (
            "fixtures:\n  Doc::\"x\": { attrs: { owner: User::\"a\" } }\ntables: []\n".to_string(),
            ":2:13:",
            "invalid entity `Doc::\"x\"`",
        ),
        // Broken YAML: where the parser stopped.
        (
            "tables:\n  - name: t\n   cases: []\n".to_string(),
            ":3:4:",
            "did not find expected '-' indicator",
        ),
        // A key written twice.
        (
            "tables: []\nname: a\nname: b\n".to_string(),
            ":3:1:",
            "duplicated key in mapping",
        ),
        // A tag the format gives no meaning.
        (
            "fixtures:\n  User::\"x\": { attrs: !secret { a: 1 } }\ntables: []\n".to_string(),
            ":2:23:",
            "YAML tags are not supported (`!secret`)",
        ),
        // Two documents in one file.
        (
            "tables: []\n---\ntables: []\n".to_string(),
            ":3:1:",
            "a test file is one YAML document",
        ),
    ];
    for (index, (text, position, message)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case{index}.yaml"));
        std::fs::write(&file, text).unwrap();
        let file = file.display().to_string();
        let run = sidecar(&[
            "test",
            "--policies",
            &format!("{FIXTURES}/pack/policies"),
            "--schema",
            &format!("{FIXTURES}/pack/schema.cedarschema"),
            &file,
        ]);
        assert_eq!(run.code, 2, "case {index}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("{file}{position}")) && run.stderr.contains(message),
            "case {index}: expected `{position}` and `{message}` in:\n{}",
            run.stderr
        );
    }
}

#[test]
fn coverage_names_the_policies_no_case_determined() {
    let run = run_fixture(&["passing"], &["--coverage"]);
    assert_eq!(run.code, 0);
    assert!(run
        .stdout
        .contains("coverage: 2 of 3 policies determined a decision (66.7%)"));
    assert!(run
        .stdout
        .contains("never determined a decision: `owners-edit` (docs.cedar)"));
    assert!(!run.stdout.contains("`owners-view` ("));
    assert_eq!(last_line(&run.stdout), "13 passed, 0 failed");

    let under = run_fixture(&["passing"], &["--fail-under-coverage", "100"]);
    assert_eq!(under.code, 1, "{}", under.stderr);
    assert!(under
        .stderr
        .contains("coverage 66.7% is under the required 100%"));
    let over = run_fixture(&["passing"], &["--fail-under-coverage", "60"]);
    assert_eq!(over.code, 0);
}

#[test]
fn json_output_parses_and_counts_match() {
    let run = run_fixture(
        &["failing", "skipping"],
        &["--format", "json", "--coverage"],
    );
    assert_eq!(run.code, 1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert_eq!(doc["passed"], 2);
    assert_eq!(doc["failed"], 1);
    assert_eq!(doc["skipped"], 1);
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    let failed: Vec<_> = cases.iter().filter(|c| c["status"] == "failed").collect();
    assert_eq!(failed[0]["decided"], "deny");
    assert_eq!(failed[0]["expected"], "allow(owners-view)");
    assert_eq!(doc["coverage"]["policies"], 3);
    assert_eq!(doc["coverage"]["covered"], 1);
    assert_eq!(run.stderr.trim(), "2 passed, 1 failed, 1 skipped");
}

#[test]
fn junit_output_parses_and_counts_match() {
    let run = run_fixture(&["failing", "skipping"], &["--format", "junit"]);
    assert_eq!(run.code, 1);
    let doc = roxmltree::Document::parse(&run.stdout).expect("stdout is XML");
    let suites = doc.root_element();
    assert_eq!(suites.tag_name().name(), "testsuites");
    assert_eq!(suites.attribute("tests"), Some("4"));
    assert_eq!(suites.attribute("failures"), Some("1"));
    assert_eq!(suites.attribute("skipped"), Some("1"));
    let testcases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(testcases.len(), 4);
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .expect("one failure");
    assert!(failure
        .attribute("message")
        .unwrap()
        .contains("expected allow, decided deny"));
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("skipped"))
            .count(),
        1
    );
}

#[test]
fn the_shipped_suite_passes_with_full_coverage() {
    let run = sidecar(&["test", "--fail-under-coverage", "100"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run
        .stdout
        .contains("coverage: 22 of 22 policies determined a decision (100.0%)"));
    assert!(last_line(&run.stdout).ends_with("passed, 0 failed"));
}

#[test]
fn the_shipped_suite_fails_loudly_on_a_broken_policy() {
    // Drop the forbid that protects the owner: rule 4's tests must catch it.
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace(
            "when { context.target == resource.owner };",
            "when { false };",
        );
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    let policies = dir.path().display().to_string();
    let run = sidecar(&["test", "--policies", &policies]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("expected deny(nobody-removes-the-owner)")
            || run.stdout.contains("nobody removes the owner"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("decided:              allow"));
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn fmt_check_names_unformatted_files_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let messy =
        "// keep this comment\npermit(principal,action,resource) when { principal == resource };\n";
    let file = write(dir.path(), "messy.cedar", messy);
    let folder = dir.path().display().to_string();

    let check = sidecar(&["fmt", "--check", &folder]);
    assert_eq!(check.code, 1);
    assert!(check.stdout.contains("would reformat"), "{}", check.stdout);
    assert!(check.stdout.contains("messy.cedar"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), messy);

    let format = sidecar(&["fmt", &folder]);
    assert_eq!(format.code, 0, "{}", format.stderr);
    let formatted = std::fs::read_to_string(&file).unwrap();
    assert_ne!(formatted, messy);
    assert!(formatted.contains("// keep this comment"));
    assert!(
        formatted.contains("permit (principal, action, resource)"),
        "{formatted}"
    );

    let again = sidecar(&["fmt", "--check", &folder]);
    assert_eq!(again.code, 0, "{}", again.stdout);
}

#[test]
fn fmt_reports_a_file_that_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "broken.cedar", "permit(principal,\n");
    let run = sidecar(&["fmt", "--check", &file.display().to_string()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("broken.cedar"), "{}", run.stderr);
}

#[test]
fn the_shipped_policies_are_fmt_clean() {
    let run = sidecar(&["fmt", "--check"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

/// The shipped Cedar-format file decides the same when run the way Cedar's
/// `cedar run-tests` runs it: the whole entities file, Cedar's authorizer,
/// no slicing and no fail-closed layer. Keeps the file portable.
#[test]
fn the_shipped_cedar_file_decides_the_same_in_plain_cedar() {
    use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, Request};
    use std::str::FromStr;

    let folder = root().join("tests/policies/cedar");
    let (schema, _) = cedar_sidecar::engine::load_schema(&root().join("schema")).unwrap();
    let (files, problems) = cedar_sidecar::engine::load_policy_dir(&root().join("policies"));
    assert!(problems.is_empty(), "{problems}");
    let tests: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(folder.join("platform.tests.json")).unwrap())
            .unwrap();
    assert!(!tests.is_empty());
    for test in &tests {
        let file = folder.join(test["entities"].as_str().unwrap());
        let entities =
            Entities::from_json_str(&std::fs::read_to_string(file).unwrap(), Some(&schema))
                .unwrap();
        let uid = |key: &str| EntityUid::from_str(test["request"][key].as_str().unwrap()).unwrap();
        let action = uid("action");
        let context =
            Context::from_json_value(test["request"]["context"].clone(), Some((&schema, &action)))
                .unwrap();
        let request = Request::new(
            uid("principal"),
            action,
            uid("resource"),
            context,
            Some(&schema),
        )
        .unwrap();
        let response = Authorizer::new().is_authorized(&request, &files.set, &entities);
        let expected = match test["decision"].as_str().unwrap() {
            "allow" => Decision::Allow,
            _ => Decision::Deny,
        };
        assert_eq!(response.decision(), expected, "{}", test["name"]);
        let reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        for reason in test["reason"].as_array().unwrap() {
            assert!(
                reasons.contains(&reason.as_str().unwrap().to_string()),
                "{}: {reasons:?}",
                test["name"]
            );
        }
        assert_eq!(
            response.diagnostics().errors().count() as u64,
            test["num_errors"].as_u64().unwrap()
        );
    }
}

#[test]
fn links_are_decided_with_every_case_and_counted_in_coverage() {
    let dir = "tests/fixtures/engine/templates";
    let policies = format!("{dir}/policies");
    let schema = format!("{dir}/schema.cedarschema");
    let links = format!("{dir}/links.json");
    let suite = format!("{dir}/links.tests.json");
    let mut args = vec!["test", "--policies", &policies, "--schema", &schema];
    args.extend(["--coverage", &suite]);
    // Without the links the grants are not there: the allow cases fail.
    let run = sidecar(&args);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(last_line(&run.stdout), "1 passed, 2 failed");

    args.extend(["--links", &links]);
    let run = sidecar(&args);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(last_line(&run.stdout), "3 passed, 0 failed");
    assert!(
        run.stdout
            .contains("templates: 1 of 3 determined a decision through a link; links: 2 of 4"),
        "{}",
        run.stdout
    );
    assert!(run
        .stdout
        .contains("no link of template `doc-writer` (grants.cedar) determined a decision"));
    assert!(run
        .stdout
        .contains("link `ann-writes-api` never determined a decision"));

    // A links file that does not fit the templates stops the run.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        r#"[{"template_id": "nope", "link_id": "x", "args": {"?principal": "User::\"bob\""}}]"#,
    )
    .unwrap();
    let bad_path = bad.path().display().to_string();
    let mut args = vec!["test", "--policies", &policies, "--schema", &schema];
    args.extend(["--links", &bad_path, &suite]);
    let run = sidecar(&args);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains(&format!("{bad_path}:1:2: link `x` names template `nope`")),
        "{}",
        run.stderr
    );
}
