//! The accept loops. Ours rather than `axum::serve`, so that what a peer
//! can hold is bounded: open connections per listener are capped (past the
//! cap a new connection is closed at once, counted and logged), every
//! connection has its header and idle timeouts (`connection.rs`), an accept
//! error such as running out of file descriptors neither spins nor ends the
//! loop, and shutdown answers every request that was sent before the
//! listeners closed.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::connection::{self, ConnectionLimits};
use super::lifecycle::Lifecycle;
use crate::telemetry::{Listener, Metrics};

/// How long accepting pauses after an error that is not one connection's
/// (out of file descriptors, out of memory): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Repeated warnings (connection cap reached, accept errors) are logged at
/// most this often, with a count of those held back.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The listeners and their connections.
pub struct Server {
    /// Limits given to every connection.
    limits: ConnectionLimits,
    /// Connection gauges and counters.
    metrics: Arc<Metrics>,
    /// Tells accept loops and connections when to stop.
    lifecycle: Arc<Lifecycle>,
    /// Cloned into every accept loop and connection task; when the last
    /// clone is dropped, everything has finished (the receiver sees it).
    running: mpsc::Sender<()>,
    finished: mpsc::Receiver<()>,
}

impl Server {
    /// A server whose listeners and connections stop when `lifecycle` does.
    pub fn new(limits: ConnectionLimits, metrics: Arc<Metrics>, lifecycle: Arc<Lifecycle>) -> Self {
        let (running, finished) = mpsc::channel(1);
        Self {
            limits,
            metrics,
            lifecycle,
            running,
            finished,
        }
    }

    /// Serves `router` on `listener` until the lifecycle stops.
    pub fn spawn(&self, listener: TcpListener, kind: Listener, router: Router) {
        let acceptor = Acceptor {
            kind,
            router,
            limits: self.limits,
            metrics: self.metrics.clone(),
            lifecycle: self.lifecycle.clone(),
            slots: Arc::new(Semaphore::new(self.limits.max_connections)),
            running: self.running.clone(),
            rejections: Throttle::default(),
        };
        tokio::spawn(acceptor.run(listener));
    }

    /// Waits until every accept loop and connection has finished, but not
    /// past `deadline`; true when all did.
    pub async fn finished(self, deadline: Instant) -> bool {
        let Self {
            running,
            mut finished,
            ..
        } = self;
        drop(running);
        tokio::time::timeout_at(deadline.into(), finished.recv())
            .await
            .is_ok()
    }
}

/// One listener's accept loop and what its connections share.
struct Acceptor {
    kind: Listener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    lifecycle: Arc<Lifecycle>,
    /// One permit per open connection: the cap.
    slots: Arc<Semaphore>,
    running: mpsc::Sender<()>,
    rejections: Throttle,
}

impl Acceptor {
    async fn run(self, listener: TcpListener) {
        let mut stopped = pin!(self.lifecycle.stopped());
        let errors = Throttle::default();
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut stopped => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, client)) => self.open(stream, client),
                Err(error) if concerns_one_connection(&error) => {
                    tracing::debug!(%error, "a connection failed while being accepted");
                }
                Err(error) => {
                    errors.warn(|held_back| {
                        tracing::warn!(
                            %error,
                            listener = self.kind.label(),
                            held_back,
                            "cannot accept connections (out of file descriptors?); retrying"
                        );
                    });
                    tokio::select! {
                        () = &mut stopped => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            }
        }
        self.take_backlog(listener);
    }

    /// Serves a new connection, or closes it at once when the cap is reached.
    fn open(&self, stream: TcpStream, client: SocketAddr) {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            self.metrics.record_connection_rejected(self.kind);
            self.rejections.warn(|held_back| {
                tracing::warn!(
                    listener = self.kind.label(),
                    max_connections = self.limits.max_connections,
                    held_back,
                    "connection limit reached: closing new connections"
                );
            });
            // Dropping the stream closes it.
            return;
        };
        without_delay(&stream);
        let open = OpenGauge::new(self.metrics.clone(), self.kind);
        let (router, limits, kind) = (self.router.clone(), self.limits, self.kind);
        let (stopped, running) = (self.lifecycle.stopped(), self.running.clone());
        tokio::spawn(async move {
            connection::serve(stream, client, router, limits, stopped, &open.metrics, kind).await;
            drop((slot, open, running));
        });
    }

    /// Once stopped: connections the kernel completed before the stop are
    /// still served (a request in one was sent before the listener closed),
    /// then the listening socket closes and new connections are refused.
    fn take_backlog(&self, listener: TcpListener) {
        let Ok(listener) = listener.into_std() else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((stream, client)) => {
                    match stream
                        .set_nonblocking(true)
                        .and_then(|()| TcpStream::from_std(stream))
                    {
                        Ok(stream) => self.open(stream, client),
                        Err(error) => tracing::debug!(%error, "cannot serve a queued connection"),
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                // Usually `WouldBlock`: the queue is empty.
                Err(_) => break,
            }
        }
    }
}

/// Sets `TCP_NODELAY` on an accepted connection. Answers are small and
/// awaited; without it, Nagle's algorithm can hold an answer until the peer
/// acknowledges the previous one, and the peer may delay that
/// acknowledgement by tens of milliseconds.
pub fn without_delay(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
    }
}

/// Errors that concern one connection, not the listener: accept the next.
fn concerns_one_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// Counts a connection in `cedar_http_connections_open` while it lives.
struct OpenGauge {
    metrics: Arc<Metrics>,
    kind: Listener,
}

impl OpenGauge {
    fn new(metrics: Arc<Metrics>, kind: Listener) -> Self {
        metrics.record_connection_opened(kind);
        Self { metrics, kind }
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        self.metrics.record_connection_closed(self.kind);
    }
}

/// A warning at most once per [`WARN_INTERVAL`], with the number held back
/// since the last one: under attack, the log stays readable.
#[derive(Default)]
struct Throttle {
    /// (last logged, held back since). A std mutex: never held across an await.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    fn warn(&self, log: impl FnOnce(u64)) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if state
            .0
            .is_some_and(|last| now.duration_since(last) < WARN_INTERVAL)
        {
            state.1 += 1;
            return;
        }
        let held_back = std::mem::take(&mut state.1);
        state.0 = Some(now);
        drop(state);
        log(held_back);
    }
}
