//! Rendering a run for people (`human`), for tools (`json`) and for CI
//! test dashboards (`junit`).

use std::fmt::Write as _;

use super::run::{CaseResult, RunReport, Status};

/// How `cedar-sidecar test` prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Failing cases in detail, then `N passed, N failed`.
    Human,
    /// One JSON document with every case.
    Json,
    /// JUnit XML, one test suite per file.
    Junit,
}

/// The closing line: `N passed, N failed` and `, N skipped` when some were.
pub fn summary_line(report: &RunReport) -> String {
    let mut line = format!(
        "{} passed, {} failed",
        report.count(Status::Passed),
        report.count(Status::Failed)
    );
    let skipped = report.count(Status::Skipped);
    if skipped > 0 {
        line.push_str(&format!(", {skipped} skipped"));
    }
    line
}

/// Failing cases in detail, coverage when asked, then the summary line.
pub fn render_human(report: &RunReport, with_coverage: bool) -> String {
    let mut out = String::new();
    for case in report.cases.iter().filter(|c| c.status == Status::Failed) {
        let _ = writeln!(out, "FAIL {}  {}", location(case), case.name);
        let _ = writeln!(
            out,
            "  expected:             {}",
            case.expected.as_deref().unwrap_or("-")
        );
        let _ = writeln!(
            out,
            "  decided:              {}",
            case.decided.unwrap_or("(no decision)")
        );
        let _ = writeln!(out, "  determining policies: {}", list(&case.reasons));
        let _ = writeln!(out, "  errors:               {}", list(&case.errors));
        for failure in &case.failures {
            let _ = writeln!(out, "  why:                  {failure}");
        }
        out.push('\n');
    }
    if with_coverage {
        let coverage = &report.coverage;
        let _ = writeln!(
            out,
            "coverage: {} of {} policies determined a decision ({:.1}%)",
            coverage.covered, coverage.policies, coverage.percent
        );
        for policy in &coverage.uncovered {
            let _ = writeln!(
                out,
                "  never determined a decision: `{}` ({})",
                policy.id, policy.file
            );
        }
        if coverage.templates > 0 {
            let _ = writeln!(
                out,
                "templates: {} of {} determined a decision through a link; links: {} of {}",
                coverage.templates_covered,
                coverage.templates,
                coverage.links_covered,
                coverage.links
            );
            for template in &coverage.uncovered_templates {
                let _ = writeln!(
                    out,
                    "  no link of template `{}` ({}) determined a decision",
                    template.id, template.file
                );
            }
            for link in &coverage.uncovered_links {
                let _ = writeln!(out, "  link `{link}` never determined a decision");
            }
        }
    }
    out.push_str(&summary_line(report));
    out.push('\n');
    out
}

/// One JSON document: counts, every case, and coverage when asked.
pub fn render_json(report: &RunReport, with_coverage: bool) -> String {
    let mut doc = serde_json::json!({
        "passed": report.count(Status::Passed),
        "failed": report.count(Status::Failed),
        "skipped": report.count(Status::Skipped),
        "cases": report.cases,
    });
    if with_coverage {
        if let Some(object) = doc.as_object_mut() {
            object.insert(
                "coverage".into(),
                serde_json::to_value(&report.coverage).unwrap_or_default(),
            );
        }
    }
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// JUnit XML: one `<testsuite>` per test file, one `<testcase>` per case.
pub fn render_junit(report: &RunReport) -> String {
    let mut files: Vec<&str> = Vec::new();
    for case in &report.cases {
        if !files.contains(&case.file.as_str()) {
            files.push(&case.file);
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"cedar-sidecar test\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
        report.cases.len(),
        report.count(Status::Failed),
        report.count(Status::Skipped)
    );
    for file in files {
        let cases: Vec<&CaseResult> = report.cases.iter().filter(|c| c.file == file).collect();
        let failed = cases.iter().filter(|c| c.status == Status::Failed).count();
        let skipped = cases.iter().filter(|c| c.status == Status::Skipped).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\">",
            xml(file),
            cases.len()
        );
        for case in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(file),
                xml(&case.name)
            );
            match case.status {
                Status::Passed => out.push_str("/>\n"),
                Status::Skipped => out.push_str(">\n      <skipped/>\n    </testcase>\n"),
                Status::Failed => {
                    let details = format!(
                        "expected: {}\ndecided: {}\ndetermining policies: {}\nerrors: {}",
                        case.expected.as_deref().unwrap_or("-"),
                        case.decided.unwrap_or("(no decision)"),
                        list(&case.reasons),
                        list(&case.errors)
                    );
                    let _ = write!(
                        out,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                        xml(&case.failures.join("; ")),
                        xml(&details)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn location(case: &CaseResult) -> String {
    match case.line {
        Some(line) => format!("{}:{line}", case.file),
        None => case.file.clone(),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join("; ")
    }
}

/// Escapes text for XML attributes and content (JUnit reports); control
/// characters XML cannot hold are dropped.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            c if (c as u32) < 0x20 && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}
