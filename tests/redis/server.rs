//! A real `redis-server` per test, in a temporary directory, killed on drop.
//! Standalone servers listen on a unix socket (no port races); cluster
//! nodes need TCP and take free ports.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        let mut reply = vec![0u8; 1 << 16];
        let n = match self.port {
            Some(port) => {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                stream.write_all(request.as_bytes()).expect("write");
                stream.read(&mut reply).expect("read")
            }
            None => {
                let mut stream = UnixStream::connect(self.socket()).expect("connect");
                stream.write_all(request.as_bytes()).expect("write");
                stream.read(&mut reply).expect("read")
            }
        };
        String::from_utf8_lossy(&reply[..n]).into_owned()
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
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = match self.port {
                Some(port) => TcpStream::connect(("127.0.0.1", port)).is_ok(),
                None => UnixStream::connect(self.socket()).is_ok(),
            };
            if up && self.command(&["PING"]).starts_with("+PONG") {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free TCP port on loopback (the OS picks it; released right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A local 3-node Redis Cluster (no replicas), torn down on drop.
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-mode nodes and joins them.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                // The cluster bus uses port + 10000: keep both below 65536.
                let port = loop {
                    let port = free_port();
                    if port < 55_000
                        && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
                    {
                        break port;
                    }
                };
                RedisServer::start_with(
                    Persistence::None,
                    Some(port),
                    &["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port.expect("tcp")))
            .collect();
        let status = Command::new("redis-cli")
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

    /// Seed URLs of all nodes.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}
