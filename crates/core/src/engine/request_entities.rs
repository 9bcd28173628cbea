//! Which entities a caller may send with a request, and how they join the
//! stored ones. This is the trust boundary of a decision: stored data and
//! policies say what is granted, and a request may not widen it unless an
//! operator opted in.
//!
//! - `off` (the default): a request carrying entities is refused.
//! - `new-only`: a request may describe entities that are not stored, of
//!   the types the operator listed (e.g. a resource the application holds in
//!   its own database). Such an entity is not the principal (who asks is
//!   stored data's to say), not named by a policy, and its parents are other
//!   entities of the same request, so nobody can attach themselves to a
//!   stored group or admin roster; a stored uid is refused rather than
//!   replaced, and stored data never refers to a request entity (the slicer
//!   refuses that, see [`crate::entities::Slicer`]). The attributes of a
//!   request entity are the caller's word: list only types whose attributes
//!   the application may assert.
//! - `override`: request entities replace stored ones (cedar-agent's
//!   behaviour); the caller is trusted with everything.
//!
//! In every mode the same uid twice is refused, not silently "last wins".

use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{EntityTypeName, EntityUid, Schema};

use super::PolicyPack;
use crate::entities::{parse_entity, EntityLoadError, EntityMap, StoredEntity, UidMap};

/// How request entities are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestEntityMode {
    /// Requests may not carry entities.
    #[default]
    Off,
    /// Requests may add entities of listed types that are not stored.
    NewOnly,
    /// Request entities replace stored ones: the caller is fully trusted.
    Override,
}

impl RequestEntityMode {
    /// The name used in settings and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::NewOnly => "new-only",
            Self::Override => "override",
        }
    }
}

impl FromStr for RequestEntityMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "off" => Ok(Self::Off),
            "new-only" => Ok(Self::NewOnly),
            "override" => Ok(Self::Override),
            other => Err(format!(
                "`{other}` is not a request-entities mode (off, new-only, override)"
            )),
        }
    }
}

/// The operator's rules for request entities.
#[derive(Debug, Clone)]
pub struct RequestEntityPolicy {
    /// How request entities are treated.
    pub mode: RequestEntityMode,
    /// With `new-only`: the entity types a request may describe.
    pub types: Vec<EntityTypeName>,
    /// Most entities one request (or one whole batch) may carry.
    pub max: usize,
}

/// The default bound on entities per request and per batch.
pub const DEFAULT_MAX_REQUEST_ENTITIES: usize = 100;

impl RequestEntityPolicy {
    /// `off`, no types, the default bound.
    pub const DEFAULT: Self = Self {
        mode: RequestEntityMode::Off,
        types: Vec::new(),
        max: DEFAULT_MAX_REQUEST_ENTITIES,
    };
}

impl Default for RequestEntityPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a request's entities were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestEntityError {
    /// The mode is `off`.
    #[error(
        "this sidecar does not accept entities with requests (request_entities.mode = \"off\"); \
         decisions use stored entity data only. An operator may allow new entities of listed \
         types with `--request-entities new-only --request-entity-types T,...`"
    )]
    Disabled,
    /// More entities than allowed.
    #[error("a request (or a whole batch) may carry at most {max} entities; this one has {got}")]
    TooMany {
        /// The configured bound.
        max: usize,
        /// What the caller sent.
        got: usize,
    },
    /// The same uid twice in one request.
    #[error("entity `{0}` appears more than once in the request")]
    Duplicate(String),
    /// `new-only`: the uid is stored; a request may not replace stored data.
    #[error(
        "entity `{0}` is stored; a request may only add entities that are not stored \
         (request_entities.mode = \"new-only\")"
    )]
    Conflict(String),
    /// `new-only`: the type is not one a request may describe.
    #[error(
        "entity `{uid}`: requests may not describe entities of type `{entity_type}` \
         (allowed: {allowed})"
    )]
    TypeNotAllowed {
        /// The entity.
        uid: String,
        /// Its type.
        entity_type: String,
        /// The listed types, or `none`.
        allowed: String,
    },
    /// `new-only`: a parent that is not another entity of the request.
    #[error(
        "entity `{uid}` names parent `{parent}`, which is not sent with the request; \
         a request may not join stored groups"
    )]
    ParentNotAllowed {
        /// The entity.
        uid: String,
        /// The parent it names.
        parent: String,
    },
    /// `new-only`: the request describes its own principal.
    #[error(
        "entity `{0}` is the request's principal; who asks must be stored \
         (request_entities.mode = \"new-only\")"
    )]
    PrincipalNotStored(String),
    /// `new-only`: a policy or a template link names this uid, so stored
    /// data must define it.
    #[error("entity `{0}` is named by a policy or a template link; a request may not define it")]
    NamedByPolicy(String),
    /// Malformed, or breaks the schema.
    #[error("{0}")]
    Invalid(String),
}

