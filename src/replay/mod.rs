//! Replay: every request recorded in decision logs decided again against a
//! candidate policy set and the current entities, and the decisions that
//! flip grouped by (action, old → new verdict, determining policies).
//!
//! Lines are read in chunks by the calling thread and decided on all cores
//! (each worker keeps its own tally; the tallies are merged at the end, and
//! the examples kept are the first ones by file and line, so the report is
//! the same whatever the thread count). Every line is accounted for: a
//! record decided again (flipped or not), a record that cannot be (masked,
//! entities logged as digests), or a malformed line with its file:line:column.

mod record;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

pub use record::{read_line, Malformed, Read, Replayable, Unreplayable};
pub use report::{render, ReplayFormat};

use crate::engine::{decide, PolicyPack, Verdict};
use crate::entities::EntityMap;

/// Lines handed to a worker at a time.
const CHUNK: usize = 1024;

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Examples kept per flip group (the first ones by file and line).
    pub examples: usize,
    /// Worker threads (at least one).
    pub threads: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            examples: 3,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// A line of a log: which file (index into the report's `logs`) and line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// Index into [`ReplayReport::logs`].
    pub file: usize,
    /// 1-based line number.
    pub line: usize,
}

/// What a flip group has in common.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlipKey {
    /// The action uid.
    pub action: String,
    /// The recorded verdict (`Allow` or `Deny`).
    pub from: &'static str,
    /// The candidate's: `Allow`, `Deny`, or `Refused` when the candidate's
    /// schema refuses the request.
    pub to: &'static str,
    /// The recorded determining policies.
    pub was: Vec<String>,
    /// The candidate's determining policies.
    pub now: Vec<String>,
}

/// One flipped decision shown as an example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlipExample {
    /// Where it was logged.
    pub place: Place,
    /// The recorded decision id.
    pub decision_id: String,
    /// The principal uid.
    pub principal: String,
    /// The resource uid.
    pub resource: String,
    /// Why the candidate refused the request, when it did.
    pub error: Option<String>,
}

/// The flips that share a [`FlipKey`].
#[derive(Debug, Clone, Default)]
pub struct FlipGroup {
    /// How many decisions flipped this way.
    pub count: u64,
    /// The first few, by file and line.
    pub examples: Vec<FlipExample>,
}

/// A line that is not a decision record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedLine {
    /// Where.
    pub place: Place,
    /// What is wrong, and the column.
    pub problem: Malformed,
}

/// Everything a replay found.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// The logs read, in order.
    pub logs: Vec<PathBuf>,
    /// The candidate policy folder.
    pub policies: PathBuf,
    /// The candidate pack's version.
    pub policy_version: String,
    /// Entities decided against.
    pub entities: usize,
    /// Records read (every non-blank line, malformed ones included).
    pub records: u64,
    /// Records decided again.
    pub replayed: u64,
    /// Of those, the ones whose verdict did not change.
    pub unchanged: u64,
    /// Of the unchanged, those with other determining policies.
    pub reasons_changed: u64,
    /// Of those decided again, the ones whose verdict changed.
    pub flipped: u64,
    /// Records that cannot be decided again, by cause.
    pub unreplayable: BTreeMap<Unreplayable, u64>,
    /// The first places of unreplayable records, by cause.
    pub unreplayable_examples: BTreeMap<Unreplayable, Vec<Place>>,
    /// Lines that are not decision records, in order.
    pub malformed: Vec<MalformedLine>,
    /// Flips by group.
    pub flips: HashMap<FlipKey, FlipGroup>,
    /// Whether flips are accepted (`--allow-flips`).
    pub allow_flips: bool,
}

impl ReplayReport {
    /// Flip groups, the largest first (ties in key order).
    pub fn groups(&self) -> Vec<(&FlipKey, &FlipGroup)> {
        let mut groups: Vec<_> = self.flips.iter().collect();
        groups.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
        groups
    }

    /// Records that cannot be decided again, all causes.
    pub fn unreplayable_total(&self) -> u64 {
        self.unreplayable.values().sum()
    }

    /// The log's path for a place.
    pub fn file(&self, place: Place) -> String {
        self.logs
            .get(place.file)
            .map_or_else(|| "?".to_string(), |p| p.display().to_string())
    }

    fn merge(&mut self, tally: Tally, examples: usize) {
        self.records += tally.records;
        self.replayed += tally.replayed;
        self.unchanged += tally.unchanged;
        self.reasons_changed += tally.reasons_changed;
        self.flipped += tally.flipped;
        for (cause, count) in tally.unreplayable {
            *self.unreplayable.entry(cause).or_default() += count;
        }
        for (cause, places) in tally.unreplayable_examples {
            let kept = self.unreplayable_examples.entry(cause).or_default();
            kept.extend(places);
            kept.sort();
            kept.truncate(examples);
        }
        self.malformed.extend(tally.malformed);
        for (key, group) in tally.flips {
            let kept = self.flips.entry(key).or_default();
            kept.count += group.count;
            kept.examples.extend(group.examples);
            kept.examples.sort_by_key(|e| e.place);
            kept.examples.truncate(examples);
        }
    }
}

/// One worker's counts.
#[derive(Default)]
struct Tally {
    records: u64,
    replayed: u64,
    unchanged: u64,
    reasons_changed: u64,
    flipped: u64,
    unreplayable: BTreeMap<Unreplayable, u64>,
    unreplayable_examples: BTreeMap<Unreplayable, Vec<Place>>,
    malformed: Vec<MalformedLine>,
    flips: HashMap<FlipKey, FlipGroup>,
}

