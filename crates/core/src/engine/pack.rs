//! A validated policy pack: policies + schema + what decisions derive from
//! them, built once per load and shared read-only by every request.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use cedar_policy::{Authorizer, Effect, EntityTypeName, EntityUid, PolicyId, PolicySet, Schema};

use super::action_index::ActionIndex;
use super::links::TemplateSlots;
use super::policies::{deref_level, load_policy_dir, validate_policies, PolicyFiles};
use super::request_shape::RequestShapes;
use super::schema::load_schema;
use crate::diagnostics::Problems;
use crate::entities::{
    AttributeReads, EntityShapes, SliceLimits, StoredEntity, TypeSet, UidMap, UidSet,
};

/// Every forbid policy of `set`, static or linked to a template.
fn forbid_ids(set: &PolicySet) -> HashSet<PolicyId> {
    set.policies()
        .filter(|policy| policy.effect() == Effect::Forbid)
        .map(|policy| policy.id().clone())
        .collect()
}

/// The highest dereference level we try before following every reference.
const MAX_SLICE_DEPTH: u32 = 8;

/// Where a pack is loaded from.
#[derive(Debug, Clone)]
pub struct PackSources {
    /// Folder searched recursively for `*.cedar`.
    pub policies: PathBuf,
    /// A schema file or a folder of fragments.
    pub schema: PathBuf,
}

/// Everything a decision needs besides entity data.
pub struct PolicyPack {
    /// The parsed policies with their ids and files.
    pub files: PolicyFiles,
    /// The schema the policies were validated against (strict mode).
    pub schema: Schema,
    /// Action entities from the schema, with action groups as parents.
    pub actions: UidMap<Arc<StoredEntity>>,
    /// How far a request's slice follows attribute references.
    pub slice_limits: SliceLimits,
    /// Entities named literally in policies; slice roots only when the
    /// policies can dereference them (no bounded level validated).
    pub literal_roots: Vec<EntityUid>,
    /// Every entity literal in the policies (a linked template's included),
    /// and every entity a template link names: the ancestors a policy can always name (see
    /// [`crate::entities::Slicer`]).
    pub policy_literals: UidSet,
    /// The attributes and tags the policies can read.
    pub reads: AttributeReads,
    /// Entity types that can have no parents (see [`crate::entities::Slicer`]).
    pub parentless: TypeSet,
    /// Forbid policies: an error in one of these denies (fail closed).
    pub forbids: HashSet<PolicyId>,
    /// What each template's slots accept: template links (data) are
    /// checked against it.
    pub template_slots: TemplateSlots,
    /// Content hash of the policy files and schema files: names the loaded
    /// set in responses, decision logs, metrics and status.
    pub version: String,
    /// Content hash of the schema files alone: when it changes, stored
    /// entities must be re-checked before the pack may be used.
    pub schema_version: String,
    /// Cedar's authorizer (stateless, kept to avoid re-creating it).
    pub authorizer: Authorizer,
    /// For each action, the policies whose action scope can match it.
    pub by_action: ActionIndex,
    /// The schema's entity and action type names by their text, parsed once
    /// (Cedar's parser costs microseconds per name on the request path).
    pub type_names: TypeNames,
    /// What each action accepts, to build plain contexts without Cedar's
    /// JSON parser and plain requests without its schema check.
    pub request_shapes: RequestShapes,
    /// What the schema declares for each entity type, to check entity JSON
    /// without Cedar's parser where it plainly conforms.
    pub entity_shapes: EntityShapes,
}

/// Entity and action type names by their text, under a fast hasher.
pub type TypeNames = HashMap<String, EntityTypeName, foldhash::fast::RandomState>;

impl PolicyPack {
    /// The policies a request for `action` must evaluate: the action's
    /// indexed subset, or the whole set when there is none. Deciding on
    /// either gives the same answer (see [`ActionIndex`]).
    pub fn policies_for(&self, action: &EntityUid) -> &PolicySet {
        self.by_action
            .policies_for(action)
            .unwrap_or(&self.files.set)
    }

