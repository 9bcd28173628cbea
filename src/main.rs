//! The `cedar-sidecar` binary: parse the command line and run it.

use clap::Parser;

fn main() {
    let cli = cedar_sidecar::cli::Cli::parse();
    std::process::exit(cedar_sidecar::cli::run(cli));
}
