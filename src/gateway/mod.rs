//! Gateway front doors, the part that knows nothing about any one door: a
//! gateway request (method, path, query, headers) becomes one Cedar
//! decision request through the route map and the principal.
//!
//! - [`settings`]: every gateway setting (flags and the `[gateway]` table).
//! - [`template`]: path templates, matching and precedence.
//! - [`routes`]: the route map file, compiled and checked against a pack.
//! - [`jwt`]: signing keys and token verification.
//! - [`principal`]: the principal from a token or a trusted header.
//! - [`request`]: a matched route into a decision request.
//! - [`metrics`]: counters by door and outcome.
//!
//! The doors themselves (HTTP in `http/doors.rs`, gRPC in `http/grpc.rs`)
//! only translate their wire format to a [`GatewayRequest`] and the
//! outcome back; all of them share [`Gateway::prepare`] and the one
//! decision path.
//!
//! The route map reloads with the policies, atomically: every policy
//! reload (a file event on the pack, the route map or a key file, SIGHUP,
//! the admin API) re-reads it and compiles it against the new pack before
//! the pack is sent for publishing ([`Gateway::stage`]); a map that does
//! not fit refuses the whole reload, so the last good pack and map keep
//! serving together and `/v1/status` and `/metrics` say why. Maps are kept
//! by the version of the pack they were compiled against, and a door takes
//! the one for the pack of the snapshot it decides against: a decision
//! never pairs a map with another pack. A route edit is also compiled
//! against the pack in force, so it applies even while new policies wait.
//! Keys do not depend on the policies: they reload on their own
//! ([`Gateway::reload_keys`]), first thing in every reload, so revoking a
//! key never waits for valid policies.

pub mod jwt;
pub mod metrics;
pub mod principal;
pub mod request;
pub mod routes;
pub mod settings;
pub mod template;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, Method};
use cedar_policy::{EntityTypeName, EntityUid};
use sha2::{Digest, Sha256};

use crate::engine::{DecisionRequest, PolicyPack};
pub use jwt::TokenError;
pub use metrics::{Door, GatewayMetrics, Outcome};
use principal::Authenticator;
use routes::{RouteMap, Target, Unmatched};
pub use settings::{GatewayArgs, GatewayConfig, PrincipalSource};
use template::{split_path, PathError};

/// The original request as a gateway saw it.
pub struct GatewayRequest<'a> {
    /// The original method.
    pub method: &'a Method,
    /// The original path, with its query string if any.
    pub path_and_query: &'a str,
    /// The original headers (what the gateway forwarded).
    pub headers: &'a HeaderMap,
}

/// A request ready for the decision path.
#[derive(Debug)]
pub enum Prepared {
    /// A public route: allowed without a principal or a decision.
    Public {
        /// The route's id.
        route: Arc<str>,
    },
    /// A decision to make.
    Decide {
        /// The route's id.
        route: Arc<str>,
        /// The decision request (no request entities, ever).
        request: Box<DecisionRequest>,
    },
}

/// Headers with which some frameworks run another method than the request's.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Why a gateway request gets no decision.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No valid principal: 401.
    #[error(transparent)]
    Unauthenticated(TokenError),
    /// No route maps the request.
    #[error("no route maps `{method} {path}`")]
    NotMapped {
        /// The original method.
        method: String,
        /// The original path.
        path: String,
        /// 403 or 404, as the route map says.
        answer: Unmatched,
    },
    /// The path cannot be read safely.
    #[error("{0}")]
    BadPath(PathError),
    /// A value does not fit the route (a Long that does not parse...).
    #[error("{0}")]
    BadValue(String),
    /// No route map was compiled against the policies in force (never
    /// expected: maps are staged before their pack is published): 503.
    #[error("no route map was compiled against policy version `{0}`")]
    NoRouteMap(String),
}

/// The route map compiled against one pack.
struct Loaded {
    routes: RouteMap,
    principal_type: EntityTypeName,
    /// The pack version the map was checked against.
    pack_version: String,
}

