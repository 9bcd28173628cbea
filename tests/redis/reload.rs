//! Policy and schema reloads on a replica: the publisher holds the pack
//! apart from the entities, publishes a new schema only with a snapshot
//! checked against it, and never stops the stream or the readers meanwhile.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cedar_sidecar::freshness::FreshnessPolicy;
use cedar_sidecar::http::{router, AppState};
use cedar_sidecar::reload::{Reloaded, Reloader};
use cedar_sidecar::sync::{EntityWrite, Topology};
use cedar_sidecar_bench::gen::generate;
use serde_json::json;
use tower::ServiceExt;

use super::harness::*;
use super::proxy::Proxy;
use super::server::{Persistence, RedisServer};

const ADMINS: (&str, &str) = ("PlatformAdmins", "thunk");
const SCHEMA: &str = "schema/thunk.cedarschema";

fn reloader(replica: &Sidecar) -> Arc<Reloader> {
    replica.state.reloader.clone().expect("a pack_dir sidecar")
}

fn edit(dir: &tempfile::TempDir, rel: &str, from: &str, to: &str) {
    let path = dir.path().join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} not in {rel}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// The status of one `CreateOrg` decision for `user`, through the router.
async fn status_of(state: &AppState, user: &str) -> StatusCode {
    let body = json!({
        "principal": {"type": "User", "id": user},
        "action": {"type": "Action", "id": "CreateOrg"},
        "resource": {"type": "Platform", "id": "thunk"},
    });
    let request = Request::post("/v1/is_authorized")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    router(state.clone())
        .oneshot(request)
        .await
        .unwrap()
        .status()
}

fn published_schema(replica: &Sidecar) -> String {
    let snapshot = replica.state.shared.snapshot().expect("loaded");
    snapshot.pack.schema_version.clone()
}

