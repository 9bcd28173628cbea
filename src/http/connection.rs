//! One accepted connection: HTTP/1.1 served by hyper, watched for the two
//! ways a peer can hold a connection without asking anything, and closed
//! without losing a request when the server stops.
//!
//! - A request head (request line and headers) must be complete within
//!   `header_read_timeout` of its first byte: a client that trickles a
//!   head, or sends half of one and stalls (slowloris), is cut.
//! - A connection with no request in progress (a new one, or a keep-alive
//!   one between requests) is closed after `idle_timeout`.
//! - When the server stops, a response carries `Connection: close`, and a
//!   connection with no request in progress is closed, unless a request has
//!   already arrived in its socket: that one is answered first.
//!
//! Why not hyper's own: its `header_read_timeout` runs whenever the
//! connection waits for a head, including the quiet time between keep-alive
//! requests, so it cannot tell a slow head from an idle connection; and its
//! `graceful_shutdown` closes an idle connection at once, dropping a request
//! that is already in the socket but not yet read.
//!
//! The connection's activity is noted from four places, all on the
//! connection's own task: the socket wrapper (bytes of a new head arrived;
//! hyper's buffer was flushed), the service (a complete head was handed to
//! the router) and the response body (the answer is finished). A connection
//! counts as idle only once its last answer is flushed: before that, hyper
//! is not yet waiting for a head, and an end of stream it read then would
//! drop the unflushed answer.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request, Response};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::telemetry::{ConnectionTimeout, Listener, Metrics};

/// Bounds on what one peer can hold open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request head must be complete this long after its first byte.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// Open connections per listener; past it, new ones are closed at once.
    pub max_connections: usize,
    /// Largest request head (request line and headers); hyper answers a
    /// larger one with 431. Bounds the memory a connection's head can take.
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Serves one connection until the peer closes it, it times out, or the
/// server stops and its last request is answered. `stopped` resolves when
/// the server stops.
pub(super) async fn serve(
    stream: TcpStream,
    client: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    stopped: impl Future<Output = ()>,
    metrics: &Metrics,
    listener: Listener,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = Service {
        router,
        client,
        activity: activity.clone(),
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .max_header_size(limits.max_header_bytes)
        // hyper's read buffer would otherwise grow to ~400 KiB per
        // connection; a head fits with room for a body chunk (hyper refuses
        // a bound under 8 KiB).
        .max_buf_size(limits.max_header_bytes.saturating_add(8192).max(8192))
        // Ours instead (see the module docs); hyper's needs no timer when off.
        .header_read_timeout(None::<std::time::Duration>)
        .serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut stopped = std::pin::pin!(stopped);
    let mut closing = false;
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %client, "connection ended with an error");
                }
                return;
            }
            () = sleep_until(deadline.map(|(at, _)| at)) => {
                if let Some((at, timeout)) = activity.deadline(&limits) {
                    if at <= Instant::now() {
                        metrics.record_connection_timeout(listener, timeout);
                        tracing::debug!(%client, timeout = timeout.label(), "closing a connection that timed out");
                        // Dropping the connection closes the socket.
                        return;
                    }
                }
            }
            // The activity changed: the deadline may have moved.
            () = activity.changed.notified() => {}
            () = &mut stopped, if !closing => {
                closing = true;
                activity.close();
                // The loop polls the connection again, which reads (or ends) at once.
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// What the connection is doing, and since when.
struct Activity {
    /// A std mutex: held for one update, never across an await.
    state: Mutex<State>,
    /// Wakes the watch loop when a deadline may have moved.
    changed: Notify,
}

struct State {
    /// Requests between their complete head and the end of their response
    /// (one at a time in HTTP/1.1; counted rather than assumed).
    busy: u32,
    /// The first bytes of a new request head have arrived.
    head: bool,
    /// When the connection last became idle, or when the pending head began.
    since: Instant,
    /// The last response is finished but may still sit in hyper's write
    /// buffer: until it is flushed, hyper is not yet waiting for a new head
    /// (a read it makes then only looks for the peer hanging up).
    unflushed: bool,
    /// The server is stopping: answer what has arrived, then close.
    closing: bool,
    /// No byte has arrived yet. A new connection is timed as a head from
    /// its accept: one that sends nothing is cut after the header timeout,
    /// not the idle timeout, so silent sockets cannot hold the cap.
    silent: bool,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                busy: 0,
                head: true,
                since: Instant::now(),
                unflushed: false,
                closing: false,
                silent: true,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Bytes arrived; between requests, they are the start of a head.
    fn bytes_arrived(&self) {
        let mut state = self.lock();
        state.silent = false;
        if state.busy == 0 && !state.head {
            state.head = true;
            state.since = Instant::now();
            drop(state);
            self.changed.notify_one();
        }
    }

    /// A complete head went to the router.
    fn request_started(&self) {
        let mut state = self.lock();
        state.busy += 1;
        state.head = false;
    }

    /// A response body is finished (or abandoned).
    fn request_finished(&self) {
        let mut state = self.lock();
        state.busy = state.busy.saturating_sub(1);
        if state.busy == 0 {
            state.since = Instant::now();
            state.unflushed = true;
            drop(state);
            self.changed.notify_one();
        }
    }

    /// Everything hyper had written is flushed to the socket.
    fn flushed(&self) {
        let mut state = self.lock();
        if state.busy == 0 && state.unflushed {
            state.unflushed = false;
            if state.closing {
                drop(state);
                // The loop polls hyper again, which now waits for a head:
                // its read ends the connection.
                self.changed.notify_one();
            }
        }
    }

    fn close(&self) {
        self.lock().closing = true;
    }

    fn is_closing(&self) -> bool {
        self.lock().closing
    }

    /// Stopping, and no request begun, in progress or still being flushed.
    fn closing_idle(&self) -> bool {
        let state = self.lock();
        state.closing && state.busy == 0 && (!state.head || state.silent) && !state.unflushed
    }

    /// When the connection is to be cut, and why; none while a request is
    /// being answered (the body deadline and request timeout bound that).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, ConnectionTimeout)> {
        let state = self.lock();
        if state.busy > 0 {
            None
        } else if state.head {
            Some((
                state.since + limits.header_read_timeout,
                ConnectionTimeout::Header,
            ))
        } else {
            Some((state.since + limits.idle_timeout, ConnectionTimeout::Idle))
        }
    }
}