    /// Loads, parses and strictly validates a pack from disk.
    pub fn load(sources: &PackSources) -> Result<Self, Problems> {
        let (files, mut problems) = load_policy_dir(&sources.policies);
        let (schema, schema_texts) = match load_schema(&sources.schema) {
            Ok(loaded) => loaded,
            Err(schema_problems) => {
                problems.0.extend(schema_problems.0);
                return Err(problems);
            }
        };
        if !problems.is_empty() {
            // Report validation errors of the files that did parse, too.
            if let Err(invalid) = validate_policies(&files, &schema) {
                problems.0.extend(invalid.0);
            }
            return Err(problems);
        }
        let mut pack = Self::build(files, schema)?;
        pack.schema_version = content_hash(schema_texts.iter().map(|(n, t)| (n.as_str(), &**t)));
        pack.version = content_hash(
            pack.files
                .sources
                .iter()
                .map(|(n, t)| (n.as_str(), &**t))
                .chain(schema_texts.iter().map(|(n, t)| (n.as_str(), &**t))),
        );
        Ok(pack)
    }

    /// Validates parsed policies against a schema and derives the rest.
    pub fn build(files: PolicyFiles, schema: Schema) -> Result<Self, Problems> {
        validate_policies(&files, &schema)?;
        let actions = schema
            .action_entities()
            .map_err(|error| {
                Problems(vec![crate::diagnostics::Problem::new(
                    "schema", None, error,
                )])
            })?
            .iter()
            .map(|entity| {
                StoredEntity::new(entity.clone())
                    .map(|stored| (entity.uid(), Arc::new(stored)))
                    .map_err(|error| {
                        Problems(vec![crate::diagnostics::Problem::message(
                            "schema",
                            error.to_string(),
                        )])
                    })
            })
            .collect::<Result<_, _>>()?;
        let slice_limits = SliceLimits {
            ancestors_beyond_roots: !super::only_roots_tested_for_ancestry(&files.set),
            depth: deref_level(&files, &schema, MAX_SLICE_DEPTH),
        };
        // Templates' own literals (their scopes and conditions) count too:
        // `policies()` leaves templates out, and a literal nothing names
        // would be sliced away (a linked forbid on `principal in
        // Team::"contractors"` would then never apply).
        let mut literals: Vec<EntityUid> = files
            .set
            .policies()
            .flat_map(|p| p.entity_literals())
            .collect();
        for template in files.set.templates() {
            literals.extend(template_literals(template).map_err(|message| {
                Problems(vec![crate::diagnostics::Problem::message(
                    "policies", message,
                )])
            })?);
        }
        let literal_roots = if slice_limits.depth.is_none() {
            let mut roots = literals.clone();
            roots.sort_by_cached_key(ToString::to_string);
            roots.dedup();
            roots
        } else {
            Vec::new()
        };
        let links = files
            .set
            .policies()
            .flat_map(|p| p.template_links().unwrap_or_default().into_values());
        let policy_literals = literals.into_iter().chain(links).collect();
        let by_action = ActionIndex::build(&files.set, &actions);
        let type_names = schema
            .entity_types()
            .cloned()
            .chain(actions.keys().map(|uid| uid.type_name().clone()))
            .map(|name| (name.to_string(), name))
            .collect();
        let reads = super::reads::policy_reads(&files.set);
        // Types declared here (not `external`) whose entities the schema
        // allows no parents.
        let external: HashSet<&EntityTypeName> = schema.external_entity_types().collect();
        let parentless = schema
            .entity_types()
            .filter(|ty| !external.contains(ty))
            .filter(|ty| schema.ancestors(ty).is_some_and(|mut a| a.next().is_none()))
            .cloned()
            .collect();
        let request_shapes = RequestShapes::new(&schema, actions.keys());
        let entity_shapes = EntityShapes::new(&schema);
        // From the policy set itself, by effect: a template-linked forbid
        // (not a file entry) must fail closed like a static one.
        let forbids = forbid_ids(&files.set);
        let template_slots = TemplateSlots::build(&files.set, &schema, &actions);
        let version = content_hash(files.sources.iter().map(|(n, t)| (n.as_str(), &**t)));
        Ok(Self {
            version,
            schema_version: String::new(),
            files,
            schema,
            actions,
            slice_limits,
            literal_roots,
            policy_literals,
            reads,
            parentless,
            forbids,
            template_slots,
            authorizer: Authorizer::new(),
            by_action,
            type_names,
            request_shapes,
            entity_shapes,
        })
    }
}

