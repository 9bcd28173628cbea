//! The real binary on a loopback port, and a minimal HTTP/1.1 client for it:
//! what a caller on the pod's network sees, settings and all.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::repo;

/// A `cedar-sidecar serve` process, killed on drop.
pub struct Sidecar {
    child: Child,
    /// Where it serves decisions.
    pub address: SocketAddr,
    /// What it wrote to stderr so far (drained by a thread, so a chatty
    /// server never blocks on a full pipe).
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// A port that was free a moment ago.
pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

impl Sidecar {
    /// Starts `serve` on the shipped pack with `args` and `env`, and waits
    /// until `/healthz` answers.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_in(&repo(), args, env)
    }

    /// [`Self::start`] from the folder `dir`. Files are not watched unless
    /// `args` say `--watch true`.
    pub fn start_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let address = free_port();
        let listen = address.to_string();
        let mut command = Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"));
        command
            .current_dir(dir)
            .args(["serve", "--listen", &listen])
            .args(args)
            .env_remove("CEDAR_SIDECAR_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !args.contains(&"--watch") {
            command.args(["--watch", "false"]);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            });
        }
        let mut sidecar = Self {
            child,
            address,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = sidecar.child.try_wait().unwrap() {
                panic!("sidecar exited with {status}: {}", sidecar.stderr());
            }
            if TcpStream::connect(address).is_ok() {
                return sidecar;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sidecar did not start listening on {address}");
    }

    /// Sends one request; returns status and parsed JSON body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let (status, text) = http(self.address, method, path, body, headers);
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON ({status}): {text}"));
        (status, json)
    }

    /// Stops the process and returns what it wrote to stderr.
    pub fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The drain thread sees the pipe close once the process is gone.
        std::thread::sleep(Duration::from_millis(100));
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`);
/// returns the status and the body as text.
pub fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, body.to_string())
}