/// The socket, noting when a new request head starts.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    /// Stopping with no request in progress: takes a request that has
    /// already arrived, else reports the end of the stream so hyper closes
    /// the connection. It asks the kernel directly: tokio's readiness can
    /// lag behind data that has arrived, and a request lost here was sent
    /// before the server stopped.
    fn read_arrived(&self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        let socket = socket2::SockRef::from(&self.stream);
        let mut reader: &socket2::Socket = &socket;
        let read = loop {
            match reader.read(buf.initialize_unfilled()) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                read => break read,
            }
        };
        match read {
            Ok(n) => {
                buf.advance(n);
                if n > 0 {
                    self.activity.bytes_arrived();
                }
                Ok(())
            }
            // Nothing has arrived: end of stream.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(error) => Err(error),
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.closing_idle() {
            return Poll::Ready(this.read_arrived(buf));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            // hyper flushes its stream only once its buffer is written out.
            this.activity.flushed();
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Hands each request to the router with the client's address (handlers
/// read it as `ConnectInfo<SocketAddr>`).
#[derive(Clone)]
struct Service {
    router: Router,
    client: SocketAddr,
    activity: Arc<Activity>,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Tracked>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let busy = Busy::start(self.activity.clone());
        request.extensions_mut().insert(ConnectInfo(self.client));
        let router = self.router.clone();
        Box::pin(async move {
            let Ok(mut response) = router.oneshot(request).await;
            if busy.activity.is_closing() {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| Tracked { body, _busy: busy }))
        })
    }
}

/// A request in progress; dropped with its response body, which hyper
/// drops once the body is written out.
struct Busy {
    activity: Arc<Activity>,
}

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        activity.request_started();
        Self { activity }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.activity.request_finished();
    }
}

/// A response body that keeps its request counted as in progress.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