/// The signing keys (or trusted header) in force. They do not depend on the
/// policies: a key edit applies as soon as the key files are valid, even
/// while the policies on disk are not (a revoked key must not wait for
/// them).
struct Keys {
    auth: Authenticator,
    /// Digest of the key files, so an unchanged set keeps its verified-token
    /// cache.
    digest: Vec<u8>,
}

/// Maps staged before the newest that are kept whatever the published and
/// latest packs are (a pack can be on its way to the publisher while the
/// next reload stages).
const RECENT_MAPS: usize = 4;

/// The reload status, for `/v1/status`.
#[derive(Debug, Clone, Default)]
pub struct GatewayStatus {
    /// The route map in force.
    pub routes_file: String,
    /// How many routes it has.
    pub routes: usize,
    /// How many signing keys are loaded (0 with a trusted header).
    pub keys: usize,
    /// The policy pack version the map was checked against.
    pub checked_against: String,
    /// When the map in force was loaded (RFC 3339).
    pub loaded_at: Option<String>,
    /// The last refused edit, cleared by the next good one.
    pub last_error: Option<String>,
    /// When it was refused.
    pub last_error_at: Option<String>,
}

/// The gateway: settings, the route map and keys in force, counters.
pub struct Gateway {
    /// The validated settings.
    pub config: GatewayConfig,
    /// Maps compiled against packs that are published or may be: the
    /// newest last. Replaced whole by [`Gateway::stage`].
    maps: ArcSwap<Vec<Arc<Loaded>>>,
    /// The keys in force, replaced whole by [`Gateway::reload_keys`].
    keys: ArcSwap<Keys>,
    /// A std mutex: held only to copy or update the status.
    status: Mutex<GatewayStatus>,
    /// Requests by door and outcome, reloads.
    pub metrics: GatewayMetrics,
}

impl Gateway {
    /// Loads the route map and keys against `pack`; the error is a report
    /// of every problem (start-up refuses to run with it).
    pub fn start(config: GatewayConfig, pack: &PolicyPack) -> Result<Self, String> {
        let loaded = load(&config, pack)?;
        let keys = load_keys(&config)?;
        let status = GatewayStatus {
            routes_file: config.routes.display().to_string(),
            routes: loaded.routes.routes().len(),
            keys: key_count(&keys.auth),
            checked_against: loaded.pack_version.clone(),
            loaded_at: Some(crate::reload::now_rfc3339()),
            last_error: None,
            last_error_at: None,
        };
        Ok(Self {
            config,
            maps: ArcSwap::from_pointee(vec![Arc::new(loaded)]),
            keys: ArcSwap::from_pointee(keys),
            status: Mutex::new(status),
            metrics: GatewayMetrics::default(),
        })
    }

    /// The files the route map and keys are read from (a change to any of
    /// them reloads the policies with the map).
    pub fn files(&self) -> Vec<PathBuf> {
        files(&self.config)
    }

    /// The map compiled against the pack with `version`; with `None` (no
    /// snapshot yet) the newest map, which only public routes can use.
    fn map_for(&self, version: Option<&str>) -> Result<Arc<Loaded>, Refusal> {
        let maps = self.maps.load();
        let found = match version {
            Some(version) => maps.iter().rev().find(|m| m.pack_version == version),
            None => maps.last(),
        };
        found
            .cloned()
            .ok_or_else(|| Refusal::NoRouteMap(version.unwrap_or("none").to_string()))
    }

