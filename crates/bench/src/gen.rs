//! Deterministic synthetic entity data in the shape of the shipped schema
//! (`schema/thunk.cedarschema`), for benchmarks and tests at any size.
//!
//! The data is a sequence of orgs of [`ORG_BLOCK`] entities each: the org,
//! its admin roster, API keys, groups (granted environments), org
//! environments, models, MCP servers, OAuth connections, thunks, personal
//! environments, and users (admins on the roster; participants in the org,
//! in one or two groups, some with direct environment grants and API keys).
//! Group 0 of every org has exactly [`BIG_GROUP_MEMBERS`] members, so a
//! benchmark can re-parent a group of that size. The same seed and size give
//! the same entities and requests, byte for byte.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::str::FromStr;

use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use serde_json::{json, Value};

use crate::engine::DecisionRequest;
use crate::entities::StoredEntity;

/// Entities per org. Sizes are rounded up to a whole number of orgs.
pub const ORG_BLOCK: usize = 2_000;
/// Members of group 0 of every org.
pub const BIG_GROUP_MEMBERS: usize = 1_000;

const API_KEYS: usize = 3;
const GROUPS: usize = 30;
const ORG_ENVS: usize = 12;
const MODELS: usize = 40;
const MCP_SERVERS: usize = 10;
const OAUTH: usize = 10;
const THUNKS: usize = 300;
const PERSONAL_ENVS: usize = 100;
const ADMINS: usize = 6;
/// Users fill the rest of the block.
const USERS: usize = ORG_BLOCK
    - 2
    - API_KEYS
    - GROUPS
    - ORG_ENVS
    - MODELS
    - MCP_SERVERS
    - OAUTH
    - THUNKS
    - PERSONAL_ENVS;

/// A small, fast, seedable generator (SplitMix64); good enough to spread
/// data, and ours, so the output never changes with a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// An attribute value: a string or an entity reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenValue {
    /// A string.
    Str(String),
    /// A reference to an entity (type, id).
    Ref(&'static str, String),
}

/// One generated entity, independent of Cedar's types so that it can be
/// written as JSON or built directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenEntity {
    /// Entity type (unqualified: the shipped schema has no namespace).
    pub ty: &'static str,
    /// Entity id.
    pub id: String,
    /// Attributes by name.
    pub attrs: Vec<(&'static str, GenValue)>,
    /// Direct parents (type, id).
    pub parents: Vec<(&'static str, String)>,
}

impl GenEntity {
    fn new(ty: &'static str, id: String) -> Self {
        Self {
            ty,
            id,
            attrs: Vec::new(),
            parents: Vec::new(),
        }
    }

    fn attr(mut self, name: &'static str, value: GenValue) -> Self {
        self.attrs.push((name, value));
        self
    }

    fn parent(mut self, ty: &'static str, id: &str) -> Self {
        self.parents.push((ty, id.to_string()));
        self
    }

    /// The entity in Cedar's entity JSON format.
    pub fn to_json(&self) -> Value {
        let attrs: serde_json::Map<String, Value> = self
            .attrs
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    GenValue::Str(s) => Value::String(s.clone()),
                    GenValue::Ref(ty, id) => json!({ "type": ty, "id": id }),
                };
                ((*name).to_string(), value)
            })
            .collect();
        let parents: Vec<Value> = self
            .parents
            .iter()
            .map(|(ty, id)| json!({ "type": ty, "id": id }))
            .collect();
        json!({
            "uid": { "type": self.ty, "id": self.id },
            "attrs": attrs,
            "parents": parents,
        })
    }

    /// The entity's uid.
    pub fn uid(&self) -> EntityUid {
        uid(self.ty, &self.id)
    }

    /// Builds the stored entity directly (no JSON, no schema pass): the
    /// same entity the JSON path produces, several times faster, for
    /// benchmark set-up. `tests` checks that both paths agree.
    pub fn to_stored(&self) -> Result<StoredEntity, String> {
        let attrs: HashMap<String, RestrictedExpression> = self
            .attrs
            .iter()
            .map(|(name, value)| {
                let expr = match value {
                    GenValue::Str(s) => RestrictedExpression::new_string(s.clone()),
                    GenValue::Ref(ty, id) => RestrictedExpression::new_entity_uid(uid(ty, id)),
                };
                ((*name).to_string(), expr)
            })
            .collect();
        let parents = self.parents.iter().map(|(ty, id)| uid(ty, id)).collect();
        Entity::new(self.uid(), attrs, parents)
            .map_err(|e| e.to_string())
            .and_then(|entity| StoredEntity::new(entity).map_err(|e| e.to_string()))
    }
}

