//! "Which?" questions: the subjects that may do an action on a resource,
//! the resources a subject may act on, the actions a subject may do on a
//! resource. Every result is confirmed by a real [`decide`] against the same
//! snapshot, so a result is an Allow by construction, and searches are as
//! transitive as decisions are (group membership, nested containers).
//!
//! Which entities are worth deciding: Cedar's type-aware partial evaluation
//! with the searched variable unknown ([`partial`]) leaves, for each permit
//! that may apply, a residual condition; [`narrow`] reads from it the
//! entities that can satisfy it through the store's indexes (for instance
//! `User::"ana" in resource.org.admins` becomes the orgs whose roster is an
//! ancestor of ana, then their environments). A residual it cannot read,
//! or a permit that holds for everyone, means every stored entity of the
//! type. Only permits give candidates: a forbid can only take results away,
//! and the decisions apply it. Results are sorted by uid text, so a page is
//! a range of that order. An action search tries each action of the schema
//! that applies to the principal's and resource's types.

pub mod narrow;
pub mod partial;

use cedar_policy::{EntityTypeName, EntityUid};

use super::{decide, DecisionRequest, PolicyPack, RequestEntityPolicy, Verdict};
use crate::entities::EntityMap;
use partial::{partially_evaluate, PartialError, Residuals, Unknown};

/// The fixed parts of a search; the searched one is `None`.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The principal, or `None` for a subject search.
    pub principal: Option<EntityUid>,
    /// The action, or `None` for an action search.
    pub action: Option<EntityUid>,
    /// The resource, or `None` for a resource search.
    pub resource: Option<EntityUid>,
    /// The context record as JSON.
    pub context: Option<serde_json::Value>,
}

/// What is searched for.
#[derive(Debug, Clone)]
pub enum Searched {
    /// Principals of this type.
    Subjects(EntityTypeName),
    /// Resources of this type.
    Resources(EntityTypeName),
    /// Actions.
    Actions,
}

/// Every candidate that `request`, with the searched part filled in, is
/// allowed for, sorted by uid text. A search the schema does not fit (an
/// unknown type, an action that does not apply) finds nothing; it is never
/// an error, and never an Allow the decision would not give.
pub fn search(
    pack: &PolicyPack,
    store: &EntityMap,
    request: &SearchRequest,
    searched: &Searched,
) -> Vec<EntityUid> {
    search_while(pack, store, request, searched, || true).unwrap_or_default()
}

/// Candidates decided between two looks at `go_on`.
const DECISIONS_BETWEEN_CHECKS: usize = 64;

/// [`search`] that asks `go_on` every few decisions and gives up (`None`)
/// when it says no: a search whose caller has gone (its request timed out)
/// stops instead of deciding every remaining candidate on a core that live
/// requests need.
pub fn search_while(
    pack: &PolicyPack,
    store: &EntityMap,
    request: &SearchRequest,
    searched: &Searched,
    go_on: impl Fn() -> bool,
) -> Option<Vec<EntityUid>> {
    let mut candidates = candidates(pack, store, request, searched);
    if !go_on() {
        return None;
    }
    candidates.sort_by_cached_key(ToString::to_string);
    let mut found = Vec::new();
    for (decided, candidate) in candidates.into_iter().enumerate() {
        if decided % DECISIONS_BETWEEN_CHECKS == DECISIONS_BETWEEN_CHECKS - 1 && !go_on() {
            return None;
        }
        if allowed(pack, store, request, searched, &candidate) {
            found.push(candidate);
        }
    }
    Some(found)
}

/// Every stored candidate, each decided: what [`search`] must equal (for
/// tests and for measuring what narrowing saves).
pub fn search_every_candidate(
    pack: &PolicyPack,
    store: &EntityMap,
    request: &SearchRequest,
    searched: &Searched,
) -> Vec<EntityUid> {
    let mut candidates: Vec<EntityUid> = match searched {
        Searched::Subjects(entity_type) | Searched::Resources(entity_type) => store
            .iter()
            .map(|entity| entity.uid())
            .filter(|uid| uid.type_name() == entity_type)
            .collect(),
        Searched::Actions => pack.actions.keys().cloned().collect(),
    };
    candidates.sort_by_cached_key(ToString::to_string);
    candidates
        .into_iter()
        .filter(|candidate| allowed(pack, store, request, searched, candidate))
        .collect()
}

