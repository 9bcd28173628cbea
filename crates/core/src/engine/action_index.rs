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
pub(super) fn ancestors(
    action: &EntityUid,
    actions: &UidMap<Arc<StoredEntity>>,
) -> HashSet<EntityUid> {
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
    use crate::engine::shipped_pack;

    fn uid(kind: &str, id: &str) -> cedar_policy::EntityUid {
        let kind: cedar_policy::EntityTypeName = kind.parse().unwrap();
        cedar_policy::EntityUid::from_type_name_and_id(kind, cedar_policy::EntityId::new(id))
    }

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
}
