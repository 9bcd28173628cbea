//! Where Redis is and how to reach it: one server, a Cluster (seed nodes)
//! or a master found through Sentinel, behind one connection type, over
//! TCP, TLS (optionally with a private CA and a client certificate) or a
//! unix socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, Pipeline, RedisFuture, TlsCertificates, TlsMode, Value,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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

/// PEM files for `rediss://` connections. Without `ca` the system's roots
/// are trusted, which a Redis behind a private CA cannot use; `cert` and
/// `key` go together and are presented to servers that require client
/// certificates (mutual TLS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates to trust instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (leaf first).
    pub cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// True when no file is named.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }

    /// Reads and checks every file now, so that a missing, unreadable or
    /// mismatched file stops start-up with its name instead of surfacing
    /// later as an anonymous handshake failure on every reconnect.
    fn load(&self) -> Result<Option<TlsCertificates>, SyncError> {
        if self.is_empty() {
            return Ok(None);
        }
        let root_cert = match &self.ca {
            Some(path) => {
                let (pem, certs) = read_certs(path, "CA")?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        tls_error(path, "CA", &format!("not a usable CA certificate: {e}"))
                    })?;
                }
                Some(pem)
            }
            None => None,
        };
        let client_tls = match (&self.cert, &self.key) {
            (Some(cert_path), Some(key_path)) => {
                let (client_cert, chain) = read_certs(cert_path, "client certificate")?;
                let client_key = read_file(key_path, "client key")?;
                let key = PrivateKeyDer::from_pem_slice(&client_key).map_err(|e| {
                    tls_error(key_path, "client key", &format!("no PEM private key: {e}"))
                })?;
                let provider = rustls::crypto::ring::default_provider();
                rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
                    SyncError::Config(format!(
                        "Redis TLS client certificate `{}` and key `{}` do not fit together: {e}",
                        cert_path.display(),
                        key_path.display()
                    ))
                })?;
                Some(ClientTlsConfig {
                    client_cert,
                    client_key,
                })
            }
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(SyncError::Config(
                    "a Redis TLS client certificate (tls_cert) and its key (tls_key) must be given together"
                        .to_string(),
                ))
            }
        };
        Ok(Some(TlsCertificates {
            client_tls,
            root_cert,
        }))
    }
}

fn tls_error(path: &Path, what: &str, message: &str) -> SyncError {
    SyncError::Config(format!(
        "Redis TLS {what} file `{}`: {message}",
        path.display()
    ))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, SyncError> {
    std::fs::read(path).map_err(|e| tls_error(path, what, &format!("cannot read it: {e}")))
}

/// The file's bytes and the certificates in it (at least one).
fn read_certs(
    path: &Path,
    what: &str,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), SyncError> {
    let pem = read_file(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, what, &format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error(path, what, "no PEM certificate in it"));
    }
    Ok((pem, certs))
}

/// A resolved Redis deployment that hands out connections.
pub struct RedisTarget {
    kind: TargetKind,
    /// Shown in logs and status: the URLs without passwords.
    display: String,
}

enum TargetKind {
    Single(Client),
    Cluster {
        nodes: Vec<ConnectionInfo>,
        certs: Option<TlsCertificates>,
    },
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

impl RedisTarget {
    /// Parses URLs (`redis://`, `rediss://`, `redis+unix://`, with optional
    /// `user:password@`) for the given topology. No I/O happens here.
    pub fn new(urls: &[String], topology: &Topology) -> Result<Self, SyncError> {
        Self::with_tls(urls, topology, &TlsFiles::default())
    }

