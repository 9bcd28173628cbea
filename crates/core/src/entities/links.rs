//! Template links as data: which template a link fills, under which id, with
//! which entities in its `?principal` and `?resource` slots. Links are kept
//! like entities (persistent, at the store's revision), and indexed by their
//! slot values so a decision finds the few links that can apply to its
//! principal and resource without looking at the others.
//!
//! Nothing here knows what a template says: whether a link fits its
//! template (the template exists, the slot types are right) is the engine's
//! check (`engine::links`).

use std::collections::BTreeSet;
use std::sync::Arc;

use cedar_policy::EntityUid;
use serde_json::value::RawValue;

use crate::diagnostics::{offset_of, Problem, Problems};

/// One template-linked policy, as data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredLink {
    /// The linked policy's id: what decisions name in their reasons.
    pub id: Arc<str>,
    /// The template it fills.
    pub template: Arc<str>,
    /// The entity in the template's `?principal` slot, if it has one.
    pub principal: Option<EntityUid>,
    /// The entity in the template's `?resource` slot, if it has one.
    pub resource: Option<EntityUid>,
}

impl StoredLink {
    /// The link in the Cedar CLI's `--template-linked` JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        let mut args = serde_json::Map::new();
        if let Some(uid) = &self.principal {
            args.insert("?principal".into(), uid.to_string().into());
        }
        if let Some(uid) = &self.resource {
            args.insert("?resource".into(), uid.to_string().into());
        }
        serde_json::json!({
            "template_id": &*self.template,
            "link_id": &*self.id,
            "args": args,
        })
    }
}

/// Why a link's JSON was refused (before any template is looked at).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LinkFormatError {
    /// Not the `--template-linked` shape.
    #[error("{0}")]
    Shape(String),
    /// A slot value is not an entity uid such as `User::"paula"`.
    #[error("`{slot}` must be an entity uid such as `User::\"paula\"`, not `{value}`")]
    Uid {
        /// `?principal` or `?resource`.
        slot: String,
        /// What was given.
        value: String,
    },
}

/// Parses one link in the Cedar CLI's `--template-linked` form:
/// `{"template_id", "link_id", "args": {"?principal": "User::\"paula\"", ...}}`.
pub fn parse_link(value: &serde_json::Value) -> Result<StoredLink, LinkFormatError> {
    let shape = |message: &str| LinkFormatError::Shape(message.to_string());
    let object = value.as_object().ok_or_else(|| {
        shape("a link must be an object with `template_id`, `link_id` and `args`")
    })?;
    if let Some(key) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "template_id" | "link_id" | "args"))
    {
        return Err(LinkFormatError::Shape(format!(
            "unknown field `{key}`: a link has `template_id`, `link_id` and `args`"
        )));
    }
    let text = |key: &str| -> Result<Arc<str>, LinkFormatError> {
        match object.get(key).and_then(|v| v.as_str()) {
            Some(s) if !s.is_empty() => Ok(Arc::from(s)),
            _ => Err(LinkFormatError::Shape(format!(
                "`{key}` must be a non-empty string"
            ))),
        }
    };
    let template = text("template_id")?;
    let id = text("link_id")?;
    let args = object
        .get("args")
        .and_then(|a| a.as_object())
        .ok_or_else(|| shape("`args` must be an object of slots (`?principal`, `?resource`)"))?;
    let mut link = StoredLink {
        id,
        template,
        principal: None,
        resource: None,
    };
    for (slot, value) in args {
        let target = match slot.as_str() {
            "?principal" => &mut link.principal,
            "?resource" => &mut link.resource,
            other => {
                return Err(LinkFormatError::Shape(format!(
                    "unknown slot `{other}`: templates have `?principal` and `?resource`"
                )))
            }
        };
        let uid = value
            .as_str()
            .and_then(|s| s.parse::<EntityUid>().ok())
            .ok_or_else(|| LinkFormatError::Uid {
                slot: slot.clone(),
                value: value.to_string(),
            })?;
        *target = Some(uid);
    }
    if link.principal.is_none() && link.resource.is_none() {
        return Err(shape("`args` must fill at least one slot"));
    }
    Ok(link)
}

