//! The replay figure of BENCHMARKS.md (ignored: `cargo test [--release]
//! --test it replay_figures -- --ignored --nocapture`): a decision log of
//! 1M records (`REPLAY_FIGURE_RECORDS` to change it) over the bench kit's
//! generated data, decided by the shipped pack and written as the sidecar
//! writes records; then replayed against a candidate without the grant
//! policy, on every core. Prints records/s. With `REPLAY_FIGURE_DIR` set,
//! the log, the entities and the candidate are kept there, for a release
//! binary to replay (`cedar-sidecar replay --decisions DIR/decisions.log
//! --policies DIR/candidate --entities DIR/entities.json --allow-flips`
//! logs its records/s).

use std::io::Write;
use std::time::Instant;

use cedar_sidecar::engine::{decide, PackSources, PolicyPack, RequestEntityPolicy, Verdict};
use cedar_sidecar::entities::EntityMap;
use cedar_sidecar::replay::{replay, ReplayOptions};
use cedar_sidecar::telemetry::DecisionRecord;
use cedar_sidecar_bench::gen::generate;

use crate::replay::{policies_without, GRANT_POLICY};
use crate::support::repo;

#[test]
#[ignore = "figures for BENCHMARKS.md: minutes of CPU"]
fn replay_figure_records_per_second() {
    let records: usize = std::env::var("REPLAY_FIGURE_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let pack = PolicyPack::load(&PackSources {
        policies: repo().join("policies"),
        schema: repo().join("schema"),
    })
    .unwrap();
    let data = generate(100_000, 42);
    let entities = EntityMap::from_entities(data.to_stored().unwrap(), 1);
    let requests = data.requests(records, 7);
    let scratch = tempfile::tempdir().unwrap();
    let dir = std::env::var("REPLAY_FIGURE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| scratch.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("decisions.log");
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(dir.join("entities.json")).unwrap());
    data.write_json(&mut out).unwrap();
    out.flush().unwrap();
    drop(out);

    // The log, as the sidecar would have written it (decided on all cores).
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let share = requests.len().div_ceil(threads);
    let parts: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let workers: Vec<_> = requests
            .chunks(share)
            .enumerate()
            .map(|(index, part)| {
                let (pack, entities) = (&pack, &entities);
                scope.spawn(move || {
                    let trust = RequestEntityPolicy::default();
                    let mut out = Vec::with_capacity(part.len() * 400);
                    for (offset, request) in part.iter().enumerate() {
                        let decision = decide(pack, entities, request, &trust).unwrap();
                        let record = DecisionRecord {
                            decision_id: uuid_like(index * share + offset),
                            timestamp: "2026-11-30T09:00:00.000000Z".to_string(),
                            request_id: "figure".to_string(),
                            endpoint: "is_authorized",
                            client: None,
                            principal: request.principal.to_string(),
                            action: request.action.to_string(),
                            resource: request.resource.to_string(),
                            context: request.context.clone().unwrap_or_default(),
                            decision: if decision.verdict == Verdict::Allow {
                                "Allow"
                            } else {
                                "Deny"
                            },
                            reasons: decision.reasons,
                            errors: decision.errors,
                            policy_version: pack.version.clone(),
                            entity_revision: 1,
                            latency_us: 10,
                            request_entities: Vec::new(),
                            request_entities_mode: None,
                            masked: false,
                            gateway: None,
                        };
                        serde_json::to_writer(&mut out, &record).unwrap();
                        out.push(b'\n');
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut file = std::fs::File::create(&log).unwrap();
    for part in parts {
        file.write_all(&part).unwrap();
    }
    drop(file);
    let written = started.elapsed();
    let bytes = std::fs::metadata(&log).unwrap().len();

    let candidate = policies_without(GRANT_POLICY);
    let kept = dir.join("candidate");
    std::fs::create_dir_all(&kept).unwrap();
    for entry in std::fs::read_dir(candidate.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), kept.join(entry.file_name())).unwrap();
    }
    let candidate = PolicyPack::load(&PackSources {
        policies: kept,
        schema: repo().join("schema"),
    })
    .unwrap();
    let options = ReplayOptions::default();
    let started = Instant::now();
    let report = replay(&candidate, &entities, std::slice::from_ref(&log), &options).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.records, records as u64);
    assert_eq!(report.replayed, records as u64);
    assert!(report.malformed.is_empty());
    println!(
        "replay: {records} records ({} MB, {} entities), written in {:.1} s; replayed on {} threads in {:.2} s = {:.0} records/s; {} flipped",
        bytes / 1_000_000,
        entities.len(),
        written.as_secs_f64(),
        options.threads,
        elapsed.as_secs_f64(),
        records as f64 / elapsed.as_secs_f64(),
        report.flipped
    );
}

/// A distinct id per record (the figure does not need real UUIDs).
fn uuid_like(offset: usize) -> String {
    format!("00000000-0000-7000-8000-{offset:012x}")
}
