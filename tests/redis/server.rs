//! A real `redis-server` per test, in a temporary directory, killed on drop.
//! Standalone servers listen on a unix socket (no port races); cluster
//! nodes, Sentinel-monitored servers and the TLS port need TCP and take
//! free ports.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pki::Pki;

/// How a server keeps its data across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing survives a restart (unless a test calls `SAVE`: then the
    /// restart loads that older dump, which is how a restore is simulated).
    None,
    /// Append-only file, fsync on every write: nothing is lost on kill -9.
    Aof,
}

/// One redis-server process.
pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    persistence: Persistence,
    /// TCP port (cluster nodes) or `None` (unix socket).
    port: Option<u16>,
    /// The TLS port, for servers started with [`RedisServer::start_tls`].
    tls_port: Option<u16>,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a standalone server on a unix socket.
    pub fn start(persistence: Persistence) -> Self {
        Self::start_with(persistence, None, &[])
    }

    /// Starts a server with extra `--name value` arguments, on `port` if given.
    pub fn start_with(persistence: Persistence, port: Option<u16>, extra: &[&str]) -> Self {
        let mut server = Self {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            persistence,
            port,
            tls_port: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    /// The URL clients use.
    pub fn url(&self) -> String {
        match self.port {
            Some(port) => format!("redis://127.0.0.1:{port}"),
            None => format!("redis+unix://{}", self.socket().display()),
        }
    }

    /// Kills the server with SIGKILL (no shutdown save).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again with the same directory and settings.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs one command and returns the raw RESP reply text.
    pub fn command(&self, args: &[&str]) -> String {
        match self.try_command(args) {
            Ok(reply) => reply,
            Err(err) => panic!("redis command {args:?}: {err}"),
        }
    }

    /// [`RedisServer::command`] that reports I/O errors instead of panicking.
    fn try_command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        let mut reply = vec![0u8; 1 << 16];
        let n = match self.port {
            Some(port) => {
                let mut stream = TcpStream::connect(("127.0.0.1", port))?;
                stream.write_all(request.as_bytes())?;
                stream.read(&mut reply)?
            }
            None => {
                let mut stream = UnixStream::connect(self.socket())?;
                stream.write_all(request.as_bytes())?;
                stream.read(&mut reply)?
            }
        };
        Ok(String::from_utf8_lossy(&reply[..n]).into_owned())
    }

    /// Starts a server that also listens for TLS on a free port with the
    /// test PKI's server certificate; with `require_client_cert` it refuses
    /// clients without a certificate signed by the test CA. The unix socket
    /// stays plain, for setup and checks.
    pub fn start_tls(pki: &Pki, require_client_cert: bool) -> Self {
        Self::start_tls_with(pki, require_client_cert, free_port(), &[])
    }

    /// [`RedisServer::start_tls`] on a given TLS port, with extra arguments.
    fn start_tls_with(pki: &Pki, require_client_cert: bool, tls_port: u16, extra: &[&str]) -> Self {
        let file = |name: &str| pki.path(name).display().to_string();
        let port = tls_port.to_string();
        let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
        let auth = if require_client_cert { "yes" } else { "no" };
        let mut args = vec![
            "--tls-port",
            &port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            auth,
        ];
        args.extend_from_slice(extra);
        let mut server = Self::start_with(Persistence::None, None, &args);
        server.tls_port = Some(tls_port);
        server
    }

    /// The TLS port (servers started with [`RedisServer::start_tls`]).
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("a TLS server")
    }

    /// The `rediss://` URL (servers started with [`RedisServer::start_tls`]).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port())
    }

    /// The TCP port (servers started with one).
    pub fn port(&self) -> u16 {
        self.port.expect("a TCP server")
    }

    /// The unix socket path (standalone servers).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    fn spawn(&mut self) {
        let dir = self.dir.path().display().to_string();
        let mut command = Command::new("redis-server");
        command
            .args(["--dir", &dir, "--save", "", "--daemonize", "no"])
            .args(["--dbfilename", "dump.rdb", "--protected-mode", "no"])
            .args(["--appendfsync", "always"])
            .args([
                "--appendonly",
                match self.persistence {
                    Persistence::None => "no",
                    Persistence::Aof => "yes",
                },
            ])
            // Small stream nodes so that `MAXLEN ~` really trims in tests.
            .args(["--stream-node-max-entries", "4"]);
        match self.port {
            Some(port) => {
                command.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
            }
            None => {
                command.args([
                    "--port",
                    "0",
                    "--unixsocket",
                    &self.socket().display().to_string(),
                ]);
            }
        }
        command.args(&self.extra);
        // The server logs to stdout; keep it so that a failed start says why.
        let log_path = self.dir.path().join("redis.log");
        let log = std::fs::File::create(&log_path).expect("create redis.log");
        let child = command
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Errors are expected while the server starts (refused, or reset
            // by a server still setting up); only its exit or the deadline end
            // the wait.
            if let Ok(reply) = self.try_command(&["PING"]) {
                if reply.starts_with("+PONG") {
                    return;
                }
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("redis-server did not come up ({exited:?}); its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Ports handed out in this test process. The OS only promises that a port
/// was free when it was picked; tests run in parallel, so without this record
/// two servers (or a server and a cluster node's bus, port + 10000) could be
/// given the same port before either binds it.
static RESERVED_PORTS: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());

/// A free TCP port on loopback, never handed out before in this process.
pub fn free_port() -> u16 {
    free_port_where(|_, _| true)
}

/// A free port whose cluster bus port (port + 10000) is free too; both are
/// reserved.
fn free_cluster_port() -> u16 {
    free_port_where(|port, reserved| {
        port < 55_000
            && !reserved.contains(&(port + 10_000))
            && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
            && reserved.insert(port + 10_000)
    })
}

/// Picks OS-chosen free ports until one is not reserved and passes `accept`,
/// then reserves it.
fn free_port_where(mut accept: impl FnMut(u16, &mut BTreeSet<u16>) -> bool) -> u16 {
    let mut reserved = RESERVED_PORTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if !reserved.contains(&port) && accept(port, &mut reserved) {
            reserved.insert(port);
            return port;
        }
    }
}

/// A local 3-node Redis Cluster (no replicas), torn down on drop.
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-mode nodes and joins them.
    pub fn start() -> Self {
        Self::start_nodes(None)
    }

    /// Three nodes that speak only TLS (clients, and the cluster bus
    /// between them) and require client certificates from the test CA.
    pub fn start_tls(pki: &Pki) -> Self {
        Self::start_nodes(Some(pki))
    }

    fn start_nodes(tls: Option<&Pki>) -> Self {
        let cluster_args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"];
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = free_cluster_port();
                match tls {
                    None => RedisServer::start_with(Persistence::None, Some(port), &cluster_args),
                    Some(pki) => {
                        let mut args = cluster_args.to_vec();
                        args.extend(["--tls-cluster", "yes"]);
                        RedisServer::start_tls_with(pki, true, port, &args)
                    }
                }
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port.or(n.tls_port).expect("tcp")))
            .collect();
        let mut create = Command::new("redis-cli");
        if let Some(pki) = tls {
            create
                .arg("--tls")
                .arg("--cacert")
                .arg(pki.path("ca.pem"))
                .arg("--cert")
                .arg(pki.path("client.pem"))
                .arg("--key")
                .arg(pki.path("client.key"));
        }
        let status = create
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli is installed");
        assert!(status.success(), "cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !nodes
            .iter()
            .all(|n| n.command(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { nodes }
    }

    /// Seed URLs of all nodes (`rediss://` for a TLS cluster).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| match n.tls_port {
                Some(_) => n.tls_url(),
                None => n.url(),
            })
            .collect()
    }
}

