//! Property test: deciding on the per-request slice gives exactly what Cedar
//! decides with the whole store in one `Entities`, over generated graphs
//! (users in nested groups in orgs, attributes pointing across the graph,
//! dangling references and cycles through attributes). The policies test
//! `in` against every kind of thing a policy can name: literals in scopes
//! and in conditions, attributes, sets in attributes and in the context.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use cedar_policy::{Authorizer, Context, Decision as CedarDecision, Entities, Entity, Request};
use cedar_sidecar::engine::{decide, parse_policy_texts, DecisionRequest, PolicyPack, Verdict};
use cedar_sidecar::entities::{EntityMap, StoredEntity};
use cedar_sidecar::state::Snapshot;
use proptest::prelude::*;
use serde_json::{json, Value};

const SCHEMA: &str = r#"
entity Org { tier: Long };
entity Group in [Group, Org] { lead?: User, org?: Org };
entity User in [Group, Org] { manager?: User, level: Long, home?: Group };
entity Doc in [Group] { owner: User, team?: Group, meta: { reviewer: User }, readers?: Set<Group> };
action read appliesTo { principal: User, resource: Doc, context: { via?: Group, among?: Set<Group> } };
"#;

const POLICIES: &str = r#"
@id("team-members-read")
permit (principal, action, resource) when { resource has team && principal in resource.team };
@id("senior-staff-of-o0")
permit (principal, action, resource in Org::"o0") when { principal.level > 2 };
@id("managers-of-owners-read")
permit (principal, action, resource) when { resource.owner has manager && resource.owner.manager == principal };
@id("home-group-docs")
permit (principal, action, resource) when { principal has home && resource in principal.home };
@id("via-context-group")
permit (principal, action, resource) when { context has via && principal in context.via };
@id("reviewers-manager-reads")
permit (principal, action, resource) when { resource.meta.reviewer has manager && resource.meta.reviewer.manager == principal };
@id("owners-home-lead-reads")
permit (principal, action, resource) when { resource.owner has home && resource.owner.home has lead && resource.owner.home.lead == principal };
@id("no-reading-down-in-g0")
forbid (principal in Group::"g0", action, resource) when { resource.owner.level < principal.level };
@id("owners-home-inside-readers-home")
permit (principal, action, resource) when { resource.owner has home && principal has home && resource.owner.home in principal.home };
@id("listed-readers")
permit (principal, action, resource) when { resource has readers && principal in resource.readers };
@id("context-groups")
permit (principal, action, resource) when { context has among && principal in context.among };
@id("level-one-in-g1")
permit (principal, action, resource) when { principal.level == 1 && principal in Group::"g1" && resource in Group::"g2" };
@id("low-tier-lead")
forbid (principal, action, resource) when { principal has home && principal.home has org && principal.home.org.tier < 1 };
"#;

/// A small deterministic generator (xorshift) driven by proptest's seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn uid(ty: &str, id: String) -> Value {
    json!({"type": ty, "id": id})
}

/// Up to three groups (duplicates are fine: Cedar drops them).
fn some_groups(g: &mut Gen, groups: usize) -> Value {
    let count = g.below(4);
    Value::Array(
        (0..count)
            .map(|_| uid("Group", format!("g{}", g.below(groups))))
            .collect(),
    )
}

/// Generates entity JSON for one random world.
fn world(seed: u64) -> (Vec<Value>, usize, usize, usize) {
    let mut g = Gen(seed | 1);
    let orgs = 1 + g.below(3);
    let groups = 1 + g.below(8);
    let users = 1 + g.below(8);
    let docs = 1 + g.below(5);
    // Sometimes point at entities that do not exist.
    let some_user = |g: &mut Gen| uid("User", format!("u{}", g.below(users + 1)));
    let mut out = Vec::new();
    for o in 0..orgs {
        out.push(json!({"uid": uid("Org", format!("o{o}")), "attrs": {"tier": g.below(3)}, "parents": []}));
    }
    for i in 0..groups {
        let mut parents = Vec::new();
        if i > 0 && g.chance(60) {
            parents.push(uid("Group", format!("g{}", g.below(i))));
        }
        if g.chance(50) {
            parents.push(uid("Org", format!("o{}", g.below(orgs))));
        }
        let mut attrs = serde_json::Map::new();
        if g.chance(50) {
            attrs.insert("lead".into(), some_user(&mut g));
        }
        if g.chance(50) {
            attrs.insert("org".into(), uid("Org", format!("o{}", g.below(orgs))));
        }
        out.push(json!({"uid": uid("Group", format!("g{i}")), "attrs": attrs, "parents": parents}));
    }
    for i in 0..users {
        let mut parents = Vec::new();
        for _ in 0..g.below(3) {
            parents.push(uid("Group", format!("g{}", g.below(groups))));
        }
        if g.chance(30) {
            parents.push(uid("Org", format!("o{}", g.below(orgs))));
        }
        let mut attrs = serde_json::Map::new();
        attrs.insert("level".into(), json!(g.below(6)));
        if g.chance(60) {
            attrs.insert("manager".into(), some_user(&mut g));
        }
        if g.chance(60) {
            attrs.insert("home".into(), uid("Group", format!("g{}", g.below(groups))));
        }
        parents.dedup();
        out.push(json!({"uid": uid("User", format!("u{i}")), "attrs": attrs, "parents": parents}));
    }
    for i in 0..docs {
        let mut parents = Vec::new();
        if g.chance(70) {
            parents.push(uid("Group", format!("g{}", g.below(groups))));
        }
        let mut attrs = serde_json::Map::new();
        attrs.insert("owner".into(), some_user(&mut g));
        attrs.insert("meta".into(), json!({"reviewer": some_user(&mut g)}));
        if g.chance(50) {
            attrs.insert("team".into(), uid("Group", format!("g{}", g.below(groups))));
        }
        if g.chance(50) {
            attrs.insert("readers".into(), some_groups(&mut g, groups));
        }
        out.push(json!({"uid": uid("Doc", format!("d{i}")), "attrs": attrs, "parents": parents}));
    }
    (out, groups, users, docs)
}

