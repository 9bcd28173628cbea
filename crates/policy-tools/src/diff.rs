//! `cedar-sidecar diff OLD NEW`: what a policy change newly permits, proved
//! for every request and every entity data the schema allows.
//!
//! For each request type the schema allows (principal type, action,
//! resource type), Cedar's symbolic compiler asks the solver two questions:
//! is there a request NEW allows and OLD denies ("more"), and one OLD allows
//! and NEW denies ("less")? A "no" is a proof over all requests and data;
//! a "yes" comes with a counterexample, which the engine then decides
//! against both packs (as `serve` would) to show the flip.
//!
//! Templates are not in the proof: their links are data. A template added,
//! removed or changed is listed by effect, and one that can grant more
//! (a permit added or changed, a forbid removed or changed) fails the run
//! like a "more" does; so does a static forbid removed or changed while
//! permit templates exist (it may have stopped a link's grant).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use cedar_policy::{Effect, PolicySet, RequestEnv, Schema};
use cedar_policy_symcc::err::Error as SymccError;
use cedar_policy_symcc::{CompiledPolicy, CompiledPolicySet};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::analysis::counterexample::Counterexample;
use crate::analysis::solver::{runtime, solver_error, Prover, SolverArgs};
use crate::analysis::{env_label, request_envs, static_policies};
use crate::engine::{PackSources, PolicyPack, Verdict};
use crate::paths::DEFAULT_SCHEMA;

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffCommand {
    /// Folder of `*.cedar` files before the change.
    #[arg(value_name = "OLD_DIR")]
    old: PathBuf,
    /// Folder of `*.cedar` files after the change.
    #[arg(value_name = "NEW_DIR")]
    new: PathBuf,
    /// Schema file or folder both policy sets are validated against (NEW's
    /// schema when `--old-schema` gives OLD's).
    #[arg(long, default_value = DEFAULT_SCHEMA)]
    schema: PathBuf,
    /// OLD's schema, when the change may have touched the schema too
    /// (action groups and `appliesTo` live there). A schema that differs
    /// from `--schema` is not proved: the run fails (exit 1) unless
    /// `--allow-more`.
    #[arg(long, value_name = "PATH")]
    old_schema: Option<PathBuf>,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
    format: DiffFormat,
    /// Exit 0 even when NEW permits requests OLD denies (a widening a
    /// reviewer has accepted).
    #[arg(long)]
    allow_more: bool,
    /// Also write each counterexample into DIR as `more-N.request.json` and
    /// `more-N.entities.json` (`less-N...` for what NEW stops permitting),
    /// ready for `curl -d @...` and `serve --entities`.
    #[arg(long, value_name = "DIR")]
    write_counterexamples: Option<PathBuf>,
    #[command(flatten)]
    solver: SolverArgs,
}

/// Report formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DiffFormat {
    /// For people: the request types that changed, with counterexamples.
    Human,
    /// For tools: every request type, its change and counterexamples.
    Json,
}

/// NEW permits nothing OLD denied (or `--allow-more` accepts it).
pub const EXIT_NO_MORE: i32 = 0;
/// NEW permits something OLD denied, or that could not be ruled out.
pub const EXIT_MORE: i32 = 1;
/// A policy folder or the schema is invalid, or the solver failed.
pub const EXIT_INVALID: i32 = 2;

/// How NEW's permissions compare with OLD's for one request type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Proved: the same decision on every request and entity data.
    Same,
    /// NEW permits some requests OLD denies, and nothing less.
    More,
    /// NEW denies some requests OLD permits, and nothing more.
    Less,
    /// Both.
    MoreAndLess,
    /// The solver gave up (timeout) on at least one direction.
    Unknown,
}

impl Change {
    fn name(self) -> &'static str {
        match self {
            Self::Same => "same",
            Self::More => "more",
            Self::Less => "less",
            Self::MoreAndLess => "more and less",
            Self::Unknown => "unknown",
        }
    }

    /// Whether NEW may permit something OLD did not.
    pub fn may_grant_more(self) -> bool {
        matches!(self, Self::More | Self::MoreAndLess | Self::Unknown)
    }
}

/// One direction's answer: proved none, found one, or unknown.
#[derive(Debug, Clone)]
pub enum Finding {
    /// Proved: no such request.
    None,
    /// A request and data where the decisions differ.
    Found(Box<Flip>),
    /// The solver did not decide.
    Unknown,
}