/// Parses a links file's text (a JSON array of links); each link comes with
/// its byte offset in `text`, for messages. Every malformed link and every
/// duplicate id is reported, at its position.
pub fn parse_links_text(
    shown: &str,
    text: &Arc<str>,
) -> Result<Vec<(StoredLink, usize)>, Problems> {
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|error| {
        let offset = offset_of(text, error.line(), error.column());
        Problems(vec![Problem::message(
            shown,
            format!("links file must be a JSON array of template links: {error}"),
        )
        .at(text.clone(), offset)])
    })?;
    let mut problems = Problems::default();
    let mut links = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashMap::with_capacity(items.len());
    for (index, raw) in items.iter().enumerate() {
        let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
        let parsed = serde_json::from_str::<serde_json::Value>(raw.get())
            .map_err(|e| LinkFormatError::Shape(e.to_string()))
            .and_then(|value| parse_link(&value));
        match parsed {
            Ok(link) => {
                if let Some(first) = seen.insert(link.id.clone(), index) {
                    problems.push(
                        Problem::message(
                            shown,
                            format!(
                                "duplicate link id `{}` (entries {first} and {index})",
                                link.id
                            ),
                        )
                        .at(text.clone(), offset),
                    );
                } else {
                    links.push((link, offset));
                }
            }
            Err(error) => problems.push(
                Problem::message(shown, format!("link {index}: {error}")).at(text.clone(), offset),
            ),
        }
    }
    if problems.is_empty() {
        Ok(links)
    } else {
        Err(problems)
    }
}

/// One change to the links.
#[derive(Debug, Clone)]
pub enum LinkChange {
    /// Insert or replace a link.
    Upsert(Arc<StoredLink>),
    /// Remove a link by id (absent is fine).
    Delete(Arc<str>),
    /// The source holds a value for this id that cannot be read (not JSON,
    /// not a link, another id). A link served under the id stays, its
    /// template replaced by [`UNREADABLE_TEMPLATE`]: every decision it
    /// could apply to then denies. Dropping it instead would lift a linked
    /// forbid (fail open). An id not served is *unplaced*: nobody knows
    /// what it would apply to, so every decision denies
    /// ([`LinkMap::unplaced`]) until the id is written right or deleted.
    Unreadable(Arc<str>),
}

/// The template of a link whose stored value could not be read: no
/// template is named so (a NUL cannot be written in a policy id by
/// accident), so the link never fits and decisions it may touch deny.
pub const UNREADABLE_TEMPLATE: &str = "\u{0}unreadable link value";

/// What a link is found by: the values of the slots it fills.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SlotKey {
    Both(EntityUid, EntityUid),
    Principal(EntityUid),
    Resource(EntityUid),
}

impl SlotKey {
    fn of(link: &StoredLink) -> Option<Self> {
        match (&link.principal, &link.resource) {
            (Some(p), Some(r)) => Some(Self::Both(p.clone(), r.clone())),
            (Some(p), None) => Some(Self::Principal(p.clone())),
            (None, Some(r)) => Some(Self::Resource(r.clone())),
            (None, None) => None,
        }
    }
}

type Hasher = foldhash::fast::RandomState;
type Shared = imbl::shared_ptr::DefaultSharedPtr;

/// Links by id, and by slot values, at the store's revision. Cloning is
/// O(1) and clones share structure, like [`super::EntityMap`].
#[derive(Debug, Clone, Default)]
pub struct LinkMap {
    by_id: imbl::GenericHashMap<Arc<str>, Arc<StoredLink>, Hasher, Shared>,
    /// Link ids by the slot values they fill; a handful per key in practice,
    /// so a key's set is copied whole when it changes.
    by_slots: imbl::GenericHashMap<SlotKey, Arc<BTreeSet<Arc<str>>>, Hasher, Shared>,
    /// How many links name each slot value: a request may not describe an
    /// entity a link names, as it may not describe one a policy names.
    named: imbl::GenericHashMap<EntityUid, usize, Hasher, Shared>,
    /// Ids the source holds unreadable values for, with no link served
    /// under them: what they would apply to is unknown, so every decision
    /// denies until each is rewritten or deleted (fail closed).
    unplaced: Arc<BTreeSet<Arc<str>>>,
}

impl LinkMap {
    /// A map of `links` (later duplicates win).
    pub fn from_links(links: impl IntoIterator<Item = StoredLink>) -> Self {
        let mut map = Self::default();
        map.apply(links.into_iter().map(|l| LinkChange::Upsert(Arc::new(l))));
        map
    }

