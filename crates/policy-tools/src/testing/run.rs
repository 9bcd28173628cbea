//! Running test cases through the engine and measuring policy coverage.

use std::collections::BTreeSet;

use serde::Serialize;

use super::case::verdict_word;
use super::discover::TestFile;
use crate::engine::{decide, PolicyPack};
use crate::entities::LinkMap;

/// What happened to one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The decision met the expectation.
    Passed,
    /// It did not, or the request was refused.
    Failed,
    /// The case was marked `skip`.
    Skipped,
}

/// The result of one case, with everything a person needs to fix it.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The test file.
    pub file: String,
    /// The case's line, when known.
    pub line: Option<usize>,
    /// The case's name.
    pub name: String,
    /// Passed, failed or skipped.
    pub status: Status,
    /// The expectation in cell notation (`deny(policy-id)`).
    pub expected: Option<String>,
    /// `allow` or `deny`, when a decision was made.
    pub decided: Option<&'static str>,
    /// The determining policies.
    pub reasons: Vec<String>,
    /// Evaluation errors and fail-closed notes (or why the request was refused).
    pub errors: Vec<String>,
    /// Why the case failed.
    pub failures: Vec<String>,
}

/// Which policies determined at least one decision in the suite.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// Static policies in the pack.
    pub policies: usize,
    /// How many of them determined some decision.
    pub covered: usize,
    /// `covered / policies` in percent (100 for an empty pack).
    pub percent: f64,
    /// The policies that never did, in pack order.
    pub uncovered: Vec<UncoveredPolicy>,
    /// Templates in the pack.
    pub templates: usize,
    /// Templates through one of whose links some decision was determined.
    pub templates_covered: usize,
    /// The templates no link of which did, in pack order.
    pub uncovered_templates: Vec<UncoveredPolicy>,
    /// Template links under test (`--links`).
    pub links: usize,
    /// How many of them determined some decision.
    pub links_covered: usize,
    /// The links that never did, by id.
    pub uncovered_links: Vec<String>,
}

/// A policy no test exercised.
#[derive(Debug, Clone, Serialize)]
pub struct UncoveredPolicy {
    /// Its id.
    pub id: String,
    /// Its file, relative to the policies folder.
    pub file: String,
}

/// Everything one run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Every case, in file order.
    pub cases: Vec<CaseResult>,
    /// Policy coverage over all decided cases.
    pub coverage: Coverage,
}

impl RunReport {
    /// Cases with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.cases.iter().filter(|c| c.status == status).count()
    }
}

/// Decides every case of every file against `pack`, with `links` (the
/// template links under test) beside each case's entities.
pub fn run_suite(pack: &PolicyPack, files: &[TestFile], links: &LinkMap) -> RunReport {
    let mut determined: BTreeSet<String> = BTreeSet::new();
    let mut cases = Vec::new();
    for case in files.iter().flat_map(|file| &file.cases) {
        let mut result = CaseResult {
            file: case.file.clone(),
            line: case.line,
            name: case.name.clone(),
            status: Status::Skipped,
            expected: case.expect.as_ref().map(|e| e.describe()),
            decided: None,
            reasons: Vec::new(),
            errors: Vec::new(),
            failures: Vec::new(),
        };
        let Some(expect) = &case.expect else {
            cases.push(result);
            continue;
        };
        // A clone of the map is a pointer copy: the links ride along.
        let with_links =
            (!links.is_empty()).then(|| case.entities.as_ref().clone().with_links(links.clone()));
        match decide(
            pack,
            with_links.as_ref().unwrap_or(&*case.entities),
            &case.request,
            &crate::engine::RequestEntityPolicy::default(),
        ) {
            Ok(decision) => {
                determined.extend(decision.reasons.iter().cloned());
                result.failures = expect.mismatches(&decision);
                result.decided = Some(verdict_word(decision.verdict));
                result.reasons = decision.reasons;
                result.errors = decision.errors;
            }
            Err(error) => {
                result.errors = vec![error.to_string()];
                result.failures = vec!["the engine refused the request".to_string()];
            }
        }
        result.status = if result.failures.is_empty() {
            Status::Passed
        } else {
            Status::Failed
        };
        cases.push(result);
    }
    RunReport {
        cases,
        coverage: coverage(pack, &determined, links),
    }
}

fn coverage(pack: &PolicyPack, determined: &BTreeSet<String>, links: &LinkMap) -> Coverage {
    let mut uncovered_links: Vec<String> = links
        .iter()
        .filter(|link| !determined.contains(&*link.id))
        .map(|link| link.id.to_string())
        .collect();
    uncovered_links.sort();
    let linked: BTreeSet<&str> = links
        .iter()
        .filter(|link| determined.contains(&*link.id))
        .map(|link| &*link.template)
        .collect();
    let templates: Vec<_> = pack.files.info.iter().filter(|i| i.is_template).collect();
    let uncovered_templates: Vec<UncoveredPolicy> = templates
        .iter()
        .filter(|info| !linked.contains(info.id.as_str()))
        .map(|info| UncoveredPolicy {
            id: info.id.clone(),
            file: info.file.clone(),
        })
        .collect();
    let policies: Vec<_> = pack.files.info.iter().filter(|i| !i.is_template).collect();
    let uncovered: Vec<UncoveredPolicy> = policies
        .iter()
        .filter(|info| !determined.contains(&info.id))
        .map(|info| UncoveredPolicy {
            id: info.id.clone(),
            file: info.file.clone(),
        })
        .collect();
    let covered = policies.len() - uncovered.len();
    let percent = if policies.is_empty() {
        100.0
    } else {
        covered as f64 * 100.0 / policies.len() as f64
    };
    Coverage {
        policies: policies.len(),
        covered,
        percent,
        uncovered,
        templates: templates.len(),
        templates_covered: templates.len() - uncovered_templates.len(),
        uncovered_templates,
        links: links.len(),
        links_covered: links.len() - uncovered_links.len(),
        uncovered_links,
    }
}