/// The entities worth deciding (a superset of the results): what
/// [`search`] decides, exposed to show what narrowing saves.
pub fn candidates(
    pack: &PolicyPack,
    store: &EntityMap,
    request: &SearchRequest,
    searched: &Searched,
) -> Vec<EntityUid> {
    let (known, unknown, var) = match (searched, &request.principal, &request.resource) {
        (Searched::Actions, _, _) => return applicable_actions(pack, request),
        (Searched::Subjects(ty), _, Some(resource)) => {
            (resource, Unknown::Principal(ty.clone()), "principal")
        }
        (Searched::Resources(ty), Some(principal), _) => {
            (principal, Unknown::Resource(ty.clone()), "resource")
        }
        _ => return Vec::new(),
    };
    let (Unknown::Principal(entity_type) | Unknown::Resource(entity_type)) = &unknown;
    let Some(action) = &request.action else {
        return Vec::new();
    };
    let every = || -> Vec<EntityUid> { store.of_type(entity_type).map(|e| e.uid()).collect() };
    match partially_evaluate(
        pack,
        store,
        known,
        action,
        &unknown,
        request.context.as_ref(),
    ) {
        // Every decision on such a request is refused or denied.
        Err(PartialError::Request(_) | PartialError::NotStored(_)) => Vec::new(),
        Err(PartialError::Evaluation(_)) => every(),
        Ok(Residuals::Decided(cedar_policy::Decision::Deny)) => Vec::new(),
        Ok(Residuals::Decided(cedar_policy::Decision::Allow)) => every(),
        Ok(Residuals::Open(open)) => {
            if open.permit_holds {
                return every();
            }
            let mut found = narrow::Candidates::default();
            for permit in &open.permits {
                match narrow::candidates(store, &pack.entity_shapes, permit, var, entity_type) {
                    Some(some) => found.extend(some),
                    None => return every(),
                }
            }
            found.into_iter().collect()
        }
    }
}

/// The schema's actions that apply to the principal's and the resource's
/// types (the others would be refused).
fn applicable_actions(pack: &PolicyPack, request: &SearchRequest) -> Vec<EntityUid> {
    let (Some(principal), Some(resource)) = (&request.principal, &request.resource) else {
        return Vec::new();
    };
    pack.actions
        .keys()
        .filter(|action| {
            let principals = pack.schema.principals_for_action(action);
            let resources = pack.schema.resources_for_action(action);
            principals.is_some_and(|mut types| types.any(|ty| ty == principal.type_name()))
                && resources.is_some_and(|mut types| types.any(|ty| ty == resource.type_name()))
        })
        .cloned()
        .collect()
}

/// The decision on `request` with `candidate` in the searched place.
fn allowed(
    pack: &PolicyPack,
    store: &EntityMap,
    request: &SearchRequest,
    searched: &Searched,
    candidate: &EntityUid,
) -> bool {
    let (principal, action, resource) = match searched {
        Searched::Subjects(_) => (
            Some(candidate.clone()),
            request.action.clone(),
            request.resource.clone(),
        ),
        Searched::Resources(_) => (
            request.principal.clone(),
            request.action.clone(),
            Some(candidate.clone()),
        ),
        Searched::Actions => (
            request.principal.clone(),
            Some(candidate.clone()),
            request.resource.clone(),
        ),
    };
    let (Some(principal), Some(action), Some(resource)) = (principal, action, resource) else {
        return false;
    };
    let decision = DecisionRequest {
        principal,
        action,
        resource,
        context: request.context.clone(),
        entities: Vec::new(),
    };
    decide(pack, store, &decision, &RequestEntityPolicy::DEFAULT)
        .is_ok_and(|decision| decision.verdict == Verdict::Allow)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::engine::shipped_pack;

    fn uid(text: &str) -> EntityUid {
        text.parse().unwrap()
    }

    #[test]
    fn an_action_that_does_not_apply_finds_nothing() {
        let pack = shipped_pack();
        let store = EntityMap::from_entities([], 1);
        let found = search(
            &pack,
            &store,
            &SearchRequest {
                principal: Some(uid(r#"User::"paula""#)),
                action: None,
                resource: Some(uid(r#"Model::"none""#)),
                context: None,
            },
            &Searched::Actions,
        );
        assert_eq!(found, Vec::<EntityUid>::new());
    }

    #[test]
    fn a_search_told_to_stop_gives_up() {
        let pack = shipped_pack();
        let entities = crate::entities::load_entities_file(
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../demo/entities.json"
            )),
            &pack.schema,
        )
        .unwrap();
        let store = EntityMap::from_entities(entities, 1);
        let request = SearchRequest {
            principal: Some(uid(r#"User::"paula""#)),
            action: Some(uid(r#"Action::"UseEnvironment""#)),
            resource: None,
            context: None,
        };
        let searched = Searched::Resources("Environment".parse().unwrap());
        let everything = search_while(&pack, &store, &request, &searched, || true).unwrap();
        assert!(!everything.is_empty());
        assert_eq!(everything, search(&pack, &store, &request, &searched));
        assert_eq!(
            search_while(&pack, &store, &request, &searched, || false),
            None
        );
    }
}