/// A counterexample and what the engine decides on it under each pack.
#[derive(Debug, Clone)]
pub struct Flip {
    /// The request and entities.
    pub example: Counterexample,
    /// The engine's verdict with OLD (or why it could not decide).
    pub old: Result<Verdict, String>,
    /// The engine's verdict with NEW.
    pub new: Result<Verdict, String>,
}

/// The comparison of one request type.
#[derive(Debug, Clone)]
pub struct TypeDiff {
    /// Principal type.
    pub principal: String,
    /// Action uid.
    pub action: String,
    /// Resource type.
    pub resource: String,
    /// Requests NEW allows and OLD denies.
    pub more: Finding,
    /// Requests OLD allows and NEW denies.
    pub less: Finding,
    /// Forbids of OLD that may error on this request type and that NEW no
    /// longer has (removed or changed). The sidecar denies where a forbid
    /// errors (fail closed); Cedar, whose semantics the proof follows,
    /// skips it. So NEW may allow what the sidecar denied under OLD, and
    /// "no more" is not proved.
    pub erroring_forbids_gone: Vec<String>,
}

impl TypeDiff {
    /// The overall change.
    pub fn change(&self) -> Change {
        if !self.erroring_forbids_gone.is_empty() && !matches!(self.more, Finding::Found(_)) {
            return Change::Unknown;
        }
        match (&self.more, &self.less) {
            (Finding::Unknown, _) | (_, Finding::Unknown) => Change::Unknown,
            (Finding::None, Finding::None) => Change::Same,
            (Finding::Found(_), Finding::None) => Change::More,
            (Finding::None, Finding::Found(_)) => Change::Less,
            (Finding::Found(_), Finding::Found(_)) => Change::MoreAndLess,
        }
    }
}

/// A template that differs between the two folders (templates are compared
/// as text, not proved: their links are data).
#[derive(Debug, Clone)]
pub struct TemplateChange {
    /// Template id.
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: Effect,
    /// `added`, `removed` or `changed`.
    pub kind: &'static str,
}

impl TemplateChange {
    /// Whether links of NEW may grant what links of OLD did not.
    pub fn may_grant_more(&self) -> bool {
        matches!(
            (self.kind, self.effect),
            ("changed", _) | ("added", Effect::Permit) | ("removed", Effect::Forbid)
        )
    }
}

/// The whole comparison.
#[derive(Debug, Clone)]
pub struct DiffReport {
    /// One entry per request type the schema allows.
    pub types: Vec<TypeDiff>,
    /// Templates that differ.
    pub templates: Vec<TemplateChange>,
    /// Static forbids of OLD that NEW no longer has (removed or changed)
    /// while NEW has permit templates: links are outside the proof, so a
    /// grant such a forbid stopped may now go through.
    pub unguarded_links: Vec<String>,
}

impl DiffReport {
    /// Whether NEW may permit something OLD did not.
    pub fn may_grant_more(&self) -> bool {
        self.types.iter().any(|t| t.change().may_grant_more())
            || self.templates.iter().any(TemplateChange::may_grant_more)
            || !self.unguarded_links.is_empty()
    }

    fn count(&self, change: Change) -> usize {
        self.types.iter().filter(|t| t.change() == change).count()
    }
}

