//! "Which?" questions: the subjects that may do an action on a resource,
//! the resources a subject may act on, the actions a subject may do on a
//! resource. Every result is confirmed by a real [`decide`] against the same
//! snapshot, so a result is an Allow by construction, and searches are as
//! transitive as decisions are (group membership, nested containers).
//!
//! Candidates are the stored entities of the searched type (or the schema's
//! actions), in a stable order (by id), so a page is a range of that order.
//! Narrowing candidates with indexes or partial evaluation is not done yet:
//! the cost is one decision per stored entity of the searched type.

use cedar_policy::{EntityTypeName, EntityUid};

use super::{decide, DecisionRequest, PolicyPack, RequestEntityPolicy, Verdict};
use crate::entities::EntityMap;

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
    let mut candidates: Vec<EntityUid> = match searched {
        Searched::Subjects(entity_type) | Searched::Resources(entity_type) => store
            .iter()
            .map(|entity| entity.uid_ref())
            .filter(|uid| uid.type_name() == entity_type)
            .cloned()
            .collect(),
        Searched::Actions => pack.actions.keys().cloned().collect(),
    };
    candidates.sort_by_cached_key(ToString::to_string);
    let trust = RequestEntityPolicy::DEFAULT;
    candidates
        .into_iter()
        .filter(|candidate| {
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
            let (Some(principal), Some(action), Some(resource)) = (principal, action, resource)
            else {
                return false;
            };
            let decision = DecisionRequest {
                principal,
                action,
                resource,
                context: request.context.clone(),
                entities: Vec::new(),
            };
            decide(pack, store, &decision, &trust)
                .is_ok_and(|decision| decision.verdict == Verdict::Allow)
        })
        .collect()
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
}
