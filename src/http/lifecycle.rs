//! The phases a shutdown walks through, shared by the readiness probe, the
//! accept loops and every connection: serving, then draining (`/readyz`
//! answers 503 so load balancers and the kubelet stop sending new work,
//! while everything is still served), then stopping (listeners closed,
//! in-flight requests finish, idle connections close).

use tokio::sync::watch;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Normal operation.
    Serving,
    /// Shutting down soon: `/readyz` is 503, everything else is served.
    Draining,
    /// Listeners are closed; connections close once their request is answered.
    Stopping,
}

/// The current [`Phase`], published to everyone who waits on it. A watch
/// channel, so a connection that subscribes late still sees the phase.
#[derive(Debug)]
pub struct Lifecycle {
    phase: watch::Sender<Phase>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            phase: watch::Sender::new(Phase::Serving),
        }
    }
}

impl Lifecycle {
    /// The phase now.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Serving → draining: readiness fails, everything else goes on. A
    /// server already stopping stays stopping.
    pub fn drain(&self) {
        self.phase.send_if_modified(|phase| {
            let changed = *phase == Phase::Serving;
            if changed {
                *phase = Phase::Draining;
            }
            changed
        });
    }

    /// Stop accepting; let connections finish their request and close.
    pub fn stop(&self) {
        self.phase.send_replace(Phase::Stopping);
    }

    /// Resolves once the server is stopping (or the lifecycle is gone,
    /// which means the same).
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut phase = self.phase.subscribe();
        async move {
            // The borrowed value is dropped at once: nothing is held across
            // an await.
            let _ = phase.wait_for(|p| *p == Phase::Stopping).await;
        }
    }
}
