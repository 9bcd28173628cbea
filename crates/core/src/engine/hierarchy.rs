//! Which entities' ancestors a policy set can ask about.
//!
//! Cedar reads an entity's ancestors only for `e in ...` (and `e is T in
//! ...`), on the entity `e` evaluates to. When every such left-hand side in
//! the policies is `principal`, `action`, `resource` or a field of `context`
//! (each a slice root), the entities a slice reaches through attributes never
//! need their ancestors: the slice can leave them out, and Cedar's
//! transitive closure of the slice (a third of a decision's cost) shrinks.
//! Anything else on a left-hand side keeps ancestors on every entity.

use cedar_policy::PolicySet;
use serde_json::Value;

/// True when only slice roots can be the left side of `in` in `set`.
pub fn only_roots_tested_for_ancestry(set: &PolicySet) -> bool {
    let mut templates_and_policies = set
        .policies()
        .map(|p| p.to_json().ok())
        .chain(set.templates().map(|t| t.to_json().ok()));
    templates_and_policies.all(|est| est.is_some_and(|est| lhs_are_roots(&est)))
}

/// Walks the policy's JSON form (Cedar's EST): every `in` node's `left`
/// must be a root. Scope constraints (`principal in ...`) are written
/// without a `left` and are on roots by construction.
fn lhs_are_roots(node: &Value) -> bool {
    match node {
        Value::Object(fields) => fields.iter().all(|(key, value)| {
            let membership_lhs = match (key.as_str(), value) {
                ("in", Value::Object(op)) => op.get("left"),
                ("is", Value::Object(op)) if op.contains_key("in") => op.get("left"),
                _ => None,
            };
            membership_lhs.is_none_or(is_root) && lhs_are_roots(value)
        }),
        Value::Array(items) => items.iter().all(lhs_are_roots),
        // Scalars hold no expressions.
        _ => true,
    }
}

/// `principal`, `action`, `resource`, or `context.field`: the entities the
/// slice starts from (a context field that names an entity is a root).
fn is_root(expr: &Value) -> bool {
    let var = |e: &Value| e.get("Var").and_then(Value::as_str).map(str::to_owned);
    if let Some(name) = var(expr) {
        return matches!(name.as_str(), "principal" | "action" | "resource");
    }
    expr.get(".")
        .and_then(|access| access.get("left"))
        .and_then(var)
        .is_some_and(|name| name == "context")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn check(text: &str, expected: bool) {
        let set: PolicySet = text.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(only_roots_tested_for_ancestry(&set), expected, "{text}");
    }

    #[test]
    fn roots_and_context_fields_on_the_left_keep_the_shortcut() {
        check(
            r#"permit(principal in Group::"g", action in [Action::"a"], resource in Org::"o")
               when { principal in resource.org.admins && context.target in resource
                      && resource is Environment in principal && action in Action::"b" };"#,
            true,
        );
        check(
            r#"permit(principal == ?principal, action, resource in ?resource);"#,
            true,
        );
    }

    #[test]
    fn any_other_left_side_needs_every_ancestor() {
        check(
            r#"permit(principal, action, resource) when { resource.owner in principal };"#,
            false,
        );
        check(
            r#"permit(principal, action, resource) when { context.a.b in principal };"#,
            false,
        );
        check(
            r#"permit(principal, action, resource) when { User::"x" in resource };"#,
            false,
        );
        check(
            r#"permit(principal, action, resource)
               when { (if true then principal else resource) in resource };"#,
            false,
        );
        check(
            r#"permit(principal, action, resource) unless { resource.owner is User in principal };"#,
            false,
        );
    }
}