/// Lines of one file, from `first` on.
struct Chunk {
    file: usize,
    first: usize,
    lines: Vec<String>,
}

/// A replay that could not finish (as opposed to a line that is not a record).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A log could not be read.
    #[error("cannot read decision log `{path}`: {source}")]
    Read {
        /// The log.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A worker thread failed (a bug): its counts are lost, so no report.
    #[error("a replay worker failed; no report (this is a bug)")]
    Worker,
}

/// Decides every record of `logs` again against `pack` and `entities`.
pub fn replay(
    pack: &PolicyPack,
    entities: &EntityMap,
    logs: &[PathBuf],
    options: &ReplayOptions,
) -> Result<ReplayReport, LogError> {
    let threads = options.threads.max(1);
    let (sender, receiver) = sync_channel::<Chunk>(threads * 2);
    let receiver = Arc::new(Mutex::new(receiver));
    let examples = options.examples;
    let (read, tallies) = std::thread::scope(move |scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let receiver = receiver.clone();
                scope.spawn(move || work(pack, entities, &receiver, examples))
            })
            .collect();
        // Only the workers hold the receiver: if they all failed, the
        // reader's next send fails instead of waiting forever.
        drop(receiver);
        let read = feed(logs, &sender);
        drop(sender);
        let tallies: Result<Vec<Tally>, LogError> = workers
            .into_iter()
            .map(|worker| worker.join().map_err(|_| LogError::Worker))
            .collect();
        (read, tallies)
    });
    read?;
    let tallies = tallies?;
    let mut report = ReplayReport {
        logs: logs.to_vec(),
        policy_version: pack.version.clone(),
        entities: entities.len(),
        ..ReplayReport::default()
    };
    for tally in tallies {
        report.merge(tally, examples);
    }
    report.malformed.sort_by_key(|m| m.place);
    Ok(report)
}

/// Reads the logs in chunks of lines and hands them to the workers.
fn feed(logs: &[PathBuf], sender: &std::sync::mpsc::SyncSender<Chunk>) -> Result<(), LogError> {
    for (file, path) in logs.iter().enumerate() {
        let failed = |source| LogError::Read {
            path: path.clone(),
            source,
        };
        let reader = open(path).map_err(failed)?;
        let mut chunk = Chunk {
            file,
            first: 1,
            lines: Vec::with_capacity(CHUNK),
        };
        let mut number = 0;
        for line in reader.lines() {
            let line = line.map_err(failed)?;
            number += 1;
            chunk.lines.push(line);
            if chunk.lines.len() == CHUNK {
                let next = Chunk {
                    file,
                    first: number + 1,
                    lines: Vec::with_capacity(CHUNK),
                };
                if sender.send(std::mem::replace(&mut chunk, next)).is_err() {
                    return Ok(());
                }
            }
        }
        if !chunk.lines.is_empty() && sender.send(chunk).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn open(path: &Path) -> std::io::Result<Box<dyn BufRead>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::BufReader::new(std::io::stdin())));
    }
    let file = std::fs::File::open(path)?;
    Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
}

/// One worker: takes chunks until there are none, tallying each line.
fn work(
    pack: &PolicyPack,
    entities: &EntityMap,
    receiver: &Mutex<Receiver<Chunk>>,
    examples: usize,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let chunk = {
            let receiver = receiver.lock().unwrap_or_else(|p| p.into_inner());
            receiver.recv()
        };
        let Ok(chunk) = chunk else {
            return tally;
        };
        for (offset, line) in chunk.lines.iter().enumerate() {
            let place = Place {
                file: chunk.file,
                line: chunk.first + offset,
            };
            tally_line(pack, entities, line, place, examples, &mut tally);
        }
    }
}

fn tally_line(
    pack: &PolicyPack,
    entities: &EntityMap,
    line: &str,
    place: Place,
    examples: usize,
    tally: &mut Tally,
) {
    let record = match read_line(line) {
        Ok(Read::Blank) => return,
        Ok(Read::Record(record)) => record,
        Ok(Read::Unreplayable(cause)) => {
            tally.records += 1;
            *tally.unreplayable.entry(cause).or_default() += 1;
            let kept = tally.unreplayable_examples.entry(cause).or_default();
            if kept.len() < examples {
                kept.push(place);
            }
            return;
        }
        Err(problem) => {
            tally.records += 1;
            tally.malformed.push(MalformedLine { place, problem });
            return;
        }
    };
    tally.records += 1;
    tally.replayed += 1;
    let (to, now, error) = match decide(pack, entities, &record.request, &record.trust) {
        Ok(decision) => (verdict(decision.verdict), decision.reasons, None),
        Err(error) => ("Refused", Vec::new(), Some(error.to_string())),
    };
    let from = verdict(record.verdict);
    if to == from {
        tally.unchanged += 1;
        if now != record.reasons {
            tally.reasons_changed += 1;
        }
        return;
    }
    tally.flipped += 1;
    let key = FlipKey {
        action: record.request.action.to_string(),
        from,
        to,
        was: record.reasons,
        now,
    };
    let group = tally.flips.entry(key).or_default();
    group.count += 1;
    if group.examples.len() < examples {
        group.examples.push(FlipExample {
            place,
            decision_id: record.decision_id,
            principal: record.request.principal.to_string(),
            resource: record.request.resource.to_string(),
            error,
        });
    }
}

fn verdict(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "Allow",
        Verdict::Deny => "Deny",
    }
}
