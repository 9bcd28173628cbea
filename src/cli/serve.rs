//! `cedar-sidecar serve`: load, validate, then answer decisions over HTTP.

use std::sync::Arc;
use std::time::SystemTime;

use clap::Args;

use crate::config::{PackArgs, ServerArgs};
use crate::engine::PolicyPack;
use crate::entities::{load_entities_file, EntityMap};
use crate::http::{router, AppState};
use crate::state::{SharedState, Snapshot};

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeCommand {
    #[command(flatten)]
    pack: PackArgs,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs the server until interrupted; returns the exit code.
pub fn run_serve(args: ServeCommand) -> i32 {
    let snapshot = match load_snapshot(&args.pack) {
        Ok(snapshot) => snapshot,
        Err(report) => {
            eprint!("{report}");
            eprintln!("refusing to start: fix the problems above");
            return 1;
        }
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
    let state = AppState {
        shared: Arc::new(SharedState::ready(snapshot)),
        limits: args.server.limits(),
    };
    match runtime.block_on(serve(state, args.server.listen)) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error}");
            1
        }
    }
}

/// Loads policies, schema and the entities file into a first snapshot.
pub fn load_snapshot(pack_args: &PackArgs) -> Result<Snapshot, String> {
    let pack = PolicyPack::load(&pack_args.sources()).map_err(|p| p.render())?;
    let entities = load_entities_file(&pack_args.entities, &pack.schema).map_err(|p| p.render())?;
    tracing::info!(
        policies = pack.files.policy_count(),
        templates = pack.files.template_count(),
        entities = entities.len(),
        slice_depth = ?pack.slice_limits.depth,
        "loaded policy pack and entities"
    );
    Ok(Snapshot {
        pack: Arc::new(pack),
        entities: EntityMap::from_entities(entities, 1),
        pack_loaded_at: SystemTime::now(),
    })
}

async fn serve(state: AppState, listen: std::net::SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "serving decisions");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