    /// Applies changes in order; O(changes x log n).
    pub fn apply(&mut self, changes: impl IntoIterator<Item = LinkChange>) {
        for change in changes {
            match change {
                LinkChange::Upsert(link) => {
                    self.place(&link.id);
                    self.remove(&link.id.clone());
                    if let Some(key) = SlotKey::of(&link) {
                        let mut ids = self
                            .by_slots
                            .get(&key)
                            .map(|ids| ids.as_ref().clone())
                            .unwrap_or_default();
                        ids.insert(link.id.clone());
                        self.by_slots.insert(key, Arc::new(ids));
                    }
                    for uid in link.principal.iter().chain(&link.resource) {
                        let count = self.named.get(uid).copied().unwrap_or(0);
                        self.named.insert(uid.clone(), count + 1);
                    }
                    self.by_id.insert(link.id.clone(), link);
                }
                LinkChange::Delete(id) => {
                    self.place(&id);
                    self.remove(&id);
                }
                LinkChange::Unreadable(id) => match self.by_id.get(&id).cloned() {
                    Some(old) => {
                        let poisoned = StoredLink {
                            template: Arc::from(UNREADABLE_TEMPLATE),
                            ..(*old).clone()
                        };
                        self.apply([LinkChange::Upsert(Arc::new(poisoned))]);
                    }
                    None => {
                        let mut unplaced = self.unplaced.as_ref().clone();
                        unplaced.insert(id);
                        self.unplaced = Arc::new(unplaced);
                    }
                },
            }
        }
    }

    /// `id` is written right or deleted: no longer unplaced.
    fn place(&mut self, id: &Arc<str>) {
        if self.unplaced.contains(id) {
            let mut unplaced = self.unplaced.as_ref().clone();
            unplaced.remove(id);
            self.unplaced = Arc::new(unplaced);
        }
    }

    /// Ids whose values in the source cannot be read and that no served
    /// link holds: while any is left, every decision denies.
    pub fn unplaced(&self) -> impl Iterator<Item = &Arc<str>> {
        self.unplaced.iter()
    }

    fn remove(&mut self, id: &Arc<str>) {
        let Some(old) = self.by_id.remove(id) else {
            return;
        };
        for uid in old.principal.iter().chain(&old.resource) {
            match self.named.get(uid).copied() {
                Some(count) if count > 1 => {
                    self.named.insert(uid.clone(), count - 1);
                }
                _ => {
                    self.named.remove(uid);
                }
            }
        }
        if let Some(key) = SlotKey::of(&old) {
            if let Some(ids) = self.by_slots.get(&key) {
                let mut ids = ids.as_ref().clone();
                ids.remove(id);
                if ids.is_empty() {
                    self.by_slots.remove(&key);
                } else {
                    self.by_slots.insert(key, Arc::new(ids));
                }
            }
        }
    }

    /// True when a link names `uid` in a slot.
    pub fn names(&self, uid: &EntityUid) -> bool {
        self.named.contains_key(uid)
    }

    /// One link by id.
    pub fn get(&self, id: &str) -> Option<&Arc<StoredLink>> {
        self.by_id.get(id)
    }

