//! Cedar's `cedar run-tests` format: a JSON array of
//! `{name, request: {principal, action, resource, context}, entities,
//! decision, reason, num_errors}`, where `entities` is an array of entities
//! or the path of an entities file relative to the test file (inside its
//! folder, as Cedar's CLI requires). `reason` is checked as a subset of the
//! determining policies and `num_errors` as the exact number of evaluation
//! errors, as Cedar's CLI does.
//!
//! Unknown fields are refused (Cedar ignores them) so that a typo such as
//! `reasons` cannot silently turn a check off.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cedar_policy::Schema;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::case::{ErrorCheck, Expectation, ReasonCheck, TestCase};
use super::names::{checked_request, parse_uid};
use crate::diagnostics::{offset_of, Problem, Problems};
use crate::engine::Verdict;
use crate::entities::{load_entities_file, parse_entities_json, EntityMap};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CedarTest {
    #[serde(default)]
    name: Option<String>,
    request: CedarRequest,
    entities: serde_json::Value,
    decision: CedarDecision,
    reason: Vec<String>,
    num_errors: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CedarRequest {
    principal: String,
    action: String,
    resource: String,
    context: serde_json::Value,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CedarDecision {
    Allow,
    Deny,
}

/// Parses a Cedar test file; every malformed test is reported with its
/// line and column.
pub fn parse(
    path: &Path,
    shown: &str,
    text: &Arc<str>,
    schema: &Schema,
) -> Result<Vec<TestCase>, Problems> {
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|error| {
        let offset = offset_of(text, error.line(), error.column());
        Problems(vec![Problem::message(
            shown,
            format!("a Cedar test file is a JSON array of tests: {error}"),
        )
        .at(text.clone(), offset)])
    })?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut files: HashMap<PathBuf, Arc<EntityMap>> = HashMap::new();
    let mut problems = Problems::default();
    let mut cases = Vec::new();
    for (index, raw) in items.into_iter().enumerate() {
        let start = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
        let test: CedarTest = match serde_json::from_str(raw.get()) {
            Ok(test) => test,
            Err(error) => {
                let inner = offset_of(raw.get(), error.line(), error.column());
                problems.push(
                    Problem::message(shown, format!("test {index}: {error}"))
                        .at(text.clone(), start + inner),
                );
                continue;
            }
        };
        let label = test.name.clone().unwrap_or_else(|| format!("test {index}"));
        match build_case(&test, &label, dir, schema, &mut files) {
            Ok((request, entities)) => cases.push(TestCase {
                name: label,
                file: shown.to_string(),
                line: Some(crate::diagnostics::line_column(text, start).0),
                request,
                entities,
                expect: Some(Expectation {
                    verdict: match test.decision {
                        CedarDecision::Allow => Verdict::Allow,
                        CedarDecision::Deny => Verdict::Deny,
                    },
                    reasons: ReasonCheck::AtLeast(test.reason.clone()),
                    errors: ErrorCheck::Count(test.num_errors),
                }),
            }),
            Err(message) => problems.push(
                Problem::message(shown, format!("test `{label}`: {message}"))
                    .at(text.clone(), start),
            ),
        }
    }
    if problems.is_empty() {
        Ok(cases)
    } else {
        Err(problems)
    }
}

fn build_case(
    test: &CedarTest,
    _label: &str,
    dir: &Path,
    schema: &Schema,
    files: &mut HashMap<PathBuf, Arc<EntityMap>>,
) -> Result<(crate::engine::DecisionRequest, Arc<EntityMap>), String> {
    let principal = parse_uid(&test.request.principal).map_err(|e| format!("principal: {e}"))?;
    let action = parse_uid(&test.request.action).map_err(|e| format!("action: {e}"))?;
    let resource = parse_uid(&test.request.resource).map_err(|e| format!("resource: {e}"))?;
    let request = checked_request(
        schema,
        principal,
        action,
        resource,
        test.request.context.clone(),
    )?;
    let entities = match &test.entities {
        serde_json::Value::String(file) => entities_file(dir, file, schema, files)?,
        serde_json::Value::Array(values) => {
            let parsed = parse_entities_json(values.clone(), schema)
                .map_err(|e| format!("entities: {e}"))?;
            Arc::new(EntityMap::from_entities(parsed, 0))
        }
        other => {
            return Err(format!(
                "`entities` must be an array of entities or a file name, not `{other}`"
            ))
        }
    };
    Ok((request, entities))
}

/// Loads (once per file) an entities file named relative to the test file;
/// like Cedar's CLI, it must lie inside the test file's folder.
fn entities_file(
    dir: &Path,
    file: &str,
    schema: &Schema,
    files: &mut HashMap<PathBuf, Arc<EntityMap>>,
) -> Result<Arc<EntityMap>, String> {
    let joined = dir.join(file);
    let canonical = joined
        .canonicalize()
        .map_err(|e| format!("entities file `{}`: {e}", joined.display()))?;
    let base = dir
        .canonicalize()
        .map_err(|e| format!("test folder `{}`: {e}", dir.display()))?;
    if !canonical.starts_with(&base) {
        return Err(format!(
            "entities file `{file}` is outside the test file's folder (Cedar's CLI refuses it too)"
        ));
    }
    if let Some(map) = files.get(&canonical) {
        return Ok(map.clone());
    }
    let entities = load_entities_file(&joined, schema).map_err(|p| p.to_string())?;
    let map = Arc::new(EntityMap::from_entities(entities, 0));
    files.insert(canonical, map.clone());
    Ok(map)
}
