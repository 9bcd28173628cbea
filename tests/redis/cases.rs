//! The scenarios.

use std::time::Duration;

use axum::http::StatusCode;
use cedar_sidecar::freshness::FreshnessPolicy;
use cedar_sidecar::sync::Topology;
use serde_json::json;

use super::harness::*;
use super::proxy::Proxy;
use super::server::{Persistence, RedisCluster, RedisServer};

const ADMINS: (&str, &str) = ("PlatformAdmins", "thunk");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_decisions_and_a_delete_revokes() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    put(&writer, &platform()).await;
    let replica = sidecar(&urls, SidecarOptions::default());
    eventually(10, "first snapshot", || replica.revision() == 1).await;
    assert_eq!(replica.decision("ana").await, "Deny");

    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let (status, body) = replica.may_create_org("ana", Some(rev)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["decision"], "Allow");
    assert!(body["revision"].as_u64().unwrap() >= rev);

    let rev = delete_users(&writer, &["ana"]).await;
    let (status, body) = replica.may_create_org("ana", Some(rev)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["decision"], "Deny", "the delete revokes");
    assert_eq!(replica.reloads(), 0);

    // The lag gauge is measured from the write time recorded in the stream.
    let text = replica
        .state
        .metrics
        .render(&cedar_sidecar::telemetry::SnapshotGauges {
            policy_version: "v",
            entities: 0,
            revision: 0,
            policies: 0,
            min_entities: 0,
        });
    let lag: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cedar_sync_lag_seconds "))
        .expect("lag gauge")
        .parse()
        .unwrap();
    assert!((0.0..60.0).contains(&lag), "lag {lag}");
    assert!(text.contains("cedar_sync_reloads_total 0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_the_first_snapshot_and_tokens_time_out() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    // A replica pointed at nothing is not ready and decides nothing.
    let nowhere = sidecar(
        &["redis://127.0.0.1:1".to_string()],
        SidecarOptions::default(),
    );
    let (status, body) = nowhere.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "not_ready");
    assert_eq!(
        nowhere.may_create_org("ana", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let rev = put(&writer, &platform()).await;
    let replica = sidecar(&urls, SidecarOptions::default());
    eventually(10, "first snapshot", || replica.revision() == rev).await;
    let (status, body) = replica.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revision"], rev);

    // A revision nobody wrote: waits the bounded 100 ms, then 503 stale.
    let (status, body) = replica.may_create_org("ana", Some(rev + 5)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "stale");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_lands_atomically() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    let users: Vec<String> = (0..50).map(|i| format!("u{i}")).collect();
    let mut first = platform();
    first.extend(users.iter().map(|u| user(u, &[])));
    put(&writer, &first).await;
    let replica = sidecar(&urls, SidecarOptions::default());
    eventually(10, "first snapshot", || replica.revision() == 1).await;

    // Readers check every snapshot: all 50 users are admins, or none is.
    let shared = replica.state.shared.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checker = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let snapshot = shared.snapshot().unwrap();
                let admins = snapshot
                    .entities
                    .iter()
                    .filter(|e| !e.parents.is_empty())
                    .count();
                assert!(
                    admins == 0 || admins == 50,
                    "half a batch visible: {admins}"
                );
                seen += 1;
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let mut last = 0;
    for round in 0..20 {
        let parents: &[(&str, &str)] = if round % 2 == 0 { &[ADMINS] } else { &[] };
        let batch: Vec<_> = users.iter().map(|u| user(u, parents)).collect();
        last = put(&writer, &batch).await;
    }
    eventually(10, "all batches applied", || replica.revision() == last).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(checker.await.unwrap() > 0);
    assert_eq!(
        replica.decision("u7").await,
        "Deny",
        "20 rounds end with no admins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_aof_resumes_without_reload() {
    let mut redis = RedisServer::start(Persistence::Aof);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    put(&writer, &platform()).await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let replica = sidecar(&urls, SidecarOptions::default());
    eventually(10, "snapshot", || replica.revision() == rev).await;

    redis.restart();
    let writer = super::harness::writer(&urls, Topology::Single, 1000);
    let rev = put(&writer, &[user("bob", &[ADMINS])]).await;
    assert_eq!(rev, 3, "AOF kept the revision counter");
    eventually(10, "resumed", || replica.revision() == rev).await;
    assert_eq!(replica.decision("bob").await, "Allow");
    assert_eq!(replica.decision("ana").await, "Allow");
    assert_eq!(replica.reloads(), 0, "resumed from its cursor, no reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_without_persistence_is_a_new_generation_and_reloads() {
    let mut redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    put(&writer, &platform()).await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let replica = sidecar(&urls, SidecarOptions::default());
    eventually(10, "snapshot", || replica.revision() == rev).await;
    assert_eq!(replica.decision("ana").await, "Allow");

    redis.restart();
    eventually(10, "reload of the empty dataset", || replica.reloads() == 1).await;
    eventually(10, "empty", || replica.contents().is_empty()).await;
    assert_eq!(
        replica.decision("ana").await,
        "Deny",
        "lost data is not served"
    );

    let writer = super::harness::writer(&urls, Topology::Single, 1000);
    put(&writer, &platform()).await;
    let rev = put(&writer, &[user("bob", &[ADMINS])]).await;
    eventually(10, "new generation tailed", || replica.revision() == rev).await;
    assert_eq!(replica.decision("bob").await, "Allow");
    assert_eq!(replica.contents(), redis_contents(&writer).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_trimmed_past_a_disconnected_replica_reloads() {
    let redis = RedisServer::start(Persistence::None);
    let proxy = Proxy::start(redis.socket()).await;
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 5);
    put(&writer, &platform()).await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let replica = sidecar(&[proxy.url()], SidecarOptions::default());
    eventually(10, "snapshot", || replica.revision() == rev).await;

    proxy.cut();
    // The cut closes connections asynchronously: wait until the replica has
    // lost its connection, so the writes below cannot reach it through a
    // reply already in flight.
    eventually(10, "the replica notices the cut", || {
        replica.state.freshness.report().last_error.is_some()
    })
    .await;
    delete_users(&writer, &["ana"]).await;
    let mut last = 0;
    for i in 0..40 {
        last = put(&writer, &[user(&format!("u{i}"), &[])]).await;
    }
    let first = redis.command(&["XRANGE", "cedar:{p0}:log", "-", "+", "COUNT", "1"]);
    assert!(
        !first.contains(&format!("\r\n{rev}-0\r\n")),
        "cursor entry trimmed"
    );
    assert_eq!(
        replica.decision("ana").await,
        "Allow",
        "disconnected: still the old data"
    );

    proxy.restore();
    eventually(10, "reload after trim", || replica.revision() == last).await;
    assert_eq!(replica.reloads(), 1);
    let reason = replica.state.freshness.report().last_reload_reason.unwrap();
    assert!(reason.contains("gone"), "{reason}");
    assert_eq!(replica.decision("ana").await, "Deny");
    assert_eq!(replica.contents(), redis_contents(&writer).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_older_dataset_is_detected_and_converged() {
    let mut redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    put(&writer, &platform()).await;
    put(&writer, &[user("ana", &[])]).await;
    assert!(redis.command(&["SAVE"]).starts_with("+OK"));
    let rev = put(&writer, &[user("ana", &[ADMINS]), user("bob", &[ADMINS])]).await;
    let replica = sidecar(&urls, SidecarOptions::default());
    eventually(10, "snapshot", || replica.revision() == rev).await;
    assert_eq!(replica.decision("ana").await, "Allow");

    // Restart loads the dump of revision 2: same generation, lost suffix.
    redis.restart();
    let writer = super::harness::writer(&urls, Topology::Single, 1000);
    // A different history reuses revision 3 and goes past it.
    put(&writer, &[user("carl", &[ADMINS])]).await;
    let last = put(&writer, &[user("dora", &[])]).await;
    assert_eq!(last, 4);
    eventually(10, "converged on the restored history", || {
        replica.revision() == last && replica.reloads() >= 1
    })
    .await;
    assert_eq!(replica.contents(), redis_contents(&writer).await);
    assert_eq!(replica.decision("ana").await, "Deny");
    assert_eq!(replica.decision("bob").await, "Deny");
    assert_eq!(replica.decision("carl").await, "Allow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_replicas_converge_after_random_writes() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 50);
    let mut seed = platform();
    let groups: Vec<(String, String)> = (0..4)
        .map(|i| ("Environment".to_string(), format!("env{i}")))
        .collect();
    for (_, id) in &groups {
        seed.push(entity(
            json!({"uid": {"type": "Environment", "id": id}, "attrs": {}, "parents": []}),
        ));
    }
    put(&writer, &seed).await;
    // One replica starts before the writes, one during, one after a cut.
    let early = sidecar(&urls, SidecarOptions::default());
    let redis_for_proxy = Proxy::start(redis.socket()).await;
    let flaky = sidecar(&[redis_for_proxy.url()], SidecarOptions::default());
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut late = None;
    for step in 0..300 {
        if step == 100 {
            late = Some(sidecar(&urls, SidecarOptions::default()));
        }
        if step == 150 {
            redis_for_proxy.cut();
        }
        if step == 220 {
            redis_for_proxy.restore();
        }
        let batch = 1 + next(3);
        let mut entities = Vec::new();
        let mut deletes = Vec::new();
        for _ in 0..batch {
            let id = format!("u{}", next(30));
            match next(4) {
                0 => deletes.push(id),
                _ => {
                    let mut parents: Vec<(&str, &str)> = Vec::new();
                    for (t, g) in &groups {
                        if next(2) == 0 {
                            parents.push((t, g));
                        }
                    }
                    if next(3) == 0 {
                        parents.push(ADMINS);
                    }
                    entities.push(user(&id, &parents));
                }
            }
        }
        if !entities.is_empty() {
            put(&writer, &entities).await;
        }
        if !deletes.is_empty() {
            let ids: Vec<&str> = deletes.iter().map(String::as_str).collect();
            delete_users(&writer, &ids).await;
        }
    }
    let last = writer.revision().await.unwrap();
    let late = late.unwrap();
    for replica in [&early, &flaky, &late] {
        eventually(20, "replica caught up", || replica.revision() == last).await;
    }
    let truth = redis_contents(&writer).await;
    assert!(truth.len() > 5);
    for replica in [&early, &flaky, &late] {
        assert_eq!(replica.contents(), truth);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_contact_past_the_bound_is_stale_unless_serving_stale() {
    let redis = RedisServer::start(Persistence::None);
    let proxy = Proxy::start(redis.socket()).await;
    let writer = writer(&[redis.url()], Topology::Single, 1000);
    put(&writer, &platform()).await;
    let policy = FreshnessPolicy {
        stale_after: Duration::from_millis(300),
        ..FreshnessPolicy::default()
    };
    let strict = sidecar(
        &[proxy.url()],
        SidecarOptions {
            policy,
            ..SidecarOptions::default()
        },
    );
    let lenient = sidecar(
        &[proxy.url()],
        SidecarOptions {
            policy: FreshnessPolicy {
                serve_stale: true,
                ..policy
            },
            ..SidecarOptions::default()
        },
    );
    eventually(10, "snapshots", || {
        strict.revision() == 1 && lenient.revision() == 1
    })
    .await;
    proxy.cut();
    eventually(10, "stale", || strict.state.freshness.stale_for().is_some()).await;
    let (status, body) = strict.may_create_org("ana", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("stale"))
    );
    let (status, body) = strict.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "stale");
    eventually(10, "stale", || {
        lenient.state.freshness.stale_for().is_some()
    })
    .await;
    assert_eq!(
        lenient.decision("ana").await,
        "Deny",
        "serve_stale keeps deciding"
    );

    proxy.restore();
    eventually(10, "fresh again", || {
        strict.state.freshness.stale_for().is_none()
    })
    .await;
    assert_eq!(strict.decision("ana").await, "Deny");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_serves_the_same_flow() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let writer = writer(&urls, Topology::Cluster, 1000);
    put(&writer, &platform()).await;
    let replica = sidecar(
        &urls,
        SidecarOptions {
            topology: Topology::Cluster,
            ..SidecarOptions::default()
        },
    );
    eventually(20, "snapshot", || replica.revision() == 1).await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let (status, body) = replica.may_create_org("ana", Some(rev)).await;
    assert_eq!(
        (status, body["decision"].as_str()),
        (StatusCode::OK, Some("Allow"))
    );
    let rev = delete_users(&writer, &["ana"]).await;
    let (_, body) = replica.may_create_org("ana", Some(rev)).await;
    assert_eq!(body["decision"], "Deny");
    assert_eq!(replica.contents(), redis_contents(&writer).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_the_token_and_validates_before_writing() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    put(&writer, &platform()).await;
    let replica = sidecar(
        &urls,
        SidecarOptions {
            admin_token: Some("s3cret".to_string()),
            ..SidecarOptions::default()
        },
    );
    eventually(10, "snapshot", || replica.revision() == 1).await;
    let ana = json!({"uid": {"type": "User", "id": "ana"}, "attrs": {}, "parents": [{"type": "PlatformAdmins", "id": "thunk"}]});

    for token in [None, Some("wrong")] {
        let (status, body) = replica
            .call(
                "PUT",
                "/v1/entities",
                token,
                Some(json!({"entities": [ana]})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "unauthorized");
    }
    let bad = json!({"uid": {"type": "User", "id": "eve"}, "attrs": {"age": 3}, "parents": []});
    let (status, body) = replica
        .call(
            "PUT",
            "/v1/entities",
            Some("s3cret"),
            Some(json!({"entities": [ana, bad]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_entity");
    let (status, body) = replica
        .call("PUT", "/v1/entities", Some("s3cret"), Some(json!({"entities": [
            {"uid": {"type": "User", "id": "ana"}, "attrs": {}, "parents": [{"type": "Group", "id": "nope"}]}
        ]})))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_entity"))
    );
    assert_eq!(writer.revision().await.unwrap(), 1, "nothing was written");

    let (status, body) = replica
        .call(
            "PUT",
            "/v1/entities",
            Some("s3cret"),
            Some(json!({"entities": [ana], "expected_revision": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rev = body["revision"].as_u64().unwrap();
    assert_eq!(rev, 2);
    let (status, body) = replica
        .call(
            "PUT",
            "/v1/entities",
            Some("s3cret"),
            Some(json!({"entities": [ana], "expected_revision": 1})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("revision_conflict"))
    );
    let (status, body) = replica
        .call("GET", "/v1/entities/User::%22ana%22", Some("s3cret"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revision"], 2);
    assert_eq!(body["entity"]["uid"]["id"], "ana");
    assert_eq!(
        replica.may_create_org("ana", Some(rev)).await.1["decision"],
        "Allow"
    );

    let (status, body) = replica
        .call(
            "DELETE",
            "/v1/entities",
            Some("s3cret"),
            Some(json!({"uids": ["User::\"ana\""]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rev = body["revision"].as_u64().unwrap();
    assert_eq!(
        replica.may_create_org("ana", Some(rev)).await.1["decision"],
        "Deny"
    );
    let (status, _) = replica
        .call("GET", "/v1/entities/User::%22ana%22", Some("s3cret"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn cli(url: &str, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
        .arg("entities")
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
async fn entities_cli_imports_the_demo_and_two_replicas_see_a_revocation() {
    let redis = RedisServer::start(Persistence::None);
    let url = redis.url();
    let (code, out, err) = cli(&url, &["import", "demo/entities.json"], None);
    assert_eq!(code, 0, "{err}");
    let imported: serde_json::Value = serde_json::from_str(&out).unwrap();
    let first = sidecar(std::slice::from_ref(&url), SidecarOptions::default());
    let second = sidecar(std::slice::from_ref(&url), SidecarOptions::default());
    let rev = imported["revision"].as_u64().unwrap();
    eventually(10, "both loaded", || {
        first.revision() == rev && second.revision() == rev
    })
    .await;

    // An invalid entity (unknown attribute) is refused with its position; nothing is written.
    let bad = "[\n  {\"uid\": {\"type\": \"User\", \"id\": \"eve\"}, \"attrs\": {\"age\": 1}, \"parents\": []}\n]";
    let (code, _, err) = cli(&url, &["put", "-"], Some(bad));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("<stdin>:2:3"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    let (code, out, _) = cli(&url, &["get", "User::\"eve\""], None);
    assert_eq!((code, out.as_str()), (3, ""));

    // Put an admin, then revoke with one command: both replicas deny.
    let ana = r#"[{"uid": {"type": "User", "id": "zed"}, "attrs": {}, "parents": [{"type": "PlatformAdmins", "id": "thunk"}]}]"#;
    let (code, out, err) = cli(&url, &["put", "-"], Some(ana));
    assert_eq!(code, 0, "{err}");
    let rev: serde_json::Value = serde_json::from_str(&out).unwrap();
    for replica in [&first, &second] {
        let (_, body) = replica
            .may_create_org("zed", rev["revision"].as_u64())
            .await;
        assert_eq!(body["decision"], "Allow");
    }
    let (code, out, err) = cli(&url, &["delete", "User::\"zed\""], None);
    assert_eq!(code, 0, "{err}");
    let rev: serde_json::Value = serde_json::from_str(&out).unwrap();
    for replica in [&first, &second] {
        let (_, body) = replica
            .may_create_org("zed", rev["revision"].as_u64())
            .await;
        assert_eq!(body["decision"], "Deny");
    }
    let (code, out, _) = cli(&url, &["export"], None);
    assert_eq!(code, 0);
    let exported: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(exported.len(), first.contents().len());
}
