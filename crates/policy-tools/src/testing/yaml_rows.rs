//! The rows of a YAML decision table, each turned into test cases.
//!
//! A `rows` table is a matrix: `[action, resource, one cell per principal
//! column]`, one case per column. A `cases` table has one request per row,
//! as a list `[principal, action, resource, cell]` or as a mapping. Either
//! may end with a context mapping. Each part of a request is resolved at its
//! own node, so a typo is reported at the cell that holds it; what only the
//! whole request can break (the context against the schema) at the row.

use cedar_policy::Schema;

use super::case::{ErrorCheck, Expectation, ReasonCheck, TestCase};
use super::names::{action_uid, checked_request, yaml_to_cedar_json, EntitySet, Role};
use super::yaml_node::{Mistake, Node, Scalar, Value};
use crate::engine::Verdict;

/// A request's context, as Cedar's JSON.
pub type Context = serde_json::Map<String, serde_json::Value>;

/// What every row of one table shares.
pub struct Table<'a> {
    /// Requests are checked against it.
    pub schema: &'a Schema,
    /// The test file as the user named it.
    pub file: &'a str,
    /// The entities the table's names are resolved in and decided against.
    pub set: &'a EntitySet,
    /// Prefixes every case's name.
    pub name: &'a str,
    /// The table's `context`, under each row's own.
    pub context: &'a Context,
}

/// A principal column of a `rows` table.
pub struct Column<'n> {
    /// The principal as written.
    pub name: String,
    /// Where: a principal that does not resolve is reported here.
    pub node: &'n Node,
}

/// How a table's rows are written.
#[derive(Clone, Copy)]
pub enum Shape<'a> {
    /// `[action, resource, cell per principal column, {context}?]`.
    Matrix(&'a [Column<'a>]),
    /// `[principal, action, resource, cell, {context}?]` or a mapping.
    List,
}

const CASE_KEYS: &[&str] = &[
    "name",
    "principal",
    "action",
    "resource",
    "context",
    "decision",
    "reasons",
    "errors",
];

/// The cases of a table's `rows` or `cases` list, in order.
pub fn rows(table: &Table<'_>, shape: Shape<'_>, value: &Node) -> Result<Vec<TestCase>, Mistake> {
    let items = value.list("a list of rows")?;
    let mut out = Vec::new();
    for (index, row) in items.iter().enumerate() {
        let cases = match shape {
            Shape::Matrix(columns) => matrix_row(table, columns, row),
            Shape::List => list_row(table, row),
        };
        out.extend(cases.map_err(|mistake| mistake.in_item(index))?);
    }
    Ok(out)
}

/// A context mapping, its `Type::"id"` strings made entity references.
pub fn context_map(value: &Node) -> Result<Context, Mistake> {
    let what = "the context to be a mapping";
    value.mapping(what)?;
    match yaml_to_cedar_json(value)? {
        serde_json::Value::Object(object) => Ok(object),
        // Nothing written: no context.
        _ => Ok(Context::new()),
    }
}

/// One part of a request as written, and where.
#[derive(Clone, Copy)]
struct Part<'r> {
    text: &'r str,
    node: &'r Node,
}

impl<'r> Part<'r> {
    fn string(node: &'r Node, what: &str) -> Result<Self, Mistake> {
        Ok(Self {
            text: node.string(what)?,
            node,
        })
    }
}

/// A request as a row writes it.
struct Request<'r> {
    row: &'r Node,
    principal: Part<'r>,
    action: Part<'r>,
    resource: Part<'r>,
    context: &'r Context,
}

impl<'r> Request<'r> {
    /// One request from its nodes, each a string.
    fn new(
        row: &'r Node,
        principal: &'r Node,
        action: &'r Node,
        resource: &'r Node,
        context: &'r Context,
    ) -> Result<Self, Mistake> {
        Ok(Self {
            row,
            principal: Part::string(principal, "the principal")?,
            action: Part::string(action, "the action")?,
            resource: Part::string(resource, "the resource")?,
            context,
        })
    }
}

