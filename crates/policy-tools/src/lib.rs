//! The security team's tools for a Cedar policy pack, usable on their own in
//! CI (`cedar-policy-tools`) and as `cedar-sidecar check|test|fmt`:
//!
//! - [`check`]: parse and strictly validate policies, schema and entities;
//! - [`test`]: policy unit tests ([`testing`]: Cedar's `run-tests` JSON and
//!   YAML decision tables, decided through the sidecar's own engine);
//! - [`fmt`]: Cedar's formatter over files and folders;
//! - [`paths`]: where a pack's files are by default.

pub mod check;
pub mod fmt;
pub mod paths;
pub mod test;
pub mod testing;

use cedar_sidecar_core::{diagnostics, engine, entities, files};