/// `sha256:` + the first 16 hex digits of a hash over sorted (name, text) pairs.
fn content_hash<'a>(files: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    use sha2::{Digest, Sha256};
    let mut files: Vec<(&str, &str)> = files.collect();
    files.sort_unstable();
    let mut hasher = Sha256::new();
    for (name, text) in files {
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The repository's shipped pack, for unit tests across the crate.
/// The entity literals a template names (scope and condition), without its
/// slots: read from a link of the template whose slots hold a placeholder
/// (an id no data would use; Cedar gives literals for policies, not
/// templates).
fn template_literals(template: &cedar_policy::Template) -> Result<Vec<EntityUid>, String> {
    let placeholder = EntityUid::from_type_name_and_id(
        "CedarSidecarSlot".parse().map_err(|e| {
            format!(
                "cannot read the literals of template `{}`: {e}",
                template.id()
            )
        })?,
        cedar_policy::EntityId::new("\u{0}slot"),
    );
    let values = template
        .slots()
        .map(|slot| (slot.clone(), placeholder.clone()))
        .collect();
    let mut set = cedar_policy::PolicySet::new();
    let probe = cedar_policy::PolicyId::new("literals-probe");
    let fail = |e: &dyn std::fmt::Display| {
        format!(
            "cannot read the literals of template `{}`: {e}",
            template.id()
        )
    };
    set.add_template(template.clone()).map_err(|e| fail(&e))?;
    set.link(template.id().clone(), probe.clone(), values)
        .map_err(|e| fail(&e))?;
    let linked = set
        .policy(&probe)
        .ok_or_else(|| fail(&"the probe link is missing"))?;
    Ok(linked
        .entity_literals()
        .into_iter()
        .filter(|uid| *uid != placeholder)
        .collect())
}

#[cfg(test)]
#[allow(clippy::expect_used)]
pub(crate) fn shipped_pack() -> PolicyPack {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    PolicyPack::load(&PackSources {
        policies: root.join("policies"),
        schema: root.join("schema"),
    })
    .expect("the shipped pack loads")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn types_the_schema_gives_no_parent_types_are_parentless() {
        let pack = shipped_pack();
        let mut parentless: Vec<String> = pack.parentless.iter().map(ToString::to_string).collect();
        parentless.sort();
        let expected = [
            "ApiKey",
            "Environment",
            "McpServer",
            "Model",
            "OAuthConnection",
            "Org",
            "Platform",
            "PlatformAdmins",
            "Thunk",
        ];
        assert_eq!(parentless, expected);
    }

    #[test]
    fn a_forbid_linked_to_a_template_is_a_forbid() {
        use cedar_policy::{Policy, SlotId, Template};
        use std::str::FromStr;
        let mut set = PolicySet::new();
        let template = Template::parse(
            Some(PolicyId::new("deny-one")),
            "forbid (principal == ?principal, action, resource);",
        )
        .unwrap();
        set.add_template(template).unwrap();
        let permit = Policy::parse(
            Some(PolicyId::new("all")),
            "permit (principal, action, resource);",
        )
        .unwrap();
        set.add(permit).unwrap();
        let pete = EntityUid::from_str(r#"User::"pete""#).unwrap();
        set.link(
            PolicyId::new("deny-one"),
            PolicyId::new("deny-pete"),
            [(SlotId::principal(), pete)].into_iter().collect(),
        )
        .unwrap();
        let forbids = forbid_ids(&set);
        assert_eq!(forbids, [PolicyId::new("deny-pete")].into_iter().collect());
    }
}
