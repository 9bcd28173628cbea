//! `cedar-policy-tools`: `check`, `test`, `fmt` and `diff` for a Cedar
//! policy pack, without the sidecar (the same code as `cedar-sidecar
//! check|test|fmt|diff`).

use clap::{Parser, Subcommand};

use cedar_policy_tools::{check, diff, fmt, test};

/// Check, test and format Cedar policy packs.
#[derive(Debug, Parser)]
#[command(name = "cedar-policy-tools", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse and strictly validate policies, schema and entities.
    Check(check::CheckCommand),
    /// Run policy unit tests (Cedar `run-tests` JSON or YAML decision tables).
    Test(test::TestCommand),
    /// Format `.cedar` files with Cedar's formatter.
    Fmt(fmt::FmtCommand),
    /// Prove what a policy change newly permits, for every request the schema allows.
    Diff(diff::DiffCommand),
}

fn main() {
    let code = match Cli::parse().command {
        Command::Check(args) => check::run_check(&args),
        Command::Test(args) => test::run_test(&args),
        Command::Fmt(args) => fmt::run_fmt(&args),
        Command::Diff(args) => diff::run_diff(&args),
    };
    std::process::exit(code);
}
