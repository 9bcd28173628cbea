//! What an operator watches: Prometheus metrics and the decision log (the
//! audit trail). Both are fed from the request path without blocking it.

mod decision_log;
mod http_counts;
pub(crate) mod metrics;
mod rate_limit;
mod search_metrics;

pub use decision_log::{
    mask_context, DecisionLog, DecisionLogConfig, DecisionLogFilter, DecisionLogSink,
    DecisionRecord, LoggedRequest, RequestEntityLogging, RequestEntityRecord,
};
pub use metrics::{
    ConnectionTimeout, DecisionLogLoss, Endpoint, Listener, Metrics, SnapshotGauges,
};
pub use rate_limit::RateLimit;
pub use search_metrics::{SearchEnd, SearchKind, SearchMetrics, PLAN_KINDS};