/// Runs `diff`; returns the exit code.
pub fn run_diff(args: &DiffCommand) -> i32 {
    let load = |dir: &Path, schema: &Path| {
        PolicyPack::load(&PackSources {
            policies: dir.to_path_buf(),
            schema: schema.to_path_buf(),
        })
    };
    let old_schema = args.old_schema.as_deref().unwrap_or(&args.schema);
    let (old, new) = match (load(&args.old, old_schema), load(&args.new, &args.schema)) {
        (Ok(old), Ok(new)) => (old, new),
        (old, new) => {
            for problems in [old.err(), new.err()].into_iter().flatten() {
                eprint!("{}", problems.render());
            }
            return EXIT_INVALID;
        }
    };
    // One schema is what the proof compares under; a changed one (an
    // action moved into a group, a new `appliesTo` pair) can grant more
    // with the very same policies.
    if old.schema_version != new.schema_version {
        if args.allow_more {
            eprintln!("the schema changed: not proved; accepted (--allow-more)");
            return EXIT_NO_MORE;
        }
        eprintln!(
            "error: the schema changed between OLD and NEW: action groups and `appliesTo` live there, so the same policies may permit more; diff proves policy changes under one schema. Review the schema change (then pass --allow-more), and diff the policies under the new schema alone."
        );
        return EXIT_MORE;
    }
    let report = match diff_packs(&old, &new, &args.solver) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_INVALID;
        }
    };
    if let Some(dir) = &args.write_counterexamples {
        if let Err(message) = write_counterexamples(&report, dir) {
            eprintln!("error: {message}");
            return EXIT_INVALID;
        }
    }
    let text = match args.format {
        DiffFormat::Human => render_human(&report, args.write_counterexamples.as_deref()),
        DiffFormat::Json => format!("{:#}\n", render_json(&report)),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if !report.may_grant_more() {
        return EXIT_NO_MORE;
    }
    if args.allow_more {
        eprintln!("the new policies may permit more (a request type is \"more\" or could not be proved); accepted (--allow-more)");
        EXIT_NO_MORE
    } else {
        eprintln!(
            "error: the new policies may permit requests the old ones deny ({} request types, {} templates, {} forbids); review, then pass --allow-more to accept",
            report.types.iter().filter(|t| t.change().may_grant_more()).count(),
            report.templates.iter().filter(|t| t.may_grant_more()).count(),
            report.unguarded_links.len(),
        );
        EXIT_MORE
    }
}

/// Compares two packs validated against the same schema.
pub fn diff_packs(
    old: &PolicyPack,
    new: &PolicyPack,
    solver: &SolverArgs,
) -> Result<DiffReport, String> {
    let old_set = static_policies(&old.files.set)?;
    let new_set = static_policies(&new.files.set)?;
    let schema = &new.schema;
    let runtime = runtime()?;
    let types = runtime.block_on(async {
        let mut prover = solver.start()?;
        let mut types = Vec::new();
        for env in request_envs(schema) {
            types.push(compare(&mut prover, &env, schema, &old_set, &new_set, old, new).await?);
        }
        Ok::<_, String>(types)
    })?;
    Ok(DiffReport {
        types,
        templates: template_changes(&old.files.set, &new.files.set),
        unguarded_links: unguarded_links(&old_set, &new.files.set),
    })
}

/// Cedar's JSON form of a policy or template, annotations aside: equal for
/// the same rule under another id or in another file.
fn shape(json: Option<Value>) -> Option<Value> {
    json.map(|mut json| {
        if let Some(fields) = json.as_object_mut() {
            fields.remove("annotations");
        }
        json
    })
}

/// OLD's static forbids that NEW lacks, when NEW links permit templates.
fn unguarded_links(old_static: &PolicySet, new: &PolicySet) -> Vec<String> {
    if !new.templates().any(|t| t.effect() == Effect::Permit) {
        return Vec::new();
    }
    let kept: Vec<Value> = new
        .policies()
        .filter(|p| p.effect() == Effect::Forbid && p.template_id().is_none())
        .filter_map(|p| shape(p.to_json().ok()))
        .collect();
    let mut gone: Vec<String> = old_static
        .policies()
        .filter(|p| p.effect() == Effect::Forbid)
        .filter(|p| shape(p.to_json().ok()).is_none_or(|json| !kept.contains(&json)))
        .map(|p| p.id().to_string())
        .collect();
    gone.sort();
    gone
}

async fn compare(
    prover: &mut Prover,
    env: &RequestEnv,
    schema: &Schema,
    old_set: &PolicySet,
    new_set: &PolicySet,
    old: &PolicyPack,
    new: &PolicyPack,
) -> Result<TypeDiff, String> {
    let compile = |set: &PolicySet| {
        CompiledPolicySet::compile(set, env, schema).map_err(|error| {
            format!(
                "cannot compile the policies for {}: {error}",
                env_label(env)
            )
        })
    };
    let old_compiled = compile(old_set)?;
    let new_compiled = compile(new_set)?;
    let more = prover
        .check_implies_with_counterexample_opt(&new_compiled, &old_compiled)
        .await;
    let more = finding(more, schema, old, new, env)?;
    let less = prover
        .check_implies_with_counterexample_opt(&old_compiled, &new_compiled)
        .await;
    let less = finding(less, schema, old, new, env)?;
    let erroring_forbids_gone =
        erroring_forbids_gone(prover, env, schema, old_set, new_set).await?;
    Ok(TypeDiff {
        principal: env.principal().to_string(),
        action: env.action().to_string(),
        resource: env.resource().to_string(),
        more,
        less,
        erroring_forbids_gone,
    })
}

