//! Where a policy pack's files are, by default and on the command line.

use std::path::PathBuf;

use clap::Args;

use crate::engine::PackSources;

/// The bundled policy folder, relative to the working directory.
pub const DEFAULT_POLICIES: &str = "policies";
/// The bundled schema folder.
pub const DEFAULT_SCHEMA: &str = "schema";
/// The shipped policy test suite (run by `cedar-sidecar test` with no path).
pub const DEFAULT_TESTS: &str = "tests/policies";
/// The bundled demo entity data.
pub const DEFAULT_ENTITIES: &str = "demo/entities.json";

/// Policy pack and entity file locations (used by `check` as they are).
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
