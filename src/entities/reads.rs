//! Which attributes and tags a policy set can read.
//!
//! A policy reads an entity's data only through `e.name` and `e has name`
//! (a nested `e has a.b` is the same two steps), with the name written in
//! the policy, and reads tags only through `getTag` and `hasTag`. An
//! attribute whose name no policy writes can never change a decision, so the
//! slice leaves it out of the entities it builds for Cedar (names and
//! emails, say, when no policy looks at them).

use std::collections::HashSet;

use cedar_policy::PolicySet;
use serde_json::Value;

/// The attribute names the policies mention, and whether they read tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyReads {
    /// Every name used with `.` or `has`, on any entity or record. `None`
    /// when a policy could not be inspected: then every attribute is kept.
    attributes: Option<HashSet<Box<str>, foldhash::fast::RandomState>>,
    /// Whether any policy calls `getTag` or `hasTag`.
    tags: bool,
}

impl PolicyReads {
    /// Collects the reads of every policy and template in `set`.
    pub fn of(set: &PolicySet) -> Self {
        let mut reads = Self {
            attributes: Some(HashSet::default()),
            tags: false,
        };
        let ests = set
            .policies()
            .map(|p| p.to_json().ok())
            .chain(set.templates().map(|t| t.to_json().ok()));
        for est in ests {
            match est {
                Some(est) => reads.collect(&est),
                None => return Self::everything(),
            }
        }
        reads
    }

    /// Reads that keep every attribute and tag.
    pub fn everything() -> Self {
        Self {
            attributes: None,
            tags: true,
        }
    }

    /// Whether an attribute called `name` can be read.
    pub fn attribute(&self, name: &str) -> bool {
        self.attributes
            .as_ref()
            .is_none_or(|names| names.contains(name))
    }

    /// Whether tags can be read.
    pub fn tags(&self) -> bool {
        self.tags
    }

    /// Walks the policy's JSON form (Cedar's EST).
    fn collect(&mut self, node: &Value) {
        match node {
            Value::Object(fields) => {
                for (key, value) in fields {
                    match (key.as_str(), value) {
                        ("." | "has", Value::Object(op)) => {
                            // `e has a.b.c` is written with the whole path.
                            let path = match op.get("attr") {
                                Some(name @ Value::String(_)) => std::slice::from_ref(name),
                                Some(Value::Array(names)) => names.as_slice(),
                                _ => &[],
                            };
                            if let Some(names) = self.attributes.as_mut() {
                                for name in path.iter().filter_map(Value::as_str) {
                                    names.insert(name.into());
                                }
                            }
                        }
                        ("getTag" | "hasTag", _) => self.tags = true,
                        _ => {}
                    }
                    self.collect(value);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| self.collect(item)),
            // Scalars hold no expressions.
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn reads(text: &str) -> PolicyReads {
        PolicyReads::of(&text.parse().unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn names_from_access_has_nested_has_and_records_are_collected() {
        let reads = reads(
            r#"permit(principal, action, resource)
               when { principal has a.b && resource.owner.level > 2 && context.c == 1 };
               forbid(principal, action, resource) unless { resource has d };"#,
        );
        for name in ["a", "b", "owner", "level", "c", "d"] {
            assert!(reads.attribute(name), "{name}");
        }
        for name in ["email", "name", "Owner"] {
            assert!(!reads.attribute(name), "{name}");
        }
        assert!(!reads.tags());
    }

    #[test]
    fn tag_calls_keep_the_tags() {
        assert!(
            reads(r#"permit(principal, action, resource) when { resource.hasTag("k") };"#).tags()
        );
        assert!(reads(
            r#"permit(principal, action, resource) when { resource.getTag("k") == 1 };"#
        )
        .tags());
    }

    #[test]
    fn templates_count_too() {
        let reads =
            reads(r#"permit(principal == ?principal, action, resource) when { resource.x == 1 };"#);
        assert!(reads.attribute("x"));
        assert!(!reads.attribute("y"));
    }

    #[test]
    fn everything_keeps_everything() {
        let all = PolicyReads::everything();
        assert!(all.attribute("anything") && all.tags());
    }
}
