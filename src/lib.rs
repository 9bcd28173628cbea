//! cedar-sidecar: answers "may this principal do this action on this
//! resource?" from Cedar policies and an in-memory entity graph.
//!
//! The map of the crate (the engine, the entity graph and the policy tools
//! are crates of their own, re-exported here under their module names):
//! - [`engine`], [`entities`], [`diagnostics`], [`files`], [`shortcuts`]:
//!   `cedar-sidecar-core` (crates/core): pure Cedar and the entity graph.
//! - [`testing`]: `cedar-policy-tools` (crates/policy-tools): policy unit tests.
//! - [`state`]: the current snapshot of pack + entities, swapped atomically.
//! - [`publisher`]: the one task that owns what is published: policy
//!   reloads and entity sources send it typed events.
//! - [`reload`]: hot reload of policies, schema and the entities file.
//! - [`replay`]: logged decisions decided again against a candidate policy set.
//! - [`shadow`]: a candidate policy set decided beside the served one, never served.
//! - [`telemetry`]: Prometheus metrics and the decision log.
//! - [`http`]: the axum API and the server under it (our accept loop on
//!   hyper: connection limits, probe listener, shutdown); wire types and the
//!   error table live here only.
//! - [`cli`]: the subcommands (`serve`, `probe`, `entities`, `check` with the route map here; `test`, `fmt` and the pack check from the policy tools).
//! - [`sync`]: entity sources; the Redis replica and writer (the only
//!   module that imports `redis`).
//! - [`freshness`]: applied revision, contact with the source, staleness.
//! - [`config`]: typed settings from flags, environment and a TOML file.
//! - [`gateway`]: gateway front doors' core: the route map, the principal
//!   from a verified JWT or a trusted header, a gateway request into one
//!   decision request (the doors themselves live in `http`).

pub mod cli;
pub mod config;
pub mod freshness;
pub mod gateway;
pub mod http;
pub mod publisher;
pub mod reload;
pub mod replay;
pub mod shadow;
pub mod state;
pub mod sync;
pub mod telemetry;

pub use cedar_policy_tools::testing;
pub use cedar_sidecar_core::{diagnostics, engine, entities, files, shortcuts};
