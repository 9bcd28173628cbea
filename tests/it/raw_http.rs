//! A tiny blocking HTTP/1.1 client over raw sockets, for tests that must
//! control exactly what goes on the wire (partial heads, stalled bodies,
//! keep-alive) and see exactly how a connection ends.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Longest any single read or write may block before the test fails.
const IO_BOUND: Duration = Duration::from_secs(30);

/// A connection with generous timeouts, so a broken server fails the test
/// instead of hanging it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_BOUND)).unwrap();
    stream.set_write_timeout(Some(IO_BOUND)).unwrap();
    stream
}

/// A keep-alive request with a JSON body.
pub fn request(method: &str, path: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// How a request ended.
#[derive(Debug)]
pub enum Reply {
    /// A complete response.
    Answer(Answer),
    /// The connection closed (or was reset) before any byte of a response.
    Closed,
}

impl Reply {
    /// The answer; panics when the connection closed instead.
    pub fn answer(self) -> Answer {
        match self {
            Self::Answer(answer) => answer,
            Self::Closed => panic!("the connection closed without an answer"),
        }
    }
}

/// A complete response.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// A header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Reads one response. A connection that ends in the middle of one fails
/// the test: that is a lost answer, not a connection closed between requests.
pub fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) if buffer.is_empty() => return Reply::Closed,
            Err(e) if e.kind() == ErrorKind::ConnectionReset && buffer.is_empty() => {
                return Reply::Closed
            }
            Ok(0) => panic!(
                "the connection closed in the middle of a response head: {:?}",
                String::from_utf8_lossy(&buffer)
            ),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) => panic!(
                "reading a response: {e} after {:?}",
                String::from_utf8_lossy(&buffer)
            ),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let mut answer = Answer {
        status,
        head,
        body: String::new(),
    };
    let length: usize = answer
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    while buffer.len() < head_end + length {
        match stream.read(&mut chunk) {
            Ok(0) => panic!(
                "the connection closed in the middle of a response body: {:?}",
                String::from_utf8_lossy(&buffer)
            ),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading a response body: {e}"),
        }
    }
    answer.body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
    Reply::Answer(answer)
}

/// Sends a request on the connection and reads its reply.
pub fn exchange(stream: &mut TcpStream, method: &str, path: &str, body: &str) -> Reply {
    match stream.write_all(request(method, path, body).as_bytes()) {
        Ok(()) => read_reply(stream),
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
            Reply::Closed
        }
        Err(e) => panic!("sending a request: {e}"),
    }
}

/// One request on a new connection.
pub fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    exchange(&mut connect(addr), method, path, body).answer()
}

/// Waits up to `bound` for the server to close the connection; the time it
/// was seen closed, or `None` if it stayed open. Bytes from the server
/// fail the test (a closed connection was expected, not an answer).
pub fn wait_closed(stream: &mut TcpStream, bound: Duration) -> Option<Instant> {
    stream.set_read_timeout(Some(bound)).unwrap();
    let mut chunk = [0u8; 1024];
    let seen = match stream.read(&mut chunk) {
        Ok(0) => Some(Instant::now()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Some(Instant::now()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Ok(n) => panic!(
            "expected the connection to close, got {:?}",
            String::from_utf8_lossy(&chunk[..n])
        ),
        Err(e) => panic!("waiting for the connection to close: {e}"),
    };
    stream.set_read_timeout(Some(IO_BOUND)).unwrap();
    seen
}