/// OLD's forbids that NEW does not have (the same rule under any id counts
/// as kept) and that may error on requests of `env`: where one errors, the
/// sidecar denied under OLD, which the proof (Cedar skips an erroring
/// forbid) cannot see. A forbid the solver cannot clear counts as one that
/// may error.
async fn erroring_forbids_gone(
    prover: &mut Prover,
    env: &RequestEnv,
    schema: &Schema,
    old_set: &PolicySet,
    new_set: &PolicySet,
) -> Result<Vec<String>, String> {
    let kept: Vec<Value> = new_set
        .policies()
        .filter(|p| p.effect() == Effect::Forbid)
        .filter_map(|p| shape(p.to_json().ok()))
        .collect();
    let mut gone = Vec::new();
    for forbid in old_set.policies().filter(|p| p.effect() == Effect::Forbid) {
        if shape(forbid.to_json().ok()).is_some_and(|json| kept.contains(&json)) {
            continue;
        }
        let never_errors = match CompiledPolicy::compile(forbid, env, schema) {
            Ok(compiled) => matches!(prover.check_never_errors_opt(&compiled).await, Ok(true)),
            Err(_) => false,
        };
        if !never_errors {
            gone.push(forbid.id().to_string());
        }
    }
    gone.sort();
    Ok(gone)
}

/// An implication query's answer: `None` proves it; a counterexample is
/// decided again by the engine under both packs.
fn finding(
    answer: Result<Option<cedar_policy_symcc::Env>, SymccError>,
    schema: &Schema,
    old: &PolicyPack,
    new: &PolicyPack,
    env: &RequestEnv,
) -> Result<Finding, String> {
    match answer {
        Ok(None) => Ok(Finding::None),
        Ok(Some(model)) => {
            let example = Counterexample::from_env(&model, schema)?;
            let old = example.decide(old);
            let new = example.decide(new);
            Ok(Finding::Found(Box::new(Flip { example, old, new })))
        }
        Err(SymccError::SolverUnknown) => Ok(Finding::Unknown),
        Err(error) => Err(format!(
            "the solver failed on {}: {}",
            env_label(env),
            solver_error(&error)
        )),
    }
}

/// Templates added, removed or changed (compared as Cedar's JSON form,
/// annotations aside).
fn template_changes(old: &PolicySet, new: &PolicySet) -> Vec<TemplateChange> {
    let shape = |t: &cedar_policy::Template| shape(t.to_json().ok());
    let mut changes = Vec::new();
    for template in old.templates() {
        let id = template.id().to_string();
        match new.template(template.id()) {
            None => changes.push(TemplateChange {
                id,
                effect: template.effect(),
                kind: "removed",
            }),
            Some(other) if shape(other) != shape(template) || shape(template).is_none() => {
                changes.push(TemplateChange {
                    id,
                    effect: template.effect(),
                    kind: "changed",
                });
            }
            Some(_) => {}
        }
    }
    for template in new.templates() {
        if old.template(template.id()).is_none() {
            changes.push(TemplateChange {
                id: template.id().to_string(),
                effect: template.effect(),
                kind: "added",
            });
        }
    }
    changes.sort_by(|a, b| a.id.cmp(&b.id));
    changes
}

/// The counterexamples in report order, named as `--write-counterexamples`
/// names their files: `more-1`, `less-1`, ...
fn named_flips(report: &DiffReport) -> Vec<(String, &TypeDiff, &Flip)> {
    let (mut more, mut less) = (0, 0);
    let mut out = Vec::new();
    for diff in &report.types {
        if let Finding::Found(flip) = &diff.more {
            more += 1;
            out.push((format!("more-{more}"), diff, &**flip));
        }
        if let Finding::Found(flip) = &diff.less {
            less += 1;
            out.push((format!("less-{less}"), diff, &**flip));
        }
    }
    out
}