/// The one policy that tests the ancestry of an entity reached through an
/// attribute; without it, slices give ancestors to roots only.
const NON_ROOT_ANCESTRY: &str = r#"@id("owners-home-inside-readers-home")
permit (principal, action, resource) when { resource.owner has home && principal has home && resource.owner.home in principal.home };"#;

fn pack() -> PolicyPack {
    pack_from(POLICIES)
}

/// The policies without [`NON_ROOT_ANCESTRY`].
fn roots_only_policies() -> String {
    assert!(POLICIES.contains(NON_ROOT_ANCESTRY));
    POLICIES.replace(NON_ROOT_ANCESTRY, "")
}

fn pack_from(policies: &str) -> PolicyPack {
    let (files, problems) = parse_policy_texts([(
        "p.cedar".to_string(),
        "p.cedar".to_string(),
        policies.to_string(),
    )]);
    assert!(problems.is_empty(), "{}", problems.render());
    let schema = cedar_sidecar::engine::parse_schema_text("s.cedarschema".as_ref(), SCHEMA)
        .unwrap_or_else(|p| panic!("{}", p.render()));
    PolicyPack::build(files, schema).unwrap_or_else(|p| panic!("{}", p.render()))
}

/// Cedar with every entity in one `Entities`, plus our fail-closed rule.
fn reference(
    pack: &PolicyPack,
    all: &Entities,
    request: &DecisionRequest,
) -> (Verdict, Vec<String>) {
    let context = Context::from_json_value(
        request.context.clone().unwrap_or(json!({})),
        Some((&pack.schema, &request.action)),
    )
    .unwrap();
    let cedar_request = Request::new(
        request.principal.clone(),
        request.action.clone(),
        request.resource.clone(),
        context,
        Some(&pack.schema),
    )
    .unwrap();
    let response = Authorizer::new().is_authorized(&cedar_request, &pack.files.set, all);
    let forbid_failed = response.diagnostics().errors().any(|error| {
        let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
        pack.forbids.contains(e.policy_id())
    });
    if forbid_failed {
        return (Verdict::Deny, Vec::new());
    }
    let mut reasons: Vec<String> = response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect();
    reasons.sort();
    let verdict = match response.decision() {
        CedarDecision::Allow => Verdict::Allow,
        CedarDecision::Deny => Verdict::Deny,
    };
    (verdict, reasons)
}

fn check_world(policies: &str, seed: u64) -> usize {
    let pack = &pack_from(policies);
    let (json_entities, groups, users, docs) = world(seed);
    let parsed: Vec<Entity> = json_entities
        .iter()
        .map(|v| Entity::from_json_value(v.clone(), Some(&pack.schema)).unwrap())
        .collect();
    let all = Entities::from_entities(parsed.clone(), Some(&pack.schema)).unwrap();
    let snapshot = Snapshot {
        pack: Arc::new(pack_from(policies)),
        entities: EntityMap::from_entities(
            parsed.into_iter().map(|e| StoredEntity::new(e).unwrap()),
            1,
        ),
        pack_loaded_at: SystemTime::now(),
    };
    let mut compared = 0;
    let mut g = Gen(seed.rotate_left(17) | 1);
    for u in 0..users {
        for d in 0..docs {
            let mut context = serde_json::Map::new();
            if g.chance(50) {
                context.insert("via".into(), uid("Group", format!("g{}", g.below(groups))));
            }
            if g.chance(30) {
                context.insert("among".into(), some_groups(&mut g, groups));
            }
            let context = Value::Object(context);
            let request = DecisionRequest {
                principal: format!("User::\"u{u}\"").parse().unwrap(),
                action: "Action::\"read\"".parse().unwrap(),
                resource: format!("Doc::\"d{d}\"").parse().unwrap(),
                context: Some(context),
                entities: Vec::new(),
            };
            let ours = decide(
                &snapshot.pack,
                &snapshot.entities,
                &request,
                &cedar_sidecar::engine::RequestEntityPolicy::default(),
            )
            .unwrap();
            let expected = reference(pack, &all, &request);
            assert_eq!(
                (ours.verdict, ours.reasons.clone()),
                expected,
                "seed {seed}: {request:?}\nentities: {}",
                serde_json::to_string(&json_entities).unwrap()
            );
            compared += 1;
        }
    }
    compared
}

#[test]
fn generated_worlds_need_three_levels() {
    assert_eq!(pack().slice_limits.depth, Some(3));
    assert!(pack().slice_limits.ancestors_beyond_roots);
    assert!(
        !pack_from(&roots_only_policies())
            .slice_limits
            .ancestors_beyond_roots
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn slice_decides_like_the_full_store(seed in any::<u64>()) {
        prop_assert!(check_world(POLICIES, seed) > 0);
        prop_assert!(check_world(&roots_only_policies(), seed) > 0);
    }
}

#[test]
fn many_fixed_seeds_agree() {
    let roots_only = roots_only_policies();
    let mut total = 0;
    let mut by_verdict: HashMap<bool, usize> = HashMap::new();
    for seed in 1..200u64 {
        total += check_world(POLICIES, seed * 7919);
        total += check_world(&roots_only, seed * 7919);
        *by_verdict.entry(seed % 2 == 0).or_default() += 1;
    }
    assert!(total > 1000, "only {total} comparisons");
}
