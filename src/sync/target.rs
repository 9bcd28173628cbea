//! Where Redis is and how to reach it: one server, a Cluster (seed nodes)
//! or a master found through Sentinel, behind one connection type.

use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    Pipeline, RedisFuture, TlsMode, Value,
};

use super::SyncError;

/// How the Redis URLs are to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (the first URL).
    Single,
    /// Redis Cluster; the URLs are seed nodes.
    Cluster,
    /// The URLs are Sentinels; the named master is used.
    Sentinel {
        /// The master's service name as Sentinel knows it.
        master: String,
    },
}

/// A resolved Redis deployment that hands out connections.
pub struct RedisTarget {
    kind: TargetKind,
    /// Shown in logs and status: the URLs without passwords.
    display: String,
}

enum TargetKind {
    Single(Client),
    Cluster(Vec<ConnectionInfo>),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

impl RedisTarget {
    /// Parses URLs (`redis://`, `rediss://`, `redis+unix://`, with optional
    /// `user:password@`) for the given topology. No I/O happens here.
    pub fn new(urls: &[String], topology: &Topology) -> Result<Self, SyncError> {
        // rustls needs a process-wide crypto provider for `rediss://`; a
        // second install attempt is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let infos = urls
            .iter()
            .flat_map(|u| u.split(','))
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                u.into_connection_info()
                    .map_err(|e| SyncError::Config(format!("invalid Redis URL: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = infos.first().cloned() else {
            return Err(SyncError::Config("no Redis URL given".to_string()));
        };
        let display = infos
            .iter()
            .map(|i| i.addr().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let kind = match topology {
            Topology::Single => TargetKind::Single(
                Client::open(first).map_err(|e| SyncError::Config(e.to_string()))?,
            ),
            Topology::Cluster => TargetKind::Cluster(infos),
            Topology::Sentinel { master } => {
                let mut node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(first.redis_settings().clone());
                if matches!(first.addr(), ConnectionAddr::TcpTls { .. }) {
                    node = node.set_tls_mode(TlsMode::Secure);
                }
                let client =
                    SentinelClient::build(infos, master, Some(node), SentinelServerType::Master)
                        .map_err(|e| SyncError::Config(e.to_string()))?;
                TargetKind::Sentinel(tokio::sync::Mutex::new(client))
            }
        };
        Ok(Self { kind, display })
    }

    /// The addresses, for logs (never includes credentials).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Opens a new connection whose commands time out after `response_timeout`
    /// (a blocking `XREAD` needs more than its block time).
    pub async fn connect(&self, response_timeout: Duration) -> Result<Conn, SyncError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(response_timeout));
        match &self.kind {
            TargetKind::Single(client) => Ok(Conn::Single(
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            )),
            TargetKind::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(Duration::from_secs(2))
                    .response_timeout(response_timeout)
                    .retries(2)
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
            TargetKind::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                Ok(Conn::Single(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
        }
    }
}

/// A connection to a single server or to a cluster.
#[derive(Clone)]
pub enum Conn {
    /// A multiplexed connection to one server.
    Single(MultiplexedConnection),
    /// A cluster connection (routes by key; all our keys share one slot).
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
