//! `check --analyze`: facts about a pack proved over every request and
//! entity data the schema allows (Cedar's symbolic compiler and an SMT
//! solver, see [`crate::analysis`]), reported as warnings:
//!
//! - a policy that can never apply (no request of any type satisfies it);
//! - a permit shadowed by forbids (every request it permits is forbidden);
//! - a policy that duplicates another (same effect, and it applies to
//!   exactly the same requests).
//!
//! Static policies only: a template decides nothing until linked, and its
//! links are data.

use std::collections::BTreeSet;

use cedar_policy::{Effect, Policy, PolicySet};
use cedar_policy_symcc::{CompiledPolicy, CompiledPolicySet};
use clap::Args;

use crate::analysis::location::policy_location;
use crate::analysis::solver::{runtime, solver_error, Prover, SolverArgs};
use crate::analysis::{env_label, request_envs};
use crate::engine::PolicyPack;

/// `check`'s analysis flags.
#[derive(Debug, Clone, Args)]
pub struct AnalyzeArgs {
    /// Also prove, for every request the schema allows, which policies can
    /// never apply, which permits forbids shadow, and which policies
    /// duplicate others (needs an SMT solver, see --solver).
    #[arg(long)]
    pub analyze: bool,
    /// With --analyze: exit 1 when the analysis warns.
    #[arg(long, requires = "analyze")]
    pub deny_warnings: bool,
    #[command(flatten)]
    pub solver: SolverArgs,
}

/// One finding, about one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `file:line:column` of the policy.
    pub location: String,
    /// The policy's id.
    pub policy: String,
    /// What was proved.
    pub message: String,
}

impl Warning {
    /// `warning: file:line:column: policy `id` ...`.
    pub fn render(&self) -> String {
        format!("warning: {}: {}\n", self.location, self.message)
    }
}

/// A static policy and the request types where it can apply, each with the
/// policy compiled for it.
struct Applies<'a> {
    policy: &'a Policy,
    id: String,
    compiled: Vec<(usize, CompiledPolicy)>,
    /// A forbid that may error on some request: the sidecar denies there
    /// (fail closed), so it is never called useless or a duplicate.
    may_error: bool,
}

impl Applies<'_> {
    fn types(&self) -> BTreeSet<usize> {
        self.compiled.iter().map(|(index, _)| *index).collect()
    }

    fn at(&self, index: usize) -> Option<&CompiledPolicy> {
        self.compiled
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, c)| c)
    }
}

/// Analyses a validated pack; warnings come in file order.
pub fn analyze(pack: &PolicyPack, solver: &SolverArgs) -> Result<Vec<Warning>, String> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut prover = solver.start()?;
        analyze_with(pack, &mut prover).await
    })
}

