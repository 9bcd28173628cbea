//! The HTTP bench harness end to end on a small store, and the listener's
//! TCP_NODELAY.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cedar_sidecar::engine::{PackSources, PolicyPack};
use cedar_sidecar_bench::http::{run_http_bench, HttpBenchConfig, HttpBenchError};

fn shipped_pack() -> PolicyPack {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    PolicyPack::load(&PackSources {
        policies: root.join("policies"),
        schema: root.join("schema"),
    })
    .expect("the shipped pack loads")
}

fn config(pin: bool) -> HttpBenchConfig {
    HttpBenchConfig {
        entities: 2_000,
        seed: 7,
        connections: 4,
        duration: Duration::from_millis(200),
        server_threads: 1,
        pin,
    }
}

#[test]
fn every_run_gets_answers_and_no_errors() {
    let mut lines = Vec::new();
    let report = run_http_bench(shipped_pack(), &config(false), &mut |line| {
        lines.push(line.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let runs = [
        ("no-op", &report.noop),
        ("decision", &report.decision),
        ("batch", &report.batch),
        ("half load", &report.decision_half_load),
        ("one client", &report.decision_one_client),
        ("batch, one client", &report.batch_one_client),
    ];
    for (name, run) in runs {
        assert!(run.ok > 0, "{name}: {run:?}");
        assert_eq!(run.errors, 0, "{name}: {run:?}");
        assert!(
            run.p50_us > 0.0 && run.p50_us <= run.p99_us,
            "{name}: {run:?}"
        );
    }
    assert!(report.decision_to_noop > 0.0);
    assert_eq!(lines.len(), runs.len(), "{lines:?}");
}

#[test]
fn pinning_needs_two_cores_and_then_works() {
    let cores = core_affinity::get_core_ids().unwrap_or_default().len();
    // On a thread of its own: pinning moves the calling thread to one core.
    let result =
        std::thread::spawn(move || run_http_bench(shipped_pack(), &config(true), &mut |_| {}))
            .join()
            .unwrap_or_else(|_| panic!("the bench thread panicked"));
    match result {
        Ok(report) => {
            assert!(cores >= 2, "pinned on {cores} core(s)");
            assert!(report.decision.ok > 0 && report.decision.errors == 0);
        }
        Err(HttpBenchError::Pin(message)) => assert!(cores < 2, "{message}"),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn accepted_connections_get_tcp_nodelay() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    assert!(!accepted.nodelay().unwrap());
    cedar_sidecar::http::server::without_delay(&accepted);
    assert!(accepted.nodelay().unwrap());
    drop(client);
}
