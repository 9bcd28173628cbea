//! Entity sync against real Redis servers: snapshot + tail, revocation,
//! atomic batches, restarts with and without persistence, trimming,
//! restores, convergence of several replicas, consistency tokens, staleness,
//! Redis Cluster, Sentinel (with a failover), TLS with a private CA and
//! mutual TLS, ACL users, and the admin API. Every test spawns its own redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod acl;
mod cases;
mod harness;
mod links;
mod pki;
mod proxy;
mod reload;
mod robust;
mod sentinel;
mod server;
mod tls;
