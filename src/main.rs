//! The `cedar-sidecar` binary: parse the command line and run it.

use clap::Parser;

/// mimalloc instead of glibc's malloc: Cedar allocates many small values per
/// decision, and batch items parsed on one thread are freed on another,
/// which glibc serialises on its arena locks (a 100-item batch split over
/// two cores took as long as on one). `BENCHMARKS.md` has the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cedar_sidecar::cli::Cli::parse();
    std::process::exit(cedar_sidecar::cli::run(cli));
}
