//! `cedar-sidecar-bench`: the HTTP load benchmark and the startup/scale
//! measurement (see BENCHMARKS.md). Run it from a release build.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::chart::draw_scale_chart;
use crate::engine::{PackSources, PolicyPack};
use crate::http::{run_http_bench, HttpBenchConfig};
use crate::scale::{ensure_entities_file, load_child, measure_in_child, median_run, ScalePoint};
use cedar_policy_tools::paths::{DEFAULT_POLICIES, DEFAULT_SCHEMA};

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchCommand {
    /// Which benchmark.
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, Args)]
struct PolicyArgs {
    /// Folder of `*.cedar` policy files.
    #[arg(long, default_value = DEFAULT_POLICIES)]
    policies: PathBuf,
    /// Schema file or folder.
    #[arg(long, default_value = DEFAULT_SCHEMA)]
    schema: PathBuf,
}

impl PolicyArgs {
    fn sources(&self) -> PackSources {
        PackSources {
            policies: self.policies.clone(),
            schema: self.schema.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Serve generated data on loopback and load `/v1/is_authorized`, the
    /// batch route and a bench-only no-op route.
    Http {
        #[command(flatten)]
        pack: PolicyArgs,
        /// Stored entities to generate.
        #[arg(long, default_value_t = 100_000)]
        entities: usize,
        /// Generator seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Seconds per measured run (four runs).
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Worker threads of the server's runtime.
        #[arg(long, default_value_t = 2)]
        server_threads: usize,
        /// Pin the server's threads to the last core and the load generator
        /// to the first, so that they never wait for each other's core.
        #[arg(long)]
        pin: bool,
        /// Also write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Load generated entities files of several sizes, each in a child
    /// process: load time, resident and peak memory, decision latency.
    Scale {
        #[command(flatten)]
        pack: PolicyArgs,
        /// Store sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
        sizes: Vec<usize>,
        /// Generator seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Where generated entities files are kept (reused when present).
        #[arg(long, default_value = "target/bench-data")]
        data_dir: PathBuf,
        /// Also write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Draw the latency and memory chart (SVG) here.
        #[arg(long)]
        chart: Option<PathBuf>,
        /// Child processes per size; the one with the middle decision
        /// median is reported (one run on a shared machine can be far off).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
    },
    /// Time the "which?" questions (resource, subject and action search)
    /// in process on generated data: p50/p99, candidates decided, results.
    Search {
        #[command(flatten)]
        pack: PolicyArgs,
        /// Stored entities to generate.
        #[arg(long, default_value_t = 100_000)]
        entities: usize,
        /// Generator seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Searches per question.
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Also write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Redraw the chart from the JSON that `scale --json` wrote.
    Chart {
        /// Results of `scale --json`.
        #[arg(long)]
        from: PathBuf,
        /// The SVG to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// (internal) One measurement of `scale`, printed as JSON.
    #[command(hide = true)]
    LoadChild {
        #[command(flatten)]
        pack: PolicyArgs,
        /// The entities file.
        #[arg(long)]
        entities: PathBuf,
        /// The seed the file was generated with (for its requests).
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// Runs a benchmark; returns the exit code.
pub fn run_bench(args: BenchCommand) -> i32 {
    match run(args.what) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("error: {message}");
            1
        }
    }
}

fn run(what: BenchWhat) -> Result<(), String> {
    match what {
        BenchWhat::Http {
            pack,
            entities,
            seed,
            connections,
            seconds,
            server_threads,
            pin,
            json,
        } => {
            let policy_pack = PolicyPack::load(&pack.sources()).map_err(|p| p.render())?;
            let config = HttpBenchConfig {
                entities,
                seed,
                connections,
                duration: Duration::from_secs(seconds.max(1)),
                server_threads,
                pin,
            };
            let pinned = if pin {
                ", server and load generator pinned to separate cores"
            } else {
                ""
            };
            println!(
                "HTTP on loopback: {entities} generated entities, {connections} connections, {seconds} s per run, {server_threads} server threads{pinned}"
            );
            let report = run_http_bench(policy_pack, &config, &mut |line| println!("{line}"))
                .map_err(|e| e.to_string())?;
            println!(
                "decision / no-op throughput: {:.2}; batch: {:.0} decisions/s",
                report.decision_to_noop,
                report.batch.throughput * 100.0
            );
            write_json(json.as_ref(), &report)
        }
        BenchWhat::Scale {
            pack,
            sizes,
            seed,
            data_dir,
            json,
            chart,
            runs,
        } => {
            let exe =
                std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
            let mut points: Vec<ScalePoint> = Vec::new();
            println!(
                "{:>9} {:>10} {:>9} {:>10} {:>11} {:>11} {:>10} {:>9} {:>9}  p50 of each run",
                "entities",
                "file MiB",
                "load s",
                "load cpu s",
                "RSS MiB",
                "peak MiB",
                "B/entity",
                "p50 us",
                "p99 us"
            );
            for size in sizes {
                let file =
                    ensure_entities_file(&data_dir, size, seed).map_err(|e| e.to_string())?;
                let measured = (0..runs)
                    .map(|_| measure_in_child(&exe, &pack.sources(), &file, size, seed))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let point = median_run(measured).ok_or("no run was measured")?;
                let each: Vec<String> = point
                    .decide_p50_runs_us
                    .iter()
                    .map(|p50| format!("{p50:.1}"))
                    .collect();
                println!(
                    "{:>9} {:>10.1} {:>9.2} {:>10.2} {:>11.1} {:>11.1} {:>10.0} {:>9.1} {:>9.1}  {}",
                    point.entities,
                    point.file_bytes as f64 / 1048576.0,
                    point.load_seconds,
                    point.load_cpu_seconds,
                    point.rss_after_kib as f64 / 1024.0,
                    point.peak_kib as f64 / 1024.0,
                    point.bytes_per_entity,
                    point.decide_p50_us,
                    point.decide_p99_us,
                    each.join(" ")
                );
                points.push(point);
            }
            points.sort_by_key(|p| p.entities);
            if let Some(path) = chart {
                draw_scale_chart(&points, &path).map_err(|e| e.to_string())?;
                println!("chart: {}", path.display());
            }
            write_json(json.as_ref(), &points)
        }
        BenchWhat::Search {
            pack,
            entities,
            seed,
            samples,
            json,
        } => {
            let policy_pack = PolicyPack::load(&pack.sources()).map_err(|p| p.render())?;
            let data = crate::gen::generate(entities, seed);
            let store = crate::entities::EntityMap::from_entities(data.to_stored()?, 1);
            println!("{} entities, {} orgs", store.len(), data.orgs);
            let figures =
                crate::search::measure_searches(&policy_pack, &store, data.orgs, samples, seed)?;
            println!(
                "{:<40} {:>10} {:>10} {:>11} {:>9}",
                "question", "p50 us", "p99 us", "candidates", "results"
            );
            for figure in &figures {
                println!(
                    "{:<40} {:>10.1} {:>10.1} {:>11.1} {:>9.1}",
                    figure.question,
                    figure.p50_us,
                    figure.p99_us,
                    figure.mean_candidates,
                    figure.mean_results
                );
            }
            write_json(json.as_ref(), &figures)
        }
        BenchWhat::Chart { from, out } => {
            let text = std::fs::read_to_string(&from)
                .map_err(|e| format!("cannot read `{}`: {e}", from.display()))?;
            let mut points: Vec<ScalePoint> = serde_json::from_str(&text)
                .map_err(|e| format!("`{}` is not `scale --json` output: {e}", from.display()))?;
            points.sort_by_key(|p| p.entities);
            draw_scale_chart(&points, &out).map_err(|e| e.to_string())?;
            println!("chart: {}", out.display());
            Ok(())
        }
        BenchWhat::LoadChild {
            pack,
            entities,
            seed,
        } => {
            let point = load_child(&pack.sources(), &entities, seed).map_err(|e| e.to_string())?;
            let text = serde_json::to_string(&point).map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(())
        }
    }
}

fn write_json(path: Option<&PathBuf>, value: &impl serde::Serialize) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}
