//! Which attributes and tags a policy set can read.
//!
//! A policy reads an entity's data only through `e.name` and `e has name`
//! (`e has a.b` is written with its whole path), with the name written in
//! the policy, and reads tags only through `getTag` and `hasTag`. An
//! attribute whose name no policy writes can never change a decision, so the
//! slice leaves it out of the entities it builds for Cedar (names and
//! emails, say, when no policy looks at them).

use std::collections::HashSet;

use cedar_policy::PolicySet;
use serde_json::Value;

use crate::entities::AttributeReads;

/// Collects the reads of every policy and template in `set`; a policy that
/// cannot be inspected keeps everything.
pub fn policy_reads(set: &PolicySet) -> AttributeReads {
    let mut names = HashSet::default();
    let mut tags = false;
    let ests = set
        .policies()
        .map(|p| p.to_json().ok())
        .chain(set.templates().map(|t| t.to_json().ok()));
    for est in ests {
        match est {
            Some(est) => collect(&est, &mut names, &mut tags),
            None => return AttributeReads::all(),
        }
    }
    AttributeReads::only(names, tags)
}

/// Walks a policy's JSON form (Cedar's EST).
fn collect(
    node: &Value,
    names: &mut HashSet<Box<str>, foldhash::fast::RandomState>,
    tags: &mut bool,
) {
    match node {
        Value::Object(fields) => {
            for (key, value) in fields {
                match (key.as_str(), value) {
                    ("." | "has", Value::Object(op)) => {
                        let path = match op.get("attr") {
                            Some(name @ Value::String(_)) => std::slice::from_ref(name),
                            Some(Value::Array(path)) => path.as_slice(),
                            _ => &[],
                        };
                        names.extend(path.iter().filter_map(Value::as_str).map(Box::from));
                    }
                    ("getTag" | "hasTag", _) => *tags = true,
                    _ => {}
                }
                collect(value, names, tags);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect(item, names, tags)),
        // Scalars hold no expressions.
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn reads(text: &str) -> AttributeReads {
        policy_reads(&text.parse().unwrap_or_else(|e| panic!("{e}")))
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
        let all = AttributeReads::all();
        assert!(all.attribute("anything") && all.tags());
    }
}
