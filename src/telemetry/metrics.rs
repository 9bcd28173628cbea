//! Counters and histograms, exposed in Prometheus' text format by
//! `prometheus-client` (the maintained client; see [`Metrics::render`]).
//!
//! A handful of fixed series, so plain atomics are enough (HTTP responses
//! by route and status too: see [`super::http_counts`]); nothing on the
//! request path takes a lock to count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeGaugeValue, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::http_counts::HttpCounts;
use super::search_metrics::SearchMetrics;

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
    /// Searches and plans.
    pub search: SearchMetrics,
    /// Live decisions the shadow policy set decided again.
    shadow_decisions: AtomicU64,
    /// Of those, the ones where the shadow's verdict differed.
    shadow_disagreements: AtomicU64,
    /// Live decisions not shadowed: the shadow's queue was full.
    shadow_dropped: AtomicU64,
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

    /// Counts a decision made by the shadow policy set.
    pub fn record_shadow_decision(&self) {
        self.shadow_decisions.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a shadow decision that differs from the served one.
    pub fn record_shadow_disagreement(&self) {
        self.shadow_disagreements.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a live decision the shadow could not take (queue full).
    pub fn record_shadow_dropped(&self) {
        self.shadow_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Shadow decisions so far.
    pub fn shadow_decisions(&self) -> u64 {
        self.shadow_decisions.load(Ordering::Relaxed)
    }

    /// Shadow decisions that disagreed so far.
    pub fn shadow_disagreements(&self) -> u64 {
        self.shadow_disagreements.load(Ordering::Relaxed)
    }

    /// Live decisions the shadow dropped so far.
    pub fn shadow_dropped(&self) -> u64 {
        self.shadow_dropped.load(Ordering::Relaxed)
    }

    /// Connections open now, on all listeners.
    pub fn connections_open(&self) -> u64 {
        self.connections_open
            .iter()
            .map(|open| open.load(Ordering::Relaxed))
            .sum()
    }
    /// Every series in Prometheus' text format (0.0.4), encoded by
    /// `prometheus-client` from a collector that reads the atomics at scrape
    /// time: recording stays a relaxed atomic add, with no lock anywhere.
    pub fn render(self: &Arc<Self>, gauges: &SnapshotGauges<'_>) -> String {
        self.render_with(gauges, None)
    }

    /// [`Self::render`], with another part's collector (the gateway's)
    /// encoded after ours in the same exposition.
    pub fn render_with(
        self: &Arc<Self>,
        gauges: &SnapshotGauges<'_>,
        extra: Option<Box<dyn Collector>>,
    ) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape {
            metrics: Arc::clone(self),
            policy_version: gauges.policy_version.to_string(),
            entities: gauges.entities,
            revision: gauges.revision,
            policies: gauges.policies,
            min_entities: gauges.min_entities,
        }));
        if let Some(extra) = extra {
            registry.register_collector(extra);
        }
        let mut out = String::with_capacity(8192);
        if let Err(error) = prometheus_text::encode(&mut out, &registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        out
    }
}

/// One scrape: the counters, and the snapshot's values read when it began.
struct Scrape {
    metrics: Arc<Metrics>,
    policy_version: String,
    entities: usize,
    revision: u64,
    policies: usize,
    min_entities: usize,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrape")
            .field("policy_version", &self.policy_version)
            .finish_non_exhaustive()
    }
}

/// A counter's value, without exemplars.
pub(crate) fn counter(encoder: &mut MetricEncoder<'_>, value: u64) -> std::fmt::Result {
    encoder.encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

/// A histogram without labels from cumulative bucket counters (each
/// counts the observations at or under its bound), a sum in nanoseconds
/// and a count: the encoder wants each bucket's own count.
pub(crate) fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    bounds: &[f64],
    cumulative: &[AtomicU64],
    sum_nanos: u64,
    count: u64,
) -> std::fmt::Result {
    let mut below = 0;
    let buckets: Vec<(f64, u64)> = bounds
        .iter()
        .zip(cumulative)
        .map(|(bound, bucket)| {
            let at_or_under = bucket.load(Ordering::Relaxed);
            let own = at_or_under.saturating_sub(below);
            below = at_or_under;
            (*bound, own)
        })
        .collect();
    encoder
        .encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(sum_nanos as f64 / 1e9, count, &buckets, None)
}

