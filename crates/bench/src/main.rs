//! `cedar-sidecar-bench`: the HTTP load benchmark and the load-time and
//! memory measurement per store size (BENCHMARKS.md). Run it from a release
//! build; it is never part of the production binary.

use clap::Parser;

/// The same allocator as the sidecar, so figures measure what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure cedar-sidecar.
#[derive(Debug, Parser)]
#[command(name = "cedar-sidecar-bench", version, about)]
struct Cli {
    #[command(flatten)]
    bench: cedar_sidecar_bench::cli::BenchCommand,
}

fn main() {
    let cli = Cli::parse();
    std::process::exit(cedar_sidecar_bench::cli::run_bench(cli.bench));
}