impl RequestEntityPolicy {
    /// Checks a request's entities against these rules and the store, and
    /// parses them (against the schema) into the overlay a decision reads.
    /// Cheap checks run before Cedar's parser, so a refused request costs
    /// little.
    pub fn admit(
        &self,
        values: &[serde_json::Value],
        pack: &PolicyPack,
        store: &EntityMap,
        principal: &EntityUid,
    ) -> Result<UidMap<Arc<StoredEntity>>, RequestEntityError> {
        let schema = &pack.schema;
        if values.is_empty() {
            return Ok(UidMap::default());
        }
        if self.mode == RequestEntityMode::Off {
            return Err(RequestEntityError::Disabled);
        }
        if values.len() > self.max {
            return Err(RequestEntityError::TooMany {
                max: self.max,
                got: values.len(),
            });
        }
        let mut overlay: UidMap<Arc<StoredEntity>> = UidMap::default();
        overlay.reserve(values.len());
        for value in values {
            let entity = parse_entity(value.clone(), schema).map_err(|error| match error {
                EntityLoadError::Invalid { .. } | EntityLoadError::Action(_) => {
                    RequestEntityError::Invalid(error.to_string())
                }
            })?;
            let uid = entity.uid();
            if overlay.contains_key(&uid) {
                return Err(RequestEntityError::Duplicate(uid.to_string()));
            }
            overlay.insert(uid, Arc::new(entity));
        }
        if self.mode == RequestEntityMode::NewOnly {
            self.check_new_only(&overlay, pack, store, principal)?;
        }
        Ok(overlay)
    }

    fn check_new_only(
        &self,
        overlay: &UidMap<Arc<StoredEntity>>,
        pack: &PolicyPack,
        store: &EntityMap,
        principal: &EntityUid,
    ) -> Result<(), RequestEntityError> {
        for (uid, entity) in overlay {
            if !self.listed(uid.type_name()) {
                return Err(RequestEntityError::TypeNotAllowed {
                    uid: uid.to_string(),
                    entity_type: uid.type_name().to_string(),
                    allowed: self.allowed_list(),
                });
            }
            if store.get(uid).is_some() {
                return Err(RequestEntityError::Conflict(uid.to_string()));
            }
            if uid == principal {
                return Err(RequestEntityError::PrincipalNotStored(uid.to_string()));
            }
            if pack.policy_literals.contains(uid) || store.links().names(uid) {
                return Err(RequestEntityError::NamedByPolicy(uid.to_string()));
            }
            if let Some(parent) = entity
                .parents
                .iter()
                .find(|parent| !overlay.contains_key(*parent))
            {
                return Err(RequestEntityError::ParentNotAllowed {
                    uid: uid.to_string(),
                    parent: parent.to_string(),
                });
            }
        }
        Ok(())
    }

    fn listed(&self, entity_type: &EntityTypeName) -> bool {
        self.types.iter().any(|listed| listed == entity_type)
    }