/// A counter series without labels (`name` without `_total`, which the
/// encoder appends).
fn single_counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    counter(
        &mut encoder.encode_descriptor(name, help, None, MetricType::Counter)?,
        value,
    )
}

/// A gauge series without labels.
pub(crate) fn single_gauge<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: V,
) -> std::fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let m = &*self.metrics;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        {
            let mut family = encoder.encode_descriptor(
                "cedar_decisions",
                "Decisions made, by decision and endpoint.",
                None,
                MetricType::Counter,
            )?;
            for (row, decision) in ["Allow", "Deny"].iter().enumerate() {
                for (col, endpoint) in Endpoint::ALL.iter().enumerate() {
                    let labels = [("decision", *decision), ("endpoint", endpoint.label())];
                    counter(
                        &mut family.encode_family(&labels)?,
                        load(&m.decisions[row][col]),
                    )?;
                }
            }
        }
        histogram(
            &mut encoder,
            "cedar_decision_duration_seconds",
            "Time to decide one request.",
            &LATENCY_BUCKETS,
            &m.latency_buckets,
            load(&m.latency_sum_nanos),
            load(&m.latency_count),
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "cedar_http_requests",
                "HTTP responses, by route and status.",
                None,
                MetricType::Counter,
            )?;
            for ((route, status), n) in m.http_requests.snapshot() {
                let status = status.to_string();
                let labels = [("route", route.as_str()), ("status", status.as_str())];
                counter(&mut family.encode_family(&labels)?, n)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "cedar_policy_reloads",
                "Policy reloads, by result.",
                None,
                MetricType::Counter,
            )?;
            counter(
                &mut family.encode_family(&[("result", "ok")])?,
                load(&m.reloads_ok),
            )?;
            counter(
                &mut family.encode_family(&[("result", "failed")])?,
                load(&m.reloads_failed),
            )?;
        }
        encoder
            .encode_descriptor(
                "cedar_policy_info",
                "The loaded policy set (version = content hash).",
                None,
                MetricType::Gauge,
            )?
            .encode_family(&[("version", self.policy_version.as_str())])?
            .encode_gauge(&1_i64)?;
        single_gauge(
            &mut encoder,
            "cedar_policies",
            "Loaded static policies.",
            self.policies,
        )?;
        single_gauge(
            &mut encoder,
            "cedar_entities",
            "Stored entities.",
            self.entities,
        )?;
        single_gauge(
            &mut encoder,
            "cedar_entities_minimum",
            "Readiness fails while cedar_entities is below this (min_entities; 0 = no bound).",
            self.min_entities,
        )?;
        single_gauge(
            &mut encoder,
            "cedar_entity_revision",
            "Revision of the entity data being served.",
            self.revision,
        )?;
        single_gauge(
            &mut encoder,
            "cedar_sync_lag_seconds",
            "Now minus the write time of the last applied entity change (0 when none).",
            m.sync_lag_seconds(),
        )?;
        single_counter(
            &mut encoder,
            "cedar_sync_reconnects",
            "Reconnects of the entity sync source.",
            load(&m.sync_reconnects),
        )?;
        single_counter(
            &mut encoder,
            "cedar_sync_reloads",
            "Full entity snapshot reloads.",
            load(&m.sync_reloads),
        )?;
        self.encode_connections(&mut encoder)?;
        m.search.encode(&mut encoder)?;
        single_counter(
            &mut encoder,
            "cedar_sync_restarts",
            "Restarts of a sync task that died (panicked or returned).",
            load(&m.sync_restarts),
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "cedar_request_entities_refused",
                "Requests whose entities were refused (forged or over the bounds), by error code.",
                None,
                MetricType::Counter,
            )?;
            for (code, count) in REQUEST_ENTITY_REFUSALS
                .iter()
                .zip(&m.request_entities_refused)
            {
                counter(&mut family.encode_family(&[("code", *code)])?, load(count))?;
            }
        }
        single_counter(
            &mut encoder,
            "cedar_sync_malformed_entries",
            "Malformed change-stream entries skipped (each followed by a snapshot reload).",
            load(&m.sync_malformed),
        )?;
        single_counter(
            &mut encoder,
            "cedar_decision_log_records",
            "Decision-log records written to the sink.",
            m.decision_log_written(),
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "cedar_decision_log_dropped",
                "Decision-log records lost, by cause (buffer_full, write_error, shutdown).",
                None,
                MetricType::Counter,
            )?;
            for cause in DecisionLogLoss::ALL {
                counter(
                    &mut family.encode_family(&[("cause", cause.label())])?,
                    m.decision_log_lost(cause),
                )?;
            }
        }
        single_counter(
            &mut encoder,
            "cedar_decision_log_reopens",
            "Decision-log file reopened (SIGHUP, or the file was moved or removed).",
            m.decision_log_reopens(),
        )?;
        single_counter(
            &mut encoder,
            "cedar_decision_log_rotation_failures",
            "Size rotations of the decision-log file that failed; the file keeps growing.",
            m.decision_log_rotation_failures(),
        )?;
        single_counter(
            &mut encoder,
            "cedar_shadow_decisions",
            "Live decisions decided again by the shadow policy set (never served).",
            m.shadow_decisions(),
        )?;
        single_counter(
            &mut encoder,
            "cedar_shadow_disagreements",
            "Shadow decisions whose verdict differs from the served one.",
            m.shadow_disagreements(),
        )?;
        single_counter(
            &mut encoder,
            "cedar_shadow_dropped",
            "Live decisions the shadow did not decide: its queue was full.",
            m.shadow_dropped(),
        )
    }
}

