//! The decision log's accounting: every record the filter wants logged is
//! written or counted lost by cause, exactly, whatever happens to the file
//! (removed, moved and reopened, a full disk, a failed rotation, a stuck
//! sink at shutdown).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cedar_sidecar::http::{router, AppState};
use cedar_sidecar::telemetry::{
    DecisionLog, DecisionLogConfig, DecisionLogLoss, DecisionLogSink, Metrics,
};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::{repo, shipped_state};

const PAULA_USES_PROD: &str = r#"{"principal":"User::\"paula\"","action":"Action::\"UseEnvironment\"","resource":"Environment::\"acme-prod\"","context":{}}"#;

/// Decisions per batch request.
const BATCH: usize = 50;

/// How long a test waits for progress before it calls the sidecar stuck.
/// Not a speed assertion: only a guard against hanging forever.
const PATIENCE: Duration = Duration::from_secs(120);

fn batch_body(n: usize) -> String {
    format!("{{\"requests\":[{}]}}", vec![PAULA_USES_PROD; n].join(","))
}

fn app_with(log: DecisionLog, state: AppState) -> (axum::Router, Arc<DecisionLog>) {
    let mut state = state;
    let log = Arc::new(log);
    state.decision_log = log.clone();
    (router(state), log)
}

/// A router logging to `sink`, with its logger and metrics.
fn logging_to(
    sink: DecisionLogSink,
    tune: impl FnOnce(&mut DecisionLogConfig),
) -> (axum::Router, Arc<DecisionLog>, Arc<Metrics>) {
    let state = AppState::new(shipped_state());
    let metrics = state.metrics.clone();
    let mut config = DecisionLogConfig {
        sink,
        ..DecisionLogConfig::default()
    };
    tune(&mut config);
    let log = DecisionLog::start(config, metrics.clone()).unwrap();
    let (app, log) = app_with(log, state);
    (app, log, metrics)
}

/// A router logging to `writer`.
fn logging_into(writer: Box<dyn Write + Send>) -> (axum::Router, Arc<DecisionLog>, Arc<Metrics>) {
    let state = AppState::new(shipped_state());
    let metrics = state.metrics.clone();
    let config = DecisionLogConfig {
        sink: DecisionLogSink::Stdout,
        ..DecisionLogConfig::default()
    };
    let log = DecisionLog::start_with_writer(config, metrics.clone(), writer).unwrap();
    let (app, log) = app_with(log, state);
    (app, log, metrics)
}

/// Makes `n` decisions in one batch request; all are logged.
async fn decide(app: &axum::Router, n: usize) {
    let request = Request::builder()
        .method("POST")
        .uri("/v1/is_authorized/batch")
        .header("content-type", "application/json")
        .body(Body::from(batch_body(n)))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.unwrap();
}

/// Batches until `stop`; returns the decisions made.
async fn load(app: axum::Router, stop: Arc<AtomicBool>) -> u64 {
    let mut made = 0;
    while !stop.load(Ordering::Relaxed) {
        decide(&app, BATCH).await;
        made += BATCH as u64;
    }
    made
}

/// Load from two callers while `during` runs; returns the decisions made.
async fn under_load(app: &axum::Router, during: impl std::future::Future<Output = ()>) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(load(app.clone(), stop.clone())))
        .collect();
    during.await;
    stop.store(true, Ordering::Relaxed);
    let mut made = 0;
    for caller in callers {
        made += caller.await.unwrap();
    }
    made
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "waited too long for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn lost(metrics: &Metrics, cause: DecisionLogLoss) -> u64 {
    metrics.decision_log_lost(cause)
}