/// Builds a uid of one of the generator's types.
// The generator passes only the schema's fixed, plain type names (string
// literals in this file), which always parse; no input reaches this.
#[allow(clippy::expect_used)]
pub fn uid(ty: &str, id: &str) -> EntityUid {
    let type_name = EntityTypeName::from_str(ty).expect("generator type names are identifiers");
    EntityUid::from_type_name_and_id(type_name, EntityId::new(id))
}

/// A generated data set: the entities and what benchmarks need to know
/// about them.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Every entity, platform singletons first, then org by org.
    pub entities: Vec<GenEntity>,
    /// Number of orgs.
    pub orgs: usize,
    /// The seed it was made from.
    pub seed: u64,
}

/// Generates about `size` entities (rounded up to whole orgs) from `seed`.
pub fn generate(size: usize, seed: u64) -> Dataset {
    let orgs = size.div_ceil(ORG_BLOCK).max(1);
    let mut rng = Rng::new(seed);
    let mut entities = Vec::with_capacity(orgs * ORG_BLOCK);
    entities.push(GenEntity::new("Platform", "thunk".into()));
    entities.push(GenEntity::new("PlatformAdmins", "thunk".into()));
    for org in 0..orgs {
        generate_org(org, &mut rng, &mut entities);
    }
    Dataset {
        entities,
        orgs,
        seed,
    }
}

fn generate_org(org: usize, rng: &mut Rng, out: &mut Vec<GenEntity>) {
    let o = org_id(org);
    let owner = user_id(org, 0);
    // The first block carries the two platform singletons.
    let users = if org == 0 { USERS - 2 } else { USERS };
    out.push(
        GenEntity::new("Org", o.clone())
            .attr("name", GenValue::Str(format!("Org {org}")))
            .attr(
                "sku",
                GenValue::Str(["free", "team", "enterprise"][org % 3].into()),
            )
            .attr("owner", GenValue::Ref("User", owner.clone()))
            .attr("admins", GenValue::Ref("OrgAdmins", o.clone())),
    );
    let mut roster = GenEntity::new("OrgAdmins", o.clone()).parent("Org", &o);
    if org == 0 {
        roster = roster.parent("PlatformAdmins", "thunk");
    }
    out.push(roster);
    for k in 0..API_KEYS {
        out.push(
            GenEntity::new("ApiKey", key_id(org, k))
                .attr("org", GenValue::Ref("Org", o.clone()))
                .attr(
                    "provider",
                    GenValue::Str(["openai", "anthropic", "google"][k % 3].into()),
                ),
        );
    }
    for e in 0..ORG_ENVS {
        out.push(
            GenEntity::new("Environment", env_id(org, e))
                .attr("name", GenValue::Str(format!("env {e}")))
                .attr("org", GenValue::Ref("Org", o.clone())),
        );
    }
    for g in 0..GROUPS {
        let mut group = GenEntity::new("Group", group_id(org, g))
            .attr("name", GenValue::Str(format!("group {g}")))
            .attr("org", GenValue::Ref("Org", o.clone()))
            .parent("Environment", &env_id(org, g % ORG_ENVS));
        if rng.chance(40) {
            group = group.parent(
                "Environment",
                &env_id(org, (g + 1 + rng.below(5)) % ORG_ENVS),
            );
        }
        out.push(group);
    }
    for m in 0..MODELS {
        out.push(
            GenEntity::new("Model", format!("{o}-model-{m}"))
                .attr("name", GenValue::Str(format!("model {m}")))
                .attr("provider", GenValue::Str("openai".into()))
                .attr(
                    "environment",
                    GenValue::Ref("Environment", env_id(org, m % ORG_ENVS)),
                ),
        );
    }
    for s in 0..MCP_SERVERS {
        out.push(GenEntity::new("McpServer", format!("{o}-mcp-{s}")).attr(
            "environment",
            GenValue::Ref("Environment", env_id(org, s % ORG_ENVS)),
        ));
    }
    for c in 0..OAUTH {
        out.push(
            GenEntity::new("OAuthConnection", format!("{o}-oauth-{c}")).attr(
                "environment",
                GenValue::Ref("Environment", env_id(org, c % ORG_ENVS)),
            ),
        );
    }
    for p in 0..PERSONAL_ENVS {
        out.push(
            GenEntity::new("Environment", personal_env_id(org, p))
                .attr("owner", GenValue::Ref("User", user_id(org, ADMINS + p))),
        );
    }
    for t in 0..THUNKS {
        let owner = user_id(org, rng.below(users));
        let environment = if t % 10 == 0 {
            personal_env_id(org, t / 10 % PERSONAL_ENVS)
        } else {
            env_id(org, rng.below(ORG_ENVS))
        };
        out.push(
            GenEntity::new("Thunk", thunk_id(org, t))
                .attr("name", GenValue::Str(format!("thunk {t}")))
                .attr("owner", GenValue::Ref("User", owner))
                .attr("environment", GenValue::Ref("Environment", environment)),
        );
    }
    for u in 0..users {
        let id = user_id(org, u);
        let mut user = GenEntity::new("User", id.clone())
            .attr("email", GenValue::Str(format!("{id}@example.com")));
        if u < ADMINS {
            user = user.parent("OrgAdmins", &o);
        } else {
            user = user.parent("Org", &o);
            if u < ADMINS + BIG_GROUP_MEMBERS {
                user = user.parent("Group", &group_id(org, 0));
            } else {
                user = user.parent("Group", &group_id(org, 1 + rng.below(GROUPS - 1)));
            }
            if rng.chance(30) {
                user = user.parent("Group", &group_id(org, 1 + rng.below(GROUPS - 1)));
            }
            if rng.chance(10) {
                user = user.parent("Environment", &env_id(org, rng.below(ORG_ENVS)));
            }
            if rng.chance(5) {
                user = user.parent("ApiKey", &key_id(org, rng.below(API_KEYS)));
            }
        }
        user.parents.dedup();
        out.push(user);
    }
}

