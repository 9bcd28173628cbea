//! A small HTTP/1.1 load generator for loopback benchmarks: keep-alive
//! connections that replay pre-encoded POST requests, either as fast as the
//! server answers (saturation) or at a fixed rate (latency under load).
//!
//! At a fixed rate, latency is measured from the moment a request was *due*,
//! not from when it was sent, so a stalled server cannot hide its queue
//! (no coordinated omission). The schedule comes from a pacing thread with
//! `std::thread::sleep` (tens of microseconds late at most), not from tokio's
//! timer: its 1 ms ticks would make every request look up to 1 ms slow.
//! Due requests go to whichever connection is free; when none is, they wait
//! and that wait is measured. Every run is bounded by its duration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One route to load, with the bodies to cycle through.
#[derive(Debug, Clone)]
pub struct Target {
    /// Request path, e.g. `/v1/is_authorized`.
    pub path: String,
    /// JSON bodies; connection `c` sends body `(c + k * connections) % len`.
    pub bodies: Vec<String>,
}

/// How to drive the target.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// How long to send (responses already in flight are awaited).
    pub duration: Duration,
    /// `None`: each connection sends its next request as soon as the last
    /// answer arrives. `Some(r)`: `r` requests per second over all connections.
    pub rate: Option<f64>,
}

/// What one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadResult {
    /// Responses with status 200.
    pub ok: u64,
    /// Responses with any other status, and broken connections.
    pub errors: u64,
    /// Wall time from first send to last answer, in seconds.
    pub seconds: f64,
    /// `ok / seconds`.
    pub throughput: f64,
    /// Latency percentiles of successful requests, in microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
}

/// Why a run could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Connecting or talking to the server failed before any measurement.
    #[error("cannot reach the server at {addr}: {source}")]
    Connect {
        /// Where we tried.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Nothing to send.
    #[error("no request bodies for {0}")]
    NoBodies(String),
}

/// Runs one load against `addr` and measures it.
pub async fn run(
    addr: SocketAddr,
    target: &Target,
    shape: LoadShape,
) -> Result<LoadResult, LoadError> {
    if target.bodies.is_empty() {
        return Err(LoadError::NoBodies(target.path.clone()));
    }
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        target
            .bodies
            .iter()
            .map(|body| encode(&target.path, body))
            .collect(),
    );
    let connections = shape.connections.max(1);
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| LoadError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        streams.push(stream);
    }
    let started = Instant::now();
    let deadline = started + shape.duration;
    let schedule = shape.rate.map(|rate| {
        let (due, queue) = tokio::sync::mpsc::unbounded_channel();
        let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
        std::thread::spawn(move || pace(interval, started, deadline, &due));
        Arc::new(tokio::sync::Mutex::new(queue))
    });
    let mut tasks = Vec::with_capacity(connections);
    for (index, stream) in streams.into_iter().enumerate() {
        tasks.push(tokio::spawn(connection(
            stream,
            requests.clone(),
            index,
            connections,
            deadline,
            schedule.clone(),
        )));
    }
    let mut latencies: Vec<u32> = Vec::new();
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok(outcome) => {
                latencies.extend(outcome.latencies_us);
                errors += outcome.errors;
            }
            Err(_) => errors += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let ok = latencies.len() as u64;
    Ok(LoadResult {
        ok,
        errors,
        seconds,
        throughput: ok as f64 / seconds.max(f64::EPSILON),
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
        p999_us: percentile(&latencies, 0.999),
    })
}

/// The `q` quantile of sorted samples (nearest rank); 0 when empty.
pub fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1])
}

struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
}

/// Sends one due instant per `interval` from `started` until `deadline`,
/// sleeping the thread in between (several at once when it woke late).
fn pace(
    interval: Duration,
    started: Instant,
    deadline: Instant,
    due: &tokio::sync::mpsc::UnboundedSender<Instant>,
) {
    let mut next = started;
    while next < deadline {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        if due.send(next).is_err() {
            return;
        }
        next += interval;
    }
}

/// The shared queue of due instants of a fixed-rate run.
type Schedule = Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Instant>>>;

async fn connection(
    mut stream: TcpStream,
    requests: Arc<Vec<Vec<u8>>>,
    index: usize,
    stride: usize,
    deadline: Instant,
    schedule: Option<Schedule>,
) -> Outcome {
    let mut outcome = Outcome {
        latencies_us: Vec::with_capacity(64 * 1024),
        errors: 0,
    };
    let mut buffer = Vec::with_capacity(16 * 1024);
    let mut next = index;
    loop {
        let start = match &schedule {
            Some(schedule) => {
                let due = schedule.lock().await.recv().await;
                match due {
                    Some(at) => at,
                    None => break,
                }
            }
            None => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                now
            }
        };
        let request = &requests[next % requests.len()];
        next += stride;
        if stream.write_all(request).await.is_err() {
            outcome.errors += 1;
            break;
        }
        match read_response(&mut stream, &mut buffer).await {
            Some(200) => {
                let micros = start.elapsed().as_micros();
                outcome
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Some(_) => outcome.errors += 1,
            None => {
                outcome.errors += 1;
                break;
            }
        }
    }
    outcome
}

fn encode(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one response (headers + content-length body); returns its status,
/// or `None` when the connection broke or the response is not understood.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<u16> {
    loop {
        if let Some(head_end) = find(buffer, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..head_end]).ok()?;
            let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())
                        .flatten()
                })
                .unwrap_or(0);
            let total = head_end + 4 + length;
            while buffer.len() < total {
                read_more(stream, buffer).await?;
            }
            buffer.drain(..total);
            return Some(status);
        }
        read_more(stream, buffer).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&samples, 0.5), 500.0);
        assert_eq!(percentile(&samples, 0.99), 990.0);
        assert_eq!(percentile(&samples, 0.999), 999.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7], 0.999), 7.0);
    }
}
