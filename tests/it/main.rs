//! Integration tests: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod action_index;
mod authzen;
mod authzen_interop;
mod cli;
mod conform_equivalence;
mod connections;
mod decision_log;
mod diff;
mod docs;
mod engine;
mod fuzz;
mod gateway;
mod gateway_figures;
mod gateway_live;
mod http;
mod links;
mod loopback;
mod ops;
mod plan_sql;
mod policy_tests;
mod raw_http;
mod replay;
mod replay_figures;
mod search_equivalence;
mod search_limits;
mod shadow;
mod slice_equivalence;
mod support;
mod trust;
mod watch;
