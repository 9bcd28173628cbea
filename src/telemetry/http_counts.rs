//! HTTP responses counted by route and status without a lock on the
//! response path: the routes the API serves and the statuses it answers
//! with have a fixed counter each; anything else (a status hyper made, a
//! route only the bench harness adds) goes to a small locked map, off the
//! paths that matter.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The route templates the API serves (the gateway doors' under their
/// default prefix), and `unmatched` (before routing).
const ROUTES: [&str; 26] = [
    "/.well-known/authzen-configuration",
    "/access/v1/evaluation",
    "/access/v1/evaluations",
    "/access/v1/search/action",
    "/access/v1/search/resource",
    "/access/v1/search/subject",
    "/ext_authz",
    "/ext_authz/",
    "/ext_authz/{*original}",
    "/healthz",
    "/metrics",
    "/readyz",
    "/v1/admin/reload",
    "/v1/admin/shadow",
    "/v1/entities",
    "/v1/entities/{uid}",
    "/v1/gateway/auth",
    "/v1/is_authorized",
    "/v1/is_authorized/batch",
    "/v1/plan",
    "/v1/policies",
    "/v1/policy-links",
    "/v1/policy-links/{id}",
    "/v1/search",
    "/v1/status",
    "unmatched",
];

/// The statuses the API answers with.
const STATUSES: [u16; 14] = [
    200, 400, 401, 403, 404, 405, 408, 409, 413, 422, 431, 500, 503, 504,
];

/// Responses by route and status.
pub struct HttpCounts {
    known: [[AtomicU64; STATUSES.len()]; ROUTES.len()],
    other: Mutex<BTreeMap<(String, u16), u64>>,
}

impl Default for HttpCounts {
    fn default() -> Self {
        Self {
            known: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            other: Mutex::new(BTreeMap::new()),
        }
    }
}

impl HttpCounts {
    /// Counts one response.
    pub fn record(&self, route: &str, status: u16) {
        let route_index = ROUTES.iter().position(|r| *r == route);
        let status_index = STATUSES.iter().position(|s| *s == status);
        if let (Some(r), Some(s)) = (route_index, status_index) {
            self.known[r][s].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut other = self.other.lock().unwrap_or_else(|p| p.into_inner());
        *other.entry((route.to_string(), status)).or_default() += 1;
    }

    /// Every non-zero count, by route then status.
    pub fn snapshot(&self) -> BTreeMap<(String, u16), u64> {
        let mut all = self.other.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (route, counts) in ROUTES.iter().zip(&self.known) {
            for (status, count) in STATUSES.iter().zip(counts) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    all.insert(((*route).to_string(), *status), count);
                }
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_other_responses_are_counted_in_order() {
        let counts = HttpCounts::default();
        counts.record("/v1/is_authorized", 200);
        counts.record("/v1/is_authorized", 200);
        counts.record("/bench/noop", 200);
        counts.record("/v1/is_authorized", 418);
        let all: Vec<_> = counts.snapshot().into_iter().collect();
        assert_eq!(
            all,
            [
                (("/bench/noop".to_string(), 200), 1),
                (("/v1/is_authorized".to_string(), 200), 2),
                (("/v1/is_authorized".to_string(), 418), 1),
            ]
        );
    }
}