fn serves(replica: &Sidecar, uid: &str) -> bool {
    let uid = uid.parse().unwrap();
    let snapshot = replica.state.shared.snapshot().expect("loaded");
    snapshot.entities.get(&uid).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_reload_at_100k_never_answers_503_and_applies_stream_writes() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 100_000);
    let data = generate(100_000, 7);
    let writes: Vec<EntityWrite> = data
        .entities
        .iter()
        .map(|e| EntityWrite {
            uid: e.uid().to_string(),
            json: Some(e.to_json().to_string()),
        })
        .collect();
    writer.write_chunked(&writes, 1000, |_| {}).await.unwrap();
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let dir = shipped_pack_copy();
    // Stale after 2 s out of contact. Here (debug build, 2 busy cores) the
    // replica is out of contact for at most about 0.4 s during this reload
    // (0.2 s of it the idle XREAD); the re-check it replaces held the
    // writer lock, which the replica waits on to apply a write, for 2.4 s.
    let replica = sidecar(
        &urls,
        SidecarOptions {
            pack_dir: Some(dir.path().to_path_buf()),
            policy: FreshnessPolicy {
                stale_after: Duration::from_secs(2),
                ..FreshnessPolicy::default()
            },
            ..SidecarOptions::default()
        },
    );
    eventually(120, "first snapshot", || replica.revision() == rev).await;
    let old_schema = published_schema(&replica);

    // A client decides all along; every answer must be 200.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (state, stop) = (replica.state.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut answered, mut failures, mut gap) = (0u64, Vec::new(), 0);
            while !stop.load(Ordering::SeqCst) {
                let status = status_of(&state, "ana").await;
                if status != StatusCode::OK {
                    failures.push(status);
                }
                let since = state.freshness.report().since_contact_ms.unwrap_or(0);
                gap = gap.max(since);
                answered += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (answered, failures, gap)
        })
    };
    // A writer keeps writing through the reload.
    let written = Arc::new(AtomicU64::new(0));
    let stream = {
        let (urls, stop, written) = (urls.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let writer = super::harness::writer(&urls, Topology::Single, 100_000);
            let mut last = 0;
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) || i < 10 {
                last = put(&writer, &[user(&format!("during{i}"), &[ADMINS])]).await;
                written.store(i + 1, Ordering::SeqCst);
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (last, i)
        })
    };
    eventually(10, "writes under way", || {
        written.load(Ordering::SeqCst) >= 3
    })
    .await;

    // The schema's text changes (its hash with it); it still accepts the data.
    std::fs::write(
        dir.path().join(SCHEMA),
        format!(
            "{}\n// edited\n",
            std::fs::read_to_string(dir.path().join(SCHEMA)).unwrap()
        ),
    )
    .unwrap();
    let ok_before = reloader(&replica).status().last_ok_at;
    let started = Instant::now();
    let reloaded = reloader(&replica).reload_policies().await.unwrap();
    eventually(120, "the new schema published", || {
        published_schema(&replica) != old_schema
    })
    .await;
    let elapsed = started.elapsed();
    eprintln!("schema reload at 100k entities published after {elapsed:?} ({reloaded:?})");
    stop.store(true, Ordering::SeqCst);
    let (last, count) = stream.await.unwrap();
    let (answered, failures, gap) = client.await.unwrap();
    eprintln!("longest time out of contact with redis seen during the reload: {gap} ms");
    assert!(failures.is_empty(), "answers other than 200: {failures:?}");
    assert!(answered > 10, "only {answered} decisions");

    eventually(30, "every write applied", || replica.revision() == last).await;
    for i in 0..count {
        assert!(
            serves(&replica, &format!("User::\"during{i}\"")),
            "during{i}"
        );
    }
    assert_eq!(
        replica.decision(&format!("during{}", count - 1)).await,
        "Allow"
    );
    let reason = replica.state.freshness.report().last_reload_reason;
    assert_eq!(reason.as_deref(), Some("the schema changed"));
    // The outcome is recorded right after the publisher answers, so the
    // status may trail the published schema by a moment.
    let reloader = reloader(&replica);
    eventually(10, "the reload recorded as done", || {
        let status = reloader.status();
        status.pending_version.is_none() && status.last_ok_at != ok_before
    })
    .await;
    assert!(reloader.status().last_error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_the_old_schema_refused_is_served_once_the_schema_accepts_it() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    put(&writer, &platform()).await;
    let dir = shipped_pack_copy();
    let replica = sidecar(
        &urls,
        SidecarOptions {
            pack_dir: Some(dir.path().to_path_buf()),
            ..SidecarOptions::default()
        },
    );
    eventually(10, "first snapshot", || replica.revision() == 1).await;

    // Written from the stream with an attribute the schema does not declare.
    let nick = json!({"uid": {"type": "User", "id": "nick"}, "attrs": {"nickname": "n"},
                      "parents": [{"type": "PlatformAdmins", "id": "thunk"}]});
    let rev = writer
        .write(
            &[EntityWrite {
                uid: "User::\"nick\"".to_string(),
                json: Some(nick.to_string()),
            }],
            None,
        )
        .await
        .unwrap();
    eventually(10, "the write seen", || replica.revision() == rev).await;
    assert!(!serves(&replica, "User::\"nick\""), "refused, not served");
    assert_eq!(replica.decision("nick").await, "Deny");
    assert_eq!(replica.state.freshness.report().invalid_entities, 1);

    edit(
        &dir,
        SCHEMA,
        "  email?: String,\n};",
        "  email?: String,\n  nickname?: String,\n};",
    );
    reloader(&replica).reload_policies().await.unwrap();
    eventually(10, "the entity fetched again", || {
        serves(&replica, "User::\"nick\"")
    })
    .await;
    assert_eq!(replica.decision("nick").await, "Allow");
    assert_eq!(replica.state.freshness.report().invalid_entities, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_that_drops_served_entities_is_refused_and_the_old_one_keeps_serving() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    put(&writer, &platform()).await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let dir = shipped_pack_copy();
    let replica = sidecar(
        &urls,
        SidecarOptions {
            pack_dir: Some(dir.path().to_path_buf()),
            ..SidecarOptions::default()
        },
    );
    eventually(10, "first snapshot", || replica.revision() == rev).await;
    let before = replica
        .state
        .shared
        .snapshot()
        .unwrap()
        .pack
        .version
        .clone();

    // Every user must now have a title: ana has none.
    edit(
        &dir,
        SCHEMA,
        "  email?: String,\n};",
        "  email?: String,\n  title: String,\n};",
    );
    let reloader = reloader(&replica);
    match reloader.reload_policies().await {
        Err(error) => assert!(error.contains("User::\"ana\""), "{error}"),
        Ok(Reloaded::Pending(_)) => {}
        Ok(other) => panic!("published a schema that drops ana: {other:?}"),
    }
    eventually(20, "the refusal recorded", || {
        reloader.status().last_error.is_some()
    })
    .await;
    let error = reloader.status().last_error.unwrap();
    assert!(
        error.contains("User::\"ana\"") && error.contains("title"),
        "{error}"
    );
    assert_eq!(
        replica.state.shared.snapshot().unwrap().pack.version,
        before
    );
    assert_eq!(replica.decision("ana").await, "Allow");
    // The replica goes back to the published schema and keeps tailing.
    let rev = put(&writer, &[user("bob", &[ADMINS])]).await;
    eventually(10, "tailing again", || replica.revision() == rev).await;
    assert_eq!(replica.decision("bob").await, "Allow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_before_the_first_snapshot_is_what_gets_published() {
    let redis = RedisServer::start(Persistence::None);
    let writer = writer(&[redis.url()], Topology::Single, 1000);
    put(&writer, &platform()).await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let proxy = Proxy::start(redis.socket()).await;
    proxy.cut();
    let dir = shipped_pack_copy();
    let replica = sidecar(
        &[proxy.url()],
        SidecarOptions {
            pack_dir: Some(dir.path().to_path_buf()),
            ..SidecarOptions::default()
        },
    );
    refused(&replica).await;

    // Redis is unreachable at boot; the platform admins' grant is revoked.
    edit(
        &dir,
        "policies/platform.cedar",
        "principal in PlatformAdmins::\"thunk\"",
        "principal == User::\"nobody\"",
    );
    let reloaded = reloader(&replica).reload_policies().await.unwrap();
    assert!(
        matches!(reloaded, Reloaded::Pending(_)),
        "nothing published yet: {reloaded:?}"
    );

    proxy.restore();
    eventually(20, "first snapshot", || replica.revision() == rev).await;
    let snapshot = replica.state.shared.snapshot().unwrap();
    assert_eq!(snapshot.pack.version, reloaded.version());
    assert_eq!(
        replica.decision("ana").await,
        "Deny",
        "the edited policy decides"
    );
    eventually(10, "the reload recorded", || {
        reloader(&replica).status().pending_version.is_none()
    })
    .await;
    assert!(reloader(&replica).status().last_error.is_none());
}
