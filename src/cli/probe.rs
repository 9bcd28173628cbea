//! `cedar-sidecar probe`: a tiny HTTP GET for container health checks, so
//! the runtime image needs no curl.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use clap::Args;

/// Arguments of `probe`.
#[derive(Debug, Args)]
pub struct ProbeCommand {
    /// The sidecar's address (an unspecified IP such as 0.0.0.0 means this host).
    #[arg(long, env = "CEDAR_SIDECAR_LISTEN", default_value = crate::config::DEFAULT_LISTEN)]
    address: String,
    /// Path to GET.
    #[arg(long, default_value = "/healthz")]
    path: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

/// Exits 0 when the path answers 200, 1 otherwise (with the reason on stderr).
pub fn run_probe(args: &ProbeCommand) -> i32 {
    match probe(args) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("probe failed: {message}");
            1
        }
    }
}

fn probe(args: &ProbeCommand) -> Result<(), String> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut address: SocketAddr = args
        .address
        .to_socket_addrs()
        .map_err(|e| format!("bad address `{}`: {e}", args.address))?
        .next()
        .ok_or_else(|| format!("address `{}` resolves to nothing", args.address))?;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut stream =
        TcpStream::connect_timeout(&address, timeout).map_err(|e| format!("{address}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n",
        args.path
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status_line = response.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("{} answered `{status_line}`", args.path))
    }
}
