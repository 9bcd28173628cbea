//! Startup and scale: how long loading an entities file takes, how much
//! memory the loaded store holds, and what one decision costs, at several
//! store sizes. Each size is measured in a fresh child process (the running
//! binary, `bench load-child`), so peak memory (`VmHWM`) belongs to that
//! load alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::gen::{generate, requests_for_orgs, ORG_BLOCK};
use super::loadgen::percentile;
use crate::engine::{decide, PackSources, PolicyPack};
use crate::entities::{load_entities_file, EntityMap};

/// What one child measured for one store size.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScalePoint {
    /// Entities loaded.
    pub entities: usize,
    /// Size of the entities file, in bytes.
    pub file_bytes: u64,
    /// Reading, parsing, schema-checking and indexing the file, in seconds.
    pub load_seconds: f64,
    /// CPU time (user + system) of the same, in seconds: on a shared
    /// machine this is steadier than wall time.
    pub load_cpu_seconds: f64,
    /// Resident memory before loading (policies and schema loaded), KiB.
    pub rss_before_kib: u64,
    /// Resident memory with the store built, serving decisions, KiB.
    pub rss_after_kib: u64,
    /// Peak resident memory of the process, KiB.
    pub peak_kib: u64,
    /// `(rss_after - rss_before) / entities`, bytes.
    pub bytes_per_entity: f64,
    /// Median of single decisions timed one by one, microseconds.
    pub decide_p50_us: f64,
    /// 99th percentile of the same, microseconds.
    pub decide_p99_us: f64,
    /// The decision medians of every run of this size, when several child
    /// processes measured it (this point is the run with the middle one).
    #[serde(default)]
    pub decide_p50_runs_us: Vec<f64>,
}

/// Of several runs of one size, the one whose decision median is the middle
/// one, carrying every run's median. One run on a shared machine can be far
/// off (seen here: 1M-entity medians of 17.5 to 18.9 us, and one of 27.8 us,
/// from the same binary and file); the middle of three is not.
pub fn median_run(mut runs: Vec<ScalePoint>) -> Option<ScalePoint> {
    runs.sort_by(|a, b| a.decide_p50_us.total_cmp(&b.decide_p50_us));
    let medians = runs.iter().map(|run| run.decide_p50_us).collect();
    let middle = runs.len().checked_sub(1)? / 2;
    let mut point = runs.swap_remove(middle);
    point.decide_p50_runs_us = medians;
    Some(point)
}

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// Writing the generated file or starting the child failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The child failed or printed something unexpected.
    #[error("child for {size} entities failed: {message}")]
    Child {
        /// The size being measured.
        size: usize,
        /// Its stderr or the parse error.
        message: String,
    },
    /// Policies, schema or entities did not load.
    #[error("{0}")]
    Load(String),
}

/// Writes (once) the generated entities file for `size` in `dir`.
pub fn ensure_entities_file(dir: &Path, size: usize, seed: u64) -> Result<PathBuf, ScaleError> {
    let path = dir.join(format!("entities-{size}-seed{seed}.json"));
    if path.exists() {
        return Ok(path);
    }
    let io = |context: String| move |source| ScaleError::Io { context, source };
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create `{}`", dir.display())))?;
    let partial = path.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .map_err(io(format!("cannot create `{}`", partial.display())))?;
    let mut out = std::io::BufWriter::new(file);
    generate(size, seed)
        .write_json(&mut out)
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(io(format!("cannot write `{}`", partial.display())))?;
    std::fs::rename(&partial, &path).map_err(io(format!("cannot write `{}`", path.display())))?;
    Ok(path)
}

