//! Keeping the sync task alive: backoff with jitter between attempts, and
//! a supervisor that restarts a task that died (a panic, or a return while
//! it still had work), counting the restarts where operators look.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::freshness::Freshness;
use crate::telemetry::Metrics;

/// First wait after a failure.
pub const BACKOFF_START: Duration = Duration::from_millis(50);
/// Longest wait between attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A duration drawn uniformly from `[backoff / 2, backoff]`: replicas that
/// lost Redis together do not all come back (and re-snapshot) at once.
pub fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
    if spread == 0 {
        return backoff;
    }
    // uuid's v4 comes from a fast thread-local generator: random enough here.
    let draw = (uuid::Uuid::new_v4().as_u128() as u64) % (spread + 1);
    half + Duration::from_micros(draw)
}

/// The next backoff: doubled, at most [`BACKOFF_MAX`].
pub fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(BACKOFF_MAX)
}

/// How a supervised run ended on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Its work is over (the publisher stopped): do not restart.
    Done,
    /// It returned while it still had work: a bug; restart it.
    Unexpected,
}

/// Runs `task()` on the runtime, and again (after a jittered backoff)
/// whenever it panics or returns [`Exit::Unexpected`]; each restart is
/// counted in `freshness` (`/v1/status`, `/readyz`) and `metrics`. Ends
/// when a run returns [`Exit::Done`].
pub fn supervise<F, Fut>(
    name: &'static str,
    freshness: Arc<Freshness>,
    metrics: Arc<Metrics>,
    task: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Exit> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = BACKOFF_START;
        loop {
            let reason = match tokio::spawn(task()).await {
                Ok(Exit::Done) => return,
                Ok(Exit::Unexpected) => format!("{name} returned unexpectedly"),
                Err(error) if error.is_panic() => format!("{name} panicked"),
                // Cancelled: the runtime is shutting down.
                Err(_) => return,
            };
            tracing::error!(task = name, %reason, retry_in_ms = backoff.as_millis() as u64, "restarting a sync task that died");
            freshness.record_restart(reason);
            metrics.record_sync_restart();
            tokio::time::sleep(jittered(backoff)).await;
            backoff = next_backoff(backoff);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_full_and_varies() {
        let backoff = Duration::from_millis(800);
        let draws: Vec<Duration> = (0..64).map(|_| jittered(backoff)).collect();
        assert!(draws.iter().all(|d| *d >= backoff / 2 && *d <= backoff));
        let first = draws[0];
        assert!(draws.iter().any(|d| *d != first), "no jitter: {draws:?}");
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
        assert_eq!(next_backoff(BACKOFF_MAX), BACKOFF_MAX);
    }
}
