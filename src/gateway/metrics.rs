//! Gateway counters: decisions by door and outcome, route-map reloads.
//! Fixed atomic counters (no lock on the request path), rendered as
//! Prometheus text after the sidecar's own metrics.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// The front door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// Envoy ext_authz, HTTP service mode (`/ext_authz/...`).
    ExtAuthzHttp,
    /// Envoy ext_authz, gRPC (`envoy.service.auth.v3.Authorization/Check`).
    ExtAuthzGrpc,
    /// nginx `auth_request` (`X-Original-Method`, `X-Original-URI`).
    AuthRequest,
    /// Traefik ForwardAuth and Caddy `forward_auth` (`X-Forwarded-*`).
    ForwardAuth,
}

impl Door {
    const ALL: [Door; 4] = [
        Door::ExtAuthzHttp,
        Door::ExtAuthzGrpc,
        Door::AuthRequest,
        Door::ForwardAuth,
    ];

    /// The label value (also the decision log's `endpoint`).
    pub fn label(self) -> &'static str {
        match self {
            Self::ExtAuthzHttp => "ext_authz_http",
            Self::ExtAuthzGrpc => "ext_authz_grpc",
            Self::AuthRequest => "auth_request",
            Self::ForwardAuth => "forward_auth",
        }
    }
}

/// How a gateway request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Cedar allowed it.
    Allow,
    /// Cedar denied it.
    Deny,
    /// A public route: allowed without a decision.
    Public,
    /// No valid principal (401).
    Unauthenticated,
    /// No route maps it.
    NotMapped,
    /// A value did not fit the route (400, or 403 at nginx).
    BadRequest,
    /// Not ready, stale, or an internal error: denied (fail closed).
    Error,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Allow,
        Outcome::Deny,
        Outcome::Public,
        Outcome::Unauthenticated,
        Outcome::NotMapped,
        Outcome::BadRequest,
        Outcome::Error,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Public => "public",
            Self::Unauthenticated => "unauthenticated",
            Self::NotMapped => "not_mapped",
            Self::BadRequest => "bad_request",
            Self::Error => "error",
        }
    }
}

/// The counters.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    requests: [[AtomicU64; 7]; 4],
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

impl GatewayMetrics {
    /// Counts one request.
    pub fn record(&self, door: Door, outcome: Outcome) {
        let row = Door::ALL.iter().position(|d| *d == door).unwrap_or(0);
        let col = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        if let Some(counter) = self.requests.get(row).and_then(|r| r.get(col)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a route-map reload.
    pub fn record_reload(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted for `door` and `outcome`.
    pub fn count(&self, door: Door, outcome: Outcome) -> u64 {
        let row = Door::ALL.iter().position(|d| *d == door).unwrap_or(0);
        let col = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.requests
            .get(row)
            .and_then(|r| r.get(col))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Prometheus text; `failing` is whether the last reload failed.
    pub fn render(&self, routes: usize, failing: bool) -> String {
        let mut out = String::new();
        out.push_str("# HELP cedar_gateway_requests_total Gateway requests by door and outcome.\n");
        out.push_str("# TYPE cedar_gateway_requests_total counter\n");
        for (door, row) in Door::ALL.iter().zip(&self.requests) {
            for (outcome, counter) in Outcome::ALL.iter().zip(row) {
                let _ = writeln!(
                    out,
                    "cedar_gateway_requests_total{{door=\"{}\",outcome=\"{}\"}} {}",
                    door.label(),
                    outcome.label(),
                    counter.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP cedar_gateway_reloads_total Route map and key reloads by result.\n");
        out.push_str("# TYPE cedar_gateway_reloads_total counter\n");
        let _ = writeln!(
            out,
            "cedar_gateway_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "cedar_gateway_reloads_total{{result=\"failed\"}} {}",
            self.reloads_failed.load(Ordering::Relaxed)
        );
        out.push_str("# HELP cedar_gateway_routes Routes in the route map in force.\n");
        out.push_str("# TYPE cedar_gateway_routes gauge\n");
        let _ = writeln!(out, "cedar_gateway_routes {routes}");
        out.push_str("# HELP cedar_gateway_reload_failing 1 while the last edit of the route map or keys was refused (the last good one serves).\n");
        out.push_str("# TYPE cedar_gateway_reload_failing gauge\n");
        let _ = writeln!(out, "cedar_gateway_reload_failing {}", u8::from(failing));
        out
    }
}