    /// Number of links.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when there are no links (and no unreadable ones).
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty() && self.unplaced.is_empty()
    }

    /// Every link, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<StoredLink>> {
        self.by_id.values()
    }

    /// The links that can apply to a request whose principal is one of
    /// `principals` (the principal and its ancestors) and whose resource is
    /// one of `resources` (likewise): a slot only ever constrains the scope's
    /// principal or resource, by `==` or `in`, so no other link can match.
    /// Costs |principals| x |resources| look-ups, whatever the number of links.
    pub fn candidates(
        &self,
        principals: &[EntityUid],
        resources: &[EntityUid],
    ) -> Vec<&Arc<StoredLink>> {
        let mut out = Vec::new();
        let mut push = |key: SlotKey| {
            if let Some(ids) = self.by_slots.get(&key) {
                out.extend(ids.iter().filter_map(|id| self.by_id.get(id)));
            }
        };
        for p in principals {
            push(SlotKey::Principal(p.clone()));
            for r in resources {
                push(SlotKey::Both(p.clone(), r.clone()));
            }
        }
        for r in resources {
            push(SlotKey::Resource(r.clone()));
        }
        // An entity listed twice (a cycle in the data makes one its own
        // ancestor) must not link a policy twice.
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn uid(text: &str) -> EntityUid {
        text.parse().unwrap()
    }

    fn link(id: &str, p: Option<&str>, r: Option<&str>) -> StoredLink {
        StoredLink {
            id: Arc::from(id),
            template: Arc::from("t"),
            principal: p.map(uid),
            resource: r.map(uid),
        }
    }

    #[test]
    fn an_unreadable_value_poisons_a_served_link_or_is_unplaced() {
        let link = |id: &str, template: &str| StoredLink {
            id: Arc::from(id),
            template: Arc::from(template),
            principal: Some(r#"User::"eve""#.parse().unwrap()),
            resource: None,
        };
        let mut map = LinkMap::from_links([link("a", "blocked")]);
        map.apply([LinkChange::Unreadable(Arc::from("a"))]);
        assert_eq!(&*map.get("a").unwrap().template, UNREADABLE_TEMPLATE);
        assert_eq!(map.unplaced().count(), 0);
        map.apply([LinkChange::Unreadable(Arc::from("b"))]);
        assert_eq!(
            map.unplaced().cloned().collect::<Vec<_>>(),
            [Arc::from("b")]
        );
        assert!(map.get("b").is_none());
        // Written right, or deleted: placed again.
        map.apply([LinkChange::Upsert(Arc::new(link("b", "blocked")))]);
        assert_eq!(map.unplaced().count(), 0);
        map.apply([LinkChange::Unreadable(Arc::from("c"))]);
        map.apply([LinkChange::Delete(Arc::from("c"))]);
        assert_eq!(map.unplaced().count(), 0);
        assert!(!map.is_empty());
    }

    #[test]
    fn candidates_are_found_by_slot_values_and_follow_changes() {
        let mut map = LinkMap::from_links([
            link("a", Some(r#"User::"p""#), Some(r#"Environment::"e""#)),
            link("b", Some(r#"User::"p""#), None),
            link("c", None, Some(r#"Environment::"e""#)),
            link("d", Some(r#"User::"q""#), Some(r#"Environment::"e""#)),
        ]);
        let ids = |map: &LinkMap, p: &[&str], r: &[&str]| {
            let p: Vec<EntityUid> = p.iter().map(|s| uid(s)).collect();
            let r: Vec<EntityUid> = r.iter().map(|s| uid(s)).collect();
            let mut ids: Vec<String> = map
                .candidates(&p, &r)
                .iter()
                .map(|l| l.id.to_string())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(
            ids(&map, &[r#"User::"p""#], &[r#"Environment::"e""#]),
            ["a", "b", "c"]
        );
        assert_eq!(
            ids(&map, &[r#"User::"p""#], &[r#"Environment::"x""#]),
            ["b"]
        );
        let before = map.clone();
        map.apply([
            LinkChange::Delete(Arc::from("a")),
            LinkChange::Upsert(Arc::new(link("b", Some(r#"User::"q""#), None))),
        ]);
        assert_eq!(
            ids(&map, &[r#"User::"p""#], &[r#"Environment::"e""#]),
            ["c"]
        );
        assert_eq!(
            ids(&before, &[r#"User::"p""#], &[r#"Environment::"e""#]),
            ["a", "b", "c"]
        );
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn the_cli_format_parses_and_bad_links_are_refused_at_their_position() {
        let text: Arc<str> = Arc::from(
            r#"[
  {"template_id": "t", "link_id": "ok", "args": {"?principal": "User::\"paula\""}},
  {"template_id": "t", "link_id": "bad", "args": {"?principal": "paula"}},
  {"template_id": "t", "link_id": "ok", "args": {"?resource": "Environment::\"e\""}}
]"#,
        );
        let problems = parse_links_text("links.json", &text).err().unwrap();
        let summaries: Vec<String> = problems.0.iter().map(|p| p.summary()).collect();
        assert_eq!(summaries.len(), 2, "{summaries:?}");
        assert!(
            summaries[0].starts_with("links.json:3:3: link 1: `?principal`"),
            "{summaries:?}"
        );
        assert!(
            summaries[1].starts_with("links.json:4:3: duplicate link id `ok`"),
            "{summaries:?}"
        );
        let good: Arc<str> = Arc::from(
            r#"[{"template_id":"t","link_id":"x","args":{"?principal":"User::\"paula\"","?resource":"Environment::\"acme-prod\""}}]"#,
        );
        let links = parse_links_text("links.json", &good).unwrap();
        assert_eq!(links[0].0.principal, Some(uid(r#"User::"paula""#)));
        assert_eq!(parse_link(&links[0].0.to_json()).unwrap(), links[0].0);
    }
}
