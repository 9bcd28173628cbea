//! The command line: one file per subcommand.

mod bench;
mod check;
mod entities;
mod fmt;
mod probe;
mod serve;
mod test;

use clap::{Parser, Subcommand};

pub use bench::run_bench;
pub use check::run_check;
pub use entities::run_entities;
pub use fmt::{format_text, run_fmt};
pub use serve::{init_logging, load_snapshot, run_serve, ServeCommand};
pub use test::run_test;

/// A policy-as-code authorization sidecar for Cedar.
#[derive(Debug, Parser)]
#[command(name = "cedar-sidecar", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve authorization decisions over HTTP.
    Serve(Box<serve::ServeCommand>),
    /// Parse and strictly validate policies, schema and entities.
    Check(check::CheckCommand),
    /// GET a sidecar path and exit 0 on 200 (container health checks).
    Probe(probe::ProbeCommand),
    /// Run policy unit tests (Cedar `run-tests` JSON or YAML decision tables).
    Test(test::TestCommand),
    /// Format `.cedar` files with Cedar's formatter.
    Fmt(fmt::FmtCommand),
    /// Write, read and export the entity dataset in Redis.
    Entities(entities::EntitiesCommand),
    /// Measure: HTTP load on loopback, or load time and memory per store size.
    Bench(bench::BenchCommand),
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Serve(args) => run_serve(*args),
        Command::Check(args) => {
            serve::init_logging(crate::config::LogFormat::Human);
            run_check(&args)
        }
        Command::Probe(args) => probe::run_probe(&args),
        Command::Test(args) => run_test(&args),
        Command::Fmt(args) => run_fmt(&args),
        Command::Entities(args) => {
            serve::init_logging(crate::config::LogFormat::Human);
            run_entities(args)
        }
        Command::Bench(args) => run_bench(args),
    }
}