    /// Maps a gateway request to a decision request (or why not), with the
    /// map compiled against the pack with `pack_version` (the pack of the
    /// snapshot the decision will be made against). Reads only what is in
    /// memory.
    pub fn prepare(
        &self,
        pack_version: Option<&str>,
        request: &GatewayRequest<'_>,
    ) -> Result<Prepared, Refusal> {
        let loaded = self.map_for(pack_version)?;
        let (path, query) = match request.path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (request.path_and_query, None),
        };
        let segments = split_path(path).map_err(Refusal::BadPath)?;
        // The decision is for the gateway's method; an upstream that honours
        // a method override would run another one. Refused.
        if let Some(name) = METHOD_OVERRIDES
            .iter()
            .find(|name| request.headers.contains_key(**name))
        {
            return Err(Refusal::BadValue(format!(
                "`{name}` asks the upstream for another method than the one decided"
            )));
        }
        if query.is_some_and(|q| {
            q.split('&')
                .any(|pair| pair.split('=').next() == Some("_method"))
        }) {
            return Err(Refusal::BadValue(
                "`_method` asks the upstream for another method than the one decided".into(),
            ));
        }
        let Some((route, captures)) = loaded.routes.find(request.method, &segments) else {
            return Err(Refusal::NotMapped {
                method: request.method.to_string(),
                path: path.to_string(),
                answer: loaded.routes.unmatched,
            });
        };
        let Target::Decide(target) = &route.target else {
            return Ok(Prepared::Public {
                route: route.id.clone(),
            });
        };
        let identity = self
            .keys
            .load()
            .auth
            .identify(request.headers, &loaded.principal_type)
            .map_err(Refusal::Unauthenticated)?;
        let inputs = request::Inputs {
            captures: &captures,
            query,
            headers: request.headers,
            identity: &identity,
        };
        let decision = request::build(
            &target.action,
            &target.resource_type,
            &target.resource_id,
            &target.context,
            &inputs,
        )
        .map_err(|bad| Refusal::BadValue(bad.0))?;
        Ok(Prepared::Decide {
            route: route.id.clone(),
            request: Box::new(decision),
        })
    }

    /// The status for `/v1/status`.
    pub fn status(&self) -> GatewayStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The gateway's part of `/metrics`, read now.
    pub fn collector(&self) -> Box<dyn prometheus_client::collector::Collector> {
        let failing = self.status().last_error.is_some();
        let routes = self
            .maps
            .load()
            .last()
            .map_or(0, |m| m.routes.routes().len());
        Box::new(self.metrics.scrape(routes, failing))
    }

    /// Re-reads the key files and, when they changed, swaps the new keys
    /// in (emptying the verified-token cache). A bad edit keeps the keys in
    /// force and is reported. Blocking (file reads).
    pub fn reload_keys(&self) -> Result<(), String> {
        if keys_digest(&self.config) == self.keys.load().digest {
            return Ok(());
        }
        match load_keys(&self.config) {
            Ok(keys) => {
                tracing::info!(keys = key_count(&keys.auth), "gateway keys reloaded");
                if let Ok(mut status) = self.status.lock() {
                    status.keys = key_count(&keys.auth);
                }
                self.keys.store(Arc::new(keys));
                Ok(())
            }
            Err(report) => {
                tracing::error!("gateway keys refused; the last good ones keep serving:\n{report}");
                self.refused(report.clone());
                Err(report)
            }
        }
    }

    /// Re-reads the route map and compiles it against `pack`, a pack about
    /// to be sent for publishing, and against `published` (the pack in
    /// force, when another): a route edit applies to the policies in force
    /// too, each map compiled against the pack it is used with. Keeps the
    /// maps of the packs in `keep` (the published pack's, and one still
    /// waiting to be published) and the [`RECENT_MAPS`] last staged.
    /// Blocking (file reads). The error is a report of every problem with
    /// the map against `pack`; the maps in force are then left as they are.
    pub fn stage(
        &self,
        pack: &PolicyPack,
        published: Option<&PolicyPack>,
        keep: &[&str],
    ) -> Result<(), String> {
        let loaded = match load(&self.config, pack) {
            Ok(loaded) => Arc::new(loaded),
            Err(report) => {
                self.refused(report.clone());
                return Err(report);
            }
        };
        // Against the published pack: best effort (a map written for the
        // new policies need not fit the old ones; the old map then stays).
        let republished = published
            .filter(|p| p.version != pack.version)
            .and_then(|p| load(&self.config, p).ok())
            .map(Arc::new);
        self.metrics.record_reload(true);
        tracing::info!(
            routes = loaded.routes.routes().len(),
            policy_version = %loaded.pack_version,
            "gateway route map loaded"
        );
        if let Ok(mut status) = self.status.lock() {
            status.routes = loaded.routes.routes().len();
            status.checked_against = loaded.pack_version.clone();
            status.loaded_at = Some(crate::reload::now_rfc3339());
            status.last_error = None;
            status.last_error_at = None;
        }
        self.maps.rcu(|maps| {
            let fresh: Vec<&Arc<Loaded>> = [Some(&loaded), republished.as_ref()]
                .into_iter()
                .flatten()
                .collect();
            let older: Vec<&Arc<Loaded>> = maps
                .iter()
                .filter(|m| fresh.iter().all(|f| f.pack_version != m.pack_version))
                .collect();
            let recent = older.len().saturating_sub(RECENT_MAPS);
            let mut next: Vec<Arc<Loaded>> = older
                .iter()
                .enumerate()
                .filter(|(i, m)| *i >= recent || keep.contains(&m.pack_version.as_str()))
                .map(|(_, m)| Arc::clone(m))
                .collect();
            next.extend(republished.iter().cloned());
            next.push(loaded.clone());
            next
        });
        Ok(())
    }

    /// Re-reads the route map against the published pack only: a reload
    /// whose policies did not load still applies a route edit to the
    /// policies in force. Blocking (file reads).
    pub fn restage(&self, published: &PolicyPack) {
        let keep = [published.version.as_str()];
        if let Err(report) = self.stage(published, None, &keep) {
            tracing::error!(
                "gateway route map refused; the last good one keeps serving:\n{report}"
            );
        }
    }

    /// Records a refused edit.
    fn refused(&self, report: String) {
        self.metrics.record_reload(false);
        if let Ok(mut status) = self.status.lock() {
            status.last_error = Some(report);
            status.last_error_at = Some(crate::reload::now_rfc3339());
        }
    }
}

