//! Loading the Cedar schema from one file or a folder of fragments.
//!
//! Human syntax (`*.cedarschema`) and JSON (`*.cedarschema.json`) fragments
//! may be mixed; they are combined into one [`Schema`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cedar_policy::{Schema, SchemaFragment};

use crate::diagnostics::{offset_of, Problem, Problems};
use crate::files::{files_under, has_suffix, Depth};

/// A schema with the text of the files it came from (for the pack version).
pub type LoadedSchema = (Schema, Vec<(String, Arc<str>)>);

/// Reads and combines every schema fragment at `path` (a file or a folder).
pub fn load_schema(path: &Path) -> Result<LoadedSchema, Problems> {
    let mut problems = Problems::default();
    let files = match schema_files(path) {
        Ok(files) => files,
        Err(problem) => {
            problems.push(problem);
            return Err(problems);
        }
    };
    let mut fragments = Vec::new();
    let mut texts: Vec<(String, Arc<str>)> = Vec::new();
    for file in &files {
        let shown = file.display().to_string();
        let text: Arc<str> = match std::fs::read_to_string(file) {
            Ok(text) => text.into(),
            Err(error) => {
                problems.push(Problem::message(
                    shown,
                    format!("cannot read schema: {error}"),
                ));
                continue;
            }
        };
        // Named relative to the schema path, so the pack version does not
        // depend on where the pack is checked out.
        let name = file
            .strip_prefix(path)
            .ok()
            .filter(|rel| !rel.as_os_str().is_empty())
            .or_else(|| file.file_name().map(Path::new))
            .map_or_else(|| shown.clone(), |rel| rel.display().to_string());
        texts.push((name, text.clone()));
        match parse_fragment(file, &text) {
            Ok(fragment) => fragments.push(fragment),
            Err(problem) => problems.push(
                Problem {
                    path: shown,
                    ..problem
                }
                .with_source(text),
            ),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    match Schema::from_schema_fragments(fragments) {
        Ok(schema) => Ok((schema, texts)),
        Err(error) => {
            problems.push(locate_link_error(path, &texts, error));
            Err(problems)
        }
    }
}

/// Errors found while combining fragments (an undeclared type, say) carry a
/// span but not the file: pick the fragment whose text at that span is
/// what the message talks about.
fn locate_link_error(
    path: &Path,
    texts: &[(String, Arc<str>)],
    error: cedar_policy::SchemaError,
) -> Problem {
    let message = crate::diagnostics::one_line(&error);
    let span = miette::Diagnostic::labels(&error)
        .and_then(|mut labels| labels.next())
        .map(|label| (label.offset(), label.len()));
    let owner = match (texts, span) {
        ([only], _) => Some(only),
        (_, Some((offset, len))) => texts.iter().find(|(_, text)| {
            text.get(offset..offset + len)
                .is_some_and(|snippet| !snippet.is_empty() && message.contains(snippet.trim()))
        }),
        _ => None,
    };
    match owner {
        Some((name, text)) => {
            let shown = if path.is_dir() {
                path.join(name).display().to_string()
            } else {
                path.display().to_string()
            };
            Problem::new(shown, Some(text.clone()), error)
        }
        None => Problem::new(path.display().to_string(), None, error),
    }
}

/// Parses schema text as if it came from `path` (used by tests and `check`).
pub fn parse_schema_text(path: &Path, text: &str) -> Result<Schema, Problems> {
    let source: Arc<str> = text.into();
    parse_fragment(path, text)
        .and_then(|fragment| {
            Schema::from_schema_fragments([fragment])
                .map_err(|error| Problem::new(path.display().to_string(), None, error))
        })
        .map_err(|problem| Problems(vec![problem.with_source(source)]))
}

fn parse_fragment(path: &Path, text: &str) -> Result<SchemaFragment, Problem> {
    let shown = path.display().to_string();
    if is_json_schema(path) {
        SchemaFragment::from_json_str(text).map_err(|error| json_problem(&shown, text, error))
    } else {
        SchemaFragment::from_cedarschema_str(text)
            .map(|(fragment, _warnings)| fragment)
            .map_err(|error| Problem::new(shown, None, error))
    }
}

/// JSON schema errors rarely carry spans; point at serde's line when it has one.
fn json_problem(path: &str, text: &str, error: cedar_policy::SchemaError) -> Problem {
    let offset = serde_json::from_str::<serde_json::Value>(text)
        .err()
        .map(|e| offset_of(text, e.line(), e.column()));
    let problem = Problem::new(path, None, error);
    match offset {
        Some(offset) => problem.at(text.into(), offset),
        None => problem,
    }
}

fn is_json_schema(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".cedarschema.json")
        || path.extension().is_some_and(|e| e == "json")
}

fn schema_files(path: &Path) -> Result<Vec<PathBuf>, Problem> {
    let shown = path.display().to_string();
    let files = files_under(path, Depth::Top, |file| {
        has_suffix(file, "cedarschema") || has_suffix(file, "cedarschema.json")
    })
    .map_err(|error| Problem::message(&shown, format!("cannot read schema: {error}")))?;
    if files.is_empty() {
        return Err(Problem::message(
            shown,
            "no `*.cedarschema` or `*.cedarschema.json` file in this folder",
        ));
    }
    Ok(files)
}