/// A master, optionally one replica, and one Sentinel watching the master
/// (quorum 1, down after 300 ms), all on free loopback ports.
pub struct SentinelSetup {
    /// The master Sentinel starts with.
    pub master: RedisServer,
    /// Its replica, if asked for.
    pub replica: Option<RedisServer>,
    /// The Sentinel process (checked through its unix socket).
    pub sentinel: RedisServer,
    /// The URL clients give for the Sentinel.
    pub sentinel_url: String,
}

/// The master's name in Sentinel.
pub const SENTINEL_MASTER: &str = "cedar";

impl SentinelSetup {
    /// Starts the servers; with `with_replica` waits until the replica has
    /// synced and the Sentinel knows it, so that a failover can pick it.
    pub fn start(with_replica: bool) -> Self {
        // No delay before a full sync to a new replica (the default waits 5 s).
        let master = RedisServer::start_with(
            Persistence::None,
            Some(free_port()),
            &["--repl-diskless-sync-delay", "0"],
        );
        let master_port = master.port();
        let replica = with_replica.then(|| {
            let replica = RedisServer::start_with(
                Persistence::None,
                Some(free_port()),
                &["--replicaof", "127.0.0.1", &master_port.to_string()],
            );
            wait_for(10, "replica synced", || {
                replica
                    .command(&["INFO", "replication"])
                    .contains("master_link_status:up")
            });
            replica
        });
        let (sentinel, sentinel_url) = RedisServer::sentinel(master_port, None);
        if let Some(replica) = &replica {
            let port = format!("\r\n{}\r\n", replica.port());
            wait_for(10, "sentinel knows the replica", || {
                sentinel
                    .command(&["SENTINEL", "REPLICAS", SENTINEL_MASTER])
                    .contains(&port)
            });
        }
        Self {
            master,
            replica,
            sentinel,
            sentinel_url,
        }
    }

