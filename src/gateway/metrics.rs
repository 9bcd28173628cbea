//! Gateway counters: decisions by door and outcome, route-map reloads.
//! Fixed atomic counters (no lock on the request path), read at scrape time
//! by a `prometheus-client` collector beside the sidecar's own.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use crate::telemetry::metrics::{counter, single_gauge};

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

    /// The values of one scrape; `failing` is whether the last reload
    /// failed.
    pub fn scrape(&self, routes: usize, failing: bool) -> GatewayScrape {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GatewayScrape {
            requests: self.requests.each_ref().map(|row| row.each_ref().map(load)),
            reloads: [load(&self.reloads_ok), load(&self.reloads_failed)],
            routes: routes as u64,
            failing,
        }
    }
}

/// The gateway's counters as read for one scrape, encoded after the
/// sidecar's own metrics by the same `prometheus-client` encoder.
#[derive(Debug)]
pub struct GatewayScrape {
    requests: [[u64; 7]; 4],
    reloads: [u64; 2],
    routes: u64,
    failing: bool,
}

impl Collector for GatewayScrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        {
            let mut family = encoder.encode_descriptor(
                "cedar_gateway_requests",
                "Gateway requests by door and outcome.",
                None,
                MetricType::Counter,
            )?;
            for (door, row) in Door::ALL.iter().zip(&self.requests) {
                for (outcome, value) in Outcome::ALL.iter().zip(row) {
                    let labels = [("door", door.label()), ("outcome", outcome.label())];
                    counter(&mut family.encode_family(&labels)?, *value)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "cedar_gateway_reloads",
                "Route map and key loads by result (they load with every policy reload).",
                None,
                MetricType::Counter,
            )?;
            for (result, value) in ["ok", "failed"].iter().zip(self.reloads) {
                counter(&mut family.encode_family(&[("result", *result)])?, value)?;
            }
        }
        single_gauge(
            &mut encoder,
            "cedar_gateway_routes",
            "Routes in the newest route map.",
            self.routes,
        )?;
        single_gauge(
            &mut encoder,
            "cedar_gateway_reload_failing",
            "1 while the last edit of the route map or keys was refused (the last good one serves).",
            u64::from(self.failing),
        )
    }
}