impl Scrape {
    fn encode_connections(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let m = &*self.metrics;
        let listeners = [Listener::Api, Listener::Probe];
        {
            let mut family = encoder.encode_descriptor(
                "cedar_http_connections_open",
                "Open HTTP connections, by listener.",
                None,
                MetricType::Gauge,
            )?;
            for listener in listeners {
                family
                    .encode_family(&[("listener", listener.label())])?
                    .encode_gauge(&m.connections_open[listener.index()].load(Ordering::Relaxed))?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "cedar_http_connections_rejected",
                "Connections closed at once because the listener had max_connections open.",
                None,
                MetricType::Counter,
            )?;
            for listener in listeners {
                counter(
                    &mut family.encode_family(&[("listener", listener.label())])?,
                    m.connections_rejected[listener.index()].load(Ordering::Relaxed),
                )?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
            "cedar_http_connections_timed_out",
            "Connections cut by the server: a request head not complete in time (header) or no request for too long (idle).",
            None,
            MetricType::Counter,
        )?;
            for listener in listeners {
                for (column, timeout) in [ConnectionTimeout::Header, ConnectionTimeout::Idle]
                    .into_iter()
                    .enumerate()
                {
                    let labels = [("listener", listener.label()), ("timeout", timeout.label())];
                    counter(
                        &mut family.encode_family(&labels)?,
                        m.connections_timed_out[listener.index()][column].load(Ordering::Relaxed),
                    )?;
                }
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// Now minus the write time of the last applied entity change, in
    /// seconds (0 when none was applied).
    fn sync_lag_seconds(&self) -> f64 {
        let last = self.sync_last_write_ms.load(Ordering::Relaxed);
        if last == 0 {
            return 0.0;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        now.saturating_sub(last) as f64 / 1000.0
    }
}
