//! What an operator looks at: `/v1/status` (JSON) and `/metrics` (Prometheus).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::wire::{
    CallerTrust, DecisionLogStatus, EntitiesStatus, PackStatus, ReloadBody, RequestEntitiesStatus,
    ShadowBody, StatusResponse,
};
use super::AppState;
use crate::reload::rfc3339;
use crate::telemetry::{DecisionLogLoss, SnapshotGauges};

/// `GET /v1/status`
pub async fn status(State(state): State<AppState>) -> Response {
    let uptime = state.started_at.elapsed().map_or(0, |d| d.as_secs());
    let reload = state.reloader.as_ref().map(|r| r.status());
    let snapshot = state.shared.snapshot();
    let trust = &state.request_entities;
    let body = StatusResponse {
        build_version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: uptime,
        ready: snapshot.is_some(),
        policies: snapshot.as_ref().map(|s| PackStatus {
            version: s.pack.version.clone(),
            loaded_at: rfc3339(s.pack_loaded_at),
            policies: s.pack.files.policy_count(),
            templates: s.pack.files.template_count(),
            slice_depth: s.pack.slice_limits.depth,
        }),
        last_reload: reload.map(ReloadBody::from),
        gateway: state.gateway.as_ref().map(|g| g.status().into()),
        entities: snapshot.as_ref().map(|s| EntitiesStatus {
            source: state.entity_source.to_string(),
            count: s.entities.len(),
            revision: s.entities.revision(),
            min_entities: state.min_entities,
            below_minimum: s.entities.len() < state.min_entities,
        }),
        caller_trust: CallerTrust {
            request_entities: RequestEntitiesStatus {
                mode: trust.mode.as_str(),
                types: trust.types.iter().map(ToString::to_string).collect(),
                max: trust.max,
            },
            caller_tokens: state.callers.is_some(),
        },
        sync: state.freshness.report().into(),
        decision_log: DecisionLogStatus {
            sink: state.decision_log.config().sink.to_string(),
            written: state.metrics.decision_log_written(),
            dropped: state.metrics.decision_log_drops(),
            dropped_by_cause: DecisionLogLoss::ALL
                .iter()
                .map(|cause| (cause.label(), state.metrics.decision_log_lost(*cause)))
                .collect(),
            pending: state.decision_log.pending(),
            reopens: state.metrics.decision_log_reopens(),
            rotation_failures: state.metrics.decision_log_rotation_failures(),
        },
        shadow: state.shadow.as_ref().and_then(|shadow| {
            let status = shadow.status();
            status.policies.is_some().then(|| ShadowBody {
                policies: status.policies.map(|p| p.display().to_string()),
                version: status.version,
                loaded_at: status.loaded_at,
                last_error: status.last_error,
                decisions: state.metrics.shadow_decisions(),
                disagreements: state.metrics.shadow_disagreements(),
                dropped: state.metrics.shadow_dropped(),
            })
        }),
    };
    Json(body).into_response()
}

/// `GET /metrics`
pub async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = state.shared.snapshot();
    let gauges = match &snapshot {
        Some(s) => SnapshotGauges {
            policy_version: &s.pack.version,
            entities: s.entities.len(),
            revision: s.entities.revision(),
            policies: s.pack.files.policy_count(),
            min_entities: state.min_entities,
        },
        None => SnapshotGauges {
            policy_version: "none",
            entities: 0,
            revision: 0,
            policies: 0,
            min_entities: state.min_entities,
        },
    };
    let gateway = state.gateway.as_ref().map(|g| g.collector());
    let text = state.metrics.render_with(&gauges, gateway);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}
