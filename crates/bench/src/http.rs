//! The HTTP load benchmark: the real router on loopback, loaded with
//! generated data, plus a no-op route on the same axum stack (JSON in, fixed
//! JSON out) that exists only here, never in the production router. The
//! ratio of decision to no-op throughput is our distance from the limit of
//! this HTTP stack on this machine.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::gen::{generate, request_json};
use super::loadgen::{self, LoadResult, LoadShape, Target};
use crate::engine::PolicyPack;
use crate::entities::EntityMap;
use crate::sidecar_http::{router_with, AppState, ConnectionLimits, Server};
use crate::state::{SharedState, Snapshot};
use crate::telemetry::Listener;

/// The path of the bench-only no-op route.
pub const NOOP_PATH: &str = "/bench/noop";

/// What to run.
#[derive(Debug, Clone)]
pub struct HttpBenchConfig {
    /// Stored entities to generate.
    pub entities: usize,
    /// Generator seed.
    pub seed: u64,
    /// Load connections.
    pub connections: usize,
    /// Duration of each measured run.
    pub duration: Duration,
    /// Worker threads of the server's runtime.
    pub server_threads: usize,
    /// Server threads on the last core, the load generator on the first.
    pub pin: bool,
}

/// Results of the whole HTTP benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HttpBenchReport {
    /// Stored entities.
    pub entities: usize,
    /// Load connections.
    pub connections: usize,
    /// The no-op route at saturation.
    pub noop: LoadResult,
    /// `/v1/is_authorized` at saturation.
    pub decision: LoadResult,
    /// `/v1/is_authorized/batch` (100 requests each) at saturation.
    pub batch: LoadResult,
    /// Decision throughput divided by no-op throughput.
    pub decision_to_noop: f64,
    /// `/v1/is_authorized` at half of its saturation throughput.
    pub decision_half_load: LoadResult,
    /// `/v1/is_authorized` from one connection, one request at a time.
    pub decision_one_client: LoadResult,
    /// A batch of 100 from one connection, one batch at a time: the
    /// latency of a batch without queueing behind others.
    pub batch_one_client: LoadResult,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum HttpBenchError {
    /// The generated entities could not be built.
    #[error("cannot build generated entities: {0}")]
    Data(String),
    /// The server could not start.
    #[error("cannot start the server: {0}")]
    Server(#[from] std::io::Error),
    /// A load run failed to start.
    #[error(transparent)]
    Load(#[from] loadgen::LoadError),
    /// `pin` was asked for where it cannot be done.
    #[error("cannot pin threads to cores: {0}")]
    Pin(String),
}

/// The production router plus the bench-only no-op route, behind the same
/// layers (request id, response counting, overload guard, timeout, body
/// limit), so the two differ only in what the handler does.
pub fn bench_router(state: AppState) -> Router {
    router_with(state, Router::new().route(NOOP_PATH, post(noop)))
}

/// JSON in (parsed like every API body), fixed JSON out.
async fn noop(body: Bytes) -> Result<Json<Value>, axum::http::StatusCode> {
    let _: Value =
        serde_json::from_slice(&body).map_err(|_| axum::http::StatusCode::BAD_REQUEST)?;
    Ok(Json(
        json!({ "decision": "Allow", "diagnostics": { "reason": [], "errors": [] } }),
    ))
}

/// Starts the sidecar on loopback in its own runtime, loads it, and
/// reports. `progress` receives one line per finished run.
pub fn run_http_bench(
    pack: PolicyPack,
    config: &HttpBenchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<HttpBenchReport, HttpBenchError> {
    let data = generate(config.entities, config.seed);
    let stored = data.to_stored().map_err(HttpBenchError::Data)?;
    let requests = data.requests(2_000, config.seed ^ 0x5eed);
    let singles: Vec<String> = requests
        .iter()
        .map(|r| request_json(r).to_string())
        .collect();
    let batches: Vec<String> = requests
        .chunks(100)
        .map(|chunk| {
            json!({ "requests": chunk.iter().map(request_json).collect::<Vec<_>>() }).to_string()
        })
        .collect();
    let entities = stored.len();
    let snapshot = Snapshot {
        pack: Arc::new(pack),
        entities: EntityMap::from_entities(stored, 1),
        pack_loaded_at: SystemTime::now(),
    };
    drop(data);
    let state = AppState::new(Arc::new(SharedState::ready(snapshot)));

    let cores = if config.pin {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        match (cores.first(), cores.last()) {
            (Some(first), Some(last)) if cores.len() >= 2 => Some((*first, *last)),
            _ => {
                return Err(HttpBenchError::Pin(format!(
                    "{} core(s) found",
                    cores.len()
                )))
            }
        }
    } else {
        None
    };
    let mut server = tokio::runtime::Builder::new_multi_thread();
    server
        .worker_threads(config.server_threads.max(1))
        .enable_all();
    if let Some((_, server_core)) = cores {
        // Workers and blocking threads alike.
        server.on_thread_start(move || {
            core_affinity::set_for_current(server_core);
        });
    }
    let server = server.build()?;
    let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    // The production accept loop and connection handling, as `serve` runs them.
    let lifecycle = state.lifecycle.clone();
    let serving = Server::new(
        ConnectionLimits::default(),
        state.metrics.clone(),
        lifecycle.clone(),
    );
    {
        let _runtime = server.enter();
        serving.spawn(listener, Listener::Api, bench_router(state));
    }

    // The load generator gets its own single-threaded runtime, on this
    // thread (its pacing thread inherits this thread's core).
    if let Some((load_core, _)) = cores {
        if !core_affinity::set_for_current(load_core) {
            return Err(HttpBenchError::Pin("the load generator's thread".into()));
        }
    }
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let closed =
        |path: &str, bodies: &[String], connections: usize| -> Result<LoadResult, HttpBenchError> {
            let target = Target {
                path: path.to_string(),
                bodies: bodies.to_vec(),
            };
            let shape = LoadShape {
                connections,
                duration: config.duration,
                rate: None,
            };
            Ok(client.block_on(loadgen::run(addr, &target, shape))?)
        };
    // Warm up connections, allocator and caches.
    client.block_on(loadgen::run(
        addr,
        &Target {
            path: "/v1/is_authorized".into(),
            bodies: singles.clone(),
        },
        LoadShape {
            connections: config.connections,
            duration: Duration::from_millis(500),
            rate: None,
        },
    ))?;

    // The no-op route gets the same bodies as single decisions.
    let saturate = |path: &str, bodies: &[String]| closed(path, bodies, config.connections);
    let noop = saturate(NOOP_PATH, &singles)?;
    progress(&line("no-op", &noop));
    let decision = saturate("/v1/is_authorized", &singles)?;
    progress(&line("is_authorized", &decision));
    let batch = saturate("/v1/is_authorized/batch", &batches)?;
    progress(&line("batch of 100", &batch));
    let half = client.block_on(loadgen::run(
        addr,
        &Target {
            path: "/v1/is_authorized".into(),
            bodies: singles.clone(),
        },
        LoadShape {
            connections: config.connections,
            duration: config.duration,
            rate: Some(decision.throughput / 2.0),
        },
    ))?;
    progress(&line("is_authorized at half load", &half));
    let decision_one_client = closed("/v1/is_authorized", &singles, 1)?;
    progress(&line("is_authorized, one client", &decision_one_client));
    let batch_one_client = closed("/v1/is_authorized/batch", &batches, 1)?;
    progress(&line("batch of 100, one client", &batch_one_client));

    lifecycle.stop();
    server.block_on(serving.finished(std::time::Instant::now() + Duration::from_secs(5)));
    Ok(HttpBenchReport {
        entities,
        connections: config.connections,
        decision_to_noop: decision.throughput / noop.throughput.max(f64::EPSILON),
        noop,
        decision,
        batch,
        decision_half_load: half,
        decision_one_client,
        batch_one_client,
    })
}

/// One human-readable line for a run.
pub fn line(name: &str, r: &LoadResult) -> String {
    format!(
        "{name:<28} {:>9.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us  p99.9 {:>7.0} us  ({} ok, {} errors)",
        r.throughput, r.p50_us, r.p99_us, r.p999_us, r.ok, r.errors
    )
}
