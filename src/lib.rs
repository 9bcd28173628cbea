//! cedar-sidecar: answers "may this principal do this action on this
//! resource?" from Cedar policies and an in-memory entity graph.
//!
//! The map of the crate:
//! - [`engine`]: pure Cedar. Loads and strictly validates policies and schema
//!   into a [`engine::PolicyPack`], and decides one request ([`engine::decide`]).
//! - [`entities`]: the entity graph. A persistent map of entities by uid
//!   ([`entities::EntityMap`]) and the per-request slice ([`entities::Slicer`]).
//! - [`state`]: the current snapshot of pack + entities, swapped atomically.
//! - [`publisher`]: the one task that owns what is published: policy
//!   reloads and entity sources send it typed events.
//! - [`reload`]: hot reload of policies, schema and the entities file.
//! - [`telemetry`]: Prometheus metrics and the decision log.
//! - [`http`]: the axum API and the server under it (our accept loop on
//!   hyper: connection limits, probe listener, shutdown); wire types and the
//!   error table live here only.
//! - [`testing`]: policy unit tests (`cedar-sidecar test`): Cedar's
//!   `run-tests` JSON and YAML decision tables, run through [`engine::decide`].
//! - [`cli`]: one file per subcommand (`serve`, `check`, `test`, `fmt`, `probe`, `entities`, `bench`).
//! - [`sync`]: entity sources; the Redis replica and writer (the only
//!   module that imports `redis`).
//! - [`freshness`]: applied revision, contact with the source, staleness.
//! - [`config`]: typed settings from flags, environment and a TOML file.
//! - [`bench`]: synthetic data and the benchmarks (`cedar-sidecar bench`, `benches/`).
//! - [`gateway`]: gateway front doors' core: the route map, the principal
//!   from a verified JWT or a trusted header, a gateway request into one
//!   decision request (the doors themselves live in `http`).
//! - [`diagnostics`]: problems in user files, rendered as file:line:column.

pub mod bench;
pub mod cli;
pub mod config;
pub mod diagnostics;
pub mod engine;
pub mod entities;
pub mod files;
pub mod freshness;
pub mod gateway;
pub mod http;
pub mod publisher;
pub mod reload;
pub mod shortcuts;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod testing;
