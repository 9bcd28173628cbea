//! Figures for BENCHMARKS.md (`## Redis sync`): write-to-applied latency
//! with 1 and 16 replicas, a template link written until the decision it
//! grants changes at 1 and 16 replicas, and snapshot load time and memory
//! for 100k and 1M entities. Spawns its own redis-server on a unix socket.
//!
//! `cargo run --release --example redis_sync_bench [-- --quick] [-- --links-only]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The allocator the `cedar-sidecar` binary uses, so figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cedar_sidecar::engine::{decide, DecisionRequest, PackSources, PolicyPack, Verdict};
use cedar_sidecar::freshness::{Freshness, FreshnessPolicy};
use cedar_sidecar::publisher::Publisher;
use cedar_sidecar::state::SharedState;
use cedar_sidecar::sync::{
    EntityWrite, KeyLayout, LinkWrite, RedisTarget, RedisWriter, Replica, Topology,
};

struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--unixsocket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child, dir }
    }

    fn url(&self) -> String {
        format!(
            "redis+unix://{}",
            self.dir.path().join("redis.sock").display()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pack() -> Arc<PolicyPack> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    Arc::new(
        PolicyPack::load(&PackSources {
            policies: root.join("policies"),
            schema: root.join("schema"),
        })
        .unwrap(),
    )
}

struct Running {
    shared: Arc<SharedState>,
    freshness: Arc<Freshness>,
    task: tokio::task::JoinHandle<()>,
}

fn replica(url: &str, pack: &Arc<PolicyPack>) -> Running {
    let target = Arc::new(RedisTarget::new(&[url.to_string()], &Topology::Single).unwrap());
    let shared = Arc::new(SharedState::default());
    let freshness = Arc::new(Freshness::tracked(FreshnessPolicy {
        max_wait: Duration::from_secs(60),
        ..FreshnessPolicy::default()
    }));
    let metrics = Arc::new(cedar_sidecar::telemetry::Metrics::default());
    let publisher = Publisher::start(
        shared.clone(),
        pack.clone(),
        freshness.clone(),
        metrics.clone(),
    );
    let task = Replica {
        target,
        keys: KeyLayout::default(),
        publisher,
        freshness: freshness.clone(),
        idle_check: Duration::from_secs(1),
        metrics,
    }
    .spawn();
    Running {
        shared,
        freshness,
        task,
    }
}

fn writer(url: &str, maxlen: u64) -> RedisWriter {
    let target = Arc::new(RedisTarget::new(&[url.to_string()], &Topology::Single).unwrap());
    RedisWriter::new(target, KeyLayout::default(), maxlen)
}

fn user(i: usize, admin: bool) -> EntityWrite {
    let parents = if admin {
        r#"[{"type":"PlatformAdmins","id":"thunk"},{"type":"Org","id":"acme"}]"#
    } else {
        r#"[{"type":"Org","id":"acme"}]"#
    };
    EntityWrite {
        uid: format!("User::\"user{i}\""),
        json: Some(format!(
            r#"{{"uid":{{"type":"User","id":"user{i}"}},"attrs":{{"name":"User {i}","email":"user{i}@example.com"}},"parents":{parents}}}"#
        )),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

async fn latency(replicas: usize, writes: usize, pack: &Arc<PolicyPack>) -> String {
    let server = Server::start();
    let writer = writer(&server.url(), 10_000);
    writer.write(&[user(0, false)], None).await.unwrap();
    let running: Vec<Running> = (0..replicas)
        .map(|_| replica(&server.url(), pack))
        .collect();
    for r in &running {
        assert!(r.freshness.wait_for(1).await, "snapshot");
    }
    let mut samples = Vec::with_capacity(writes * replicas);
    for i in 0..writes {
        let started = Instant::now();
        let waiters: Vec<_> = running
            .iter()
            .map(|r| {
                let freshness = r.freshness.clone();
                let rev = i as u64 + 2;
                tokio::spawn(async move {
                    assert!(freshness.wait_for(rev).await);
                    started.elapsed()
                })
            })
            .collect();
        writer
            .write(&[user(i % 100, i % 2 == 0)], None)
            .await
            .unwrap();
        for waiter in waiters {
            samples.push(waiter.await.unwrap());
        }
    }
    for r in running {
        r.task.abort();
    }
    samples.sort();
    format!(
        "| write-to-applied, {replicas} replica(s), {writes} writes | p50 {:.3} ms | p99 {:.3} ms | max {:.3} ms |",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    )
}

/// The `templates` fixture: folder-reader grants as links.
fn templates_pack() -> Arc<PolicyPack> {
    let root = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/engine/templates"
    ));
    Arc::new(
        PolicyPack::load(&PackSources {
            policies: root.join("policies"),
            schema: root.join("schema.cedarschema"),
        })
        .unwrap(),
    )
}

/// A template link written (put or delete, alternately) until the decision
/// it grants has changed at every replica: each replica is woken when it
/// has applied the write's revision, decides `bob` reading `pay` on the
/// snapshot it publishes, and must see the new answer.
async fn link_latency(replicas: usize, writes: usize) -> String {
    let pack = templates_pack();
    let server = Server::start();
    let writer = writer(&server.url(), 10_000);
    let entity = |json: &str| EntityWrite {
        uid: {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            format!(
                "{}::\"{}\"",
                value["uid"]["type"].as_str().unwrap(),
                value["uid"]["id"].as_str().unwrap()
            )
        },
        json: Some(json.to_string()),
    };
    writer
        .write(
            &[
                entity(r#"{"uid":{"type":"User","id":"bob"},"attrs":{},"parents":[]}"#),
                entity(r#"{"uid":{"type":"Folder","id":"hr"},"attrs":{},"parents":[]}"#),
                entity(
                    r#"{"uid":{"type":"Doc","id":"pay"},"attrs":{"owner":{"type":"User","id":"bob"}},"parents":[{"type":"Folder","id":"hr"}]}"#,
                ),
            ],
            None,
        )
        .await
        .unwrap();
    let running: Vec<Running> = (0..replicas)
        .map(|_| replica(&server.url(), &pack))
        .collect();
    for r in &running {
        assert!(r.freshness.wait_for(1).await, "snapshot");
    }
    let grant = LinkWrite {
        id: "bob-reads-hr".to_string(),
        json: Some(
            r#"{"template_id":"folder-readers","link_id":"bob-reads-hr","args":{"?principal":"User::\"bob\"","?resource":"Folder::\"hr\""}}"#
                .to_string(),
        ),
    };
    let request = Arc::new(DecisionRequest {
        principal: r#"User::"bob""#.parse().unwrap(),
        action: r#"Action::"read""#.parse().unwrap(),
        resource: r#"Doc::"pay""#.parse().unwrap(),
        context: Some(serde_json::json!({"n": 1})),
        entities: Vec::new(),
    });
    let mut samples = Vec::with_capacity(writes * replicas);
    for i in 0..writes {
        let granting = i % 2 == 0;
        let expected = if granting {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        let rev = i as u64 + 2;
        let started = Instant::now();
        let waiters: Vec<_> = running
            .iter()
            .map(|r| {
                let (freshness, shared, request) =
                    (r.freshness.clone(), r.shared.clone(), request.clone());
                tokio::spawn(async move {
                    assert!(freshness.wait_for(rev).await);
                    let snapshot = shared.snapshot().unwrap();
                    let decision = decide(
                        &snapshot.pack,
                        &snapshot.entities,
                        &request,
                        &Default::default(),
                    )
                    .unwrap();
                    assert_eq!(decision.verdict, expected, "{decision:?}");
                    started.elapsed()
                })
            })
            .collect();
        let write = if granting {
            grant.clone()
        } else {
            LinkWrite::delete("bob-reads-hr")
        };
        writer.write_links(&[write], None).await.unwrap();
        for waiter in waiters {
            samples.push(waiter.await.unwrap());
        }
    }
    for r in running {
        r.task.abort();
    }
    samples.sort();
    format!(
        "| link write-to-decision-changed, {replicas} replica(s), {writes} writes | p50 {:.3} ms | p99 {:.3} ms | max {:.3} ms |",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    )
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The process's peak resident memory (`VmHWM`), in bytes.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Resets the peak (`VmHWM`) to the current resident size (Linux 4.0+), so
/// the next reading is the peak of what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn snapshot(entities: usize, pack: &Arc<PolicyPack>) -> String {
    let server = Server::start();
    let writer = writer(&server.url(), 100);
    let writes: Vec<EntityWrite> = (0..entities).map(|i| user(i, i % 10 == 0)).collect();
    let started = Instant::now();
    let last = writer.write_chunked(&writes, 1000, |_| {}).await.unwrap();
    let import = started.elapsed();
    drop(writes);
    reset_peak_rss();
    let before = rss_bytes();
    let started = Instant::now();
    let running = replica(&server.url(), pack);
    assert!(running.freshness.wait_for(last).await, "loaded");
    let load = started.elapsed();
    let after = rss_bytes();
    let peak = peak_rss_bytes();
    let loaded = running.shared.snapshot().map_or(0, |s| s.entities.len());
    assert_eq!(loaded, entities);
    running.task.abort();
    let scan = scan_only(&server.url()).await;
    format!(
        "| snapshot load, {entities} entities | {:.2} s | +{} MiB RSS, peak +{} MiB | import {:.2} s ({:.0} entities/s) | HSCAN alone {:.2} s |",
        load.as_secs_f64(),
        after.saturating_sub(before) / (1024 * 1024),
        peak.saturating_sub(before) / (1024 * 1024),
        import.as_secs_f64(),
        entities as f64 / import.as_secs_f64(),
        scan.as_secs_f64()
    )
}

/// The floor under a snapshot load: the same `HSCAN` a replica runs, with
/// nothing done to what it returns (what issue 4's prototype timed).
async fn scan_only(url: &str) -> Duration {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = KeyLayout::default().entities;
    let started = Instant::now();
    let mut cursor: u64 = 0;
    loop {
        let (next, _items): (u64, Vec<redis::Value>) = redis::cmd("HSCAN")
            .arg(&key)
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if next == 0 {
            return started.elapsed();
        }
        cursor = next;
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let links_only = std::env::args().any(|a| a == "--links-only");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pack = pack();
    let _ = PathBuf::new();
    runtime.block_on(async {
        let writes = if quick { 200 } else { 2000 };
        println!("{}", link_latency(1, writes).await);
        println!("{}", link_latency(16, writes / 2).await);
        if links_only {
            return;
        }
        println!("{}", latency(1, writes, &pack).await);
        println!("{}", latency(16, writes / 2, &pack).await);
        println!("{}", snapshot(100_000, &pack).await);
        if !quick {
            println!("{}", snapshot(1_000_000, &pack).await);
        }
    });
}