/// Measures one size in a child process of `exe`.
pub fn measure_in_child(
    exe: &Path,
    sources: &PackSources,
    file: &Path,
    size: usize,
    seed: u64,
) -> Result<ScalePoint, ScaleError> {
    let output = Command::new(exe)
        .arg("load-child")
        .arg("--policies")
        .arg(&sources.policies)
        .arg("--schema")
        .arg(&sources.schema)
        .arg("--entities")
        .arg(file)
        .arg("--seed")
        .arg(seed.to_string())
        .output()
        .map_err(|source| ScaleError::Io {
            context: format!("cannot run `{}`", exe.display()),
            source,
        })?;
    if !output.status.success() {
        return Err(ScaleError::Child {
            size,
            message: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    serde_json::from_slice(&output.stdout).map_err(|e| ScaleError::Child {
        size,
        message: format!("unexpected output: {e}"),
    })
}

/// The child's side: load `file`, measure, and return the point.
pub fn load_child(sources: &PackSources, file: &Path, seed: u64) -> Result<ScalePoint, ScaleError> {
    let pack = PolicyPack::load(sources).map_err(|p| ScaleError::Load(p.render()))?;
    let rss_before_kib = proc_status_kib("VmRSS").unwrap_or(0);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let loaded =
        load_entities_file(file, &pack.schema).map_err(|p| ScaleError::Load(p.render()))?;
    let entities = loaded.len();
    let store = EntityMap::from_entities(loaded, 1);
    let load_seconds = started.elapsed().as_secs_f64();
    let load_cpu_seconds = cpu_seconds().zip(cpu_before).map_or(0.0, |(a, b)| a - b);

    let requests = requests_for_orgs(entities.div_ceil(ORG_BLOCK).max(1), 20_000, seed ^ 0x5eed);
    let mut samples = Vec::with_capacity(requests.len());
    // One pass to warm caches and the allocator, then the timed pass.
    for request in requests.iter().take(2_000) {
        let _ = decide(
            &pack,
            &store,
            request,
            &crate::engine::RequestEntityPolicy::default(),
        );
    }
    for request in &requests {
        let t = Instant::now();
        let _ = std::hint::black_box(decide(
            &pack,
            &store,
            request,
            &crate::engine::RequestEntityPolicy::default(),
        ));
        samples.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    samples.sort_unstable();
    // Read after the decisions, not straight after the load: the allocator
    // returns the load's freed buffers (the file text among them) to the
    // system a moment later, and read too early the figure swung between
    // 1,016 and 1,266 MiB at a million entities.
    let rss_after_kib = proc_status_kib("VmRSS").unwrap_or(0);
    let peak_kib = proc_status_kib("VmHWM").unwrap_or(0);
    let file_bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    Ok(ScalePoint {
        entities,
        file_bytes,
        load_seconds,
        load_cpu_seconds,
        rss_before_kib,
        rss_after_kib,
        peak_kib,
        bytes_per_entity: (rss_after_kib.saturating_sub(rss_before_kib) * 1024) as f64
            / entities.max(1) as f64,
        decide_p50_us: percentile(&samples, 0.5) / 1000.0,
        decide_p99_us: percentile(&samples, 0.99) / 1000.0,
        decide_p50_runs_us: Vec::new(),
    })
}

/// A `kB` line of `/proc/self/status` (Linux), in KiB.
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// User + system CPU time of this process so far, from `/proc/self/stat`
/// (Linux; clock ticks of 1/100 s).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of the line: 11 and 12 here (0-based, from `state`).
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_has_resident_memory() {
        // Linux only, like the benchmark itself.
        let rss = proc_status_kib("VmRSS").expect("VmRSS");
        let peak = proc_status_kib("VmHWM").expect("VmHWM");
        assert!(rss > 0 && peak >= rss);
        let before = cpu_seconds().expect("cpu time");
        let mut x = 0u64;
        for i in 0..200_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(cpu_seconds().expect("cpu time") > before, "{x}");
    }

    #[test]
    fn the_middle_run_is_kept_with_every_median() {
        let run = |p50: f64, load: f64| ScalePoint {
            entities: 10,
            file_bytes: 1,
            load_seconds: load,
            load_cpu_seconds: load,
            rss_before_kib: 1,
            rss_after_kib: 2,
            peak_kib: 2,
            bytes_per_entity: 1.0,
            decide_p50_us: p50,
            decide_p99_us: p50 * 2.0,
            decide_p50_runs_us: Vec::new(),
        };
        let point = median_run(vec![run(27.8, 1.0), run(17.5, 2.0), run(18.9, 3.0)]).unwrap();
        assert_eq!(point.decide_p50_us, 18.9);
        assert_eq!(point.load_seconds, 3.0);
        assert_eq!(point.decide_p50_runs_us, vec![17.5, 18.9, 27.8]);
        assert!(median_run(Vec::new()).is_none());
    }

    #[test]
    fn child_side_loads_a_generated_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = ensure_entities_file(dir.path(), 2_000, 1).expect("write");
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        let sources = PackSources {
            policies: root.join("policies"),
            schema: root.join("schema"),
        };
        let point = load_child(&sources, &file, 1).expect("load");
        assert_eq!(point.entities, 2_000);
        assert!(point.file_bytes > 100_000);
        assert!(point.decide_p50_us > 0.0);
        // A second call reuses the file.
        assert_eq!(
            ensure_entities_file(dir.path(), 2_000, 1).expect("again"),
            file
        );
    }
}
