//! The `cedar-sidecar` binary: `check` exit codes and messages, and `serve`
//! refusing a broken pack.

use std::path::Path;
use std::process::Command;

use crate::support::{fixture, repo};

fn sidecar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
}

fn check(policies: &Path, schema: &Path, entities: &Path) -> (i32, String, String) {
    let output = sidecar()
        .args(["check", "--policies"])
        .arg(policies)
        .arg("--schema")
        .arg(schema)
        .arg("--entities")
        .arg(entities)
        .env_remove("CEDAR_SIDECAR_POLICIES")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_passes_on_the_shipped_pack() {
    let root = repo();
    let (code, stdout, stderr) = check(
        &root.join("policies"),
        &root.join("schema"),
        &root.join("demo/entities.json"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ok: "), "{stdout}");
}

#[test]
fn check_uses_defaults_and_environment() {
    let root = repo();
    let output = sidecar().arg("check").current_dir(&root).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The environment variable is used when no flag is given...
    let output = sidecar()
        .arg("check")
        .current_dir(&root)
        .env("CEDAR_SIDECAR_POLICIES", "/nonexistent/policies")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/policies"));
    // ...and a flag beats it.
    let output = sidecar()
        .args(["check", "--policies", "policies"])
        .current_dir(&root)
        .env("CEDAR_SIDECAR_POLICIES", "/nonexistent/policies")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
}

/// Each broken fixture names the file, line and column of its problems.
#[test]
fn check_points_at_the_exact_location() {
    let cases: &[(&str, &[&str])] = &[
        (
            "syntax-error",
            &["policies/bad.cedar:3:27:", "unexpected token"],
        ),
        (
            "type-error",
            &[
                "policies/nested/typo.cedar:4:3:",
                "attribute `ownr`",
                "did you mean `owner`?",
            ],
        ),
        (
            "duplicate-id",
            &["duplicate policy id `same`", "a.cedar", "b.cedar"],
        ),
        (
            "bad-entities",
            &["entities.json:3:3:", "entry 1", "`User::\"bob\"`"],
        ),
        ("bad-schema", &["schema.cedarschema:2:", "Strin"]),
    ];
    for (name, expected) in cases {
        let dir = fixture(&format!("broken/{name}"));
        let (code, _stdout, stderr) = check(
            &dir.join("policies"),
            &dir.join("schema.cedarschema"),
            &dir.join("entities.json"),
        );
        assert_eq!(code, 1, "{name}: {stderr}");
        for needle in *expected {
            assert!(
                stderr.contains(needle),
                "{name}: `{needle}` not in:\n{stderr}"
            );
        }
    }
}

#[test]
fn check_reports_parse_and_validation_errors_together() {
    let dir = fixture("broken/two-files");
    let (code, _, stderr) = check(
        &dir.join("policies"),
        &dir.join("schema.cedarschema"),
        &dir.join("entities.json"),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("policies/parse.cedar:1:"), "{stderr}");
    assert!(stderr.contains("policies/types.cedar:1:"), "{stderr}");
    assert!(stderr.contains("2 problems found"), "{stderr}");
}

#[test]
fn serve_refuses_to_start_on_an_invalid_pack() {
    let dir = fixture("broken/type-error");
    let output = sidecar()
        .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
        .arg(dir.join("policies"))
        .arg("--schema")
        .arg(dir.join("schema.cedarschema"))
        .arg("--entities")
        .arg(dir.join("entities.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("typo.cedar:4:3:"), "{stderr}");
    assert!(stderr.contains("refusing to start"), "{stderr}");
}

#[test]
fn redis_flags_go_before_or_after_the_entities_subcommand() {
    // A port nothing listens on: the flags parse, then the write fails
    // with "Redis unavailable" (exit 2), never a usage error.
    for args in [
        vec![
            "entities",
            "import",
            "demo/entities.json",
            "--redis-url",
            "redis://127.0.0.1:1",
        ],
        vec![
            "entities",
            "--redis-url",
            "redis://127.0.0.1:1",
            "import",
            "demo/entities.json",
        ],
        vec![
            "entities",
            "delete",
            "User::\"ana\"",
            "--redis-url",
            "redis://127.0.0.1:1",
            "--redis-prefix",
            "x",
        ],
    ] {
        let output = sidecar().current_dir(repo()).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("unexpected argument"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn cedar_fast_paths_is_a_flag_a_variable_and_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "cedar_fast_paths = false\n").unwrap();
    let config = file.to_str().unwrap();
    for (args, env, expected) in [
        (vec![], Some("off"), "false"),
        (vec![], Some("on"), "true"),
        (vec!["--config", config], None, "false"),
        (
            vec!["--config", config, "--cedar-fast-paths", "true"],
            None,
            "true",
        ),
        (vec![], None, "true"),
    ] {
        let mut command = sidecar();
        command
            .current_dir(repo())
            .args(["serve", "--print-config"])
            .args(&args);
        command.env_remove("CEDAR_SIDECAR_CEDAR_FAST_PATHS");
        if let Some(value) = env {
            command.env("CEDAR_SIDECAR_CEDAR_FAST_PATHS", value);
        }
        let output = command.output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains(&format!("cedar_fast_paths = {expected}")),
            "{args:?} {env:?}: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `--print-config` prints a file `--config` loads to the same settings,
/// secrets left out; booleans from the file can be turned off by flag or
/// variable (flag > environment > file > default).
#[test]
fn print_config_round_trips_and_booleans_follow_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "max_batch = 7\nprobe_listen = \"127.0.0.1:9999\"\n[request_entities]\nmode = \"new-only\"\ntypes = [\"Thunk\"]\n[redis]\nurl = [\"redis://app:s3cret@redis:6379\"]\ncluster = true\nserve_stale = true\n[decision_log]\nsink = \"stdout\"\nmask = [\"token\"]\n",
    )
    .unwrap();
    let print = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = sidecar();
        command
            .current_dir(repo())
            .args(["serve", "--print-config"])
            .args(args);
        for key in ["CEDAR_SIDECAR_SERVE_STALE", "CEDAR_SIDECAR_REDIS_CLUSTER"] {
            command.env_remove(key);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let config = file.to_str().unwrap();
    let printed = print(&["--config", config], &[]);
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(printed.contains("redis://app@redis:6379"), "{printed}");
    assert!(
        printed.contains("serve_stale = true") && printed.contains("cluster = true"),
        "{printed}"
    );
    let again = dir.path().join("printed.toml");
    std::fs::write(&again, &printed).unwrap();
    assert_eq!(print(&["--config", again.to_str().unwrap()], &[]), printed);
    for (args, env) in [
        (
            vec![
                "--config",
                config,
                "--serve-stale",
                "false",
                "--redis-cluster",
                "false",
            ],
            vec![],
        ),
        (
            vec!["--config", config],
            vec![
                ("CEDAR_SIDECAR_SERVE_STALE", "false"),
                ("CEDAR_SIDECAR_REDIS_CLUSTER", "false"),
            ],
        ),
    ] {
        let printed = print(&args, &env);
        assert!(
            printed.contains("serve_stale = false"),
            "{args:?} {env:?}: {printed}"
        );
        assert!(
            printed.contains("cluster = false"),
            "{args:?} {env:?}: {printed}"
        );
    }
    // A bare flag still turns it on.
    assert!(print(&["--serve-stale"], &[]).contains("serve_stale = true"));
}

/// Every `[default: X]` that `serve --help` shows is the default: giving
/// `--flag X` prints the same effective settings as giving nothing.
#[test]
fn help_shows_the_real_defaults() {
    let help = sidecar()
        .current_dir(repo())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let print = |args: &[String]| {
        let mut command = sidecar();
        command
            .current_dir(repo())
            .args(["serve", "--print-config"])
            .args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("CEDAR_SIDECAR_") {
                command.env_remove(key);
            }
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let baseline = print(&[]);
    // Options are listed as `      --name <VALUE>` followed by their help,
    // which ends with `[default: X]` (maybe after an `[env: ...]`).
    let mut checked = 0;
    let mut flag: Option<String> = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--") {
            flag = rest.split([' ', '<', '[']).next().map(|f| format!("--{f}"));
        }
        let Some(start) = line.find("[default: ") else {
            continue;
        };
        let value = &line[start + "[default: ".len()..];
        let Some(value) = value.split(']').next() else {
            continue;
        };
        if value == "none" {
            continue;
        }
        let flag = flag.clone().expect("a default belongs to an option");
        let given = print(&[flag.clone(), value.to_string()]);
        assert_eq!(given, baseline, "{flag} {value} is not the default");
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} defaults found in:\n{help}");
}
