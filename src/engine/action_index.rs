//! Policies pre-indexed by action: for each action the schema declares, the
//! policies whose action scope can match it. A policy whose scope does not
//! match a request is not applicable (it neither decides nor errors), so
//! evaluating only the indexed policies gives exactly Cedar's answer on the
//! whole set, with less work per request.

use std::collections::HashSet;
use std::sync::Arc;

use cedar_policy::{ActionConstraint, EntityUid, PolicySet};

use crate::entities::{StoredEntity, UidMap};

/// The policy subsets, by action uid.
#[derive(Debug, Default)]
pub struct ActionIndex {
    by_action: UidMap<PolicySet>,
}

impl ActionIndex {
    /// Indexes the static policies of `set` for every action in `actions`
    /// (action entities with their action groups as parents). Returns an
    /// empty index (every request uses the whole set) when the set holds
    /// template-linked policies, which a subset cannot carry without their
    /// templates.
    pub fn build(set: &PolicySet, actions: &UidMap<Arc<StoredEntity>>) -> Self {
        if set.policies().any(|p| !p.is_static()) {
            return Self::default();
        }
        let mut by_action = UidMap::with_capacity_and_hasher(actions.len(), Default::default());
        for action in actions.keys() {
            let ancestors = ancestors(action, actions);
            let mut subset = PolicySet::new();
            for policy in set.policies() {
                let applies = match policy.action_constraint() {
                    ActionConstraint::Any => true,
                    ActionConstraint::Eq(uid) => &uid == action,
                    ActionConstraint::In(uids) => uids
                        .iter()
                        .any(|uid| uid == action || ancestors.contains(uid)),
                };
                if applies && subset.add(policy.clone()).is_err() {
                    // Cannot happen for static policies with unique ids; never
                    // guess: fall back to the whole set for every action.
                    return Self::default();
                }
            }
            by_action.insert(action.clone(), subset);
        }
        Self { by_action }
    }

    /// The policies a request for `action` must evaluate, or `None` when
    /// the action is not indexed (use the whole set).
    pub fn policies_for(&self, action: &EntityUid) -> Option<&PolicySet> {
        self.by_action.get(action)
    }
}

/// Every action group `action` is in, transitively.
fn ancestors(action: &EntityUid, actions: &UidMap<Arc<StoredEntity>>) -> HashSet<EntityUid> {
    let mut seen = HashSet::new();
    let mut stack = vec![action.clone()];
    while let Some(uid) = stack.pop() {
        if let Some(entity) = actions.get(&uid) {
            for parent in entity.parents.iter() {
                if seen.insert(parent.clone()) {
                    stack.push(parent.clone());
                }
            }
        }
    }
    seen
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::bench::gen::{generate, uid};
    use crate::engine::shipped_pack;
    use crate::engine::{decide, DecisionRequest};
    use crate::entities::EntityMap;

    #[test]
    fn every_action_is_indexed_and_groups_are_followed() {
        let pack = shipped_pack();
        for action in pack.actions.keys() {
            assert!(pack.by_action.policies_for(action).is_some(), "{action}");
        }
        let ids = |name: &str| -> Vec<String> {
            let mut ids: Vec<String> = pack
                .policies_for(&uid("Action", name))
                .policies()
                .map(|p| p.id().to_string())
                .collect();
            ids.sort();
            ids
        };
        // `UseModel` is in `UseEnvironmentResources`; `ReadOrg` in `ManageTenants`.
        assert!(ids("UseModel").contains(&"org-admins-use-org-environment-resources".into()));
        assert!(!ids("UseModel").contains(&"platform-admins-manage-tenants".into()));
        assert_eq!(
            ids("ReadOrg"),
            vec!["platform-admins-manage-tenants".to_string()]
        );
    }

    /// The optimisation must not change a single decision: every action,
    /// over generated data, decided with the index and with the whole set.
    #[test]
    fn indexed_decisions_equal_whole_set_decisions() {
        let indexed = shipped_pack();
        let mut whole = shipped_pack();
        whole.by_action = ActionIndex::default();
        let data = generate(4_000, 21);
        let store = EntityMap::from_entities(data.to_stored().unwrap(), 1);
        let mut requests = data.requests(3_000, 22);
        // Every action against resources of every type, valid or not.
        let resources = [
            uid("Platform", "thunk"),
            uid("Org", "org0"),
            uid("Org", "org1"),
            uid("Environment", "org0-env-1"),
            uid("Environment", "org1-personal-3"),
            uid("Thunk", "org0-thunk-7"),
            uid("Model", "org1-model-2"),
            uid("ApiKey", "org0-key-1"),
            uid("McpServer", "org0-mcp-1"),
            uid("OAuthConnection", "org1-oauth-4"),
        ];
        for action in indexed.actions.keys() {
            let principals = [
                uid("User", "org0-user-0"),
                uid("User", "org0-user-3"),
                uid("User", "org0-user-700"),
                uid("User", "org1-user-9"),
                uid("Thunk", "org0-thunk-7"),
            ];
            for principal in &principals {
                for resource in &resources {
                    // Each action takes one of these context shapes.
                    for context in [
                        None,
                        Some(
                            serde_json::json!({ "target": { "type": "User", "id": "org0-user-0" } }),
                        ),
                        Some(
                            serde_json::json!({ "newOwner": { "type": "User", "id": "org0-user-3" } }),
                        ),
                        Some(serde_json::json!({
                            "targetEnvironment": { "type": "Environment", "id": "org0-env-2" }
                        })),
                    ] {
                        requests.push(DecisionRequest {
                            principal: principal.clone(),
                            action: action.clone(),
                            resource: resource.clone(),
                            context,
                            entities: Vec::new(),
                        });
                    }
                }
            }
        }
        let mut decided = 0;
        for request in &requests {
            let a = decide(
                &indexed,
                &store,
                request,
                &crate::engine::RequestEntityPolicy::default(),
            );
            let b = decide(
                &whole,
                &store,
                request,
                &crate::engine::RequestEntityPolicy::default(),
            );
            assert_eq!(a, b, "{request:?}");
            decided += usize::from(a.is_ok());
        }
        assert!(decided > 3_100, "only {decided} requests were valid");
    }
}