/// The decision ids in a log's text, in order.
fn ids(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a record ({e}): {line:.200}"));
            record["decision_id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The lines that start at or after `offset`.
fn whole_lines_from(text: &str, offset: usize) -> &str {
    let start = text.as_bytes()[..offset]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |newline| newline + 1);
    let rest = &text[start..];
    if start == offset {
        rest
    } else {
        rest.split_once('\n').map_or("", |(_, after)| after)
    }
}

fn distinct(ids: &[String], what: &str) -> HashSet<String> {
    let set: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "a record twice in {what}");
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_log_under_load_is_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    let (app, log, metrics) = logging_to(DecisionLogSink::File(path.clone()), |c| c.buffer = 256);
    let mut removed = None;
    let submitted = under_load(&app, async {
        until("records", || metrics.decision_log_written() >= 2_000).await;
        // Held open, the removed file can still be read at the end.
        let old = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let length_then = old.metadata().unwrap().len() as usize;
        let written_then = metrics.decision_log_written();
        removed = Some((old, length_then));
        until("records after the removal", || {
            metrics.decision_log_written() >= written_then + 2_000
        })
        .await;
    })
    .await;
    assert!(log.shutdown_within(PATIENCE));
    let (mut old, length_then) = removed.unwrap();

    let written = metrics.decision_log_written();
    assert_eq!(
        written + metrics.decision_log_drops(),
        submitted,
        "every record written or counted lost"
    );
    assert_eq!(lost(&metrics, DecisionLogLoss::WriteError), 0);
    assert_eq!(lost(&metrics, DecisionLogLoss::Shutdown), 0);
    let mut old_text = String::new();
    old.read_to_string(&mut old_text).unwrap();
    let new_text = std::fs::read_to_string(&path).unwrap();
    let old_ids = distinct(&ids(&old_text), "the removed file");
    let new_ids = distinct(&ids(&new_text), "the new file");
    // What went into the removed file once it was surely removed is in the
    // new one as well: only what it held before is gone, as with any `rm`.
    for id in ids(whole_lines_from(&old_text, length_then)) {
        assert!(
            new_ids.contains(&id),
            "{id} went into the removed file only"
        );
    }
    assert_eq!(
        old_ids.union(&new_ids).count() as u64,
        written,
        "the records counted written are the records in the files"
    );
    assert!(
        new_ids.len() >= 1_000,
        "{} records after the removal",
        new_ids.len()
    );
    assert!(metrics.decision_log_reopens() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_log_and_reopening_under_load_is_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    let moved = dir.path().join("decisions.log.1");
    let (app, log, metrics) = logging_to(DecisionLogSink::File(path.clone()), |c| c.buffer = 256);
    let submitted = under_load(&app, async {
        until("records", || metrics.decision_log_written() >= 2_000).await;
        std::fs::rename(&path, &moved).unwrap();
        log.reopen();
        let written_then = metrics.decision_log_written();
        until("records after the move", || {
            metrics.decision_log_written() >= written_then + 2_000
        })
        .await;
    })
    .await;
    assert!(log.shutdown_within(PATIENCE));

    let written = metrics.decision_log_written();
    assert_eq!(written + metrics.decision_log_drops(), submitted);
    assert_eq!(lost(&metrics, DecisionLogLoss::WriteError), 0);
    let old_ids = distinct(
        &ids(&std::fs::read_to_string(&moved).unwrap()),
        "the moved file",
    );
    let new_ids = distinct(
        &ids(&std::fs::read_to_string(&path).unwrap()),
        "the new file",
    );
    assert!(old_ids.is_disjoint(&new_ids), "a record in both files");
    assert_eq!((old_ids.len() + new_ids.len()) as u64, written);
    assert!(new_ids.len() >= 1_000);
}

/// Takes `room` bytes, then fails as a full disk does.
struct Cramped {
    room: usize,
    taken: Arc<Mutex<Vec<u8>>>,
}

impl Write for Cramped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut taken = self.taken.lock().unwrap();
        let n = buf.len().min(self.room - taken.len());
        if n == 0 {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        taken.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_write_cut_short_counts_exactly_the_records_it_did_not_carry() {
    let taken = Arc::new(Mutex::new(Vec::new()));
    let room = 1_500; // a few records and a torn one
    let (app, log, metrics) = logging_into(Box::new(Cramped {
        room,
        taken: taken.clone(),
    }));
    decide(&app, 20).await;
    assert!(log.shutdown_within(PATIENCE));
    let taken = String::from_utf8(taken.lock().unwrap().clone()).unwrap();
    let whole = taken.matches('\n').count() as u64;
    assert!(
        whole > 0 && whole < 20,
        "{whole} whole records in {room} bytes"
    );
    assert_eq!(metrics.decision_log_written(), whole);
    assert_eq!(lost(&metrics, DecisionLogLoss::WriteError), 20 - whole);
}

#[tokio::test]
async fn a_failed_rotation_clobbers_no_rotated_file_and_loses_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    let file = |index: usize| dir.path().join(format!("decisions.log.{index}"));
    std::fs::write(file(1), "one\n").unwrap();
    std::fs::write(file(2), "two\n").unwrap();
    // The oldest slot cannot be cleared: every rotation fails at its first step.
    std::fs::create_dir(file(3)).unwrap();
    std::fs::write(file(3).join("keep"), "").unwrap();
    let (app, log, metrics) = logging_to(DecisionLogSink::File(path.clone()), |c| {
        c.max_file_bytes = 600; // about one record
        c.max_files = 3;
    });
    for _ in 0..12 {
        decide(&app, 1).await;
    }
    until("records", || metrics.decision_log_written() == 12).await;
    assert!(metrics.decision_log_rotation_failures() >= 1);
    assert_eq!(std::fs::read_to_string(file(1)).unwrap(), "one\n");
    assert_eq!(std::fs::read_to_string(file(2)).unwrap(), "two\n");
    assert_eq!(ids(&std::fs::read_to_string(&path).unwrap()).len(), 12);

    // Cleared, the next rotation (once the retry pause is over) shifts the
    // others up, the oldest dropped on purpose.
    std::fs::remove_dir_all(file(3)).unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    decide(&app, 1).await;
    assert!(log.shutdown_within(PATIENCE));
    assert_eq!(ids(&std::fs::read_to_string(&path).unwrap()).len(), 1);
    assert_eq!(ids(&std::fs::read_to_string(file(1)).unwrap()).len(), 12);
    assert_eq!(std::fs::read_to_string(file(2)).unwrap(), "one\n");
    assert_eq!(std::fs::read_to_string(file(3)).unwrap(), "two\n");
    assert_eq!(metrics.decision_log_written(), 13);
    assert_eq!(metrics.decision_log_drops(), 0);
}

/// Takes bytes only while its gate is open: a sink that hangs.
#[derive(Clone, Default)]
struct Gated {
    gate: Arc<Mutex<()>>,
    taken: Arc<Mutex<Vec<u8>>>,
}

impl Write for Gated {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _open = self.gate.lock().unwrap();
        self.taken.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// The gate stalls the writer *thread*; holding it across awaits is the point.
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn a_stuck_sink_is_abandoned_at_the_bound_and_counted_once() {
    let sink = Gated::default();
    let (app, log, metrics) = logging_into(Box::new(sink.clone()));
    let stuck = sink.gate.lock().unwrap();
    decide(&app, 10).await;
    assert!(!log.shutdown_within(Duration::from_millis(200)));
    assert_eq!(lost(&metrics, DecisionLogLoss::Shutdown), 10);
    assert_eq!(metrics.decision_log_written(), 0);
    assert_eq!(log.pending(), 0);
    // Decided after shutdown: nowhere to go, counted.
    decide(&app, 1).await;
    assert_eq!(lost(&metrics, DecisionLogLoss::Shutdown), 11);
    // The stuck write completes; its records were already counted.
    drop(stuck);
    assert!(log.shutdown_within(PATIENCE));
    assert_eq!(metrics.decision_log_written(), 0);
    assert_eq!(metrics.decision_log_drops(), 11);
}

// ---- the real binary ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `cedar-sidecar serve` process; killed if the test fails.
struct Server {
    child: Child,
    port: u16,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    fn start(decision_log: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
            .args([
                "serve",
                "--watch",
                "false",
                "--log-format",
                "json",
                "--listen",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--decision-log")
            .arg(decision_log)
            .args(extra)
            .current_dir(repo())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read as it comes, so a chatty server never blocks on a full pipe.
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            stderr: Some(stderr),
        }
    }

    fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    }

    fn decide(&self, n: usize) {
        let (status, body) = self.call("POST", "/v1/is_authorized/batch", &batch_body(n));
        assert_eq!(status, 200, "{body:.300}");
    }

    fn log_status(&self) -> Value {
        let (_, body) = self.call("GET", "/v1/status", "");
        serde_json::from_str::<Value>(&body).unwrap()["decision_log"].clone()
    }

    /// Waits until every submitted record is written or counted lost.
    fn settled(&self) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.log_status();
            if status["pending"] == 0 {
                return status;
            }
            assert!(Instant::now() < deadline, "records still pending: {status}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn metric(&self, series: &str) -> u64 {
        let (_, text) = self.call("GET", "/metrics", "");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM; returns stderr once the process exited 0.
    fn stop(mut self) -> String {
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        assert_eq!(status.code(), Some(0), "{stderr}");
        stderr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dropped(status: &Value, cause: &str) -> u64 {
    status["dropped_by_cause"][cause].as_u64().unwrap()
}

#[test]
fn sighup_reopens_the_log_and_a_logrotate_move_is_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    let moved = dir.path().join("decisions.log.1");
    let server = Arc::new(Server::start(&path, &[]));
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut made = 0;
                while !stop.load(Ordering::Relaxed) {
                    server.decide(100);
                    made += 100;
                }
                made
            })
        })
        .collect();
    let written = || server.log_status()["written"].as_u64().unwrap();
    let wait_for = |n: u64| {
        let deadline = Instant::now() + PATIENCE;
        while written() < n {
            assert!(Instant::now() < deadline, "fewer than {n} records written");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(1_000);
    // logrotate's `create` mode: move, then `postrotate kill -HUP`.
    std::fs::rename(&path, &moved).unwrap();
    server.signal("HUP");
    wait_for(written() + 1_000);
    stop.store(true, Ordering::Relaxed);
    let submitted: u64 = callers.into_iter().map(|c| c.join().unwrap()).sum();

    let status = server.settled();
    let lost = status["dropped"].as_u64().unwrap();
    let written = status["written"].as_u64().unwrap();
    assert_eq!(written + lost, submitted, "{status}");
    assert_eq!(dropped(&status, "write_error"), 0, "{status}");
    assert_eq!(server.metric("cedar_decision_log_records_total"), written);
    assert_eq!(
        server.metric(r#"cedar_decision_log_dropped_total{cause="buffer_full"}"#),
        dropped(&status, "buffer_full")
    );
    let old_ids = distinct(
        &ids(&std::fs::read_to_string(&moved).unwrap()),
        "the moved file",
    );
    let new_ids = distinct(
        &ids(&std::fs::read_to_string(&path).unwrap()),
        "the new file",
    );
    assert!(old_ids.is_disjoint(&new_ids));
    assert_eq!((old_ids.len() + new_ids.len()) as u64, written);
    assert!(!new_ids.is_empty());

    // SIGHUP alone (nothing moved) reopens too: the signal reaches the log.
    let reopens = status["reopens"].as_u64().unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + PATIENCE;
    while server.log_status()["reopens"].as_u64().unwrap() <= reopens {
        assert!(Instant::now() < deadline, "SIGHUP did not reopen the log");
        std::thread::sleep(Duration::from_millis(20));
    }
    Arc::try_unwrap(server).ok().unwrap().stop();
}

#[test]
fn a_full_disk_counts_every_record_and_reports_it_without_flooding_stderr() {
    let started = Instant::now();
    let server = Server::start(Path::new("/dev/full"), &[]);
    for _ in 0..20 {
        server.decide(100);
    }
    let status = server.settled();
    assert_eq!(status["written"], 0, "{status}");
    assert_eq!(status["dropped"], 2_000, "{status}");
    assert_eq!(
        dropped(&status, "write_error") + dropped(&status, "buffer_full"),
        2_000,
        "{status}"
    );
    assert_eq!(
        server.metric(r#"cedar_decision_log_dropped_total{cause="write_error"}"#),
        dropped(&status, "write_error")
    );
    assert_eq!(server.metric("cedar_decision_log_records_total"), 0);
    let stderr = server.stop();
    let elapsed = started.elapsed().as_secs();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(r#""level":"ERROR""#))
        .collect();
    assert!(
        errors
            .iter()
            .any(|l| l.contains("cannot write the decision log")),
        "{stderr}"
    );
    // One line a second at most (plus the count held back, at exit), not one a record.
    assert!(
        errors.len() as u64 <= elapsed + 2,
        "{} error lines in {elapsed} s",
        errors.len()
    );
}
