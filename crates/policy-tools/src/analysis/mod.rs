//! What `diff` and `check --analyze` share: Cedar's symbolic compiler
//! (`cedar-policy-symcc`) turns policies into SMT-LIB, and an SMT solver
//! proves facts about them over every request and every entity data the
//! schema allows, not only over recorded or tested requests.
//!
//! - [`solver`]: which solver process runs, and the one-thread runtime that
//!   drives Cedar's async compiler;
//! - [`counterexample`]: a solver's model as the sidecar's request and
//!   entities JSON, decided again by the engine;
//! - [`location`]: a policy's `file:line:column`, for warnings.

pub mod counterexample;
pub mod location;
pub mod solver;

use cedar_policy::{PolicySet, RequestEnv, Schema};

/// Every (principal type, action, resource type) the schema allows, in a
/// stable order (action, then principal, then resource) for reports.
pub fn request_envs(schema: &Schema) -> Vec<RequestEnv> {
    let mut envs: Vec<RequestEnv> = schema.request_envs().collect();
    envs.sort_by_cached_key(env_key);
    envs
}

/// `Action::"X"` then principal and resource type names.
fn env_key(env: &RequestEnv) -> (String, String, String) {
    (
        env.action().to_string(),
        env.principal().to_string(),
        env.resource().to_string(),
    )
}

/// A request type as a report names it: `User Action::"Read" Doc`.
pub fn env_label(env: &RequestEnv) -> String {
    format!("{} {} {}", env.principal(), env.action(), env.resource())
}

/// The static policies of a set (templates and their links left out):
/// what the proofs are about.
pub fn static_policies(set: &PolicySet) -> Result<PolicySet, String> {
    PolicySet::from_policies(
        set.policies()
            .filter(|p| p.template_id().is_none())
            .cloned(),
    )
    .map_err(|error| format!("cannot collect the static policies: {error}"))
}
