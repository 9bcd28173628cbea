//! `diff` and `check --analyze` through the binary, with the solver the
//! test command installs (cvc5): a refactor of the shipped pack is proved
//! to permit nothing new; a widened permit is found, and its counterexample
//! really flips when the engine decides it against each pack; planted
//! never-applying, shadowed and duplicated policies are reported.

use std::path::{Path, PathBuf};
use std::process::Command;

use cedar_sidecar::engine::{
    decide, DecisionRequest, PackSources, PolicyPack, RequestEntityPolicy, Verdict,
};
use cedar_sidecar::entities::{load_entities_file, EntityMap};
use cedar_sidecar::http::WireUid;

use crate::support::repo;

fn sidecar(args: &[&str], dir: &Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
        .args(args)
        .current_dir(dir)
        .env_remove("CEDAR_SIDECAR_POLICIES")
        .env_remove("CEDAR_SIDECAR_SOLVER")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The shipped policy files, by name.
fn shipped_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(repo().join("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn write_pack(dir: &Path, files: &[(String, String)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir.to_path_buf()
}

/// The shipped pack with one permit's condition dropped: a participant
/// uses an environment granted to them even when not a member of its org.
fn widened(dir: &Path) -> PathBuf {
    let files: Vec<(String, String)> = shipped_files()
        .into_iter()
        .map(|(name, text)| {
            if name != "environments.cedar" {
                return (name, text);
            }
            let edited = text.replace(
                "principal in resource && principal in resource.org };",
                "principal in resource };",
            );
            (name, edited)
        })
        .collect();
    assert_ne!(
        files,
        shipped_files(),
        "the widening edit found nothing to edit"
    );
    write_pack(dir, &files)
}

#[test]
fn a_refactor_that_renames_reorders_and_splits_policies_permits_nothing_new() {
    let temp = tempfile::tempdir().unwrap();
    // Every policy renamed, every file's policies in reverse order, and the
    // files split one policy per file.
    let mut files = Vec::new();
    for (name, text) in shipped_files() {
        let renamed = text.replace("@id(\"", "@id(\"renamed-");
        let mut policies: Vec<String> = renamed
            .split("\n@id(")
            .skip(1)
            .map(|p| format!("@id({p}\n"))
            .collect();
        assert!(!policies.is_empty(), "{name} holds no @id policy");
        policies.reverse();
        for (index, policy) in policies.into_iter().enumerate() {
            files.push((format!("{index}-{name}"), policy));
        }
    }
    let new = write_pack(&temp.path().join("new"), &files);
    let (code, stdout, stderr) = sidecar(
        &[
            "diff",
            "policies",
            new.to_str().unwrap(),
            "--schema",
            "schema",
        ],
        &repo(),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("32 request types: 32 same, 0 more, 0 less, 0 more and less, 0 unknown"),
        "{stdout}"
    );
    // The refactor really loads as different files with other ids.
    let pack = PolicyPack::load(&PackSources {
        policies: new,
        schema: repo().join("schema"),
    })
    .unwrap();
    assert_eq!(pack.files.policy_count(), 22);
    assert!(pack.files.info.iter().all(|i| i.id.starts_with("renamed-")));
}

#[test]
fn a_widened_permit_is_found_and_its_counterexample_flips_in_the_engine() {
    let temp = tempfile::tempdir().unwrap();
    let new = widened(&temp.path().join("widened"));
    let out = temp.path().join("cex");
    let (code, stdout, stderr) = sidecar(
        &[
            "diff",
            "policies",
            new.to_str().unwrap(),
            "--schema",
            "schema",
            "--format",
            "json",
            "--write-counterexamples",
            out.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("error: the new policies may permit"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let changed: Vec<&serde_json::Value> = report["request_types"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["change"] != "same")
        .collect();
    assert_eq!(changed.len(), 1, "{stdout}");
    assert_eq!(changed[0]["change"], "more");
    assert_eq!(changed[0]["action"], "Action::\"UseEnvironment\"");
    assert_eq!(changed[0]["principal"], "User");
    assert_eq!(changed[0]["more"]["old_decision"], "Deny");
    assert_eq!(changed[0]["more"]["new_decision"], "Allow");

    // Decided here, independently: the request file against each pack,
    // with the entities file as `serve --entities` loads it.
    let load = |policies: PathBuf| {
        PolicyPack::load(&PackSources {
            policies,
            schema: repo().join("schema"),
        })
        .unwrap()
    };
    let text = std::fs::read_to_string(out.join("more-1.request.json")).unwrap();
    let request: serde_json::Value = serde_json::from_str(&text).unwrap();
    let uid = |role: &str| {
        serde_json::from_value::<WireUid>(request[role].clone())
            .unwrap()
            .to_uid(role)
            .unwrap()
    };
    let request = DecisionRequest {
        principal: uid("principal"),
        action: uid("action"),
        resource: uid("resource"),
        context: Some(request["context"].clone()),
        entities: Vec::new(),
    };
    let mut verdicts = Vec::new();
    for pack in [load(repo().join("policies")), load(new.clone())] {
        let entities = load_entities_file(&out.join("more-1.entities.json"), &pack.schema)
            .unwrap_or_else(|p| panic!("{}", p.render()));
        let store = EntityMap::from_entities(entities, 1);
        let decision = decide(&pack, &store, &request, &RequestEntityPolicy::default()).unwrap();
        verdicts.push(decision.verdict);
    }
    assert_eq!(verdicts, [Verdict::Deny, Verdict::Allow]);

    // A reviewer's consent turns the exit code to 0; the report is the same.
    let (code, stdout, _) = sidecar(
        &["diff", "policies", new.to_str().unwrap(), "--allow-more"],
        &repo(),
    );
    assert_eq!(code, 0);
    assert!(
        stdout.contains("more          User Action::\"UseEnvironment\" Environment"),
        "{stdout}"
    );
    // The other way round, the change permits less, which passes.
    let (code, stdout, stderr) = sidecar(&["diff", new.to_str().unwrap(), "policies"], &repo());
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("less          User Action::\"UseEnvironment\" Environment"),
        "{stdout}"
    );
    assert!(stdout.contains("OLD: Allow, NEW: Deny"), "{stdout}");
}

#[test]
fn diff_reports_a_bad_policy_file_with_its_position() {
    let temp = tempfile::tempdir().unwrap();
    let mut files = shipped_files();
    files.push((
        "broken.cedar".to_string(),
        "permit (principal, action, resource)\nwhen { principal.nope };\n".to_string(),
    ));
    let new = write_pack(&temp.path().join("new"), &files);
    let (code, _, stderr) = sidecar(&["diff", "policies", new.to_str().unwrap()], &repo());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("broken.cedar:2:"), "{stderr}");
}

#[test]
fn diff_lists_template_changes_and_fails_on_those_that_may_grant_more() {
    let temp = tempfile::tempdir().unwrap();
    let pack = repo().join("examples/templates/policies");
    let text = std::fs::read_to_string(pack.join("grants.cedar")).unwrap();
    // The grant's resource slot widened from one environment to anything in it.
    let edited = text.replacen("resource == ?resource", "resource in ?resource", 1);
    assert_ne!(edited, text);
    let new = write_pack(
        &temp.path().join("new"),
        &[("grants.cedar".to_string(), edited)],
    );
    let (code, stdout, stderr) = sidecar(
        &["diff", pack.to_str().unwrap(), new.to_str().unwrap()],
        &repo(),
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("template changed permit `environment-grant`: its links may grant more"),
        "{stdout}"
    );
    let (code, stdout, stderr) = sidecar(
        &["diff", pack.to_str().unwrap(), pack.to_str().unwrap()],
        &repo(),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stdout.contains("template"), "{stdout}");

    // A static forbid dropped while permit templates exist: the static
    // policies decide the same, but a link's grant it stopped goes through.
    let guarded = write_pack(
        &temp.path().join("guarded"),
        &[
            ("grants.cedar".to_string(), text.clone()),
            (
                "guard.cedar".to_string(),
                "@id(\"nobody-uses-acme-prod\")\nforbid (principal, action == Action::\"UseEnvironment\", resource == Environment::\"acme-prod\");\n".to_string(),
            ),
        ],
    );
    let (code, stdout, stderr) = sidecar(
        &["diff", guarded.to_str().unwrap(), pack.to_str().unwrap()],
        &repo(),
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "forbid `nobody-uses-acme-prod` removed or changed while permit templates exist"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("same, 0 more"), "{stdout}");
}

#[test]
fn check_analyze_finds_planted_policies_and_is_quiet_on_the_shipped_pack() {
    let (code, stdout, stderr) = sidecar(&["check", "--analyze", "--deny-warnings"], &repo());
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("analysis: 0 warnings"), "{stdout}");
    assert!(!stderr.contains("warning:"), "{stderr}");

    let temp = tempfile::tempdir().unwrap();
    let mut files = shipped_files();
    files.push((
        "planted.cedar".to_string(),
        r#"@id("never")
permit (principal is User, action == Action::"UseApiKey", resource)
when { principal is Thunk };

@id("shadowed")
permit (principal, action == Action::"DeleteEnvironment", resource is Environment)
when { resource has owner && resource.owner == principal };

@id("same-as-platform-admins")
permit (principal, action in Action::"ManageTenants", resource)
when { principal in PlatformAdmins::"thunk" };
"#
        .to_string(),
    ));
    let planted = write_pack(&temp.path().join("planted"), &files);
    let args = [
        "check",
        "--analyze",
        "--policies",
        planted.to_str().unwrap(),
    ];
    let (code, stdout, stderr) = sidecar(&args, &repo());
    assert_eq!(
        code, 0,
        "warnings do not fail without --deny-warnings: {stderr}"
    );
    assert!(stdout.contains("analysis: 3 warnings"), "{stdout}");
    let shown = planted.display();
    for expected in [
        format!("warning: {shown}/planted.cedar:1:1: policy `never` can never apply"),
        format!("warning: {shown}/planted.cedar:5:1: permit `shadowed` is shadowed: every request it permits is forbidden (by `personal-environments-are-not-managed`)"),
        format!("warning: {shown}/platform.cedar:8:1: policy `platform-admins-manage-tenants` duplicates `same-as-platform-admins` ({shown}/planted.cedar:9:1)"),
    ] {
        assert!(stderr.contains(&expected), "missing `{expected}` in:\n{stderr}");
    }
    let mut denied = args.to_vec();
    denied.push("--deny-warnings");
    let (code, _, stderr) = sidecar(&denied, &repo());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: the analysis warned (--deny-warnings)"),
        "{stderr}"
    );
}

#[test]
fn a_missing_solver_is_an_error_that_says_what_to_install() {
    let temp = tempfile::tempdir().unwrap();
    let new = widened(&temp.path().join("widened"));
    let (code, _, stderr) = sidecar(
        &[
            "diff",
            "policies",
            new.to_str().unwrap(),
            "--solver",
            "/nonexistent/cvc5",
        ],
        &repo(),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot start the SMT solver `/nonexistent/cvc5`"),
        "{stderr}"
    );
    assert!(stderr.contains("apt-get install cvc5"), "{stderr}");
}

/// The sidecar denies where a forbid errors (fail closed); Cedar, which the
/// proof follows, skips it. A forbid that may error and is changed or
/// removed therefore leaves "no more" unproved: the diff says unknown and
/// fails, where it said "same" (an overflowing `context.n + 1` denied under
/// OLD; NEW's `context.n == -1` does not error and allows).
#[test]
fn a_changed_forbid_that_may_error_is_not_proved_same() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.cedarschema"),
        "entity User;\nentity Doc;\naction Read appliesTo { principal: User, resource: Doc, context: { n: Long } };\n",
    )
    .unwrap();
    let permit = "@id(\"p\")\npermit (principal, action, resource);\n";
    let old = write_pack(
        &dir.path().join("old"),
        &[(
            "p.cedar".into(),
            format!("{permit}@id(\"f\")\nforbid (principal, action, resource) when {{ context.n + 1 == 0 }};\n"),
        )],
    );
    let new = write_pack(
        &dir.path().join("new"),
        &[(
            "p.cedar".into(),
            format!("{permit}@id(\"f\")\nforbid (principal, action, resource) when {{ context.n == -1 }};\n"),
        )],
    );
    let args = |a: &Path, b: &Path| {
        vec![
            "diff".to_string(),
            a.display().to_string(),
            b.display().to_string(),
            "--schema".to_string(),
            "schema.cedarschema".to_string(),
        ]
    };
    let run = |a: &Path, b: &Path| {
        let args = args(a, b);
        sidecar(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            dir.path(),
        )
    };
    let (code, out, err) = run(&old, &new);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("unknown"), "{out}");
    assert!(out.contains("forbids that may error: f"), "{out}");
    // Removed outright: the same.
    let without = write_pack(
        &dir.path().join("without"),
        &[("p.cedar".into(), permit.into())],
    );
    let (code, out, err) = run(&old, &without);
    assert_eq!(code, 1, "{out}{err}");
    // A forbid that cannot error may change: proved as before.
    let (code, out, err) = run(&new, &old);
    assert_eq!(code, 0, "{out}{err}");
}