    fn allowed_list(&self) -> String {
        if self.types.is_empty() {
            return "none".to_string();
        }
        self.types
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The listed types the schema does not declare (a typo in settings).
    pub fn undeclared_types(&self, schema: &Schema) -> Vec<String> {
        let declared: Vec<&EntityTypeName> = schema.entity_types().collect();
        self.types
            .iter()
            .filter(|listed| !declared.contains(listed))
            .map(ToString::to_string)
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::engine::shipped_pack;
    use crate::entities::load_entities_file;
    use serde_json::json;

    fn store(pack: &crate::engine::PolicyPack) -> EntityMap {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("demo/entities.json");
        let entities = load_entities_file(&path, &pack.schema).unwrap_or_default();
        EntityMap::from_entities(entities, 1)
    }

    fn policy(mode: RequestEntityMode, types: &[&str]) -> RequestEntityPolicy {
        RequestEntityPolicy {
            mode,
            types: types
                .iter()
                .filter_map(|t| EntityTypeName::from_str(t).ok())
                .collect(),
            max: 3,
        }
    }

    fn user(id: &str, parents: serde_json::Value) -> serde_json::Value {
        json!({"uid": {"type": "User", "id": id}, "attrs": {"email": format!("{id}@example.com")}, "parents": parents})
    }

    fn refusal(
        policy: &RequestEntityPolicy,
        values: &[serde_json::Value],
    ) -> Option<RequestEntityError> {
        let pack = shipped_pack();
        let principal: EntityUid = r#"User::"paula""#.parse().ok()?;
        policy.admit(values, &pack, &store(&pack), &principal).err()
    }

    #[test]
    fn off_refuses_any_entity_but_takes_none() {
        let off = RequestEntityPolicy::default();
        assert_eq!(
            refusal(&off, &[user("x", json!([]))]),
            Some(RequestEntityError::Disabled)
        );
        assert_eq!(refusal(&off, &[]), None);
    }

    #[test]
    fn new_only_refuses_stored_uids_unlisted_types_and_stored_parents() {
        let rules = policy(RequestEntityMode::NewOnly, &["User"]);
        assert!(matches!(
            refusal(&rules, &[user("pete", json!([]))]),
            Some(RequestEntityError::Conflict(_))
        ));
        assert!(matches!(
            refusal(
                &rules,
                &[user(
                    "newcomer",
                    json!([{"type": "PlatformAdmins", "id": "thunk"}])
                )]
            ),
            Some(RequestEntityError::ParentNotAllowed { .. })
        ));
        let unlisted = policy(RequestEntityMode::NewOnly, &["Thunk"]);
        assert!(matches!(
            refusal(&unlisted, &[user("newcomer", json!([]))]),
            Some(RequestEntityError::TypeNotAllowed { .. })
        ));
        assert_eq!(refusal(&rules, &[user("newcomer", json!([]))]), None);
    }

    #[test]
    fn new_only_refuses_a_described_principal_and_uids_policies_name() {
        let pack = shipped_pack();
        let rules = policy(RequestEntityMode::NewOnly, &["User", "PlatformAdmins"]);
        let ghost: EntityUid = r#"User::"ghost""#.parse().unwrap();
        let described = rules.admit(&[user("ghost", json!([]))], &pack, &store(&pack), &ghost);
        assert!(matches!(
            described,
            Err(RequestEntityError::PrincipalNotStored(_))
        ));
        // A policy names `PlatformAdmins::"thunk"`: only stored data may define it,
        // even where the store lacks it.
        let empty = EntityMap::from_entities(Vec::new(), 1);
        let roster =
            json!({"uid": {"type": "PlatformAdmins", "id": "thunk"}, "attrs": {}, "parents": []});
        let paula: EntityUid = r#"User::"paula""#.parse().unwrap();
        let named = rules.admit(&[roster], &pack, &empty, &paula);
        assert!(
            matches!(named, Err(RequestEntityError::NamedByPolicy(_))),
            "{named:?}"
        );
    }

    #[test]
    fn duplicates_and_too_many_are_refused_in_every_mode() {
        for mode in [RequestEntityMode::NewOnly, RequestEntityMode::Override] {
            let rules = policy(mode, &["User"]);
            let twice = [user("a", json!([])), user("a", json!([]))];
            assert!(matches!(
                refusal(&rules, &twice),
                Some(RequestEntityError::Duplicate(_))
            ));
            let four: Vec<_> = ["a", "b", "c", "d"]
                .iter()
                .map(|id| user(id, json!([])))
                .collect();
            assert_eq!(
                refusal(&rules, &four),
                Some(RequestEntityError::TooMany { max: 3, got: 4 })
            );
        }
    }

    #[test]
    fn override_replaces_stored_entities() {
        let rules = policy(RequestEntityMode::Override, &[]);
        let forged = user("pete", json!([{"type": "PlatformAdmins", "id": "thunk"}]));
        assert_eq!(refusal(&rules, &[forged]), None);
    }
}
