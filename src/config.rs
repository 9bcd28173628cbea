//! Where things are and how big they may be: typed settings from flags and
//! `CEDAR_SIDECAR_*` environment variables (a flag beats its variable).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::engine::PackSources;
use crate::http::HttpLimits;

/// The bundled policy folder, relative to the working directory.
pub const DEFAULT_POLICIES: &str = "policies";
/// The bundled schema folder.
pub const DEFAULT_SCHEMA: &str = "schema";
/// The shipped policy test suite (run by `cedar-sidecar test` with no path).
pub const DEFAULT_TESTS: &str = "tests/policies";
/// The bundled demo entity data.
pub const DEFAULT_ENTITIES: &str = "demo/entities.json";
/// Where `serve` listens by default (loopback: a sidecar talks to its pod).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8180";

/// Policy pack and entity file locations (shared by `serve` and `check`).
#[derive(Debug, Clone, Args)]
pub struct PackArgs {
    /// Folder of `*.cedar` policy files (searched recursively).
    #[arg(long, env = "CEDAR_SIDECAR_POLICIES", default_value = DEFAULT_POLICIES)]
    pub policies: PathBuf,
    /// Schema file, or folder of `*.cedarschema` / `*.cedarschema.json` files.
    #[arg(long, env = "CEDAR_SIDECAR_SCHEMA", default_value = DEFAULT_SCHEMA)]
    pub schema: PathBuf,
    /// Entities file (Cedar's entity JSON: an array of entities).
    #[arg(long, env = "CEDAR_SIDECAR_ENTITIES", default_value = DEFAULT_ENTITIES)]
    pub entities: PathBuf,
}

impl PackArgs {
    /// The policy and schema locations.
    pub fn sources(&self) -> PackSources {
        PackSources {
            policies: self.policies.clone(),
            schema: self.schema.clone(),
        }
    }
}

/// Settings of the HTTP server.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "CEDAR_SIDECAR_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "CEDAR_SIDECAR_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most requests accepted in one batch.
    #[arg(long, env = "CEDAR_SIDECAR_MAX_BATCH", default_value_t = 100)]
    pub max_batch: usize,
}

impl ServerArgs {
    /// Request size limits.
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            max_body_bytes: self.max_body_bytes,
            max_batch: self.max_batch,
        }
    }
}