    /// Like [`RedisTarget::new`], with TLS files for `rediss://` URLs. The
    /// files are read here; naming any of them with a URL that is not
    /// `rediss://` is an error, since they would silently do nothing.
    pub fn with_tls(
        urls: &[String],
        topology: &Topology,
        tls: &TlsFiles,
    ) -> Result<Self, SyncError> {
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
        if !tls.is_empty() {
            if let Some(plain) = infos.iter().find(|i| !is_tls(i)) {
                return Err(SyncError::Config(format!(
                    "Redis TLS files (tls_ca, tls_cert, tls_key) need rediss:// URLs, but `{}` is not one",
                    plain.addr()
                )));
            }
        }
        let certs = tls.load()?;
        let kind = match topology {
            Topology::Single => TargetKind::Single(
                match certs {
                    Some(certs) => Client::build_with_tls(first, certs),
                    None => Client::open(first),
                }
                .map_err(|e| SyncError::Config(e.to_string()))?,
            ),
            Topology::Cluster => TargetKind::Cluster {
                nodes: infos,
                certs,
            },
            Topology::Sentinel { master } => TargetKind::Sentinel(tokio::sync::Mutex::new(
                sentinel_client(&first, &infos, master, certs)
                    .map_err(|e| SyncError::Config(e.to_string()))?,
            )),
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
            TargetKind::Cluster { nodes, certs } => {
                let mut builder = ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(Duration::from_secs(2))
                    .response_timeout(response_timeout)
                    .retries(2);
                if let Some(certs) = certs {
                    builder = builder.certs(certs.clone());
                }
                let client = builder.build()?;
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

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// A client for the master that Sentinel names. The first URL's user and
/// password are used for every Sentinel and for the master, and its
/// database for the master only (Sentinels have none). With `rediss://`
/// URLs the master is reached over TLS too, and the TLS files apply to
/// both.
fn sentinel_client(
    first: &ConnectionInfo,
    sentinels: &[ConnectionInfo],
    master: &str,
    certs: Option<TlsCertificates>,
) -> redis::RedisResult<SentinelClient> {
    let settings = first.redis_settings();
    let mut builder = SentinelClientBuilder::new(
        sentinels.iter().map(|s| s.addr().clone()),
        master,
        SentinelServerType::Master,
    )?
    .set_client_to_redis_db(settings.db())
    .set_client_to_redis_protocol(settings.protocol());
    if let Some(user) = settings.username() {
        builder = builder
            .set_client_to_sentinel_username(user)
            .set_client_to_redis_username(user);
    }
    if let Some(password) = settings.password() {
        builder = builder
            .set_client_to_sentinel_password(password)
            .set_client_to_redis_password(password);
    }
    if is_tls(first) {
        builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(certs) = certs {
            builder = builder
                .set_client_to_sentinel_certificates(certs.clone())
                .set_client_to_redis_certificates(certs);
        }
    }
    builder.build()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn error(urls: &[&str], topology: &Topology, tls: &TlsFiles) -> String {
        let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        match RedisTarget::with_tls(&urls, topology, tls) {
            Ok(_) => panic!("accepted {urls:?} with {tls:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn tls_files_with_a_plain_url_are_refused_in_every_topology() {
        let tls = TlsFiles {
            ca: Some("ca.pem".into()),
            ..TlsFiles::default()
        };
        let sentinel = Topology::Sentinel { master: "m".into() };
        for topology in [Topology::Single, Topology::Cluster, sentinel] {
            let message = error(&["rediss://a:6380,redis://b:6379"], &topology, &tls);
            assert!(message.contains("`b:6379` is not one"), "{message}");
        }
        let message = error(&["redis+unix:///tmp/r.sock"], &Topology::Single, &tls);
        assert!(message.contains("need rediss:// URLs"), "{message}");
    }

    #[test]
    fn bad_tls_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let url = ["rediss://127.0.0.1:6380"];
        let only = |ca: &Path| TlsFiles {
            ca: Some(ca.to_path_buf()),
            ..TlsFiles::default()
        };
        let message = error(&url, &Topology::Single, &only(&missing));
        assert!(
            message.contains(&format!("CA file `{}`", missing.display())),
            "{message}"
        );
        let message = error(&url, &Topology::Cluster, &only(&empty));
        assert!(
            message.contains(&format!("`{}`: no PEM certificate", empty.display())),
            "{message}"
        );
        let key_only = TlsFiles {
            key: Some(missing.clone()),
            ..TlsFiles::default()
        };
        let message = error(&url, &Topology::Single, &key_only);
        assert!(message.contains("must be given together"), "{message}");
    }

    #[test]
    fn without_tls_files_any_url_is_taken() {
        for url in [
            "redis://a:6379",
            "rediss://a:6380",
            "redis+unix:///tmp/r.sock",
        ] {
            RedisTarget::new(&[url.to_string()], &Topology::Single).unwrap();
        }
    }
}