impl Dataset {
    /// Every entity as Cedar entity JSON (an array).
    pub fn to_json(&self) -> Value {
        Value::Array(self.entities.iter().map(GenEntity::to_json).collect())
    }

    /// Writes the entities file as compact JSON, one entity per line.
    pub fn write_json(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(b"[\n")?;
        for (index, entity) in self.entities.iter().enumerate() {
            if index > 0 {
                out.write_all(b",\n")?;
            }
            serde_json::to_writer(&mut *out, &entity.to_json())?;
        }
        out.write_all(b"\n]\n")
    }

    /// Builds every stored entity directly (see [`GenEntity::to_stored`]).
    pub fn to_stored(&self) -> Result<Vec<StoredEntity>, String> {
        self.entities.iter().map(GenEntity::to_stored).collect()
    }

    /// The users in group 0 of `org` ([`BIG_GROUP_MEMBERS`] of them).
    pub fn big_group_members(&self, org: usize) -> impl Iterator<Item = &GenEntity> {
        let group = group_id(org, 0);
        self.entities.iter().filter(move |e| {
            e.ty == "User"
                && e.parents
                    .iter()
                    .any(|(ty, id)| *ty == "Group" && *id == group)
        })
    }

    /// The entity with this type and id, if generated.
    pub fn find(&self, ty: &str, id: &str) -> Option<&GenEntity> {
        self.entities.iter().find(|e| e.ty == ty && e.id == id)
    }

    /// `count` decision requests over this data (see [`requests_for_orgs`]).
    pub fn requests(&self, count: usize, seed: u64) -> Vec<DecisionRequest> {
        requests_for_orgs(self.orgs, count, seed)
    }
}

/// `count` decision requests for data of `orgs` orgs, spread over every org
/// and over the schema's actions (a mix of Allows and Denies), from `seed`.
/// Only the number of orgs matters, so a process that loaded the data from
/// a file can make the same requests.
pub fn requests_for_orgs(orgs: usize, count: usize, seed: u64) -> Vec<DecisionRequest> {
    let mut rng = Rng::new(seed);
    (0..count).map(|_| request(orgs, &mut rng)).collect()
}

fn request(orgs: usize, rng: &mut Rng) -> DecisionRequest {
    let org = rng.below(orgs);
    let users = if org == 0 { USERS - 2 } else { USERS };
    // Mostly participants, sometimes admins.
    let user = uid("User", &user_id(org, rng.below(users)));
    let action = |name: &str| uid("Action", name);
    let (act, resource, context) = match rng.below(8) {
        0 => (
            action("UseEnvironment"),
            uid("Environment", &env_id(org, rng.below(ORG_ENVS))),
            None,
        ),
        1 => (
            action("UseModel"),
            uid(
                "Model",
                &format!("{}-model-{}", org_id(org), rng.below(MODELS)),
            ),
            None,
        ),
        2 => (
            action(["RunThunk", "EditThunk"][rng.below(2)]),
            uid("Thunk", &thunk_id(org, rng.below(THUNKS))),
            None,
        ),
        3 => (
            action("MoveThunk"),
            uid("Thunk", &thunk_id(org, rng.below(THUNKS))),
            Some(
                json!({ "targetEnvironment": { "type": "Environment", "id": env_id(org, rng.below(ORG_ENVS)) } }),
            ),
        ),
        4 => (
            action(["AddMember", "RemoveMember", "AppointAdmin"][rng.below(3)]),
            uid("Org", &org_id(org)),
            Some(json!({ "target": { "type": "User", "id": user_id(org, rng.below(users)) } })),
        ),
        5 => (
            action("UseApiKey"),
            uid("ApiKey", &key_id(org, rng.below(API_KEYS))),
            None,
        ),
        6 => (
            action("UseEnvironment"),
            uid(
                "Environment",
                &personal_env_id(org, rng.below(PERSONAL_ENVS)),
            ),
            None,
        ),
        _ => (action("ReadOrg"), uid("Org", &org_id(org)), None),
    };
    // A few requests come from an org admin, so Allows of every kind occur.
    let principal = if rng.chance(15) {
        uid("User", &user_id(org, rng.below(ADMINS)))
    } else {
        user
    };
    DecisionRequest {
        principal,
        action: act,
        resource,
        context,
        entities: Vec::new(),
    }
}

