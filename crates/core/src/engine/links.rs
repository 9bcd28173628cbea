//! Template links against a pack: whether a link fits its template (the
//! template exists, it fills exactly the template's slots, each with an
//! entity of a type the slot can hold under the schema), and the small
//! policy set one decision evaluates: the action's static policies plus the
//! links that can apply to its principal and resource.
//!
//! A slot only ever sits in a template's scope (`principal == ?principal`,
//! `principal in ?principal`, `principal is T in ?principal`, and the same
//! for the resource), so a link can apply only when its slot values are the
//! request's principal and resource or ancestors of them; the store indexes
//! links by those values ([`crate::entities::LinkMap::candidates`]) and a
//! decision never looks at the other links.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, Effect, EntityTypeName, EntityUid, PolicyId, PolicySet, Schema, SlotId,
    Template, TemplatePrincipalConstraint, TemplateResourceConstraint,
};

use crate::diagnostics::{Problem, Problems};
use crate::entities::{parse_links_text, LinkMap, StoredEntity, StoredLink, UidMap};

use super::PolicyPack;

/// What each template's slots accept, built once per pack.
#[derive(Debug, Default)]
pub struct TemplateSlots {
    by_template: HashMap<String, SlotRules>,
}

/// One template's slots: `None` when it has no such slot, else the entity
/// types a value in that slot may have.
#[derive(Debug, Clone)]
pub struct SlotRules {
    /// The template's effect (a linked forbid fails closed).
    pub effect: Effect,
    /// Types the `?principal` slot accepts.
    pub principal: Option<HashSet<EntityTypeName>>,
    /// Types the `?resource` slot accepts.
    pub resource: Option<HashSet<EntityTypeName>>,
}

/// Why a link does not fit the pack.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// No template with that id.
    #[error("link `{link}` names template `{template}`, which the policies do not define")]
    NoTemplate {
        /// The link's id.
        link: String,
        /// The template it names.
        template: String,
    },
    /// The link's id is already a policy's or a template's.
    #[error("link id `{0}` is already the id of a policy or template")]
    IdTaken(String),
    /// A slot the template has is not filled, or one it lacks is.
    #[error("link `{link}`: template `{template}` {problem}")]
    Slots {
        /// The link's id.
        link: String,
        /// The template.
        template: String,
        /// What is wrong.
        problem: String,
    },
    /// A slot value of a type the slot cannot hold.
    #[error("link `{link}`: `{slot}` of template `{template}` takes {allowed}, not `{value}`")]
    SlotType {
        /// The link's id.
        link: String,
        /// The template.
        template: String,
        /// `?principal` or `?resource`.
        slot: &'static str,
        /// The value given.
        value: String,
        /// The types it takes, for the message.
        allowed: String,
    },
}

impl TemplateSlots {
    /// The slot rules of every template in `set`, under `schema`.
    pub fn build(set: &PolicySet, schema: &Schema, actions: &UidMap<Arc<StoredEntity>>) -> Self {
        let by_template = set
            .templates()
            .map(|t| (t.id().to_string(), rules(t, schema, actions)))
            .collect();
        Self { by_template }
    }

    /// One template's rules.
    pub fn get(&self, template: &str) -> Option<&SlotRules> {
        self.by_template.get(template)
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.by_template.len()
    }

    /// True without templates.
    pub fn is_empty(&self) -> bool {
        self.by_template.is_empty()
    }
}

/// Checks one link against `pack`: O(1), so writers, sources and the
/// publisher can all afford it.
pub fn check_link(pack: &PolicyPack, link: &StoredLink) -> Result<(), LinkError> {
    // A poisoned link never fits, whatever the pack names its templates.
    if &*link.template == crate::entities::UNREADABLE_TEMPLATE {
        return Err(LinkError::NoTemplate {
            link: link.id.to_string(),
            template: "(its value in the source cannot be read)".to_string(),
        });
    }
    let id = PolicyId::new(&*link.id);
    if pack.files.set.policy(&id).is_some() || pack.files.set.template(&id).is_some() {
        return Err(LinkError::IdTaken(link.id.to_string()));
    }
    let Some(rules) = pack.template_slots.get(&link.template) else {
        return Err(LinkError::NoTemplate {
            link: link.id.to_string(),
            template: link.template.to_string(),
        });
    };
    for (slot, allowed, value) in [
        ("?principal", &rules.principal, &link.principal),
        ("?resource", &rules.resource, &link.resource),
    ] {
        let slots = |problem: String| LinkError::Slots {
            link: link.id.to_string(),
            template: link.template.to_string(),
            problem,
        };
        match (allowed, value) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(slots(format!("has a `{slot}` slot the link does not fill")))
            }
            (None, Some(_)) => return Err(slots(format!("has no `{slot}` slot"))),
            (Some(allowed), Some(value)) => {
                if !allowed.contains(value.type_name()) {
                    let mut names: Vec<String> = allowed.iter().map(|t| format!("`{t}`")).collect();
                    names.sort();
                    return Err(LinkError::SlotType {
                        link: link.id.to_string(),
                        template: link.template.to_string(),
                        slot,
                        value: value.to_string(),
                        allowed: if names.is_empty() {
                            "no entity type (no action in its scope takes one)".to_string()
                        } else {
                            names.join(", ")
                        },
                    });
                }
            }
        }
    }
    Ok(())
}

