//! The command line: one file per subcommand.

mod check;
mod entities;
mod links;
mod probe;
mod replay;
mod serve;

use clap::{Parser, Subcommand};

use cedar_policy_tools::{diff, fmt, test};

pub use cedar_policy_tools::diff::run_diff;
pub use cedar_policy_tools::fmt::{format_text, run_fmt};
pub use cedar_policy_tools::test::run_test;
pub use check::run_check;
pub use entities::run_entities;
pub use links::run_links;
pub use replay::{run_replay, ReplayCommand};
pub use serve::{init_logging, load_snapshot, run_serve, ServeCommand};

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
    /// Prove what a policy change newly permits, for every request the schema allows.
    Diff(diff::DiffCommand),
    /// Write, read and export the entity dataset in Redis.
    Entities(entities::EntitiesCommand),
    /// Write, read and export the template links in Redis.
    Links(links::LinksCommand),
    /// Decide logged decisions again against a candidate policy set and
    /// report those that flip (exit 1 when any does, unless --allow-flips).
    Replay(Box<replay::ReplayCommand>),
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
        Command::Diff(args) => run_diff(&args),
        Command::Entities(args) => {
            serve::init_logging(crate::config::LogFormat::Human);
            run_entities(args)
        }
        Command::Links(args) => {
            serve::init_logging(crate::config::LogFormat::Human);
            run_links(args)
        }
        Command::Replay(args) => {
            serve::init_logging(crate::config::LogFormat::Human);
            run_replay(&args)
        }
    }
}
