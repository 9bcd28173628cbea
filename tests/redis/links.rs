//! Template links through Redis: written like entities (same script,
//! revision and stream), synced to replicas, checked before they are
//! written, reloaded right after a trimmed stream, and failing closed.

use std::path::Path;

use axum::http::StatusCode;
use cedar_sidecar::entities::{load_entities_file, parse_link};
use cedar_sidecar::sync::{EntityWrite, LinkWrite, RedisWriter, Topology};
use serde_json::{json, Value};

use super::harness::*;
use super::proxy::Proxy;
use super::server::{Persistence, RedisServer};

const TOKEN: &str = "links-admin-token-0123456789";

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine/templates")
}

/// The `templates` fixture as a pack folder (`policies/`, `schema/`).
fn templates_pack() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["policies", "schema"] {
        std::fs::create_dir(dir.path().join(folder)).unwrap();
    }
    std::fs::copy(
        fixture().join("policies/grants.cedar"),
        dir.path().join("policies/grants.cedar"),
    )
    .unwrap();
    std::fs::copy(
        fixture().join("schema.cedarschema"),
        dir.path().join("schema/schema.cedarschema"),
    )
    .unwrap();
    dir
}

/// Writes the fixture's entities (one revision), then its links (another).
async fn seed(writer: &RedisWriter, pack_dir: &Path) -> u64 {
    let pack = cedar_sidecar::engine::PolicyPack::load(&pack_sources(pack_dir)).unwrap();
    let entities = load_entities_file(&fixture().join("entities.json"), &pack.schema).unwrap();
    let writes: Vec<EntityWrite> = entities
        .iter()
        .map(|e| EntityWrite::put(e).unwrap())
        .collect();
    writer.write(&writes, None).await.unwrap();
    let text = std::fs::read_to_string(fixture().join("links.json")).unwrap();
    let links: Vec<Value> = serde_json::from_str(&text).unwrap();
    let writes: Vec<LinkWrite> = links
        .iter()
        .map(|l| LinkWrite::put(&parse_link(l).unwrap()))
        .collect();
    writer.write_links(&writes, None).await.unwrap()
}

fn options(pack_dir: &Path, admin: bool) -> SidecarOptions {
    SidecarOptions {
        pack_dir: Some(pack_dir.to_path_buf()),
        admin_token: admin.then(|| TOKEN.to_string()),
        ..SidecarOptions::default()
    }
}