/// One decision request as the HTTP API takes it (`{"principal": ...}`).
pub fn request_json(request: &DecisionRequest) -> Value {
    let wire = |uid: &EntityUid| json!({ "type": uid.type_name().to_string(), "id": uid.id().unescaped() });
    let mut body = json!({
        "principal": wire(&request.principal),
        "action": wire(&request.action),
        "resource": wire(&request.resource),
    });
    if let (Some(context), Some(map)) = (&request.context, body.as_object_mut()) {
        map.insert("context".to_string(), context.clone());
    }
    body
}

/// The id of org `org`.
pub fn org_id(org: usize) -> String {
    format!("org{org}")
}

/// The id of user `u` of org `org` (user 0 owns the org).
pub fn user_id(org: usize, u: usize) -> String {
    let mut id = String::with_capacity(16);
    let _ = write!(id, "org{org}-user-{u}");
    id
}

/// The id of group `g` of org `org`.
pub fn group_id(org: usize, g: usize) -> String {
    format!("org{org}-group-{g}")
}

/// The id of org environment `e` of org `org`.
pub fn env_id(org: usize, e: usize) -> String {
    format!("org{org}-env-{e}")
}

fn personal_env_id(org: usize, p: usize) -> String {
    format!("org{org}-personal-{p}")
}

fn key_id(org: usize, k: usize) -> String {
    format!("org{org}-key-{k}")
}

/// The id of thunk `t` of org `org`.
pub fn thunk_id(org: usize, t: usize) -> String {
    format!("org{org}-thunk-{t}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::engine::{decide, PackSources, PolicyPack, Verdict};
    use crate::entities::{parse_entities_json, EntityMap};

    fn shipped_pack() -> PolicyPack {
        let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        PolicyPack::load(&PackSources {
            policies: root.join("policies"),
            schema: root.join("schema"),
        })
        .expect("the shipped pack loads")
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let write = |seed| {
            let mut out = Vec::new();
            generate(4_000, seed).write_json(&mut out).expect("write");
            out
        };
        assert_eq!(write(7), write(7));
        assert_ne!(write(7), write(8));
    }

    #[test]
    fn sizes_are_whole_orgs_and_uids_unique() {
        let data = generate(10_000, 1);
        assert_eq!(data.entities.len(), 10_000);
        assert_eq!(data.orgs, 5);
        let uids: std::collections::HashSet<_> = data.entities.iter().map(GenEntity::uid).collect();
        assert_eq!(uids.len(), 10_000);
        assert_eq!(generate(1, 1).entities.len(), ORG_BLOCK);
    }

    #[test]
    fn generated_data_conforms_to_the_shipped_schema_and_both_paths_agree() {
        let pack = shipped_pack();
        let data = generate(4_000, 3);
        let values = match data.to_json() {
            Value::Array(values) => values,
            other => panic!("not an array: {other}"),
        };
        let parsed = parse_entities_json(values, &pack.schema).expect("schema-valid");
        let direct = data.to_stored().expect("direct build");
        assert_eq!(parsed.len(), direct.len());
        for (a, b) in parsed.iter().zip(&direct) {
            assert_eq!(a, b, "entity {}", a.uid());
        }
    }

    #[test]
    fn group_zero_has_the_big_group_size() {
        let data = generate(4_000, 5);
        assert_eq!(data.big_group_members(1).count(), BIG_GROUP_MEMBERS);
    }

    #[test]
    fn requests_are_valid_and_decide_both_ways() {
        let pack = shipped_pack();
        let data = generate(4_000, 9);
        let store = EntityMap::from_entities(data.to_stored().expect("build"), 1);
        let mut allows = 0;
        let mut denies = 0;
        for request in data.requests(400, 11) {
            let decision = decide(
                &pack,
                &store,
                &request,
                &crate::engine::RequestEntityPolicy::default(),
            )
            .expect("valid request");
            assert!(decision.errors.is_empty(), "{:?}", decision.errors);
            match decision.verdict {
                Verdict::Allow => allows += 1,
                Verdict::Deny => denies += 1,
            }
        }
        assert!(
            allows > 40 && denies > 40,
            "allows {allows}, denies {denies}"
        );
    }
}
