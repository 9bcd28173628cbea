//! The server over real loopback sockets: connection abuse (slowloris, idle
//! keep-alive connections, the connection cap, slow bodies), probes under
//! overload and on their own listener, what hyper answers before our
//! handlers, and shutdown under load (the built binary and SIGTERM).
//!
//! Timing: bounds are generous upper bounds ("closed within 20 s") and
//! exact lower bounds the server cannot beat by construction ("not closed
//! before its timeout"), so a loaded machine cannot make these flaky.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cedar_sidecar::freshness::{Freshness, FreshnessPolicy};
use cedar_sidecar::http::{probe_router, router, AppState, ConnectionLimits, Lifecycle, Server};
use cedar_sidecar::telemetry::{Listener, Metrics, SnapshotGauges};

use crate::raw_http::{call, connect, exchange, read_reply, request, wait_closed, Reply};
use crate::support::{repo, shipped_state};

const PAULA_USES_PROD: &str = r#"{"principal":"User::\"paula\"","action":"Action::\"UseEnvironment\"","resource":"Environment::\"acme-prod\"","context":{}}"#;

/// Generous bound for anything that should happen "soon" on a loaded machine.
const SOON: Duration = Duration::from_secs(20);

/// The server, in-process on loopback, started as `serve` starts it: the
/// API listener and a probe listener, in a runtime of its own so the tests
/// can use plain blocking sockets.
struct Sidecar {
    runtime: Option<tokio::runtime::Runtime>,
    api: SocketAddr,
    probe: SocketAddr,
    metrics: Arc<Metrics>,
    lifecycle: Arc<Lifecycle>,
}