fn key_count(auth: &Authenticator) -> usize {
    match auth {
        Authenticator::Jwt(verifier) => verifier.key_count(),
        Authenticator::TrustedHeader(_) => 0,
    }
}

/// The files the gateway reads: the route map, then the key files.
fn files(config: &GatewayConfig) -> Vec<PathBuf> {
    let mut files = vec![config.routes.clone()];
    files.extend(key_files(config));
    files
}

fn key_files(config: &GatewayConfig) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let PrincipalSource::Jwt(jwt) = &config.principal {
        files.extend(jwt.jwks.clone());
        files.extend(jwt.public_keys.iter().cloned());
        files.extend(jwt.hs256_secret_file.clone());
    }
    files
}

/// A digest of the key files' content (an unreadable file digests as such).
fn keys_digest(config: &GatewayConfig) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for path in key_files(config) {
        match std::fs::read(&path) {
            Ok(bytes) => {
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
            Err(_) => hasher.update(b"unreadable"),
        }
    }
    hasher.finalize().to_vec()
}

/// Reads the keys (or the trusted header).
fn load_keys(config: &GatewayConfig) -> Result<Keys, String> {
    let digest = keys_digest(config);
    let auth = match &config.principal {
        PrincipalSource::Jwt(settings) => Authenticator::Jwt(
            jwt::JwtVerifier::load(settings).map_err(|e| format!("error: {e}\n"))?,
        ),
        PrincipalSource::TrustedHeader(name) => Authenticator::TrustedHeader(
            axum::http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("error: `{name}` is not a header name\n"))?,
        ),
    };
    Ok(Keys { auth, digest })
}

/// Reads and checks the route map against `pack`.
fn load(config: &GatewayConfig, pack: &PolicyPack) -> Result<Loaded, String> {
    let principal_type: EntityTypeName = config.principal_type.parse().map_err(|_| {
        format!(
            "error: `{}` (gateway.principal_type) is not an entity type name\n",
            config.principal_type
        )
    })?;
    if !pack.schema.entity_types().any(|ty| *ty == principal_type) {
        return Err(format!(
            "error: the schema declares no entity type `{principal_type}` (gateway.principal_type)\n"
        ));
    }
    let routes = routes::load(&config.routes, pack, &config.principal_type)
        .map_err(|problems| problems.render())?;
    Ok(Loaded {
        routes,
        principal_type,
        pack_version: pack.version.clone(),
    })
}

/// The principal named by a decision request, for the identity header.
pub fn principal_header(uid: &EntityUid) -> String {
    uid.to_string()
}