    /// A master and a Sentinel that speak only TLS (plus their private unix
    /// sockets) and require client certificates from the test CA; the
    /// Sentinel reaches the master over TLS too.
    pub fn start_tls(pki: &Pki) -> Self {
        let master = RedisServer::start_tls(pki, true);
        let (sentinel, sentinel_url) = RedisServer::sentinel(master.tls_port(), Some(pki));
        wait_for(10, "sentinel reaches the master over TLS", || {
            let reply = sentinel.command(&["SENTINEL", "MASTER", SENTINEL_MASTER]);
            reply.contains("\r\nmaster\r\n")
        });
        Self {
            master,
            replica: None,
            sentinel,
            sentinel_url,
        }
    }

    /// The port Sentinel currently names as the master.
    pub fn master_port(&self) -> String {
        let reply =
            self.sentinel
                .command(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER]);
        reply
            .split("\r\n")
            .filter(|line| !line.is_empty())
            .last()
            .unwrap_or_default()
            .to_string()
    }
}

impl RedisServer {
    /// A Sentinel monitoring the master at `127.0.0.1:master_port`, on a
    /// free port (TLS with `tls`) and its unix socket; returns it and its
    /// URL. Its config file lives in its directory (Sentinel rewrites it).
    /// Not for [`RedisServer::restart`].
    fn sentinel(master_port: u16, tls: Option<&Pki>) -> (Self, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let socket = dir.path().join("redis.sock");
        let mut conf = format!(
            "bind 127.0.0.1\ndir {dir}\nunixsocket {socket}\n",
            dir = dir.path().display(),
            socket = socket.display(),
        );
        let url = match tls {
            None => {
                conf.push_str(&format!("port {port}\n"));
                format!("redis://127.0.0.1:{port}")
            }
            Some(pki) => {
                let file = |name: &str| pki.path(name).display().to_string();
                conf.push_str(&format!(
                    "port 0\ntls-port {port}\ntls-replication yes\ntls-auth-clients yes\n\
                     tls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n",
                    file("server.pem"),
                    file("server.key"),
                    file("ca.pem"),
                ));
                format!("rediss://127.0.0.1:{port}")
            }
        };
        conf.push_str(&format!(
            "sentinel monitor {name} 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds {name} 300\n\
             sentinel failover-timeout {name} 2000\n",
            name = SENTINEL_MASTER,
        ));
        let path = dir.path().join("sentinel.conf");
        std::fs::write(&path, conf).expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&path)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let server = Self {
            child: Some(child),
            dir,
            persistence: Persistence::None,
            port: None,
            tls_port: None,
            extra: Vec::new(),
        };
        wait_for(10, "sentinel up", || {
            UnixStream::connect(server.socket()).is_ok()
                && server.command(&["PING"]).starts_with("+PONG")
        });
        (server, url)
    }
}

/// Polls `condition` every 20 ms until it holds; panics after `secs`.
fn wait_for(secs: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
