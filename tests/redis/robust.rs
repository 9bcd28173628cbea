//! Sync robustness: a malformed stream entry is counted and skipped with a
//! reload (not retried forever); a sync task that dies is restarted and
//! the restarts are counted; a writer refused as read-only (a master
//! demoted by a failover) reconnects and retries a bounded number of times.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cedar_sidecar::freshness::{Freshness, FreshnessPolicy};
use cedar_sidecar::sync::writer::READONLY_ATTEMPTS;
use cedar_sidecar::sync::{supervise, EntityWrite, Exit, RedisWriter, SyncError, Topology};
use cedar_sidecar::telemetry::{Metrics, SnapshotGauges};

use super::harness::*;
use super::server::{Persistence, RedisServer};

const ADMINS: (&str, &str) = ("PlatformAdmins", "thunk");

/// The value of a bulk-string reply in raw RESP text.
fn bulk(reply: &str) -> String {
    reply.lines().nth(1).unwrap_or_default().to_string()
}

fn metric(metrics: &std::sync::Arc<Metrics>, name: &str) -> String {
    let text = metrics.render(&SnapshotGauges {
        policy_version: "v",
        entities: 0,
        revision: 0,
        policies: 0,
        min_entities: 0,
    });
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_stream_entry_is_counted_skipped_and_the_stream_goes_on() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = writer(&urls, Topology::Single, 1000);
    put(&writer, &platform()).await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let replica = sidecar(&urls, SidecarOptions::default());
    eventually(10, "snapshot", || replica.revision() == rev).await;

    // A writer that bypassed the script: `e` before any `u`.
    let generation = bulk(&redis.command(&["GET", "cedar:{p0}:gen"]));
    let bad = format!("{}-0", rev + 1);
    let reply = redis.command(&[
        "XADD",
        "cedar:{p0}:log",
        &bad,
        "gen",
        &generation,
        "wid",
        "w-bad",
        "e",
        "{}",
    ]);
    assert!(reply.contains(&bad), "{reply}");
    redis.command(&["SET", "cedar:{p0}:rev", &(rev + 1).to_string()]);

    // Later writes still arrive.
    let last = put(&writer, &[user("bob", &[ADMINS])]).await;
    assert_eq!(last, rev + 2);
    eventually(10, "the stream goes on past the bad entry", || {
        replica.revision() == last
    })
    .await;
    assert_eq!(replica.decision("bob").await, "Allow");
    assert_eq!(replica.decision("ana").await, "Allow");
    let report = replica.state.freshness.report();
    assert_eq!(report.malformed_entries, 1, "{report:?}");
    assert!(
        report.last_malformed.as_deref().unwrap().contains(&bad),
        "{report:?}"
    );
    assert!(report.reloads >= 1);
    assert_eq!(
        metric(&replica.state.metrics, "cedar_sync_malformed_entries_total"),
        "1"
    );
    // And it stays applied: idle checks find the cursor entry (the good one).
    let reloads = replica.reloads();
    let rev = put(&writer, &[user("carl", &[])]).await;
    eventually(10, "tailing", || replica.revision() == rev).await;
    assert_eq!(replica.reloads(), reloads, "no reload loop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_task_that_dies_is_restarted_and_counted() {
    let freshness = Arc::new(Freshness::tracked(FreshnessPolicy::default()));
    let metrics = Arc::new(Metrics::default());
    let runs = Arc::new(AtomicU32::new(0));
    let task = {
        let runs = runs.clone();
        move || {
            let runs = runs.clone();
            async move {
                match runs.fetch_add(1, Ordering::SeqCst) {
                    0 => panic!("a bug in the sync task"),
                    1 => Exit::Unexpected,
                    _ => Exit::Done,
                }
            }
        }
    };
    let handle = supervise("test sync", freshness.clone(), metrics.clone(), task);
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the supervisor ends when the task is done")
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let report = freshness.report();
    assert_eq!(report.restarts, 2, "{report:?}");
    assert_eq!(
        report.last_restart_reason.as_deref(),
        Some("test sync returned unexpectedly")
    );
    assert_eq!(metric(&metrics, "cedar_sync_restarts_total"), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_behind_one_url_retries_a_read_only_server_then_says_so() {
    let redis = RedisServer::start(Persistence::None);
    let urls = vec![redis.url()];
    let writer = Arc::new(writer(&urls, Topology::Single, 1000));
    put(&writer, &platform()).await;

    // Demoted to a replica (of nothing reachable): writes are refused.
    redis.command(&["REPLICAOF", "127.0.0.1", "1"]);
    let write = |writer: Arc<RedisWriter>| async move {
        let writes = [EntityWrite::put(&user("ana", &[ADMINS])).unwrap()];
        writer.write(&writes, None).await
    };
    let error = write(writer.clone()).await.unwrap_err();
    assert!(
        matches!(error, SyncError::ReadOnly { attempts, .. } if attempts == READONLY_ATTEMPTS),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("read-only") && message.contains("master"),
        "{message}"
    );

    // A write under way when the server becomes a master again goes through.
    let pending = tokio::spawn(write(writer.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.command(&["REPLICAOF", "NO", "ONE"]);
    assert_eq!(pending.await.unwrap().unwrap(), 2);
}
