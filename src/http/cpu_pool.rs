//! Where CPU-heavy request work runs: Cedar's parsing of request entities
//! and the parts of a large batch. Not on the async workers, which must stay
//! free to read sockets and answer probes; and at most one job per core at
//! once, so a burst queues here instead of starting hundreds of blocking
//! threads that the request timeout cannot stop.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::ApiError;

/// A bound on concurrent CPU jobs, sized once from the cores available.
pub struct CpuPool {
    slots: Arc<Semaphore>,
    cores: usize,
}

impl CpuPool {
    /// A pool of `cores` slots (at least one).
    pub fn new(cores: usize) -> Self {
        let cores = cores.max(1);
        Self {
            slots: Arc::new(Semaphore::new(cores)),
            cores,
        }
    }

    /// Sized from the cores this process may use (read once: it re-reads
    /// cgroup files on every call).
    pub fn for_this_machine() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// How many jobs run at once.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Runs `job` on a blocking thread once a slot is free. A caller that
    /// gives up (timeout) while waiting frees nothing it did not take; a job
    /// that started runs to its end, holding its slot.
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Internal)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            job()
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "a CPU job failed");
            ApiError::Internal
        })
    }
}

impl Default for CpuPool {
    fn default() -> Self {
        Self::for_this_machine()
    }
}