/// Checks every link of `links` against `pack`; the message names up to
/// ten links that do not fit.
pub fn check_links(pack: &PolicyPack, links: &LinkMap) -> Result<(), String> {
    check_links_kept(pack, links, None)
}

/// Like [`check_links`], but with `before` (the pack serving `links` now)
/// only the links that fit `before` are checked: a new pack is refused for
/// orphaning links that are served, not for links that fit no pack (a
/// Redis writer that skipped the check; decisions those could apply to
/// deny, see [`with_links`]).
pub fn check_links_kept(
    pack: &PolicyPack,
    links: &LinkMap,
    before: Option<&PolicyPack>,
) -> Result<(), String> {
    let mut errors: Vec<String> = links
        .iter()
        .filter(|link| before.is_none_or(|before| check_link(before, link).is_ok()))
        .filter_map(|link| check_link(pack, link).err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort();
    let more = errors.len().saturating_sub(10);
    errors.truncate(10);
    Err(format!(
        "template links do not fit the policies:\n  {}{}",
        errors.join("\n  "),
        if more > 0 {
            format!("\n  ... and {more} more")
        } else {
            String::new()
        }
    ))
}

/// Reads a links file in the Cedar CLI's `--template-linked` format and
/// checks every link against `pack`, with `file:line:column` problems.
pub fn load_links_file(path: &std::path::Path, pack: &PolicyPack) -> Result<LinkMap, Problems> {
    let shown = path.display().to_string();
    let text: Arc<str> = std::fs::read_to_string(path)
        .map_err(|error| {
            Problems(vec![Problem::message(
                &shown,
                format!("cannot read links file: {error}"),
            )])
        })?
        .into();
    parse_links(&shown, &text, pack)
}

/// Parses and checks links file text (see [`load_links_file`]).
pub fn parse_links(shown: &str, text: &Arc<str>, pack: &PolicyPack) -> Result<LinkMap, Problems> {
    let links = parse_links_text(shown, text)?;
    let mut problems = Problems::default();
    for (link, offset) in &links {
        if let Err(error) = check_link(pack, link) {
            problems.push(Problem::message(shown, error.to_string()).at(text.clone(), *offset));
        }
    }
    if problems.is_empty() {
        Ok(LinkMap::from_links(links.into_iter().map(|(l, _)| l)))
    } else {
        Err(problems)
    }
}

/// The policies one decision evaluates when `links` may apply: `base` (the
/// action's static policies) plus each link's template, linked. A link
/// that does not fit the pack (stored in Redis by a writer that checked it
/// against other policies, or none), or cannot be linked, is an error: the
/// caller denies (a forbid among them must not be skipped).
pub fn with_links(
    pack: &PolicyPack,
    base: &PolicySet,
    links: &[&Arc<StoredLink>],
) -> Result<PolicySet, String> {
    let mut set = base.clone();
    let mut added: HashSet<&str> = HashSet::new();
    for link in links {
        check_link(pack, link).map_err(|e| e.to_string())?;
        if added.insert(&link.template) {
            let id = PolicyId::new(&*link.template);
            let template = pack.files.set.template(&id).ok_or_else(|| {
                format!("template `{}` of link `{}` is gone", link.template, link.id)
            })?;
            set.add_template(template.clone())
                .map_err(|e| format!("template `{}`: {e}", link.template))?;
        }
        let mut values = HashMap::new();
        if let Some(uid) = &link.principal {
            values.insert(SlotId::principal(), uid.clone());
        }
        if let Some(uid) = &link.resource {
            values.insert(SlotId::resource(), uid.clone());
        }
        set.link(
            PolicyId::new(&*link.template),
            PolicyId::new(&*link.id),
            values,
        )
        .map_err(|e| format!("link `{}`: {e}", link.id))?;
    }
    Ok(set)
}

/// The types each slot of `template` accepts: for every action its scope
/// can match, the principal (resource) types the schema gives the action,
/// and for `in` their ancestor types too.
fn rules(template: &Template, schema: &Schema, actions: &UidMap<Arc<StoredEntity>>) -> SlotRules {
    let in_scope: Vec<&EntityUid> = actions
        .keys()
        .filter(|action| match template.action_constraint() {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(uid) => &uid == *action,
            ActionConstraint::In(groups) => {
                let ancestors = super::action_index::ancestors(action, actions);
                groups.iter().any(|g| g == *action || ancestors.contains(g))
            }
        })
        .collect();
    let principal = match template.principal_constraint() {
        TemplatePrincipalConstraint::Eq(None) => Some(Scope::Eq),
        TemplatePrincipalConstraint::In(None) => Some(Scope::In),
        TemplatePrincipalConstraint::IsIn(ty, None) => Some(Scope::IsIn(ty)),
        _ => None,
    };
    let resource = match template.resource_constraint() {
        TemplateResourceConstraint::Eq(None) => Some(Scope::Eq),
        TemplateResourceConstraint::In(None) => Some(Scope::In),
        TemplateResourceConstraint::IsIn(ty, None) => Some(Scope::IsIn(ty)),
        _ => None,
    };
    SlotRules {
        effect: template.effect(),
        principal: principal.map(|scope| {
            slot_types(&scope, schema, &in_scope, |a| {
                schema
                    .principals_for_action(a)
                    .map(|t| t.cloned().collect())
                    .unwrap_or_default()
            })
        }),
        resource: resource.map(|scope| {
            slot_types(&scope, schema, &in_scope, |a| {
                schema
                    .resources_for_action(a)
                    .map(|t| t.cloned().collect())
                    .unwrap_or_default()
            })
        }),
    }
}

enum Scope {
    Eq,
    In,
    IsIn(EntityTypeName),
}

fn slot_types(
    scope: &Scope,
    schema: &Schema,
    actions: &[&EntityUid],
    types_for: impl Fn(&EntityUid) -> Vec<EntityTypeName>,
) -> HashSet<EntityTypeName> {
    let mut out = HashSet::new();
    for action in actions {
        for ty in types_for(action) {
            match scope {
                Scope::Eq => {
                    out.insert(ty);
                }
                Scope::In | Scope::IsIn(_) => {
                    if let Scope::IsIn(only) = scope {
                        if *only != ty {
                            continue;
                        }
                    }
                    if let Some(ancestors) = schema.ancestors(&ty) {
                        out.extend(ancestors.cloned());
                    }
                    out.insert(ty);
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::engine::{parse_policy_texts, shipped_pack};

    fn pack(text: &str) -> PolicyPack {
        let (files, problems) = parse_policy_texts([(
            "t.cedar".to_string(),
            "t.cedar".to_string(),
            text.to_string(),
        )]);
        assert!(problems.is_empty(), "{}", problems.render());
        PolicyPack::build(files, shipped_pack().schema).unwrap_or_else(|p| panic!("{}", p.render()))
    }

    fn link(template: &str, principal: Option<&str>, resource: Option<&str>) -> StoredLink {
        StoredLink {
            id: Arc::from("l"),
            template: Arc::from(template),
            principal: principal.map(|p| p.parse().unwrap()),
            resource: resource.map(|r| r.parse().unwrap()),
        }
    }

    #[test]
    fn slot_types_follow_the_scope_the_action_group_and_the_schema() {
        let pack = pack(
            r#"@id("use")
permit (principal is User in ?principal, action in Action::"UseEnvironmentResources", resource == ?resource);
@id("env")
permit (principal == ?principal, action == Action::"UseEnvironment", resource);"#,
        );
        let fits = |l: StoredLink| check_link(&pack, &l);
        // `is User in`: a user or anything a user can be in.
        assert_eq!(
            fits(link("use", Some(r#"Group::"g""#), Some(r#"Model::"m""#))),
            Ok(())
        );
        assert_eq!(
            fits(link("use", Some(r#"User::"u""#), Some(r#"McpServer::"m""#))),
            Ok(())
        );
        assert!(matches!(
            fits(link("use", Some(r#"Thunk::"t""#), Some(r#"Model::"m""#))),
            Err(LinkError::SlotType {
                slot: "?principal",
                ..
            })
        ));
        // `==` on the resource: only what the group's actions take.
        assert!(matches!(
            fits(link(
                "use",
                Some(r#"User::"u""#),
                Some(r#"Environment::"e""#)
            )),
            Err(LinkError::SlotType {
                slot: "?resource",
                ..
            })
        ));
        // `==` on the principal of UseEnvironment: a user or a thunk, not a group.
        assert_eq!(fits(link("env", Some(r#"Thunk::"t""#), None)), Ok(()));
        assert!(fits(link("env", Some(r#"Group::"g""#), None)).is_err());
        // Slots must match the template's exactly; the template must exist;
        // a link may not take a template's id.
        assert!(matches!(
            fits(link(
                "env",
                Some(r#"User::"u""#),
                Some(r#"Environment::"e""#)
            )),
            Err(LinkError::Slots { .. })
        ));
        assert!(matches!(
            fits(link("use", Some(r#"User::"u""#), None)),
            Err(LinkError::Slots { .. })
        ));
        assert!(matches!(
            fits(link("nope", Some(r#"User::"u""#), None)),
            Err(LinkError::NoTemplate { .. })
        ));
        let mut taken = link("env", Some(r#"User::"u""#), None);
        taken.id = Arc::from("use");
        assert_eq!(fits(taken), Err(LinkError::IdTaken("use".to_string())));
    }
}
