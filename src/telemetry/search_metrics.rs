//! "Which?" questions counted: searches by kind and how they ended, what
//! they found and how long they took, and plans by kind. A search makes
//! many decisions and can take a core for milliseconds, so an operator
//! needs to see them apart from single decisions. Fixed atomic counters,
//! read by the sidecar's collector at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::metrics::{counter, histogram};

/// Upper bounds (seconds) of the search duration buckets.
const SEARCH_BUCKETS: [f64; 10] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// What a search looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// Principals (AuthZEN subject search, `/v1/search` for a principal).
    Subject,
    /// Resources.
    Resource,
    /// Actions.
    Action,
}

impl SearchKind {
    const ALL: [SearchKind; 3] = [Self::Subject, Self::Resource, Self::Action];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Resource => "resource",
            Self::Action => "action",
        }
    }
}

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchEnd {
    /// It answered.
    Answered,
    /// Its request was dropped (timeout, client gone) and it stopped.
    Stopped,
}

/// The kinds of plan answered, and plans refused (422).
pub const PLAN_KINDS: [&str; 4] = ["always_allow", "always_deny", "conditional", "unsupported"];

/// The counters.
#[derive(Debug, Default)]
pub struct SearchMetrics {
    /// [answered, stopped] x [`SearchKind::ALL`].
    searches: [[AtomicU64; 3]; 2],
    results: AtomicU64,
    buckets: [AtomicU64; SEARCH_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
    plans: [AtomicU64; PLAN_KINDS.len()],
}

impl SearchMetrics {
    /// Counts one search: how it ended, its results (all pages) and how
    /// long it searched.
    pub fn record_search(&self, kind: SearchKind, end: SearchEnd, results: usize, took: Duration) {
        let row = usize::from(end == SearchEnd::Stopped);
        let col = SearchKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        if let Some(counter) = self.searches.get(row).and_then(|r| r.get(col)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.results.fetch_add(results as u64, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        for (bound, bucket) in SEARCH_BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts one plan by its kind (one of [`PLAN_KINDS`]).
    pub fn record_plan(&self, kind: &str) {
        if let Some(i) = PLAN_KINDS.iter().position(|k| *k == kind) {
            self.plans[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Searches counted for `kind` that ended as `end`.
    pub fn searches(&self, kind: SearchKind, end: SearchEnd) -> u64 {
        let row = usize::from(end == SearchEnd::Stopped);
        let col = SearchKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.searches
            .get(row)
            .and_then(|r| r.get(col))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Writes the families into a scrape.
    pub(super) fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        {
            let mut family = encoder.encode_descriptor(
                "cedar_searches",
                "Searches (subject, resource, action), by kind and how they ended.",
                None,
                MetricType::Counter,
            )?;
            for (end, row) in ["answered", "stopped"].iter().zip(&self.searches) {
                for (kind, value) in SearchKind::ALL.iter().zip(row) {
                    let labels = [("kind", kind.label()), ("end", *end)];
                    counter(&mut family.encode_family(&labels)?, load(value))?;
                }
            }
        }
        counter(
            &mut encoder.encode_descriptor(
                "cedar_search_results",
                "Entities or actions searches found (every page).",
                None,
                MetricType::Counter,
            )?,
            load(&self.results),
        )?;
        histogram(
            encoder,
            "cedar_search_duration_seconds",
            "Time to search (candidates, partial evaluation, a decision for each).",
            &SEARCH_BUCKETS,
            &self.buckets,
            load(&self.sum_nanos),
            load(&self.count),
        )?;
        let mut family = encoder.encode_descriptor(
            "cedar_plans",
            "Query plans by kind; `unsupported` were refused (422).",
            None,
            MetricType::Counter,
        )?;
        for (kind, value) in PLAN_KINDS.iter().zip(&self.plans) {
            counter(&mut family.encode_family(&[("kind", *kind)])?, load(value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn searches_are_counted_by_kind_and_end() {
        let metrics = SearchMetrics::default();
        metrics.record_search(
            SearchKind::Resource,
            SearchEnd::Answered,
            3,
            Duration::from_millis(2),
        );
        metrics.record_search(
            SearchKind::Resource,
            SearchEnd::Stopped,
            0,
            Duration::from_millis(40),
        );
        assert_eq!(
            metrics.searches(SearchKind::Resource, SearchEnd::Answered),
            1
        );
        assert_eq!(
            metrics.searches(SearchKind::Resource, SearchEnd::Stopped),
            1
        );
        assert_eq!(
            metrics.searches(SearchKind::Subject, SearchEnd::Answered),
            0
        );
        assert_eq!(metrics.results.load(Ordering::Relaxed), 3);
    }
}