/// `(decision, reasons, errors)` for `principal` reading `resource`, at
/// revision `at_least` or later.
async fn reads(
    replica: &Sidecar,
    principal: &str,
    resource: &str,
    n: i64,
    at_least: Option<u64>,
) -> (String, Vec<String>, Vec<String>) {
    let mut body = json!({
        "principal": principal, "action": "Action::\"read\"", "resource": resource,
        "context": {"n": n},
    });
    if let Some(rev) = at_least {
        body["consistency"] = json!({ "at_least": rev });
    }
    let (status, body) = replica
        .call("POST", "/v1/is_authorized", None, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = |key: &str| -> Vec<String> {
        body["diagnostics"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    (
        body["decision"].as_str().unwrap().to_string(),
        list("reason"),
        list("errors"),
    )
}

/// The link ids a replica serves, sorted.
fn served_links(replica: &Sidecar) -> Vec<String> {
    let snapshot = replica.state.shared.snapshot().unwrap();
    let mut ids: Vec<String> = snapshot
        .entities
        .links()
        .iter()
        .map(|l| l.id.to_string())
        .collect();
    ids.sort();
    ids
}

/// The link ids stored in Redis, sorted.
async fn stored_links(writer: &RedisWriter) -> Vec<String> {
    let mut ids = Vec::new();
    writer.scan_links(|r| ids.push(r.uid)).await.unwrap();
    ids.sort();
    ids
}

const BOB: &str = "User::\"bob\"";
const PAY: &str = "Doc::\"pay\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_sync_to_replicas_at_the_revision_their_write_returns() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    let pack_dir = templates_pack();
    let rev = seed(&writer, pack_dir.path()).await;
    let admin = sidecar(&urls, options(pack_dir.path(), true));
    let other = sidecar(&urls, options(pack_dir.path(), false));
    eventually(10, "first snapshots", || {
        admin.revision() == rev && other.revision() == rev
    })
    .await;
    assert_eq!(
        served_links(&other),
        [
            "ann-writes-api",
            "bob-reads-hr",
            "eng-reads-specs",
            "eve-blocked"
        ]
    );
    let (decision, reasons, _) = reads(&other, BOB, PAY, 1, None).await;
    assert_eq!(
        (decision.as_str(), reasons),
        ("Allow", vec!["bob-reads-hr".to_string()])
    );

    // Deleting the linked permit flips Allow to Deny at the other replica,
    // at the revision the delete returned.
    let (status, body) = admin
        .call(
            "DELETE",
            "/v1/policy-links",
            Some(TOKEN),
            Some(json!({"ids": ["bob-reads-hr"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deleted = body["revision"].as_u64().unwrap();
    assert_eq!(deleted, rev + 1);
    assert_eq!(body["deleted"], 1);
    let (decision, reasons, _) = reads(&other, BOB, PAY, 1, Some(deleted)).await;
    assert_eq!(decision, "Deny", "the link delete revokes");
    assert!(reasons.is_empty(), "{reasons:?}");
    assert_eq!(other.revision(), deleted);
    assert!(!served_links(&other).contains(&"bob-reads-hr".to_string()));

    // A link put through the admin API grants again, at its revision.
    let link = json!({"template_id": "folder-readers", "link_id": "bob-reads-hr-again",
        "args": {"?principal": BOB, "?resource": "Folder::\"hr\""}});
    let (status, body) = admin
        .call(
            "PUT",
            "/v1/policy-links",
            Some(TOKEN),
            Some(json!({"links": [link]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let put = body["revision"].as_u64().unwrap();
    assert_eq!(put, deleted + 1);
    let (decision, reasons, _) = reads(&other, BOB, PAY, 1, Some(put)).await;
    assert_eq!(
        (decision.as_str(), reasons),
        ("Allow", vec!["bob-reads-hr-again".to_string()])
    );
    let (status, body) = admin
        .call(
            "GET",
            "/v1/policy-links/bob-reads-hr-again",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revision"], put);
    assert_eq!(body["link"], link);

    // Refused before anything is written: a missing template, a wrong slot
    // type, a missing slot. The revision does not move.
    for (bad, says) in [
        (
            json!({"template_id": "no-such", "link_id": "x", "args": {"?principal": BOB}}),
            "no-such",
        ),
        (
            json!({"template_id": "folder-readers", "link_id": "x",
                "args": {"?principal": BOB, "?resource": "Team::\"eng\""}}),
            "`?resource` of template `folder-readers`",
        ),
        (
            json!({"template_id": "folder-readers", "link_id": "x", "args": {"?principal": BOB}}),
            "does not fill",
        ),
    ] {
        let (status, body) = admin
            .call(
                "PUT",
                "/v1/policy-links",
                Some(TOKEN),
                Some(json!({"links": [link, bad]})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "invalid_link");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }
    assert_eq!(writer.revision().await.unwrap(), put, "nothing was written");

    // The admin routes want the token.
    let (status, body) = admin
        .call(
            "DELETE",
            "/v1/policy-links",
            None,
            Some(json!({"ids": ["x"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = admin.call("GET", "/v1/policy-links", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = admin
        .call("GET", "/v1/policy-links/nope", Some(TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "link_not_found");

    // The served links, a page at a time; `/v1/policies` only counts them.
    let (status, first) = admin
        .call("GET", "/v1/policy-links?limit=2", Some(TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["revision"], put);
    let ids = |page: &Value| -> Vec<String> {
        page["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["link_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&first), ["ann-writes-api", "bob-reads-hr-again"]);
    let next = first["next"].as_str().unwrap();
    let (_, second) = admin
        .call(
            "GET",
            &format!("/v1/policy-links?limit=2&after={next}"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(ids(&second), ["eng-reads-specs", "eve-blocked"]);
    assert!(second.get("next").is_none(), "{second}");
    let (_, policies) = other.call("GET", "/v1/policies", None, None).await;
    assert_eq!(policies["link_count"], 4);
    assert!(policies.get("links").is_none(), "{policies}");
    assert_eq!(other.reloads(), 0, "followed the stream, no reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_forbids_fail_closed_through_redis() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    let pack_dir = templates_pack();
    let rev = seed(&writer, pack_dir.path()).await;
    let replica = sidecar(&urls, options(pack_dir.path(), false));
    eventually(10, "snapshot", || replica.revision() == rev).await;

    // `eve-blocked` is a linked forbid whose condition overflows: deny.
    let eve = "User::\"eve\"";
    let api = "Doc::\"api\"";
    let (decision, _, _) = reads(&replica, eve, api, 1, None).await;
    assert_eq!(decision, "Allow", "eve is in eng, which reads specs");
    let (decision, _, errors) = reads(&replica, eve, api, i64::MAX, None).await;
    assert_eq!(decision, "Deny", "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("eve-blocked")),
        "{errors:?}"
    );
    // A writer that skipped the checks replaces the forbid's link with a
    // value this replica cannot read (an unknown field, then not JSON):
    // the link stays, unusable, and eve is still denied (fail closed).
    for bad in [
        json!({"template_id": "blocked", "link_id": "eve-blocked", "note": "v2",
               "args": {"?principal": eve}})
        .to_string(),
        "not json".to_string(),
    ] {
        let unreadable = LinkWrite {
            id: "eve-blocked".to_string(),
            json: Some(bad.clone()),
        };
        let rev = writer.write_links(&[unreadable], None).await.unwrap();
        let (decision, _, errors) = reads(&replica, eve, api, i64::MAX, Some(rev)).await;
        assert_eq!(decision, "Deny", "{bad}: {errors:?}");
        assert!(
            errors.iter().any(|e| e.contains("eve-blocked")),
            "{errors:?}"
        );
    }
    // The serving replica loads a fresh snapshot (a schema edit asks for
    // one): the served link stays poisoned, which denies eve, and nobody
    // else (the id is not unplaced: what it applied to is known).
    let schema_file = pack_dir.path().join("schema/schema.cedarschema");
    let mut schema_text = std::fs::read_to_string(&schema_file).unwrap();
    schema_text.push_str("\n// a schema edit: a fresh snapshot is loaded\n");
    std::fs::write(&schema_file, schema_text).unwrap();
    replica
        .state
        .reloader
        .clone()
        .unwrap()
        .reload_policies()
        .await
        .expect("the schema edit is published with a fresh snapshot");
    let (decision, _, errors) = reads(&replica, eve, api, i64::MAX, None).await;
    assert_eq!(decision, "Deny", "{errors:?}");
    let (decision, _, errors) = reads(&replica, "User::\"ann\"", api, 1, None).await;
    assert_eq!(decision, "Allow", "{errors:?}");
    // A replica that starts now never served that link: what the value
    // would apply to is unknown, so every decision denies until it is
    // fixed, not only eve's.
    let fresh = sidecar(&urls, options(pack_dir.path(), false));
    let now = replica.revision();
    eventually(10, "fresh snapshot", || fresh.revision() == now).await;
    let (decision, _, errors) = reads(&fresh, "User::\"ann\"", api, 1, None).await;
    assert_eq!(decision, "Deny", "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("eve-blocked") && e.contains("cannot be read")),
        "{errors:?}"
    );
    // Deleting the forbid's link is a real delete at the replica.
    let rev = writer
        .write_links(&[LinkWrite::delete("eve-blocked")], None)
        .await
        .unwrap();
    eventually(10, "delete applied", || replica.revision() == rev).await;
    eventually(10, "delete applied at the fresh replica", || {
        fresh.revision() == rev
    })
    .await;
    let (decision, _, _) = reads(&fresh, "User::\"ann\"", api, 1, None).await;
    assert_eq!(decision, "Allow", "a delete places the id");
    let (decision, _, errors) = reads(&replica, eve, api, i64::MAX, None).await;
    assert_eq!(decision, "Allow", "{errors:?}");

    // A writer that skipped the check stores a link to a template these
    // policies do not have: the replica keeps it, and decisions it could
    // apply to deny, naming it, until it is deleted.
    let orphan = LinkWrite {
        id: "orphan".to_string(),
        json: Some(
            json!({"template_id": "gone", "link_id": "orphan", "args": {"?principal": BOB}})
                .to_string(),
        ),
    };
    let rev = writer.write_links(&[orphan], None).await.unwrap();
    let (decision, _, errors) = reads(&replica, BOB, PAY, 1, Some(rev)).await;
    assert_eq!(decision, "Deny");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("orphan") && e.contains("fail closed")),
        "{errors:?}"
    );
    assert!(replica.state.freshness.report().invalid_entities >= 1);
    let (decision, _, _) = reads(&replica, "User::\"ann\"", api, 1, None).await;
    assert_eq!(decision, "Allow", "other principals are not affected");

    // A policy reload is not held back by a link that fits no policies, but
    // one that would orphan served links is refused.
    let reloader = replica.state.reloader.clone().unwrap();
    let grants = pack_dir.path().join("policies/grants.cedar");
    let text = std::fs::read_to_string(&grants).unwrap();
    let unrelated = format!(
        "{text}\n@id(\"static\")\npermit (principal == User::\"nobody\", action == Action::\"read\", resource == Doc::\"api\");\n"
    );
    std::fs::write(&grants, unrelated).unwrap();
    let version = replica
        .state
        .shared
        .snapshot()
        .unwrap()
        .pack
        .version
        .clone();
    reloader
        .reload_policies()
        .await
        .expect("an edit that orphans nothing is published");
    assert_ne!(
        replica.state.shared.snapshot().unwrap().pack.version,
        version
    );
    let without_writer = text.replace(
        "@id(\"doc-writer\")\npermit (principal == ?principal, action == Action::\"write\", resource == ?resource);",
        "",
    );
    assert_ne!(without_writer, text);
    std::fs::write(&grants, without_writer).unwrap();
    let refused = reloader.reload_policies().await.unwrap_err();
    assert!(refused.contains("ann-writes-api"), "{refused}");
    let (decision, _, _) = reads(&replica, "User::\"ann\"", api, 1, None).await;
    assert_eq!(decision, "Allow", "the published pack keeps serving");
    let rev = writer
        .write_links(&[LinkWrite::delete("orphan")], None)
        .await
        .unwrap();
    let (decision, _, _) = reads(&replica, BOB, PAY, 1, Some(rev)).await;
    assert_eq!(decision, "Allow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_stream_reloads_and_links_come_back_right() {
    let redis = RedisServer::start(Persistence::None);
    let proxy = Proxy::start(redis.socket()).await;
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 5);
    let pack_dir = templates_pack();
    let rev = seed(&writer, pack_dir.path()).await;
    let replica = sidecar(&[proxy.url()], options(pack_dir.path(), false));
    eventually(10, "snapshot", || replica.revision() == rev).await;

    proxy.cut();
    eventually(10, "the replica notices the cut", || {
        replica.state.freshness.report().last_error.is_some()
    })
    .await;
    writer
        .write_links(&[LinkWrite::delete("bob-reads-hr")], None)
        .await
        .unwrap();
    let mut last = 0;
    for i in 0..30 {
        let link = parse_link(
            &json!({"template_id": "doc-writer", "link_id": format!("w{i}"),
            "args": {"?principal": "User::\"ann\"", "?resource": "Doc::\"pay\""}}),
        )
        .unwrap();
        last = writer
            .write_links(&[LinkWrite::put(&link)], None)
            .await
            .unwrap();
    }
    let first = redis.command(&["XRANGE", "cedar:{p0}:log", "-", "+", "COUNT", "1"]);
    assert!(
        !first.contains(&format!("\r\n{rev}-0\r\n")),
        "cursor entry trimmed"
    );
    let (decision, _, _) = reads(&replica, BOB, PAY, 1, None).await;
    assert_eq!(decision, "Allow", "disconnected: still the old links");

    proxy.restore();
    eventually(10, "reload after trim", || replica.revision() == last).await;
    assert_eq!(replica.reloads(), 1);
    let reason = replica.state.freshness.report().last_reload_reason.unwrap();
    assert!(reason.contains("gone"), "{reason}");
    assert_eq!(served_links(&replica), stored_links(&writer).await);
    assert_eq!(served_links(&replica).len(), 3 + 30);
    let (decision, _, _) = reads(&replica, BOB, PAY, 1, None).await;
    assert_eq!(decision, "Deny", "the delete made while away is applied");
}

fn links_cli(url: &str, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
        .arg("links")
        .args(["--redis-url", url])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_cli_checks_against_the_templates_and_prints_revisions() {
    let redis = RedisServer::start(Persistence::None);
    let url = redis.url();
    let writer = writer(std::slice::from_ref(&url), Topology::Single, 1000);
    let pack = [
        "--policies",
        "examples/templates/policies",
        "--schema",
        "schema",
    ];

    let mut put = vec!["put", "examples/templates/links.json"];
    put.extend(pack);
    let (code, out, err) = links_cli(&url, &put, None);
    assert_eq!(code, 0, "{err}");
    let written: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(written, json!({"revision": 1, "written": 3}));

    // A link to a missing template: named at its place, nothing written.
    let bad = r#"[
  {"template_id": "environment-grant", "link_id": "ok", "args": {"?principal": "User::\"pete\"", "?resource": "Environment::\"acme-prod\""}},
  {"template_id": "no-such-template", "link_id": "x", "args": {"?principal": "User::\"pete\""}}
]"#;
    let mut put = vec!["put", "-"];
    put.extend(pack);
    let (code, _, err) = links_cli(&url, &put, Some(bad));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("<stdin>:3:3: link `x` names template `no-such-template`"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(writer.revision().await.unwrap(), 1);

    let (code, out, err) = links_cli(&url, &["get", "pete-uses-acme-staging"], None);
    assert_eq!(code, 0, "{err}");
    let got: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(got["revision"], 1);
    assert_eq!(got["link"]["args"]["?principal"], "User::\"pete\"");
    let (code, _, err) = links_cli(&url, &["get", "nope"], None);
    assert_eq!(code, 3, "{err}");

    let (code, out, err) = links_cli(&url, &["delete", "pete-uses-acme-staging"], None);
    assert_eq!(code, 0, "{err}");
    let deleted: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(deleted, json!({"revision": 2, "deleted": 1}));

    let (code, out, err) = links_cli(&url, &["export"], None);
    assert_eq!(code, 0, "{err}");
    let exported: Vec<Value> = serde_json::from_str(&out).unwrap();
    let mut ids: Vec<&str> = exported
        .iter()
        .map(|l| l["link_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["acme-admins-use-acme-prod", "olivia-kept-out-of-acme-prod"]
    );
}

/// `replay --redis-url` decides with the links stored in Redis: eve's
/// logged Deny (the linked forbid `eve-blocked`) is unchanged against the
/// same policies, and flips when the candidate weakens the forbid template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_redis_decides_with_the_stored_links() {
    let redis = RedisServer::start(Persistence::None);
    let url = redis.url();
    let writer = writer(std::slice::from_ref(&url), Topology::Single, 1000);
    let pack_dir = templates_pack();
    seed(&writer, pack_dir.path()).await;
    let log = pack_dir.path().join("decisions.log");
    std::fs::write(
        &log,
        json!({"decision_id": "d1", "principal": "User::\"eve\"", "action": "Action::\"read\"",
               "resource": "Doc::\"api\"", "context": {"n": 200}, "decision": "Deny",
               "reasons": ["eve-blocked"]})
        .to_string()
            + "\n",
    )
    .unwrap();
    let replay = |policies: &Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
            .args(["replay", "--redis-url", &url, "--decisions"])
            .arg(&log)
            .arg("--policies")
            .arg(policies)
            .arg("--schema")
            .arg(pack_dir.path().join("schema"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = replay(&pack_dir.path().join("policies"));
    assert_eq!(
        code, 0,
        "the stored forbid link still denies eve: {out}{err}"
    );
    let weaker = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(pack_dir.path().join("policies/grants.cedar")).unwrap();
    let weakened = text.replace("context.n + 1 > 100", "context.n + 1 > 1000");
    assert_ne!(weakened, text);
    std::fs::write(weaker.path().join("grants.cedar"), weakened).unwrap();
    let (code, out, err) = replay(weaker.path());
    assert_eq!(code, 1, "a weaker forbid template flips eve: {out}{err}");
    assert!(out.contains("Deny") && out.contains("Allow"), "{out}");
}
