//! Counters and histograms, rendered in Prometheus' text format.
//!
//! A handful of fixed series, so plain atomics are enough (HTTP responses
//! by route and status too: see [`super::http_counts`]); nothing on the
//! request path takes a lock to count.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::http_counts::HttpCounts;

/// Upper bounds (seconds) of the decision latency histogram buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
];

/// Where a decision was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/is_authorized`
    Single,
    /// `POST /v1/is_authorized/batch`
    Batch,
    /// `POST /access/v1/evaluation` (AuthZEN)
    AuthzenEvaluation,
    /// `POST /access/v1/evaluations` (AuthZEN)
    AuthzenEvaluations,
}

impl Endpoint {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Single => "is_authorized",
            Self::Batch => "batch",
            Self::AuthzenEvaluation => "authzen_evaluation",
            Self::AuthzenEvaluations => "authzen_evaluations",
        }
    }

    /// Every endpoint, in the order of the decision counters.
    pub const ALL: [Self; 4] = [
        Self::Single,
        Self::Batch,
        Self::AuthzenEvaluation,
        Self::AuthzenEvaluations,
    ];
}

/// Why a decision-log record was lost: the `cause` label of
/// `cedar_decision_log_dropped_total`. Every record the filter and sampling
/// wanted logged is either written or counted under exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionLogLoss {
    /// The writer's buffer was full when the decision was made.
    BufferFull,
    /// The write (or the flush) that should have carried it failed.
    WriteError,
    /// Still queued, or submitted, when the log was shut down, or abandoned
    /// when the writer did not finish within the shutdown bound.
    Shutdown,
}

impl DecisionLogLoss {
    /// Every cause, in the order they are rendered.
    pub const ALL: [Self; 3] = [Self::BufferFull, Self::WriteError, Self::Shutdown];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::BufferFull => "buffer_full",
            Self::WriteError => "write_error",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The API (decisions, and the probes too).
    Api,
    /// The probe listener: `/healthz`, `/readyz`, `/metrics` only.
    Probe,
}

impl Listener {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Probe => "probe",
        }
    }

    fn index(self) -> usize {
        usize::from(self == Self::Probe)
    }
}

/// Why a connection was cut by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionTimeout {
    /// A request head was not complete in time (slowloris).
    Header,
    /// No request in progress for too long.
    Idle,
}

impl ConnectionTimeout {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Idle => "idle",
        }
    }
}

/// The error codes a request's entities can be refused with.
pub const REQUEST_ENTITY_REFUSALS: [&str; 5] = [
    "request_entities_disabled",
    "request_entity_not_allowed",
    "request_entity_conflict",
    "duplicate_request_entity",
    "too_many_request_entities",
];

/// Every metric the sidecar exports.
#[derive(Default)]
pub struct Metrics {
    /// [allow, deny] x [`Endpoint::ALL`].
    decisions: [[AtomicU64; Endpoint::ALL.len()]; 2],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
    /// Responses by route and status (no lock on the response path).
    http_requests: HttpCounts,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// Decision-log records that reached their sink.
    decision_log_written: AtomicU64,
    /// Decision-log records lost, by [`DecisionLogLoss`] (its discriminant is the index).
    decision_log_lost: [AtomicU64; DecisionLogLoss::ALL.len()],
    /// Times the decision-log file was opened again (SIGHUP, or it was moved or removed).
    decision_log_reopens: AtomicU64,
    /// Size rotations of the decision-log file that failed (the file kept growing).
    decision_log_rotation_failures: AtomicU64,
    sync_reconnects: AtomicU64,
    sync_reloads: AtomicU64,
    sync_restarts: AtomicU64,
    sync_malformed: AtomicU64,
    /// Requests whose entities were refused, by error code (see
    /// [`REQUEST_ENTITY_REFUSALS`]).
    request_entities_refused: [AtomicU64; REQUEST_ENTITY_REFUSALS.len()],
    /// Unix time (ms) at which the last applied entity write was made; 0 = none.
    sync_last_write_ms: AtomicU64,
    /// Open connections, by listener.
    connections_open: [AtomicU64; 2],
    /// Connections closed at once because the listener was at its cap.
    connections_rejected: [AtomicU64; 2],
    /// Connections cut by a timeout: [listener] x [header, idle].
    connections_timed_out: [[AtomicU64; 2]; 2],
}

/// Values read from the current snapshot when metrics are rendered.
pub struct SnapshotGauges<'a> {
    /// Content hash of the policy pack.
    pub policy_version: &'a str,
    /// Stored entities.
    pub entities: usize,
    /// Entity revision.
    pub revision: u64,
    /// Loaded policies.
    pub policies: usize,
    /// Readiness fails below this many entities (`min_entities`).
    pub min_entities: usize,
}