impl Sidecar {
    fn start(limits: ConnectionLimits, state: AppState) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let bind = || {
            runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap()
        };
        let (api, probe) = (bind(), bind());
        let addresses = (api.local_addr().unwrap(), probe.local_addr().unwrap());
        let server = Server::new(limits, state.metrics.clone(), state.lifecycle.clone());
        {
            let _runtime = runtime.enter();
            server.spawn(api, Listener::Api, router(state.clone()));
            server.spawn(probe, Listener::Probe, probe_router(state.clone()));
        }
        Self {
            runtime: Some(runtime),
            api: addresses.0,
            probe: addresses.1,
            metrics: state.metrics,
            lifecycle: state.lifecycle,
        }
    }

    /// One series' value, read in-process (no connection needed).
    fn metric(&self, series: &str) -> f64 {
        let text = self.metrics.render(&SnapshotGauges {
            policy_version: "v",
            entities: 0,
            revision: 0,
            policies: 0,
            min_entities: 0,
        });
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    /// Waits until `series` reads `value`.
    fn wait_for_metric(&self, series: &str, value: f64) {
        let deadline = Instant::now() + SOON;
        while self.metric(series) != value {
            assert!(
                Instant::now() < deadline,
                "{series} is {}, not {value}",
                self.metric(series)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.lifecycle.stop();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The shipped state, where a consistency wait lasts `wait`.
fn state_with_wait(wait: Duration) -> AppState {
    let mut state = AppState::new(shipped_state());
    let policy = FreshnessPolicy {
        max_wait: wait,
        ..Default::default()
    };
    state.freshness = Arc::new(Freshness::untracked(policy, 1));
    state
}

/// Asks for a decision on a keep-alive connection; it must be answered.
fn decide(stream: &mut TcpStream) -> serde_json::Value {
    let answer = exchange(stream, "POST", "/v1/is_authorized", PAULA_USES_PROD).answer();
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()
}

/// Opens a connection and sends `bytes`, noting when it started to connect
/// (a head is timed from the connection's accept).
fn send_partial(addr: SocketAddr, bytes: &str) -> (TcpStream, Instant) {
    let sent = Instant::now();
    let mut stream = connect(addr);
    stream.write_all(bytes.as_bytes()).unwrap();
    (stream, sent)
}

#[test]
fn slowloris_connections_are_cut_while_others_are_served() {
    let timeout = Duration::from_millis(300);
    let limits = ConnectionLimits {
        header_read_timeout: timeout,
        ..Default::default()
    };
    let sidecar = Sidecar::start(limits, AppState::new(shipped_state()));
    let partial_head = "POST /v1/is_authorized HTTP/1.1\r\nHost: sidecar\r\n";
    let stalled: Vec<_> = (0..200)
        .map(|_| send_partial(sidecar.api, partial_head))
        .collect();
    // Tricklers send one more header byte every 50 ms: progress does not
    // reset the deadline, which runs from a head's first byte.
    let tricklers: Vec<_> = (0..5)
        .map(|_| {
            let api = sidecar.api;
            std::thread::spawn(move || trickle(api))
        })
        .collect();
    // Meanwhile a client on a keep-alive connection is answered.
    let mut client = connect(sidecar.api);
    for _ in 0..20 {
        assert_eq!(decide(&mut client)["decision"], "Allow");
        std::thread::sleep(Duration::from_millis(10));
    }
    for (mut stream, sent) in stalled {
        let closed = wait_closed(&mut stream, SOON).expect("a stalled head was not cut");
        assert!(closed - sent >= timeout, "cut before its header timeout");
    }
    for trickler in tricklers {
        let lasted = trickler
            .join()
            .unwrap()
            .expect("a trickled head was not cut");
        assert!(lasted >= timeout, "cut before its header timeout");
    }
    sidecar.wait_for_metric(
        r#"cedar_http_connections_timed_out_total{listener="api",timeout="header"}"#,
        205.0,
    );
    // The keep-alive client was never cut: it is idle, not slow.
    assert_eq!(decide(&mut client)["decision"], "Allow");
    assert_eq!(
        sidecar.metric(r#"cedar_http_connections_timed_out_total{listener="api",timeout="idle"}"#),
        0.0
    );
}

/// Sends a head one byte at a time; how long until the server closed the
/// connection (`None` if it never did within [`SOON`]).
fn trickle(api: SocketAddr) -> Option<Duration> {
    let (mut stream, sent) = send_partial(api, "GET /healthz HTTP/1.1\r\nX-Slow: ");
    stream.set_nonblocking(true).unwrap();
    let mut chunk = [0u8; 64];
    while sent.elapsed() < SOON {
        std::thread::sleep(Duration::from_millis(50));
        match std::io::Read::read(&mut stream, &mut chunk) {
            Ok(0) => return Some(sent.elapsed()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(sent.elapsed())
            }
            other => panic!("unexpected {other:?}"),
        }
        if stream.write_all(b"a").is_err() {
            return Some(sent.elapsed());
        }
    }
    None
}

#[test]
fn connections_with_no_request_in_progress_are_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(1000);
    let limits = ConnectionLimits {
        idle_timeout: idle,
        header_read_timeout: idle,
        ..Default::default()
    };
    let sidecar = Sidecar::start(limits, AppState::new(shipped_state()));
    // A connection that never asks anything: timed as a head from its
    // accept, so cut by the header timeout (here as long as the idle one).
    let opened = Instant::now();
    let mut silent = connect(sidecar.api);
    // A keep-alive connection after one answer.
    let mut kept = connect(sidecar.api);
    decide(&mut kept);
    let answered = Instant::now();
    // A connection that keeps asking is never idle for long, so it stays.
    let mut busy = connect(sidecar.api);
    let busy_since = Instant::now();
    while busy_since.elapsed() < idle * 5 / 2 {
        decide(&mut busy);
        std::thread::sleep(Duration::from_millis(50));
    }
    let closed = wait_closed(&mut silent, SOON).expect("a silent connection stayed open");
    assert!(closed - opened >= idle);
    let closed = wait_closed(&mut kept, SOON).expect("an idle keep-alive connection stayed open");
    assert!(closed - answered >= idle);
    assert_eq!(decide(&mut busy)["decision"], "Allow");
    assert_eq!(
        sidecar.metric(r#"cedar_http_connections_timed_out_total{listener="api",timeout="idle"}"#),
        1.0
    );
    assert_eq!(
        sidecar
            .metric(r#"cedar_http_connections_timed_out_total{listener="api",timeout="header"}"#),
        1.0
    );
}

#[test]
fn past_max_connections_new_connections_are_closed_and_counted() {
    let timeout = Duration::from_millis(1500);
    let limits = ConnectionLimits {
        max_connections: 20,
        header_read_timeout: timeout,
        ..Default::default()
    };
    let sidecar = Sidecar::start(limits, AppState::new(shipped_state()));
    let partial_head = "POST /v1/is_authorized HTTP/1.1\r\nHost: sidecar\r\n";
    let stalled: Vec<_> = (0..20)
        .map(|_| send_partial(sidecar.api, partial_head))
        .collect();
    let open = r#"cedar_http_connections_open{listener="api"}"#;
    sidecar.wait_for_metric(open, 20.0);
    // One more: closed at once, without an answer.
    let mut extra = connect(sidecar.api);
    assert!(matches!(
        exchange(&mut extra, "POST", "/v1/is_authorized", PAULA_USES_PROD),
        Reply::Closed
    ));
    assert_eq!(
        sidecar.metric(r#"cedar_http_connections_rejected_total{listener="api"}"#),
        1.0
    );
    // The probe listener has a cap of its own.
    let answer = call(sidecar.probe, "GET", "/readyz", "");
    assert_eq!(answer.status, 200, "{answer:?}");
    // Once the stalled heads are cut, new connections are served.
    for (mut stream, _) in stalled {
        wait_closed(&mut stream, SOON).expect("a stalled head was not cut");
    }
    sidecar.wait_for_metric(open, 0.0);
    assert_eq!(decide(&mut connect(sidecar.api))["decision"], "Allow");
    assert_eq!(
        sidecar.metric(r#"cedar_http_connections_rejected_total{listener="api"}"#),
        1.0
    );
}

/// Sockets that connect and send nothing are cut by the header timeout,
/// not the (long) idle timeout: a few of them cannot hold the cap for long.
#[test]
fn silent_connections_at_the_cap_are_cut_by_the_header_timeout() {
    let limits = ConnectionLimits {
        max_connections: 20,
        header_read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let sidecar = Sidecar::start(limits, AppState::new(shipped_state()));
    let mut silent: Vec<TcpStream> = (0..20).map(|_| connect(sidecar.api)).collect();
    let open = r#"cedar_http_connections_open{listener="api"}"#;
    sidecar.wait_for_metric(open, 20.0);
    for stream in &mut silent {
        wait_closed(stream, SOON).expect("a silent connection held its slot");
    }
    assert_eq!(decide(&mut connect(sidecar.api))["decision"], "Allow");
}

#[test]
fn slow_bodies_get_408_and_hold_no_concurrency_slot() {
    let mut state = AppState::new(shipped_state());
    state.limits.max_concurrency = 4;
    state.limits.body_read_timeout = Duration::from_millis(500);
    let sidecar = Sidecar::start(ConnectionLimits::default(), state);
    // 50 bodies that stop after 10 of their 122 bytes.
    let head = request("POST", "/v1/is_authorized", PAULA_USES_PROD);
    let partial = &head[..head.len() - PAULA_USES_PROD.len() + 10];
    let slow: Vec<_> = (0..50)
        .map(|_| send_partial(sidecar.api, partial).0)
        .collect();
    // Meanwhile three clients get every decision they ask for.
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let api = sidecar.api;
            std::thread::spawn(move || {
                let mut stream = connect(api);
                for _ in 0..20 {
                    assert_eq!(decide(&mut stream)["decision"], "Allow");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    for mut stream in slow {
        let answer = read_reply(&mut stream).answer();
        assert_eq!(answer.status, 408, "{answer:?}");
        assert_eq!(answer.json()["code"], "body_timeout");
    }
    assert_eq!(
        sidecar.metric(r#"cedar_http_requests_total{route="/v1/is_authorized",status="200"}"#),
        60.0
    );
    assert_eq!(
        sidecar.metric(r#"cedar_http_requests_total{route="unmatched",status="408"}"#),
        50.0
    );
    let text = sidecar.metrics.render(&SnapshotGauges {
        policy_version: "v",
        entities: 0,
        revision: 0,
        policies: 0,
        min_entities: 0,
    });
    assert!(!text.contains("status=\"503\""), "{text}");
}

#[test]
fn probes_answer_under_overload_and_on_their_own_listener() {
    let mut state = state_with_wait(Duration::from_secs(60));
    state.limits.max_concurrency = 1;
    state.limits.request_timeout = Duration::from_secs(120);
    let sidecar = Sidecar::start(ConnectionLimits::default(), state);
    let _holder = hold_the_only_slot(sidecar.api);
    for listener in [sidecar.api, sidecar.probe] {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let answer = call(listener, "GET", path, "");
            assert_eq!(answer.status, 200, "{path}: {answer:?}");
        }
    }
    // The probe listener serves nothing else.
    for (method, path) in [
        ("POST", "/v1/is_authorized"),
        ("GET", "/v1/status"),
        ("GET", "/v1/policies"),
        ("POST", "/v1/admin/reload"),
    ] {
        let answer = call(sidecar.probe, method, path, PAULA_USES_PROD);
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert_eq!(answer.json()["code"], "not_found");
    }
    let answer = call(sidecar.probe, "POST", "/healthz", "");
    assert_eq!(answer.status, 405, "{answer:?}");
    assert_eq!(answer.json()["code"], "method_not_allowed");
}

/// Sends a decision that waits for an entity revision that never comes,
/// until it holds the only concurrency slot (a decision is refused with
/// `overloaded`); returns its connection.
fn hold_the_only_slot(api: SocketAddr) -> TcpStream {
    let waiting = PAULA_USES_PROD.replacen('{', r#"{"consistency":{"at_least":99},"#, 1);
    let deadline = Instant::now() + SOON;
    loop {
        let (holder, _) = send_partial(api, &request("POST", "/v1/is_authorized", &waiting));
        loop {
            let answer = call(api, "POST", "/v1/is_authorized", PAULA_USES_PROD);
            if answer.status == 503 {
                assert_eq!(answer.json()["code"], "overloaded", "{answer:?}");
                return holder;
            }
            assert!(Instant::now() < deadline, "the slot was never taken");
            // The holder may have lost the slot to this very check and been
            // shed: then send another.
            if answered(&holder) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether the server has sent anything on the connection.
fn answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let peeked = stream.peek(&mut [0u8; 1]);
    stream.set_nonblocking(false).unwrap();
    matches!(peeked, Ok(n) if n > 0)
}

#[test]
fn draining_fails_readiness_and_stopping_closes_idle_connections() {
    let sidecar = Sidecar::start(ConnectionLimits::default(), AppState::new(shipped_state()));
    let mut idle = connect(sidecar.api);
    decide(&mut idle);
    sidecar.lifecycle.drain();
    let answer = call(sidecar.probe, "GET", "/readyz", "");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.json()["status"], "draining");
    // Draining serves everything else, on old and new connections.
    decide(&mut idle);
    assert_eq!(decide(&mut connect(sidecar.api))["decision"], "Allow");
    assert_eq!(call(sidecar.api, "GET", "/healthz", "").status, 200);
    // A request sent before the server stops is answered, then the
    // connection closes.
    let mut sent = connect(sidecar.api);
    decide(&mut sent);
    sent.write_all(request("POST", "/v1/is_authorized", PAULA_USES_PROD).as_bytes())
        .unwrap();
    sidecar.lifecycle.stop();
    let answer = read_reply(&mut sent).answer();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(wait_closed(&mut sent, SOON).is_some());
    // An idle connection is closed; new connections are refused.
    assert!(wait_closed(&mut idle, SOON).is_some());
    let deadline = Instant::now() + SOON;
    while TcpStream::connect(sidecar.api).is_ok() {
        assert!(Instant::now() < deadline, "still accepting");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn errors_before_our_handlers_are_hyper_s_with_empty_bodies() {
    let sidecar = Sidecar::start(ConnectionLimits::default(), AppState::new(shipped_state()));
    // A head that reaches `max_header_bytes` (16 KiB) unfinished; exactly
    // that long, so the server has read every byte when it answers (unread
    // bytes would turn its close into a reset that can beat the answer).
    let unfinished = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ";
    let big_header = format!("{unfinished}{}", "a".repeat(16 * 1024 - unfinished.len()));
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..101)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect::<String>()
    );
    let cases = [
        ("GET /healthz HTTP/1.1\r\nHost x\r\n\r\n".to_string(), 400),
        ("G\u{1}T /healthz HTTP/1.1\r\n\r\n".to_string(), 400),
        (big_header, 431),
        (many_headers, 431),
    ];
    for (bytes, status) in cases {
        check_hyper_answer(sidecar.api, &bytes, status);
    }
    // A request line over hyper's fixed URI limit (65534 bytes), with room
    // for it under `max_header_bytes`.
    let limits = ConnectionLimits {
        max_header_bytes: 128 * 1024,
        ..Default::default()
    };
    let roomy = Sidecar::start(limits, AppState::new(shipped_state()));
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    check_hyper_answer(roomy.api, &long_uri, 414);
}

fn check_hyper_answer(api: SocketAddr, bytes: &str, status: u16) {
    let mut stream = connect(api);
    stream.write_all(bytes.as_bytes()).unwrap();
    let answer = read_reply(&mut stream).answer();
    assert_eq!(answer.status, status, "{bytes:.60}: {answer:?}");
    assert_eq!(answer.header("content-length"), Some("0"), "{answer:?}");
    assert!(answer.body.is_empty());
    assert!(wait_closed(&mut stream, SOON).is_some());
}

// The built binary, stopped with a signal.

fn sidecar_binary() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn wait_ready(probe: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut stream) = TcpStream::connect(probe) {
            if let Reply::Answer(answer) = exchange(&mut stream, "GET", "/readyz", "") {
                if answer.status == 200 {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar did not become ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A spawned sidecar, killed if the test fails before it exits.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(command: &mut std::process::Command) -> Child {
    Child(command.spawn().unwrap())
}

fn terminate(child: &Child) -> Instant {
    let child = &child.0;
    let signalled = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    signalled
}

/// Waits for the process to exit: its exit code and when it was seen gone.
fn wait_exit(child: &mut Child, bound: Duration) -> (Option<i32>, Instant) {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return (status.code(), Instant::now());
        }
        if Instant::now() > deadline {
            panic!("the sidecar did not exit within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What one keep-alive load client saw.
#[derive(Default)]
struct Seen {
    answered: usize,
    /// When each request that got no answer had been fully sent.
    unanswered_sent_at: Vec<Instant>,
}

/// Asks for decisions on keep-alive connections until the server refuses
/// new connections; a connection closed between requests is replaced.
fn load_client(api: SocketAddr, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    let mut stream = connect(api);
    while !stop.load(Ordering::Relaxed) {
        let bytes = request("POST", "/v1/is_authorized", PAULA_USES_PROD);
        let written = stream.write_all(bytes.as_bytes());
        let sent_at = Instant::now();
        let reply = match written {
            Ok(()) => read_reply(&mut stream),
            Err(_) => Reply::Closed,
        };
        match reply {
            Reply::Answer(answer) => {
                assert_eq!(answer.status, 200, "{answer:?}");
                assert_eq!(answer.json()["decision"], "Allow");
                seen.answered += 1;
                if answer.header("connection") != Some("close") {
                    continue;
                }
            }
            Reply::Closed => seen.unanswered_sent_at.push(sent_at),
        }
        match TcpStream::connect(api) {
            Ok(new) => {
                new.set_read_timeout(Some(SOON)).unwrap();
                stream = new;
            }
            Err(_) => break,
        }
    }
    seen
}

#[test]
fn sigterm_under_load_answers_every_request_sent_before_the_listeners_close() {
    let delay = Duration::from_millis(1500);
    let bound = Duration::from_secs(10);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.log");
    let (api, probe) = (loopback(free_port()), loopback(free_port()));
    let mut child = spawn(
        sidecar_binary()
            .args(["serve", "--watch", "false"])
            .args([
                "--listen",
                &api.to_string(),
                "--probe-listen",
                &probe.to_string(),
            ])
            .args(["--shutdown-delay-ms", &delay.as_millis().to_string()])
            .args(["--shutdown-timeout-ms", &bound.as_millis().to_string()])
            .arg("--decision-log")
            .arg(&log)
            .current_dir(repo())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    wait_ready(probe);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || load_client(api, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let signalled = terminate(&child);
    // Readiness fails at once and stays failed until the listener closes.
    let mut readiness = Vec::new();
    while let Ok(mut stream) = TcpStream::connect(probe) {
        stream.set_read_timeout(Some(SOON)).unwrap();
        match exchange(&mut stream, "GET", "/readyz", "") {
            Reply::Answer(answer) => {
                readiness.push((answer.status, answer.json()["status"].clone()))
            }
            Reply::Closed => break,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, exited) = wait_exit(&mut child, bound + Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Seen> = clients.into_iter().map(|c| c.join().unwrap()).collect();

    assert_eq!(code, Some(0));
    assert!(
        exited - signalled >= delay,
        "exited before the shutdown delay"
    );
    let first_draining = readiness
        .iter()
        .position(|(status, _)| *status == 503)
        .unwrap_or_else(|| panic!("readiness never failed: {readiness:?}"));
    assert!(
        readiness[first_draining..]
            .iter()
            .all(|(status, body)| *status == 503 && body == "draining"),
        "{readiness:?}"
    );
    // The listeners closed no earlier than `delay` after the signal; every
    // request sent before then (less a margin for loopback delivery) was
    // answered. Later ones may find their connection closed between requests.
    let must_be_answered = signalled + delay - Duration::from_millis(250);
    for client in &seen {
        for sent_at in &client.unanswered_sent_at {
            assert!(
                *sent_at >= must_be_answered,
                "a request sent {:?} after the signal got no answer",
                *sent_at - signalled
            );
        }
    }
    // Every decision made reached its client, and every answer is in the
    // flushed log.
    let answered: usize = seen.iter().map(|s| s.answered).sum();
    assert!(answered > 100, "only {answered} answers: no load");
    let logged = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(logged, answered);
}

/// `serve` on `api` with a shutdown bound, its decision log on a pipe
/// nobody reads (once the pipe is full, the log writer blocks).
fn sidecar_with_unread_log(api: SocketAddr, bound: Duration) -> Child {
    let child = spawn(
        sidecar_binary()
            .args(["serve", "--watch", "false", "--listen", &api.to_string()])
            .args(["--shutdown-timeout-ms", &bound.as_millis().to_string()])
            .args([
                "--consistency-wait-ms",
                "60000",
                "--request-timeout-ms",
                "120000",
            ])
            .args(["--decision-log", "stdout"])
            .current_dir(repo())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null()),
    );
    wait_ready(api);
    child
}

#[test]
fn shutdown_timeout_bounds_a_stuck_request() {
    let bound = Duration::from_millis(1500);
    let api = loopback(free_port());
    let mut child = sidecar_with_unread_log(api, bound);
    // A decision that waits 60 s for an entity revision that never comes.
    let waiting = PAULA_USES_PROD.replacen('{', r#"{"consistency":{"at_least":99},"#, 1);
    let (mut stuck, _) = send_partial(api, &request("POST", "/v1/is_authorized", &waiting));
    std::thread::sleep(Duration::from_millis(200));
    let signalled = terminate(&child);
    let (code, exited) = wait_exit(&mut child, bound + Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(
        exited - signalled >= bound,
        "the stuck request was not waited for"
    );
    // Its connection was closed without an answer.
    assert!(matches!(read_reply(&mut stuck), Reply::Closed));
}

#[test]
fn shutdown_timeout_bounds_a_decision_log_that_cannot_be_flushed() {
    let bound = Duration::from_millis(1500);
    let api = loopback(free_port());
    let mut child = sidecar_with_unread_log(api, bound);
    // About 500 KB of log lines: far more than the pipe holds.
    let batch = format!(
        "{{\"requests\":[{}]}}",
        vec![PAULA_USES_PROD; 100].join(",")
    );
    let mut stream = connect(api);
    for _ in 0..10 {
        let answer = exchange(&mut stream, "POST", "/v1/is_authorized/batch", &batch).answer();
        assert_eq!(answer.status, 200);
    }
    drop(stream);
    let signalled = terminate(&child);
    let (code, exited) = wait_exit(&mut child, bound + Duration::from_secs(10));
    assert_eq!(code, Some(0));
    // The flush was waited for, up to the bound, and no longer.
    assert!(exited - signalled >= bound, "the flush was not waited for");
}

#[test]
fn a_low_open_files_limit_neither_ends_nor_floods_the_accept_loop() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let api = loopback(free_port());
    // Few descriptors: the cap is lowered to fit them (the server does not
    // run out), and past it new connections are closed.
    let mut child = spawn(
        std::process::Command::new("sh")
            .args(["-c", "ulimit -n 100 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_cedar-sidecar"))
            .args(["serve", "--watch", "false", "--listen", &api.to_string()])
            .current_dir(repo())
            .stdout(std::process::Stdio::null())
            .stderr(stderr),
    );
    wait_ready(api);
    let mut held: Vec<TcpStream> = (0..80).map(|_| connect(api)).collect();
    // The connections the server could accept are served meanwhile.
    assert_eq!(decide(&mut held[0])["decision"], "Allow");
    let log = dir.path().join("stderr");
    let deadline = Instant::now() + SOON;
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("connection limit reached")
    {
        assert!(
            Instant::now() < deadline,
            "the lowered cap was never reached"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Hold the shortage for a while: the warning is not repeated.
    std::thread::sleep(Duration::from_millis(1000));
    drop(held);
    // Descriptors are freed; the loop is still running.
    let deadline = Instant::now() + SOON;
    loop {
        if let Ok(mut stream) = TcpStream::connect(api) {
            if let Reply::Answer(answer) =
                exchange(&mut stream, "POST", "/v1/is_authorized", PAULA_USES_PROD)
            {
                assert_eq!(answer.status, 200, "{answer:?}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "not serving after the shortage");
        std::thread::sleep(Duration::from_millis(20));
    }
    terminate(&child);
    let (code, _) = wait_exit(&mut child, SOON);
    assert_eq!(code, Some(0));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("lowered"), "{log}");
    assert_eq!(log.matches("connection limit reached").count(), 1, "{log}");
}

/// Under a low open-files limit, the per-listener cap is lowered so that
/// every listener's connections fit: a flood of API connections cannot use
/// up the descriptors the probe listener needs.
#[test]
fn a_flood_on_the_api_cannot_use_up_the_probes_descriptors() {
    let api = crate::loopback::free_port();
    let probe = crate::loopback::free_port();
    let command = format!(
        "ulimit -n 300 && exec {} serve --watch false --listen {api} --probe-listen {probe}",
        env!("CARGO_BIN_EXE_cedar-sidecar")
    );
    let mut child = std::process::Command::new("bash")
        .args(["-c", &command])
        .current_dir(crate::support::repo())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(probe).is_err() {
        assert!(Instant::now() < deadline, "the sidecar did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let flood: Vec<_> = (0..400)
        .filter_map(|_| std::net::TcpStream::connect(api).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let (status, _) = crate::loopback::http(probe, "GET", "/healthz", "", &[]);
        assert_eq!(status, 200);
    }
    drop(flood);
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("lowered"), "{stderr}");
}
