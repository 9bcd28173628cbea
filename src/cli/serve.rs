//! `cedar-sidecar serve`: load, validate, then answer decisions over HTTP;
//! reload on file changes and SIGHUP; drain and flush on SIGTERM/SIGINT
//! (`/readyz` fails for `shutdown_delay`, the listeners close, in-flight
//! requests finish, the decision log is flushed; `shutdown_timeout` bounds
//! it all).
//! Entities come from the entities file, or with `--redis-url` from Redis:
//! a replica task keeps them current and `/readyz` is 503 until the first
//! snapshot.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;

use crate::config::{LogFormat, RedisArgs, ServeConfig, ServeFlags, SyncArgs};
use crate::engine::{load_links_file, PolicyPack, RequestEntityMode, RequestEntityPolicy};
use crate::entities::{load_entities_file, EntityMap, LinkMap};
use crate::freshness::Freshness;
use crate::gateway::Gateway;
use crate::http::{
    fit_connection_cap, probe_router, router, warn_if_short, AdminToken, AppState, CallerTokens,
    CpuPool, Lifecycle, Server,
};
use crate::publisher::Publisher;
use crate::reload::{watch, Reloader};
use crate::shadow::Shadow;
use crate::state::{SharedState, Snapshot};
use crate::sync::{RedisWriter, Replica};
use crate::telemetry::{DecisionLog, Listener, Metrics};

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeCommand {
    #[command(flatten)]
    flags: ServeFlags,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    sync: SyncArgs,
}

/// Where entities come from: loaded before the runtime starts (a file) or
/// by the replica task once it runs (Redis).
enum Source {
    File(Snapshot),
    Redis(Arc<PolicyPack>),
}

impl Source {
    fn pack(&self) -> &PolicyPack {
        match self {
            Self::File(snapshot) => &snapshot.pack,
            Self::Redis(pack) => pack,
        }
    }
}

/// The caller-trust settings, checked before the runtime starts.
struct Guards {
    trust: Arc<RequestEntityPolicy>,
    callers: Option<Arc<CallerTokens>>,
    /// The gateway doors, with their route map checked against the pack.
    gateway: Option<Arc<Gateway>>,
}

/// Runs the server until SIGTERM/SIGINT; returns the exit code.
pub fn run_serve(args: ServeCommand) -> i32 {
    let admin_token_env = std::env::var("CEDAR_SIDECAR_ADMIN_TOKEN").ok();
    let config = match ServeConfig::resolve(&args.flags, &args.redis, &args.sync, admin_token_env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return 2;
        }
    };
    if args.flags.print_config {
        print!("{}", config.to_display());
        return 0;
    }
    init_logging(config.log_format);
    crate::shortcuts::set_enabled(config.cedar_fast_paths);
    if !config.cedar_fast_paths {
        tracing::warn!("cedar_fast_paths = false: every request and entity goes through Cedar's own checks (slower)");
    }
    let trust = match config.request_entities.policy() {
        Ok(trust) => trust,
        Err(error) => {
            eprintln!("error: {error}");
            return 2;
        }
    };
    let loaded = if config.redis.enabled() {
        PolicyPack::load(&config.sources())
            .map(|pack| Source::Redis(Arc::new(pack)))
            .map_err(|p| p.render())
    } else {
        load_snapshot(&config).map(Source::File)
    };
    let source = match loaded {
        Ok(source) => source,
        Err(report) => {
            eprint!("{report}");
            eprintln!("refusing to start: fix the problems above");
            return 1;
        }
    };
    let undeclared = trust.undeclared_types(&source.pack().schema);
    if !undeclared.is_empty() {
        eprintln!(
            "error: invalid configuration: `request_entities.types` names types the schema does not declare: {}",
            undeclared.join(", ")
        );
        return 2;
    }
    if trust.mode == RequestEntityMode::Override {
        tracing::warn!(
            "request_entities.mode = \"override\": entities sent with a request replace stored ones; \
             every caller that can reach the decision API can grant itself anything the policies allow"
        );
    }
    let callers = match &config.caller_tokens_file {
        Some(path) => match CallerTokens::load(path) {
            Ok(callers) => Some(Arc::new(callers)),
            Err(error) => {
                eprintln!("error: {error}");
                return 2;
            }
        },
        None => None,
    };
    if let Some(token) = &config.admin_token {
        warn_if_short(
            std::slice::from_ref(token),
            "admin token",
            std::path::Path::new("CEDAR_SIDECAR_ADMIN_TOKEN / admin_token_file"),
        );
    }
    let gateway = match config.gateway.clone() {
        Some(settings) => match Gateway::start(settings, source.pack()) {
            Ok(gateway) => Some(Arc::new(gateway)),
            Err(report) => {
                eprint!("{report}");
                eprintln!("refusing to start: fix the gateway route map or keys above");
                return 1;
            }
        },
        None => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return 1;
        }
    };
    let (redis, sync) = (config.redis.clone(), config.sync.clone());
    let guards = Guards {
        trust: Arc::new(trust),
        callers,
        gateway,
    };
    let result = runtime.block_on(serve(config, &redis, &sync, source, guards));
    // Whatever is still running (connections past the shutdown bound, a
    // decision-log flush that did not finish) is not waited for: the bound
    // has been honoured.
    runtime.shutdown_background();
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error}");
            1
        }
    }
}