impl Metrics {
    /// Counts one decision and its latency.
    pub fn record_decision(&self, allowed: bool, endpoint: Endpoint, elapsed: Duration) {
        let row = usize::from(!allowed);
        let col = endpoint as usize;
        self.decisions[row][col].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts one HTTP response.
    pub fn record_http(&self, route: &str, status: u16) {
        self.http_requests.record(route, status);
    }

    /// Counts a policy reload.
    pub fn record_reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts decision-log records that reached their sink.
    pub fn record_decision_log_written(&self, records: u64) {
        self.decision_log_written
            .fetch_add(records, Ordering::Relaxed);
    }

    /// Counts decision-log records lost, with their cause.
    pub fn record_decision_log_lost(&self, cause: DecisionLogLoss, records: u64) {
        self.decision_log_lost[cause as usize].fetch_add(records, Ordering::Relaxed);
    }

    /// Counts a reopening of the decision-log file.
    pub fn record_decision_log_reopen(&self) {
        self.decision_log_reopens.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed size rotation of the decision-log file.
    pub fn record_decision_log_rotation_failure(&self) {
        self.decision_log_rotation_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Decision-log records written so far.
    pub fn decision_log_written(&self) -> u64 {
        self.decision_log_written.load(Ordering::Relaxed)
    }

    /// Decision-log records lost so far for one cause.
    pub fn decision_log_lost(&self, cause: DecisionLogLoss) -> u64 {
        self.decision_log_lost[cause as usize].load(Ordering::Relaxed)
    }

    /// Decision-log records lost so far, all causes together.
    pub fn decision_log_drops(&self) -> u64 {
        DecisionLogLoss::ALL
            .iter()
            .map(|cause| self.decision_log_lost(*cause))
            .sum()
    }

    /// Reopenings of the decision-log file so far.
    pub fn decision_log_reopens(&self) -> u64 {
        self.decision_log_reopens.load(Ordering::Relaxed)
    }

    /// Failed size rotations of the decision-log file so far.
    pub fn decision_log_rotation_failures(&self) -> u64 {
        self.decision_log_rotation_failures.load(Ordering::Relaxed)
    }

    /// Counts a reconnect of an entity sync source.
    pub fn record_sync_reconnect(&self) {
        self.sync_reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a restart of a sync task that died (see `sync::supervise`).
    pub fn record_sync_restart(&self) {
        self.sync_restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request whose entities were refused, by its error code.
    pub fn record_request_entities_refused(&self, code: &str) {
        if let Some(index) = REQUEST_ENTITY_REFUSALS.iter().position(|c| *c == code) {
            self.request_entities_refused[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a malformed stream entry (skipped; the replica reloaded).
    pub fn record_sync_malformed(&self) {
        self.sync_malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a full snapshot reload of an entity sync source.
    pub fn record_sync_reload(&self) {
        self.sync_reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes the write time of the last applied entity change (for the lag gauge).
    pub fn record_sync_applied(&self, written_at: SystemTime) {
        let ms = written_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.sync_last_write_ms.store(ms, Ordering::Relaxed);
    }

    /// A connection was accepted and is being served.
    pub fn record_connection_opened(&self, listener: Listener) {
        self.connections_open[listener.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A served connection closed.
    pub fn record_connection_closed(&self, listener: Listener) {
        self.connections_open[listener.index()].fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection was closed at once: the listener was at its cap.
    pub fn record_connection_rejected(&self, listener: Listener) {
        self.connections_rejected[listener.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The server cut a connection that timed out.
    pub fn record_connection_timeout(&self, listener: Listener, timeout: ConnectionTimeout) {
        let column = usize::from(timeout == ConnectionTimeout::Idle);
        self.connections_timed_out[listener.index()][column].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections open now, on all listeners.
    pub fn connections_open(&self) -> u64 {
        self.connections_open
            .iter()
            .map(|open| open.load(Ordering::Relaxed))
            .sum()
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, gauges: &SnapshotGauges<'_>) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "cedar_decisions_total",
            "counter",
            "Decisions made, by decision and endpoint.",
        );
        for (row, decision) in ["Allow", "Deny"].iter().enumerate() {
            for (col, endpoint) in Endpoint::ALL.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "cedar_decisions_total{{decision=\"{decision}\",endpoint=\"{}\"}} {}",
                    endpoint.label(),
                    self.decisions[row][col].load(Ordering::Relaxed)
                );
            }
        }
        header(
            &mut out,
            "cedar_decision_duration_seconds",
            "histogram",
            "Time to decide one request.",
        );
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "cedar_decision_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "cedar_decision_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "cedar_decision_duration_seconds_sum {sum}");
        let _ = writeln!(out, "cedar_decision_duration_seconds_count {count}");

        header(
            &mut out,
            "cedar_http_requests_total",
            "counter",
            "HTTP responses, by route and status.",
        );
        for ((route, status), n) in self.http_requests.snapshot() {
            let _ = writeln!(
                out,
                "cedar_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(&route)
            );
        }
        header(
            &mut out,
            "cedar_policy_reloads_total",
            "counter",
            "Policy reloads, by result.",
        );
        let _ = writeln!(
            out,
            "cedar_policy_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "cedar_policy_reloads_total{{result=\"failed\"}} {}",
            self.reloads_failed.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "cedar_policy_info",
            "gauge",
            "The loaded policy set (version = content hash).",
        );
        let _ = writeln!(
            out,
            "cedar_policy_info{{version=\"{}\"}} 1",
            escape(gauges.policy_version)
        );
        single(
            &mut out,
            "cedar_policies",
            "gauge",
            "Loaded static policies.",
            gauges.policies,
        );
        single(
            &mut out,
            "cedar_entities",
            "gauge",
            "Stored entities.",
            gauges.entities,
        );
        single(
            &mut out,
            "cedar_entities_minimum",
            "gauge",
            "Readiness fails while cedar_entities is below this (min_entities; 0 = no bound).",
            gauges.min_entities,
        );
        single(
            &mut out,
            "cedar_entity_revision",
            "gauge",
            "Revision of the entity data being served.",
            gauges.revision,
        );
        let last = self.sync_last_write_ms.load(Ordering::Relaxed);
        let lag = if last == 0 {
            0.0
        } else {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            now.saturating_sub(last) as f64 / 1000.0
        };
        single(
            &mut out,
            "cedar_sync_lag_seconds",
            "gauge",
            "Now minus the write time of the last applied entity change (0 when none).",
            lag,
        );
        single(
            &mut out,
            "cedar_sync_reconnects_total",
            "counter",
            "Reconnects of the entity sync source.",
            self.sync_reconnects.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "cedar_sync_reloads_total",
            "counter",
            "Full entity snapshot reloads.",
            self.sync_reloads.load(Ordering::Relaxed),
        );
        self.render_connections(&mut out);
        single(
            &mut out,
            "cedar_sync_restarts_total",
            "counter",
            "Restarts of a sync task that died (panicked or returned).",
            self.sync_restarts.load(Ordering::Relaxed),
        );
        header(
            &mut out,
            "cedar_request_entities_refused_total",
            "counter",
            "Requests whose entities were refused (forged or over the bounds), by error code.",
        );
        for (code, count) in REQUEST_ENTITY_REFUSALS
            .iter()
            .zip(&self.request_entities_refused)
        {
            let _ = writeln!(
                out,
                "cedar_request_entities_refused_total{{code=\"{code}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        single(
            &mut out,
            "cedar_sync_malformed_entries_total",
            "counter",
            "Malformed change-stream entries skipped (each followed by a snapshot reload).",
            self.sync_malformed.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "cedar_decision_log_records_total",
            "counter",
            "Decision-log records written to the sink.",
            self.decision_log_written(),
        );
        header(
            &mut out,
            "cedar_decision_log_dropped_total",
            "counter",
            "Decision-log records lost, by cause (buffer_full, write_error, shutdown).",
        );
        for cause in DecisionLogLoss::ALL {
            let _ = writeln!(
                out,
                "cedar_decision_log_dropped_total{{cause=\"{}\"}} {}",
                cause.label(),
                self.decision_log_lost(cause)
            );
        }
        single(
            &mut out,
            "cedar_decision_log_reopens_total",
            "counter",
            "Decision-log file reopened (SIGHUP, or the file was moved or removed).",
            self.decision_log_reopens(),
        );
        single(
            &mut out,
            "cedar_decision_log_rotation_failures_total",
            "counter",
            "Size rotations of the decision-log file that failed; the file keeps growing.",
            self.decision_log_rotation_failures(),
        );
        out
    }
}

impl Metrics {
    fn render_connections(&self, out: &mut String) {
        let listeners = [Listener::Api, Listener::Probe];
        header(
            out,
            "cedar_http_connections_open",
            "gauge",
            "Open HTTP connections, by listener.",
        );
        for listener in listeners {
            let _ = writeln!(
                out,
                "cedar_http_connections_open{{listener=\"{}\"}} {}",
                listener.label(),
                self.connections_open[listener.index()].load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "cedar_http_connections_rejected_total",
            "counter",
            "Connections closed at once because the listener had max_connections open.",
        );
        for listener in listeners {
            let _ = writeln!(
                out,
                "cedar_http_connections_rejected_total{{listener=\"{}\"}} {}",
                listener.label(),
                self.connections_rejected[listener.index()].load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "cedar_http_connections_timed_out_total",
            "counter",
            "Connections cut by the server: a request head not complete in time (header) or no request for too long (idle).",
        );
        for listener in listeners {
            for (column, timeout) in [ConnectionTimeout::Header, ConnectionTimeout::Idle]
                .into_iter()
                .enumerate()
            {
                let _ = writeln!(
                    out,
                    "cedar_http_connections_timed_out_total{{listener=\"{}\",timeout=\"{}\"}} {}",
                    listener.label(),
                    timeout.label(),
                    self.connections_timed_out[listener.index()][column].load(Ordering::Relaxed)
                );
            }
        }
    }
}

/// One series without labels: its HELP and TYPE lines, then its value.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
