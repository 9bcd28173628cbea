//! Property test: indexed search (partial evaluation + the store's indexes,
//! then a decision per candidate) finds exactly what deciding every stored
//! candidate of the type finds, for resource and subject search, over
//! generated data (`gen`), also after changes applied to the store (the
//! indexes are kept up to date change by change).

use std::sync::Arc;

use cedar_policy::EntityUid;
use cedar_sidecar::engine::{
    search, search_every_candidate, PackSources, PolicyPack, SearchRequest, Searched,
};
use cedar_sidecar::entities::{EntityChange, EntityMap};
use cedar_sidecar_bench::gen::{generate, uid, GenEntity, GenValue, Rng};
use proptest::prelude::*;
use serde_json::json;

fn shipped_pack() -> PolicyPack {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    PolicyPack::load(&PackSources {
        policies: root.join("policies"),
        schema: root.join("schema"),
    })
    .unwrap()
}

fn pick<'a>(entities: &'a [GenEntity], ty: &str, rng: &mut Rng) -> &'a GenEntity {
    let of_type: Vec<&GenEntity> = entities.iter().filter(|e| e.ty == ty).collect();
    of_type[rng.below(of_type.len())]
}

/// Changes of the kinds sync applies: grants moved, an environment
/// re-pointed, entities deleted.
fn mutate(entities: &[GenEntity], rng: &mut Rng, store: &mut EntityMap) {
    let mut changes = Vec::new();
    for _ in 0..20 {
        let change = match rng.below(4) {
            0 => {
                let mut user = pick(entities, "User", rng).clone();
                let env = pick(entities, "Environment", rng);
                user.parents.push(("Environment", env.id.clone()));
                if rng.chance(50) {
                    user.parents.retain(|(ty, _)| *ty != "Group");
                }
                EntityChange::Upsert(Arc::new(user.to_stored().unwrap()))
            }
            1 => {
                let mut model = pick(entities, "Model", rng).clone();
                let env = pick(entities, "Environment", rng);
                model.attrs.retain(|(name, _)| *name != "environment");
                model
                    .attrs
                    .push(("environment", GenValue::Ref("Environment", env.id.clone())));
                EntityChange::Upsert(Arc::new(model.to_stored().unwrap()))
            }
            2 => {
                let mut group = pick(entities, "Group", rng).clone();
                let env = pick(entities, "Environment", rng);
                group.parents = vec![("Environment", env.id.clone())];
                EntityChange::Upsert(Arc::new(group.to_stored().unwrap()))
            }
            _ => {
                let ty = ["Environment", "User", "OrgAdmins", "Org"][rng.below(4)];
                EntityChange::Delete(pick(entities, ty, rng).uid())
            }
        };
        changes.push(change);
    }
    let revision = store.revision() + 1;
    store.apply(changes, revision);
}

fn check(pack: &PolicyPack, store: &EntityMap, request: SearchRequest, searched: Searched) {
    let indexed = search(pack, store, &request, &searched);
    let every = search_every_candidate(pack, store, &request, &searched);
    assert_eq!(indexed, every, "{request:?} {searched:?}");
}

fn ty(name: &str) -> cedar_policy::EntityTypeName {
    name.parse().unwrap()
}

fn action(name: &str) -> Option<EntityUid> {
    Some(uid("Action", name))
}

fn searches(pack: &PolicyPack, data: &[GenEntity], store: &EntityMap, rng: &mut Rng) {
    for _ in 0..3 {
        // Admins and the org owner are the first users of each org.
        let principal = if rng.chance(40) {
            Some(uid(
                "User",
                &format!("org{}-user-{}", rng.below(2), rng.below(8)),
            ))
        } else {
            Some(pick(data, "User", rng).uid())
        };
        for (name, resource_type) in [
            ("UseEnvironment", "Environment"),
            ("UseModel", "Model"),
            ("RunThunk", "Thunk"),
            ("UseApiKey", "ApiKey"),
            ("AddApiKey", "Org"),
            ("ReadOrg", "Org"),
        ] {
            let request = SearchRequest {
                principal: principal.clone(),
                action: action(name),
                resource: None,
                context: None,
            };
            check(pack, store, request, Searched::Resources(ty(resource_type)));
        }
        let thunk = Some(pick(data, "Thunk", rng).uid());
        let request = SearchRequest {
            principal: thunk,
            action: action("UseModel"),
            resource: None,
            context: None,
        };
        check(pack, store, request, Searched::Resources(ty("Model")));
        let env = pick(data, "Environment", rng).uid();
        let request = SearchRequest {
            principal: principal.clone(),
            action: action("MoveThunk"),
            resource: None,
            context: Some(
                json!({"targetEnvironment": {"type": "Environment", "id": env.id().unescaped()}}),
            ),
        };
        check(pack, store, request, Searched::Resources(ty("Thunk")));
    }
    for _ in 0..2 {
        let org = Some(pick(data, "Org", rng).uid());
        let env = Some(pick(data, "Environment", rng).uid());
        let model = Some(pick(data, "Model", rng).uid());
        for (name, resource, principal_type) in [
            ("AddApiKey", org.clone(), "User"),
            ("ReadOrg", org.clone(), "User"),
            ("UseEnvironment", env.clone(), "User"),
            ("UseEnvironment", env.clone(), "Thunk"),
            ("UpdateEnvironment", env.clone(), "User"),
            ("UseModel", model.clone(), "User"),
        ] {
            let request = SearchRequest {
                principal: None,
                action: action(name),
                resource,
                context: None,
            };
            check(pack, store, request, Searched::Subjects(ty(principal_type)));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
    #[test]
    fn indexed_search_equals_deciding_every_candidate(seed in any::<u64>()) {
        let pack = shipped_pack();
        let data = generate(4_000, seed);
        let mut store = EntityMap::from_entities(data.to_stored().unwrap(), 1);
        let mut rng = Rng::new(seed ^ 0x5eed);
        searches(&pack, &data.entities, &store, &mut rng);
        mutate(&data.entities, &mut rng, &mut store);
        searches(&pack, &data.entities, &store, &mut rng);
    }
}

/// Narrowing must actually narrow: a participant's environment search
/// decides a handful of candidates, not every environment; an org's
/// administrators are found among its roster, not among every user.
#[test]
fn searches_decide_only_plausible_candidates() {
    use cedar_sidecar::engine::search_candidates;
    let pack = shipped_pack();
    let data = generate(8_000, 7);
    let store = EntityMap::from_entities(data.to_stored().unwrap(), 1);
    let environments = store.of_type(&ty("Environment")).count();
    let users = store.of_type(&ty("User")).count();
    let participant = SearchRequest {
        principal: Some(uid("User", "org1-user-40")),
        action: action("UseEnvironment"),
        resource: None,
        context: None,
    };
    let found = search_candidates(
        &pack,
        &store,
        &participant,
        &Searched::Resources(ty("Environment")),
    );
    assert!(
        found.len() * 20 < environments,
        "{} of {environments}",
        found.len()
    );
    let admins = SearchRequest {
        principal: None,
        action: action("AddApiKey"),
        resource: Some(uid("Org", "org2")),
        context: None,
    };
    let found = search_candidates(&pack, &store, &admins, &Searched::Subjects(ty("User")));
    assert!(!found.is_empty() && found.len() <= 10, "{found:?}");
    assert!(found.len() * 100 < users);
}
