//! Loading a folder of `.cedar` files into one policy set with stable ids.
//!
//! A policy's id is its `@id("...")` annotation when present, otherwise
//! `<relative path>:<index in file>`; ids name policies in decisions, logs
//! and test expectations, so they must not depend on load order.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cedar_policy::{Effect, PolicyId, PolicySet, Schema, ValidationMode, Validator};

use crate::diagnostics::{Problem, Problems};
use crate::files::{files_under, has_suffix, Depth};

/// What we know about one loaded policy or template.
#[derive(Debug, Clone)]
pub struct PolicyInfo {
    /// The id used in decisions (`@id` or `file:index`).
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: Effect,
    /// Source file relative to the policies folder, `/`-separated.
    pub file: String,
    /// Templates are loaded and validated but decide nothing until linked.
    pub is_template: bool,
}

/// A parsed (not yet validated) policy pack.
#[derive(Debug, Clone, Default)]
pub struct PolicyFiles {
    /// Every static policy and template, with our ids.
    pub set: PolicySet,
    /// One entry per policy and template, sorted by file then position.
    pub info: Vec<PolicyInfo>,
    /// File text by relative path, for rendering diagnostics.
    pub sources: HashMap<String, Arc<str>>,
    /// Where each file lives on disk, for messages with the path the user gave.
    pub display_paths: HashMap<String, String>,
}

impl PolicyFiles {
    /// Info about one policy by id.
    pub fn info(&self, id: &str) -> Option<&PolicyInfo> {
        self.info.iter().find(|info| info.id == id)
    }

    /// Number of static policies (templates excluded).
    pub fn policy_count(&self) -> usize {
        self.info.iter().filter(|info| !info.is_template).count()
    }

    /// Number of templates.
    pub fn template_count(&self) -> usize {
        self.info.iter().filter(|info| info.is_template).count()
    }
}

/// Reads every `*.cedar` file under `dir`, recursively. Files that parse are
/// returned even when others do not, so their validation errors can be
/// reported in the same run.
pub fn load_policy_dir(dir: &Path) -> (PolicyFiles, Problems) {
    let mut problems = Problems::default();
    let files = match files_under(dir, Depth::Recursive, |p| has_suffix(p, "cedar")) {
        Ok(files) => files,
        Err(error) => {
            problems.push(Problem::message(
                dir.display().to_string(),
                format!("cannot list policy folder: {error}"),
            ));
            return (PolicyFiles::default(), problems);
        }
    };
    let mut texts = Vec::new();
    for file in files {
        let relative = relative_name(dir, &file);
        match std::fs::read_to_string(&file) {
            Ok(text) => texts.push((relative, file.display().to_string(), text)),
            Err(error) => problems.push(Problem::message(
                file.display().to_string(),
                format!("cannot read policy file: {error}"),
            )),
        }
    }
    let (files, more) = parse_policy_texts(texts);
    problems.0.extend(more.0);
    (files, problems)
}

/// Parses `(relative name, display path, text)` triples into one pack, with
/// the problems of the files that did not parse.
pub fn parse_policy_texts(
    texts: impl IntoIterator<Item = (String, String, String)>,
) -> (PolicyFiles, Problems) {
    let mut problems = Problems::default();
    let mut pack = PolicyFiles::default();
    let mut first_seen: HashMap<String, String> = HashMap::new();
    for (relative, display, text) in texts {
        let source: Arc<str> = text.into();
        pack.sources.insert(relative.clone(), source.clone());
        pack.display_paths.insert(relative.clone(), display.clone());
        let parsed = match source.parse::<PolicySet>() {
            Ok(parsed) => parsed,
            Err(errors) => {
                for error in errors.iter() {
                    problems.push(Problem::capture(&display, Some(source.clone()), error));
                }
                continue;
            }
        };
        for (index, policy, is_template) in in_file_order(&parsed) {
            let id = policy
                .annotation_id
                .map_or_else(|| format!("{relative}:{index}"), str::to_string);
            if let Some(other) = first_seen.get(&id) {
                problems.push(Problem::message(
                    &display,
                    format!("duplicate policy id `{id}`: also used in `{other}`"),
                ));
                continue;
            }
            first_seen.insert(id.clone(), display.clone());
            let added = if is_template {
                parsed.template(policy.id).map(|t| {
                    pack.set
                        .add_template(t.new_id(PolicyId::new(&id)))
                        .map_err(Box::new)
                })
            } else {
                parsed
                    .policy(policy.id)
                    .map(|p| pack.set.add(p.new_id(PolicyId::new(&id))).map_err(Box::new))
            };
            match added {
                Some(Ok(())) => pack.info.push(PolicyInfo {
                    id,
                    effect: policy.effect,
                    file: relative.clone(),
                    is_template,
                }),
                Some(Err(error)) => problems.push(Problem::new(&display, None, *error)),
                None => problems.push(Problem::message(
                    &display,
                    format!("policy `{id}` vanished while loading"),
                )),
            }
        }
    }
    (pack, problems)
}

/// Validates the pack against the schema in strict mode; every error is
/// reported with the file it came from.
pub fn validate_policies(pack: &PolicyFiles, schema: &Schema) -> Result<(), Problems> {
    let validator = Validator::new(schema.clone());
    let result = validator.validate(&pack.set, ValidationMode::Strict);
    let mut problems = Problems::default();
    for error in result.validation_errors() {
        let info = pack.info(error.policy_id().as_ref());
        let (display, source) = match info {
            Some(info) => (
                pack.display_paths
                    .get(&info.file)
                    .cloned()
                    .unwrap_or_else(|| info.file.clone()),
                pack.sources.get(&info.file).cloned(),
            ),
            None => (error.policy_id().to_string(), None),
        };
        problems.push(Problem::new(display, source, error.clone()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The smallest entity dereference level (RFC 76) at which the pack
/// validates, up to `max`; `None` when it needs more (for example because a
/// policy reads attributes of an entity literal).
pub fn deref_level(pack: &PolicyFiles, schema: &Schema, max: u32) -> Option<u32> {
    let validator = Validator::new(schema.clone());
    (1..=max).find(|level| {
        validator
            .validate_with_level(&pack.set, ValidationMode::Strict, *level)
            .validation_passed()
    })
}

struct ParsedRef<'a> {
    id: &'a PolicyId,
    effect: Effect,
    annotation_id: Option<&'a str>,
}

/// Policies and templates of one parsed file, with their index in the file.
/// The parser names them `policy0`, `policy1`, ... in source order.
fn in_file_order(parsed: &PolicySet) -> Vec<(usize, ParsedRef<'_>, bool)> {
    let mut out: Vec<(usize, ParsedRef<'_>, bool)> = parsed
        .policies()
        .map(|p| {
            let r = ParsedRef {
                id: p.id(),
                effect: p.effect(),
                annotation_id: p.annotation("id"),
            };
            (parser_index(p.id()), r, false)
        })
        .chain(parsed.templates().map(|t| {
            let r = ParsedRef {
                id: t.id(),
                effect: t.effect(),
                annotation_id: t.annotation("id"),
            };
            (parser_index(t.id()), r, true)
        }))
        .collect();
    out.sort_by_key(|(index, _, _)| *index);
    out
}

fn parser_index(id: &PolicyId) -> usize {
    AsRef::<str>::as_ref(id)
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

fn relative_name(dir: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(dir).unwrap_or(file);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}
