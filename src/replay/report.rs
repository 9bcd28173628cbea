//! A replay's report as people read it (`human`), as tools read it
//! (`json`), and as CI systems show test results (`junit`: one test case
//! per flip group, failing unless flips are allowed, and one per malformed
//! line).

use std::fmt::Write as _;

use serde_json::{json, Value};

use cedar_policy_tools::testing::xml;

use super::{FlipExample, FlipKey, ReplayReport};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayFormat {
    /// A summary and the flip groups with examples.
    Human,
    /// One JSON document.
    Json,
    /// JUnit XML.
    Junit,
}

/// The report in `format`.
pub fn render(report: &ReplayReport, format: ReplayFormat) -> String {
    match format {
        ReplayFormat::Human => human(report),
        ReplayFormat::Json => {
            let mut text = serde_json::to_string_pretty(&to_json(report)).unwrap_or_default();
            text.push('\n');
            text
        }
        ReplayFormat::Junit => junit(report),
    }
}

fn policies(names: &[String]) -> String {
    if names.is_empty() {
        "(no policy)".to_string()
    } else {
        names.join(", ")
    }
}

/// `Action::"X": Allow → Deny`.
fn title(key: &FlipKey) -> String {
    format!("{}: {} → {}", key.action, key.from, key.to)
}

fn example_line(report: &ReplayReport, example: &FlipExample) -> String {
    let mut line = format!(
        "{}:{}: {} → {} (decision {})",
        report.file(example.place),
        example.place.line,
        example.principal,
        example.resource,
        if example.decision_id.is_empty() {
            "-"
        } else {
            &example.decision_id
        }
    );
    if let Some(error) = &example.error {
        let _ = write!(line, ": {error}");
    }
    line
}

fn human(report: &ReplayReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "replayed {} of {} logged decisions against `{}` (version {}, {} entities)",
        report.replayed,
        report.records,
        report.policies.display(),
        report.policy_version,
        report.entities
    );
    let _ = writeln!(
        out,
        "unchanged: {} ({} with other determining policies)",
        report.unchanged, report.reasons_changed
    );
    let _ = writeln!(out, "flipped: {}", report.flipped);
    let causes: Vec<String> = report
        .unreplayable
        .iter()
        .map(|(cause, count)| format!("{}: {count}", cause.label()))
        .collect();
    let _ = writeln!(
        out,
        "not replayable: {}{}",
        report.unreplayable_total(),
        if causes.is_empty() {
            String::new()
        } else {
            format!(" ({})", causes.join(", "))
        }
    );
    for (cause, places) in &report.unreplayable_examples {
        for place in places {
            let _ = writeln!(
                out,
                "  {}:{}: {}",
                report.file(*place),
                place.line,
                cause.label()
            );
        }
    }
    let _ = writeln!(out, "malformed lines: {}", report.malformed.len());
    for line in &report.malformed {
        let _ = writeln!(
            out,
            "  {}:{}:{}: {}",
            report.file(line.place),
            line.place.line,
            line.problem.column,
            line.problem.message
        );
    }
    let groups = report.groups();
    if !groups.is_empty() {
        let _ = writeln!(out, "\nflips by action, old → new, determining policies:");
    }
    for (key, group) in groups {
        let _ = writeln!(out, "  {} × {}", group.count, title(key));
        let _ = writeln!(out, "      was: {}", policies(&key.was));
        let _ = writeln!(out, "      now: {}", policies(&key.now));
        for example in &group.examples {
            let _ = writeln!(out, "      e.g. {}", example_line(report, example));
        }
    }
    if report.flipped > 0 {
        if report.allow_flips {
            let _ = writeln!(
                out,
                "\n{} decisions flip (accepted with --allow-flips)",
                report.flipped
            );
        } else {
            let _ = writeln!(
                out,
                "\nerror: {} decisions flip; review them, then pass --allow-flips to accept",
                report.flipped
            );
        }
    }
    out
}

fn to_json(report: &ReplayReport) -> Value {
    let place = |place: super::Place| json!({ "file": report.file(place), "line": place.line });
    json!({
        "policies": report.policies.display().to_string(),
        "policy_version": report.policy_version,
        "entities": report.entities,
        "logs": report.logs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "records": report.records,
        "replayed": report.replayed,
        "unchanged": report.unchanged,
        "reasons_changed": report.reasons_changed,
        "flipped": report.flipped,
        "allow_flips": report.allow_flips,
        "not_replayable": {
            "total": report.unreplayable_total(),
            "by_cause": report.unreplayable.iter()
                .map(|(cause, count)| (cause.label().to_string(), json!(count)))
                .collect::<serde_json::Map<_, _>>(),
            "examples": report.unreplayable_examples.iter()
                .flat_map(|(cause, places)| places.iter().map(move |p| (cause, p)))
                .map(|(cause, p)| {
                    let mut value = place(*p);
                    value["cause"] = json!(cause.label());
                    value
                })
                .collect::<Vec<_>>(),
        },
        "malformed": report.malformed.iter().map(|line| json!({
            "file": report.file(line.place),
            "line": line.place.line,
            "column": line.problem.column,
            "message": line.problem.message,
        })).collect::<Vec<_>>(),
        "flips": report.groups().into_iter().map(|(key, group)| json!({
            "action": key.action,
            "from": key.from,
            "to": key.to,
            "was": key.was,
            "now": key.now,
            "count": group.count,
            "examples": group.examples.iter().map(|e| {
                let mut value = json!({
                    "file": report.file(e.place),
                    "line": e.place.line,
                    "decision_id": e.decision_id,
                    "principal": e.principal,
                    "resource": e.resource,
                });
                if let Some(error) = &e.error {
                    value["error"] = json!(error);
                }
                value
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn junit(report: &ReplayReport) -> String {
    let groups = report.groups();
    let failures = if report.allow_flips { 0 } else { groups.len() };
    let tests = groups.len() + report.malformed.len() + 1;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"cedar-sidecar replay\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{}\">",
        report.malformed.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"replay {}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{}\">",
        xml(&report.policies.display().to_string()),
        report.malformed.len()
    );
    let _ = writeln!(
        out,
        "    <testcase classname=\"replay\" name=\"unchanged decisions\"><system-out>{}</system-out></testcase>",
        xml(&format!(
            "{} of {} replayed decisions unchanged; {} not replayable",
            report.unchanged,
            report.replayed,
            report.unreplayable_total()
        ))
    );
    for (key, group) in groups {
        let examples: Vec<String> = group
            .examples
            .iter()
            .map(|e| example_line(report, e))
            .collect();
        let body = format!(
            "was: {}\nnow: {}\n{}",
            policies(&key.was),
            policies(&key.now),
            examples.join("\n")
        );
        let _ = write!(
            out,
            "    <testcase classname=\"replay.flips\" name=\"{}\">",
            xml(&title(key))
        );
        if report.allow_flips {
            let _ = write!(
                out,
                "<system-out>{}</system-out>",
                xml(&format!(
                    "{} decisions flip (accepted)\n{body}",
                    group.count
                ))
            );
        } else {
            let _ = write!(
                out,
                "<failure message=\"{}\">{}</failure>",
                xml(&format!("{} decisions flip", group.count)),
                xml(&body)
            );
        }
        let _ = writeln!(out, "</testcase>");
    }
    for line in &report.malformed {
        let location = format!(
            "{}:{}:{}",
            report.file(line.place),
            line.place.line,
            line.problem.column
        );
        let _ = writeln!(
            out,
            "    <testcase classname=\"replay.malformed\" name=\"{}\"><error message=\"{}\"/></testcase>",
            xml(&location),
            xml(&line.problem.message)
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
