//! cedar-sidecar's core: the engine and the entity graph, with no async
//! runtime and no network (files are read only when a pack or an entities
//! file is loaded).
//!
//! - [`engine`]: pure Cedar. Loads and strictly validates policies and schema
//!   into a [`engine::PolicyPack`], and decides one request ([`engine::decide`]).
//! - [`entities`]: the entity graph. A persistent map of entities by uid
//!   ([`entities::EntityMap`]) and the per-request slice ([`entities::Slicer`]).
//! - [`diagnostics`]: problems in user files, rendered as file:line:column.
//! - [`files`]: the one folder walker.
//! - [`shortcuts`]: the switch for our three shortcuts around Cedar's checks.

pub mod diagnostics;
pub mod engine;
pub mod entities;
pub mod files;
pub mod shortcuts;
