//! `cedar-sidecar test`: policy unit tests for CI. Loads the pack, reads
//! every test file (Cedar's JSON or our YAML tables), decides every case
//! and reports failures, coverage and a closing `N passed, N failed` line.

use std::path::PathBuf;

use clap::Args;

use crate::engine::{load_links_file, PackSources, PolicyPack};
use crate::entities::LinkMap;
use crate::paths::{DEFAULT_POLICIES, DEFAULT_SCHEMA, DEFAULT_TESTS};
use crate::testing::{
    discover, load_test_file, render_human, render_json, render_junit, run_suite, summary_line,
    OutputFormat, RunReport, Status,
};

/// Arguments of `test`.
#[derive(Debug, Args)]
pub struct TestCommand {
    /// Test files or folders (searched recursively); the shipped suite when none.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Folder of `*.cedar` policy files under test.
    #[arg(long, default_value = DEFAULT_POLICIES)]
    policies: PathBuf,
    /// Schema file or folder the policies and tests are checked against.
    #[arg(long, default_value = DEFAULT_SCHEMA)]
    schema: PathBuf,
    /// Template links (the Cedar CLI's `--template-linked` JSON) decided
    /// with every case's entities; checked against the templates first.
    #[arg(long, value_name = "FILE")]
    links: Option<PathBuf>,
    /// How to print the results.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    /// List every policy that determined no decision in the suite.
    #[arg(long)]
    coverage: bool,
    /// Fail when fewer than P percent of the policies determined a decision.
    #[arg(long, value_name = "P")]
    fail_under_coverage: Option<f64>,
}

/// Every case passed (and coverage, when required, was met).
pub const EXIT_PASSED: i32 = 0;
/// Some case failed, or coverage is under the required percentage.
pub const EXIT_FAILED: i32 = 1;
/// The pack or a test file is malformed: nothing could be trusted to run.
pub const EXIT_INVALID: i32 = 2;

/// Runs `test`; returns the exit code.
pub fn run_test(args: &TestCommand) -> i32 {
    let pack = match PolicyPack::load(&PackSources {
        policies: args.policies.clone(),
        schema: args.schema.clone(),
    }) {
        Ok(pack) => pack,
        Err(problems) => {
            eprint!("{}", problems.render());
            return EXIT_INVALID;
        }
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(DEFAULT_TESTS)]
    } else {
        args.paths.clone()
    };
    let found = match discover(&paths) {
        Ok(found) => found,
        Err(problems) => {
            eprint!("{}", problems.render());
            return EXIT_INVALID;
        }
    };
    let mut files = Vec::new();
    let mut invalid = false;
    for path in &found {
        match load_test_file(path, &pack.schema) {
            Ok(file) => files.push(file),
            Err(problems) => {
                invalid = true;
                for problem in &problems.0 {
                    eprint!("{}", problem.render());
                }
            }
        }
    }
    if invalid {
        eprintln!("test files are malformed; no test was run");
        return EXIT_INVALID;
    }
    if files.iter().all(|f| f.cases.is_empty()) {
        eprintln!("error: no test cases found in {}", paths_list(&paths));
        return EXIT_INVALID;
    }
    let links = match &args.links {
        Some(path) => match load_links_file(path, &pack) {
            Ok(links) => links,
            Err(problems) => {
                eprint!("{}", problems.render());
                return EXIT_INVALID;
            }
        },
        None => LinkMap::default(),
    };
    let report = run_suite(&pack, &files, &links);
    let show_coverage = args.coverage || args.fail_under_coverage.is_some();
    match args.format {
        OutputFormat::Human => emit(&render_human(&report, show_coverage)),
        OutputFormat::Json => {
            emit(&render_json(&report, show_coverage));
            eprintln!("{}", summary_line(&report));
        }
        OutputFormat::Junit => {
            emit(&render_junit(&report));
            eprintln!("{}", summary_line(&report));
        }
    }
    exit_code(&report, args.fail_under_coverage)
}

fn exit_code(report: &RunReport, fail_under: Option<f64>) -> i32 {
    let mut code = EXIT_PASSED;
    if report.count(Status::Failed) > 0 {
        code = EXIT_FAILED;
    }
    if let Some(required) = fail_under {
        if report.coverage.percent < required {
            eprintln!(
                "coverage {:.1}% is under the required {required}%",
                report.coverage.percent
            );
            code = EXIT_FAILED;
        }
    }
    code
}

/// Writes to stdout; a closed pipe (`| head`) is not worth a panic.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn paths_list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect::<Vec<_>>()
        .join(", ")
}