fn matrix_row(
    table: &Table<'_>,
    columns: &[Column<'_>],
    row: &Node,
) -> Result<Vec<TestCase>, Mistake> {
    let cells = row.list("a row: [action, resource, one cell per principal]")?;
    let (cells, context) = trailing_context(cells)?;
    let wrong_count = || {
        Mistake::at(
            row,
            format!(
                "this row has {} cells; expected the action, the resource and {} decisions (one per principal)",
                cells.len(),
                columns.len()
            ),
        )
    };
    let [action, resource, decisions @ ..] = cells else {
        return Err(wrong_count());
    };
    if decisions.len() != columns.len() {
        return Err(wrong_count());
    }
    let action = Part::string(action, "the action")?;
    let resource = Part::string(resource, "the resource")?;
    let mut out = Vec::new();
    for (column, cell) in columns.iter().zip(decisions) {
        let expect = decision(cell, "a decision")?;
        let resource_text = resource.text.replace("{principal}", &column.name);
        let request = Request {
            row,
            principal: Part {
                text: &column.name,
                node: column.node,
            },
            action,
            resource: Part {
                text: &resource_text,
                ..resource
            },
            context: &context,
        };
        out.push(build_case(table, None, &request, expect)?);
    }
    Ok(out)
}

fn list_row(table: &Table<'_>, row: &Node) -> Result<Vec<TestCase>, Mistake> {
    match &row.value {
        Value::List(cells) => {
            let (cells, context) = trailing_context(cells)?;
            let [principal, action, resource, cell] = cells else {
                return Err(Mistake::at(
                    row,
                    format!(
                        "a case is [principal, action, resource, decision] (and an optional context mapping); found {} cells",
                        cells.len()
                    ),
                ));
            };
            let expect = decision(cell, "the decision")?;
            let request = Request::new(row, principal, action, resource, &context)?;
            Ok(vec![build_case(table, None, &request, expect)?])
        }
        Value::Map(fields) => Ok(case_mapping(table, row, fields)?.into_iter().collect()),
        Value::Scalar(..) => Err(Mistake::expected(row, "a case: a list or a mapping")),
    }
}

/// `{principal, action, resource, decision}` and optional `name`,
/// `context`, `reasons`, `errors`; `None` when the decision is `skip`.
fn case_mapping(
    table: &Table<'_>,
    row: &Node,
    fields: &[(Node, Node)],
) -> Result<Option<TestCase>, Mistake> {
    for (key, _) in fields {
        key.key_in(CASE_KEYS)?;
    }
    let get = |field: &str| {
        fields
            .iter()
            .find(|(key, _)| key.as_str() == Some(field))
            .map(|(_, value)| value)
    };
    let required =
        |field: &str| get(field).ok_or_else(|| Mistake::at(row, format!("a case needs `{field}`")));
    let principal = required("principal")?;
    let action = required("action")?;
    let resource = required("resource")?;
    let decision_node = required("decision")?;
    let context = get("context")
        .map(context_map)
        .transpose()?
        .unwrap_or_default();
    let Some(mut expect) = decision(decision_node, "the decision")? else {
        return Ok(None);
    };
    if let Some(reasons) = get("reasons") {
        expect.reasons = ReasonCheck::Exactly(string_list(reasons, "reasons")?);
    }
    if let Some(errors) = get("errors") {
        expect.errors = error_check(errors)?;
    }
    let name = get("name").map(|name| name.name("the name")).transpose()?;
    let request = Request::new(row, principal, action, resource, &context)?;
    build_case(table, name, &request, Some(expect)).map(Some)
}

/// A row's cells less a trailing context mapping, and that context.
fn trailing_context(cells: &[Node]) -> Result<(&[Node], Context), Mistake> {
    match cells.split_last() {
        Some((last, rest)) if matches!(last.value, Value::Map(_)) => Ok((rest, context_map(last)?)),
        _ => Ok((cells, Context::new())),
    }
}

/// `errors: N` (exactly N evaluation errors) or `errors: [text, ...]`.
fn error_check(value: &Node) -> Result<ErrorCheck, Mistake> {
    let wrong = || Mistake::expected(value, "`errors` to be a count or a list of strings");
    match value.value {
        Value::Scalar(_, Scalar::Int(count)) => usize::try_from(count)
            .map(ErrorCheck::Count)
            .map_err(|_| wrong()),
        Value::List(_) => string_list(value, "errors").map(ErrorCheck::Contains),
        _ => Err(wrong()),
    }
}

fn string_list(value: &Node, field: &str) -> Result<Vec<String>, Mistake> {
    let what = format!("each item of `{field}`");
    value
        .list(&format!("`{field}` to be a list of strings"))?
        .iter()
        .map(|item| item.string(&what).map(str::to_string))
        .collect()
}

/// A decision cell, reported at the cell when it is not one.
fn decision(cell: &Node, what: &str) -> Result<Option<Expectation>, Mistake> {
    parse_cell(cell.string(what)?).map_err(|message| Mistake::at(cell, message))
}

fn build_case(
    table: &Table<'_>,
    name: Option<String>,
    request: &Request<'_>,
    expect: Option<Expectation>,
) -> Result<TestCase, Mistake> {
    let schema = table.schema;
    let Request {
        row,
        principal,
        action,
        resource,
        context: row_context,
    } = request;
    let action_id = action_uid(action.text).map_err(|m| Mistake::at(action.node, m))?;
    if schema.principals_for_action(&action_id).is_none() {
        return Err(Mistake::at(
            action.node,
            format!("unknown action `{action_id}`: the schema does not declare it"),
        ));
    }
    let principal_id = table
        .set
        .resolve(principal.text, &action_id, Role::Principal, schema)
        .map_err(|m| Mistake::at(principal.node, m))?;
    let resource_id = table
        .set
        .resolve(resource.text, &action_id, Role::Resource, schema)
        .map_err(|m| Mistake::at(resource.node, m))?;
    let mut context = table.context.clone();
    context.extend((*row_context).clone());
    let checked = checked_request(
        schema,
        principal_id,
        action_id,
        resource_id,
        serde_json::Value::Object(context),
    )
    .map_err(|message| Mistake::at(row, message))?;
    let name =
        name.unwrap_or_else(|| format!("{} {} {}", principal.text, action.text, resource.text));
    Ok(TestCase {
        name: format!("{}: {name}", table.name),
        file: table.file.to_string(),
        line: None,
        request: checked,
        entities: table.set.map.clone(),
        expect,
    })
}

/// `allow`, `deny`, `allow(id ...)`, `deny(id ...)` or `skip`.
fn parse_cell(cell: &str) -> Result<Option<Expectation>, String> {
    let cell = cell.trim();
    if cell == "skip" {
        return Ok(None);
    }
    let (word, ids) = match cell.split_once('(') {
        Some((word, rest)) => {
            let inner = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("`{cell}`: missing `)`"))?;
            let ids: Vec<String> = inner
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|id| !id.is_empty())
                .map(str::to_string)
                .collect();
            (word.trim(), Some(ids))
        }
        None => (cell, None),
    };
    let verdict = match word {
        "allow" => Verdict::Allow,
        "deny" => Verdict::Deny,
        other => {
            return Err(format!(
                "`{other}` is not a decision: write allow, deny, allow(policy-id ...), deny(policy-id ...) or skip"
            ))
        }
    };
    Ok(Some(Expectation {
        verdict,
        reasons: ids.map_or(ReasonCheck::Any, ReasonCheck::Exactly),
        errors: ErrorCheck::Count(0),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn cell(text: &str) -> Option<Expectation> {
        parse_cell(text).unwrap()
    }

    #[test]
    fn cells_read_as_decisions_with_optional_policy_ids() {
        let allow = cell("allow").unwrap();
        assert_eq!(allow.verdict, Verdict::Allow);
        assert_eq!(allow.reasons, ReasonCheck::Any);
        assert_eq!(allow.errors, ErrorCheck::Count(0));
        let deny = cell(" deny(a b,c) ").unwrap();
        assert_eq!(deny.verdict, Verdict::Deny);
        assert_eq!(
            deny.reasons,
            ReasonCheck::Exactly(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            cell("deny()").unwrap().reasons,
            ReasonCheck::Exactly(vec![])
        );
        assert!(cell("skip").is_none());
        for bad in ["Allow", "permit", "allow(a", "", "maybe(x)"] {
            assert!(parse_cell(bad).is_err(), "`{bad}` must be refused");
        }
    }
}
