//! Measuring the sidecar. Synthetic data ([`gen`]) is shared by the
//! criterion benches (`benches/engine.rs`), the `cedar-sidecar-bench` binary
//! and the sidecar's tests; [`http`] loads the real router on loopback with
//! [`loadgen`]; [`scale`] measures loading and memory per store size in child
//! processes; [`search`] times the "which?" questions; [`chart`] draws what
//! [`scale`] measured; [`cli`] is the binary's
//! command line. Nothing here is linked into the production binary.

pub mod chart;
pub mod cli;
pub mod gen;
pub mod http;
pub mod loadgen;
pub mod scale;
pub mod search;

use cedar_sidecar::{http as sidecar_http, state, telemetry};
use cedar_sidecar_core::{engine, entities};