fn write_counterexamples(report: &DiffReport, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create `{}`: {error}", dir.display()))?;
    for (name, _, flip) in named_flips(report) {
        for (suffix, value) in [
            ("request", &flip.example.request),
            ("entities", &flip.example.entities),
        ] {
            let path = dir.join(format!("{name}.{suffix}.json"));
            std::fs::write(&path, format!("{value:#}\n"))
                .map_err(|error| format!("cannot write `{}`: {error}", path.display()))?;
        }
    }
    Ok(())
}

fn verdict_text(verdict: &Result<Verdict, String>) -> String {
    match verdict {
        Ok(Verdict::Allow) => "Allow".to_string(),
        Ok(Verdict::Deny) => "Deny".to_string(),
        Err(message) => format!("not decided ({message})"),
    }
}

/// The human report: changed request types with their counterexamples,
/// changed templates, and a summary line.
pub fn render_human(report: &DiffReport, written: Option<&Path>) -> String {
    let mut text = String::new();
    let flips = named_flips(report);
    for diff in &report.types {
        let change = diff.change();
        if change == Change::Same {
            continue;
        }
        text.push_str(&format!(
            "{:<14}{} {} {}\n",
            change.name(),
            diff.principal,
            diff.action,
            diff.resource
        ));
        if !diff.erroring_forbids_gone.is_empty() {
            text.push_str(&format!(
                "  removed or changed forbids that may error: {} (the sidecar denies where a forbid errors; the proof, following Cedar, skips it: NEW may allow there)\n",
                diff.erroring_forbids_gone.join(", ")
            ));
        }
        for (name, _, flip) in flips.iter().filter(|(_, d, _)| std::ptr::eq(*d, diff)) {
            let what = if name.starts_with("more") {
                "NEW permits, OLD denies"
            } else {
                "OLD permits, NEW denies"
            };
            text.push_str(&format!(
                "  {name}: {what}; the engine decides OLD: {}, NEW: {}\n",
                verdict_text(&flip.old),
                verdict_text(&flip.new)
            ));
            match written {
                Some(dir) => text.push_str(&format!(
                    "    {}/{name}.request.json, {}/{name}.entities.json\n",
                    dir.display(),
                    dir.display()
                )),
                None => {
                    text.push_str(&format!("    request:  {}\n", flip.example.request));
                    text.push_str(&format!("    entities: {}\n", flip.example.entities));
                }
            }
        }
    }
    for template in &report.templates {
        text.push_str(&format!(
            "template {} {} `{}`{}\n",
            template.kind,
            effect_name(template.effect),
            template.id,
            if template.may_grant_more() {
                ": its links may grant more (templates are not proved)"
            } else {
                ""
            }
        ));
    }
    for id in &report.unguarded_links {
        text.push_str(&format!(
            "forbid `{id}` removed or changed while permit templates exist: links may grant more (links are not proved)\n"
        ));
    }
    text.push_str(&format!(
        "{} request types: {} same, {} more, {} less, {} more and less, {} unknown\n",
        report.types.len(),
        report.count(Change::Same),
        report.count(Change::More),
        report.count(Change::Less),
        report.count(Change::MoreAndLess),
        report.count(Change::Unknown),
    ));
    text
}

fn effect_name(effect: Effect) -> &'static str {
    match effect {
        Effect::Permit => "permit",
        Effect::Forbid => "forbid",
    }
}

/// The JSON report: every request type with its change and counterexamples.
pub fn render_json(report: &DiffReport) -> Value {
    let finding = |finding: &Finding| match finding {
        Finding::None => Value::Null,
        Finding::Unknown => json!("unknown"),
        Finding::Found(flip) => json!({
            "request": flip.example.request,
            "entities": flip.example.entities,
            "old_decision": verdict_text(&flip.old),
            "new_decision": verdict_text(&flip.new),
        }),
    };
    json!({
        "request_types": report.types.iter().map(|diff| json!({
            "principal": diff.principal,
            "action": diff.action,
            "resource": diff.resource,
            "change": diff.change().name(),
            "more": finding(&diff.more),
            "less": finding(&diff.less),
            "erroring_forbids_gone": diff.erroring_forbids_gone,
        })).collect::<Vec<_>>(),
        "templates": report.templates.iter().map(|t| json!({
            "id": t.id,
            "effect": effect_name(t.effect),
            "change": t.kind,
            "may_grant_more": t.may_grant_more(),
        })).collect::<Vec<_>>(),
        "unguarded_links": report.unguarded_links,
        "may_grant_more": report.may_grant_more(),
    })
}
