//! Measuring the sidecar. Synthetic data ([`gen`]) is shared by the
//! criterion benches (`benches/engine.rs`), the `bench` subcommand and tests;
//! [`http`] loads the real router on loopback with [`loadgen`]; [`scale`]
//! measures loading and memory per store size in child processes; [`chart`]
//! draws what [`scale`] measured.

pub mod chart;
pub mod gen;
pub mod http;
pub mod loadgen;
pub mod scale;
