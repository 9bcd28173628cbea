//! The security team's tools for a Cedar policy pack, usable on their own in
//! CI (`cedar-policy-tools`) and as `cedar-sidecar check|test|fmt`:
//!
//! - [`check`]: parse and strictly validate policies, schema and entities
//!   ([`analyze`] with `--analyze`: what the policies can never do);
//! - [`diff`]: what a change newly permits, proved for every request
//!   ([`analysis`]: Cedar's symbolic compiler and an SMT solver);
//! - [`test`]: policy unit tests ([`testing`]: Cedar's `run-tests` JSON and
//!   YAML decision tables, decided through the sidecar's own engine);
//! - [`fmt`]: Cedar's formatter over files and folders;
//! - [`paths`]: where a pack's files are by default.

pub mod analysis;
pub mod analyze;
pub mod check;
pub mod diff;
pub mod fmt;
pub mod paths;
pub mod test;
pub mod testing;

use cedar_sidecar_core::{diagnostics, engine, entities, files};
