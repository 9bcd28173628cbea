//! Finding test files and reading one in the format its name says.
//!
//! Given a folder, the runner takes every `*.yaml`/`*.yml` file and every
//! `*tests.json`/`*test.json` file under it (other JSON files in a test folder
//! are usually entities files). A file named explicitly is always run:
//! `.json` as Cedar's format, anything else as YAML.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cedar_policy::Schema;

use super::case::TestCase;
use crate::diagnostics::{Problem, Problems};
use crate::files::{files_under, Depth};

/// One test file and its cases.
#[derive(Debug)]
pub struct TestFile {
    /// The file as the user named it.
    pub shown: String,
    /// Its cases in file order.
    pub cases: Vec<TestCase>,
}

/// The test files named by `paths` (files as given, folders searched), sorted.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Problems> {
    let mut out = Vec::new();
    let mut problems = Problems::default();
    for path in paths {
        if path.is_dir() {
            match files_under(path, Depth::Recursive, is_test_file) {
                Ok(found) => out.extend(found),
                Err(error) => problems.push(Problem::message(
                    path.display().to_string(),
                    format!("cannot list test folder: {error}"),
                )),
            }
        } else if path.is_file() {
            out.push(path.clone());
        } else {
            problems.push(Problem::message(
                path.display().to_string(),
                "no such test file or folder",
            ));
        }
    }
    if problems.is_empty() {
        out.sort();
        out.dedup();
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Reads and parses one test file against the pack's schema.
pub fn load_test_file(path: &Path, schema: &Schema) -> Result<TestFile, Problems> {
    let shown = path.display().to_string();
    let text: Arc<str> = std::fs::read_to_string(path)
        .map_err(|error| {
            Problems(vec![Problem::message(
                &shown,
                format!("cannot read test file: {error}"),
            )])
        })?
        .into();
    let cases = if path.extension().is_some_and(|e| e == "json") {
        super::cedar_json::parse(path, &shown, &text, schema)?
    } else {
        super::yaml::parse(path, &shown, &text, schema)?
    };
    Ok(TestFile { shown, cases })
}

fn is_test_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.ends_with(".yaml")
        || name.ends_with(".yml")
        || name.ends_with("tests.json")
        || name.ends_with("test.json")
}
