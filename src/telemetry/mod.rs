//! What an operator watches: Prometheus metrics and the decision log (the
//! audit trail). Both are fed from the request path without blocking it.

mod decision_log;
mod metrics;

pub use decision_log::{
    mask_context, DecisionLog, DecisionLogConfig, DecisionLogFilter, DecisionLogSink,
    DecisionRecord,
};
pub use metrics::{ConnectionTimeout, Endpoint, Listener, Metrics, SnapshotGauges};
