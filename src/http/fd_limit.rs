//! Connections need file descriptors: a connection cap above the process's
//! open-files limit is no cap at all (accepts fail with EMFILE on every
//! listener alike, probes included). At start the soft limit is raised to
//! the hard one, and the per-listener cap is lowered, with a warning, until
//! every listener's connections fit beside a reserve for everything else.

use rustix::process::{getrlimit, setrlimit, Resource};

/// Descriptors kept for what is not a connection: listeners, the decision
/// log, Redis, the file watcher, the runtime. (Should they run out anyway,
/// the accept loop backs off and retries on EMFILE.)
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft open-files limit as far as allowed and returns the
/// largest per-listener connection cap that fits `listeners` listeners
/// under it (`wanted` when it already fits).
pub fn fit_connection_cap(wanted: usize, listeners: usize) -> usize {
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(%error, "cannot raise the open-files limit");
        }
        limit = getrlimit(Resource::Nofile);
    }
    let Some(soft) = limit.current else {
        return wanted; // unlimited
    };
    let listeners = u64::try_from(listeners.max(1)).unwrap_or(u64::MAX);
    let fits = soft.saturating_sub(RESERVED_DESCRIPTORS) / listeners;
    let fits = usize::try_from(fits).unwrap_or(usize::MAX).max(1);
    if wanted > fits {
        tracing::warn!(
            max_connections = wanted,
            lowered_to = fits,
            open_files_limit = soft,
            "max_connections does not fit the open-files limit on every listener; lowered (raise `ulimit -n` to keep it)"
        );
        return fits;
    }
    wanted
}