async fn analyze_with(pack: &PolicyPack, prover: &mut Prover) -> Result<Vec<Warning>, String> {
    let schema = &pack.schema;
    let envs = request_envs(schema);
    let failed = |what: &str, env: usize, error: &cedar_policy_symcc::err::Error| {
        let label = envs.get(env).map(env_label).unwrap_or_default();
        format!("{what} failed for {label}: {}", solver_error(error))
    };
    // In file order, as `check` reports everything else.
    let mut policies = Vec::new();
    for info in pack.files.info.iter().filter(|info| !info.is_template) {
        if let Some(policy) = pack
            .files
            .set
            .policy(&cedar_policy::PolicyId::new(&info.id))
        {
            policies.push(Applies {
                policy,
                id: info.id.clone(),
                compiled: Vec::new(),
                may_error: false,
            });
        }
    }
    for (index, env) in envs.iter().enumerate() {
        for entry in &mut policies {
            let compiled = CompiledPolicy::compile(entry.policy, env, schema)
                .map_err(|error| failed(&format!("compiling `{}`", entry.id), index, &error))?;
            let never = prover
                .check_never_matches_opt(&compiled)
                .await
                .map_err(|error| failed(&format!("analysing `{}`", entry.id), index, &error))?;
            // Where a forbid errors the sidecar denies (Cedar would skip
            // it): one that may error is not one that never applies.
            let errors = entry.policy.effect() == Effect::Forbid
                && !prover
                    .check_never_errors_opt(&compiled)
                    .await
                    .map_err(|error| failed(&format!("analysing `{}`", entry.id), index, &error))?;
            entry.may_error |= errors;
            if !never || errors {
                entry.compiled.push((index, compiled));
            }
        }
    }
    let mut warnings = Vec::new();
    let warn = |warnings: &mut Vec<Warning>, id: &str, message: String| {
        warnings.push(Warning {
            location: policy_location(&pack.files, id),
            policy: id.to_string(),
            message,
        });
    };
    for entry in &policies {
        if entry.compiled.is_empty() {
            warn(
                &mut warnings,
                &entry.id,
                format!(
                    "policy `{}` can never apply: no request the schema allows satisfies its scope and conditions",
                    entry.id
                ),
            );
        }
    }
    for entry in policies
        .iter()
        .filter(|e| e.policy.effect() == Effect::Permit)
    {
        if entry.compiled.is_empty() {
            continue;
        }
        if let Some(forbids) = shadowing_forbids(entry, &policies, &envs, schema, prover).await? {
            warn(
                &mut warnings,
                &entry.id,
                format!(
                    "permit `{}` is shadowed: every request it permits is forbidden (by {})",
                    entry.id,
                    forbids
                        .iter()
                        .map(|id| format!("`{id}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    for (later, entry) in policies.iter().enumerate() {
        for earlier in &policies[..later] {
            if earlier.policy.effect() != entry.policy.effect()
                || earlier.may_error
                || entry.may_error
                || entry.compiled.is_empty()
                || earlier.types() != entry.types()
            {
                continue;
            }
            let mut same = true;
            for index in entry.types() {
                let (Some(a), Some(b)) = (earlier.at(index), entry.at(index)) else {
                    same = false;
                    break;
                };
                same = prover
                    .check_matches_equivalent_opt(a, b)
                    .await
                    .map_err(|error| failed("comparing policies", index, &error))?;
                if !same {
                    break;
                }
            }
            if same {
                warn(
                    &mut warnings,
                    &entry.id,
                    format!(
                        "policy `{}` duplicates `{}` ({}): it applies to exactly the same requests",
                        entry.id,
                        earlier.id,
                        policy_location(&pack.files, &earlier.id)
                    ),
                );
                break;
            }
        }
    }
    // File order (the location sorts by path, then line and column numerically).
    warnings.sort_by_key(|w| location_key(&w.location));
    Ok(warnings)
}

/// The forbids that shadow `permit`, when every request it permits (in
/// every request type where it can apply) is forbidden; `None` otherwise.
async fn shadowing_forbids(
    permit: &Applies<'_>,
    policies: &[Applies<'_>],
    envs: &[cedar_policy::RequestEnv],
    schema: &cedar_policy::Schema,
    prover: &mut Prover,
) -> Result<Option<Vec<String>>, String> {
    let mut shadowing = BTreeSet::new();
    for index in permit.types() {
        let Some(env) = envs.get(index) else {
            return Ok(None);
        };
        let forbids: Vec<&Applies<'_>> = policies
            .iter()
            .filter(|p| p.policy.effect() == Effect::Forbid && p.types().contains(&index))
            .collect();
        if forbids.is_empty() {
            return Ok(None);
        }
        let set = PolicySet::from_policies(
            std::iter::once(permit.policy.clone()).chain(forbids.iter().map(|f| f.policy.clone())),
        )
        .map_err(|error| format!("cannot build a policy set: {error}"))?;
        let compiled = CompiledPolicySet::compile(&set, env, schema).map_err(|error| {
            format!(
                "compiling `{}` with forbids failed for {}: {}",
                permit.id,
                env_label(env),
                solver_error(&error)
            )
        })?;
        let denied = prover
            .check_always_denies_opt(&compiled)
            .await
            .map_err(|error| {
                format!(
                    "analysing `{}` failed for {}: {}",
                    permit.id,
                    env_label(env),
                    solver_error(&error)
                )
            })?;
        if !denied {
            return Ok(None);
        }
        shadowing.extend(forbids.iter().map(|f| f.id.clone()));
    }
    Ok(Some(shadowing.into_iter().collect()))
}

fn location_key(location: &str) -> (String, usize, usize) {
    let mut parts = location.rsplitn(3, ':');
    let column = parts.next().and_then(|c| c.parse().ok());
    let line = parts.next().and_then(|l| l.parse().ok());
    match (line, column, parts.next()) {
        (Some(line), Some(column), Some(path)) => (path.to_string(), line, column),
        _ => (location.to_string(), 0, 0),
    }
}