/// Action groups live in the schema: the same policies under a schema that
/// moves `UseApiKey` into `ManageTenants` let platform admins use every
/// key. A changed schema is not proved: the run fails unless accepted.
#[test]
fn a_changed_schema_is_not_proved() {
    let dir = tempfile::tempdir().unwrap();
    let old_schema = dir.path().join("old-schema");
    std::fs::create_dir(&old_schema).unwrap();
    for entry in std::fs::read_dir(repo().join("schema")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, old_schema.join(path.file_name().unwrap())).unwrap();
    }
    let policies = repo().join("policies");
    let schema = repo().join("schema");
    let run = |old_schema: &Path, extra: &[&str]| {
        let mut args = vec![
            "diff",
            policies.to_str().unwrap(),
            policies.to_str().unwrap(),
            "--schema",
            schema.to_str().unwrap(),
            "--old-schema",
            old_schema.to_str().unwrap(),
        ];
        args.extend(extra);
        sidecar(&args, dir.path())
    };
    let (code, out, err) = run(&old_schema, &[]);
    assert_eq!(code, 0, "the same schema in another folder: {out}{err}");
    let changed = dir.path().join("changed-schema");
    std::fs::create_dir(&changed).unwrap();
    for entry in std::fs::read_dir(&old_schema).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let moved = text.replace("action UseApiKey", "action UseApiKey in [ManageTenants]");
        std::fs::write(changed.join(path.file_name().unwrap()), moved).unwrap();
    }
    let (code, out, err) = run(&changed, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("the schema changed"), "{err}");
    let (code, _, err) = run(&changed, &["--allow-more"]);
    assert_eq!(code, 0, "{err}");
}