/// Loads policies, schema and the entities file into a first snapshot.
pub fn load_snapshot(config: &ServeConfig) -> Result<Snapshot, String> {
    let pack = PolicyPack::load(&config.sources()).map_err(|p| p.render())?;
    let entities = load_entities_file(&config.entities, &pack.schema).map_err(|p| p.render())?;
    let links = match &config.links {
        Some(path) => load_links_file(path, &pack).map_err(|p| p.render())?,
        None => LinkMap::default(),
    };
    tracing::info!(
        links = links.len(),
        policies = pack.files.policy_count(),
        templates = pack.files.template_count(),
        entities = entities.len(),
        version = %pack.version,
        slice_depth = ?pack.slice_limits.depth,
        "loaded policy pack and entities"
    );
    Ok(Snapshot {
        pack: Arc::new(pack),
        entities: EntityMap::from_entities(entities, 1).with_links(links),
        pack_loaded_at: SystemTime::now(),
    })
}

async fn serve(
    config: ServeConfig,
    redis: &RedisArgs,
    sync: &SyncArgs,
    source: Source,
    guards: Guards,
) -> std::io::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let (shared, freshness, entity_writer, entity_source, publisher) = match source {
        Source::File(snapshot) => {
            let revision = snapshot.entities.revision();
            let pack = snapshot.pack.clone();
            let shared = Arc::new(SharedState::ready(snapshot));
            let freshness = Arc::new(Freshness::untracked(sync.freshness(), revision));
            let publisher =
                Publisher::start(shared.clone(), pack, freshness.clone(), metrics.clone());
            let source = format!("file:{}", config.entities.display());
            (shared, freshness, None, source, publisher)
        }
        Source::Redis(pack) => start_replica(
            redis,
            sync,
            pack,
            config.admin_token.is_some(),
            metrics.clone(),
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?,
    };
    // Only the file source has an entities file to watch and reload.
    let entities_file = entity_source
        .starts_with("file:")
        .then(|| config.entities.clone());
    let decision_log = Arc::new(DecisionLog::start(
        config.decision_log.clone(),
        metrics.clone(),
    )?);
    let links_file = config.links.clone().filter(|_| entities_file.is_some());
    let shadow = start_shadow(&config, &guards, &metrics).await?;
    let reloader = Arc::new(
        Reloader::new(config.sources(), entities_file, publisher, metrics.clone())
            .with_links(links_file)
            .with_gateway(guards.gateway.clone())
            .with_shadow(Some(shadow.clone())),
    );
    let _watcher = if config.watch {
        match watch(reloader.clone(), config.watch_debounce) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(%error, "cannot watch policy files; reload with SIGHUP or the admin API");
                None
            }
        }
    } else {
        None
    };
    spawn_sighup_reloader(
        reloader.clone(),
        decision_log.clone(),
        guards.callers.clone(),
    );
    let lifecycle = Arc::new(Lifecycle::default());
    let state = AppState {
        shared,
        limits: config.limits,
        metrics: metrics.clone(),
        decision_log: decision_log.clone(),
        admin_token: config
            .admin_token
            .clone()
            .map(|t| Arc::new(AdminToken::new(t))),
        reloader: Some(reloader),
        entity_source: Arc::from(entity_source),
        started_at: SystemTime::now(),
        freshness,
        entity_writer,
        request_entities: guards.trust,
        callers: guards.callers,
        min_entities: config.min_entities,
        cpu: Arc::new(CpuPool::for_this_machine()),
        lifecycle: lifecycle.clone(),
        gateway: guards.gateway.clone(),
        public_url: match &config.settings.public_url {
            Some(url) => Arc::from(url.trim_end_matches('/')),
            None => Arc::from(format!("http://{}", config.listen)),
        },
        search_cache: Arc::default(),
        shadow: Some(shadow),
    };
    // Signals are caught from here on, before anyone can connect.
    let signal = shutdown_signal()?;
    let api = tokio::net::TcpListener::bind(config.listen).await?;
    let probes = match config.probe_listen {
        Some(address) => Some(tokio::net::TcpListener::bind(address).await?),
        None => None,
    };
    let mut connections = config.connections;
    connections.max_connections = fit_connection_cap(
        connections.max_connections,
        1 + usize::from(probes.is_some()),
    );
    let server = Server::new(connections, metrics, lifecycle.clone());
    tracing::info!(address = %api.local_addr()?, "serving decisions");
    server.spawn(api, Listener::Api, router(state.clone()));
    if let (Some(gateway), Some(address)) = (
        &guards.gateway,
        config.gateway.as_ref().and_then(|g| g.grpc_listen),
    ) {
        let listener = tokio::net::TcpListener::bind(address).await?;
        tracing::info!(address = %listener.local_addr()?, "serving Envoy ext_authz over gRPC");
        let door = crate::http::grpc::GrpcDoor::new(state.clone(), gateway.clone());
        let stop = lifecycle.stopped();
        tokio::spawn(async move {
            if let Err(error) = door.serve(listener, stop).await {
                tracing::error!(%error, "the ext_authz gRPC listener stopped");
            }
        });
    }
    if let Some(probes) = probes {
        tracing::info!(address = %probes.local_addr()?, "serving probes (/healthz, /readyz, /metrics)");
        server.spawn(probes, Listener::Probe, probe_router(state));
    }
    signal.await;
    let deadline = Instant::now() + config.shutdown_timeout;
    lifecycle.drain();
    if !config.shutdown_delay.is_zero() {
        tracing::info!(
            delay_ms = millis(config.shutdown_delay),
            "shutting down: /readyz answers 503 while requests are still served"
        );
        tokio::time::sleep_until(deadline.min(Instant::now() + config.shutdown_delay).into()).await;
    }
    lifecycle.stop();
    tracing::info!("stopped accepting connections; finishing in-flight requests");
    if !server.finished(deadline).await {
        tracing::warn!(
            bound_ms = millis(config.shutdown_timeout),
            "requests still in flight at the shutdown bound; their connections are closed"
        );
    }
    flush_decision_log(decision_log, deadline).await;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the shadow (idle until a folder is loaded, by `shadow_policies`
/// here or by the admin API later). A `shadow_policies` folder that does
/// not load refuses the start, as the served policies do: the operator
/// asked for the comparison. The files are read on the blocking pool.
async fn start_shadow(
    config: &ServeConfig,
    guards: &Guards,
    metrics: &Arc<Metrics>,
) -> std::io::Result<Arc<Shadow>> {
    let shadow = Arc::new(Shadow::start(
        config.shadow_queue,
        guards.trust.clone(),
        metrics.clone(),
    )?);
    if let Some(folder) = config.shadow_policies.clone() {
        let (loading, schema) = (shadow.clone(), config.schema.clone());
        let shown = folder.display().to_string();
        tokio::task::spawn_blocking(move || loading.load(folder, schema))
            .await
            .map_err(std::io::Error::other)?
            .map_err(|report| {
                std::io::Error::other(format!(
                    "the shadow policies `{shown}` do not load:\n{report}"
                ))
            })?;
    }
    Ok(shadow)
}

/// Flushes the decision log on a blocking thread, waiting no later than
/// `deadline` (a sink that blocks, such as a full pipe, must not hold the
/// process past its shutdown bound).
async fn flush_decision_log(decision_log: Arc<DecisionLog>, deadline: Instant) {
    let flush = tokio::task::spawn_blocking(move || decision_log.shutdown());
    if tokio::time::timeout_at(deadline.into(), flush)
        .await
        .is_err()
    {
        tracing::warn!(
            "the decision log was not flushed within the shutdown bound; exiting anyway"
        );
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

type Started = (
    Arc<SharedState>,
    Arc<Freshness>,
    Option<Arc<RedisWriter>>,
    String,
    Publisher,
);

/// Starts the Redis replica task; with an admin token, also a writer for
/// the entity admin API.
fn start_replica(
    redis: &RedisArgs,
    sync: &SyncArgs,
    pack: Arc<PolicyPack>,
    admin: bool,
    metrics: Arc<Metrics>,
) -> Result<Started, crate::sync::SyncError> {
    let target = redis.target()?;
    let shared = Arc::new(SharedState::default());
    let freshness = Arc::new(Freshness::tracked(sync.freshness()));
    let writer = admin.then(|| {
        Arc::new(RedisWriter::new(
            target.clone(),
            redis.keys(),
            redis.stream_maxlen(),
        ))
    });
    let source = format!("redis:{}", target.display());
    tracing::info!(redis = target.display(), keys = ?redis.keys(), entity_admin_api = writer.is_some(), "entities come from redis");
    let publisher = Publisher::start(shared.clone(), pack, freshness.clone(), metrics.clone());
    Replica {
        target,
        keys: redis.keys(),
        publisher: publisher.clone(),
        freshness: freshness.clone(),
        idle_check: sync.idle_check(),
        metrics,
    }
    .spawn();
    Ok((shared, freshness, writer, source, publisher))
}

fn spawn_sighup_reloader(
    reloader: Arc<Reloader>,
    decision_log: Arc<DecisionLog>,
    callers: Option<Arc<CallerTokens>>,
) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP");
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading policies, schema and entities");
            decision_log.reopen();
            if let Some(callers) = &callers {
                match callers.reload() {
                    Ok(count) => tracing::info!(tokens = count, "caller tokens reloaded"),
                    Err(error) => {
                        tracing::error!(%error, "caller tokens not reloaded; the previous ones stay in force")
                    }
                }
            }
            let _ = reloader.reload_all().await;
        }
    });
    #[cfg(not(unix))]
    let _ = (reloader, decision_log, callers);
}

/// Resolves on the first SIGTERM or SIGINT. The handlers are installed
/// when this is called, not when it is first awaited.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
            tracing::info!("shutting down");
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
}

/// Application logs (not the decision log) on stderr, `RUST_LOG` filters.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
