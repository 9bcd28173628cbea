//! The YAML test format: decision tables a person can read.
//!
//! ```yaml
//! name: who can do what               # optional
//! entities: ../../demo/entities.json  # optional: a file or a list of files
//! fixtures:                           # optional: more entities, by uid
//!   Model::"paula-mini": { attrs: { environment: Environment::"personal-paula" } }
//! tables:
//!   - name: Create / delete an org
//!     principals: [ana, olivia, paula]            # the columns
//!     rows:
//!       #  action     resource  ana    olivia paula
//!       - [CreateOrg, thunk,    allow, deny,  deny]
//!   - name: One request per row
//!     cases:
//!       - [paula, UseModel, acme-prod-gpt4o, allow(participants-use-granted-environment-resources)]
//!       - { principal: olivia, action: RemoveMember, resource: acme,
//!           context: { target: User::"olivia" }, decision: deny, errors: 0 }
//! ```
//!
//! In a `rows` table the resource may contain `{principal}`, replaced by
//! each column's principal (`personal-{principal}`). A cell is `allow`, `deny`, `allow(id ...)` / `deny(id ...)` (exactly these
//! determining policies) or `skip`. Names are resolved by
//! [`super::names`]. Keys are read in order, so `entities` and `fixtures`
//! come before `tables`, and a table's `name`, `principals`, `context` and
//! `fixtures` before its `rows` or `cases`; every mistake is reported with
//! its line and column.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use cedar_policy::Schema;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_yaml::{Mapping, Value};

use super::case::{ErrorCheck, Expectation, ReasonCheck, TestCase};
use super::names::{action_uid, checked_request, parse_uid, yaml_to_cedar_json, EntitySet, Role};
use crate::diagnostics::{Problem, Problems};
use crate::engine::Verdict;
use crate::entities::{load_entities_file, parse_entities_json, StoredEntity};

/// Parses a YAML test file.
pub fn parse(
    path: &Path,
    shown: &str,
    text: &Arc<str>,
    schema: &Schema,
) -> Result<Vec<TestCase>, Problems> {
    let ctx = Ctx {
        schema,
        dir: path.parent().unwrap_or_else(|| Path::new(".")),
        shown,
    };
    FileSeed { ctx: &ctx }
        .deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|error| Problems(vec![yaml_problem(shown, text, &error)]))
}

/// A serde_yaml error as a problem at its line and column.
fn yaml_problem(shown: &str, text: &Arc<str>, error: &serde_yaml::Error) -> Problem {
    let mut message = error.to_string();
    if let Some((head, tail)) = message.rsplit_once(" at line ") {
        if tail
            .split(" column ")
            .all(|n| n.chars().all(|c| c.is_ascii_digit()))
        {
            message = head.to_string();
        }
    }
    match error.location() {
        Some(location) => Problem::message(shown, message).at(text.clone(), location.index()),
        None => Problem::message(shown, message),
    }
}

struct Ctx<'a> {
    schema: &'a Schema,
    dir: &'a Path,
    shown: &'a str,
}

const FILE_KEYS: &[&str] = &["name", "entities", "fixtures", "tables"];
const TABLE_KEYS: &[&str] = &["name", "principals", "context", "fixtures", "rows", "cases"];
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

struct FileSeed<'a> {
    ctx: &'a Ctx<'a>,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = Vec<TestCase>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = Vec<TestCase>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a test file: a mapping with `entities`, `fixtures` and `tables`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        let mut from_files: Vec<StoredEntity> = Vec::new();
        let mut fixtures: Vec<StoredEntity> = Vec::new();
        let mut cases: Option<Vec<TestCase>> = None;
        loop {
            let after_tables = cases.is_some();
            let Some(key) = map.next_key_seed(Node(|value| {
                let key = known_key(value, FILE_KEYS)?;
                if after_tables && key != "name" {
                    return Err(format!("`{key}` must come before `tables`"));
                }
                Ok(key)
            }))?
            else {
                break;
            };
            match key.as_str() {
                "name" => {
                    map.next_value::<String>()?;
                }
                "entities" => from_files
                    .extend(map.next_value_seed(Node(|value| load_entity_files(ctx, value)))?),
                "fixtures" => fixtures.extend(map.next_value_seed(FixturesSeed { ctx })?),
                "tables" => {
                    let mut all = std::mem::take(&mut from_files);
                    all.append(&mut fixtures);
                    let set = EntitySet::new(all);
                    cases = Some(map.next_value_seed(TablesSeed { ctx, set: &set })?);
                }
                other => return Err(de::Error::unknown_field(other, FILE_KEYS)),
            }
        }
        cases.ok_or_else(|| de::Error::missing_field("tables"))
    }
}

/// Entity files named by `entities:` (one path or a list), relative to the test file.
fn load_entity_files(ctx: &Ctx<'_>, value: Value) -> Result<Vec<StoredEntity>, String> {
    let names: Vec<String> = match value {
        Value::String(name) => vec![name],
        Value::Sequence(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(name) => Ok(name),
                other => Err(format!(
                    "an entities file name must be a string, not {other:?}"
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "`entities` is a file name or a list of file names, not {other:?}"
            ))
        }
    };
    let mut out = Vec::new();
    for name in names {
        let path = ctx.dir.join(&name);
        let loaded = load_entities_file(&path, ctx.schema)
            .map_err(|problems| format!("cannot load entities `{name}`: {problems}"))?;
        out.extend(loaded);
    }
    Ok(out)
}

struct FixturesSeed<'a> {
    ctx: &'a Ctx<'a>,
}

impl<'de> DeserializeSeed<'de> for FixturesSeed<'_> {
    type Value = Vec<StoredEntity>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FixturesSeed<'_> {
    type Value = Vec<StoredEntity>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping from entity uid (`Type::\"id\"`) to `{attrs, parents, tags}`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(uid) = map.next_key_seed(Node(|value| match value {
            Value::String(text) => parse_uid(&text),
            other => Err(format!("a fixture key is an entity uid, not {other:?}")),
        }))? {
            let schema = self.ctx.schema;
            out.push(map.next_value_seed(Node(|value| fixture_entity(&uid, value, schema)))?);
        }
        Ok(out)
    }
}

/// One fixture: `{attrs, parents, tags}` (all optional) under its uid.
fn fixture_entity(
    uid: &cedar_policy::EntityUid,
    value: Value,
    schema: &Schema,
) -> Result<StoredEntity, String> {
    let body = match value {
        Value::Null => Mapping::new(),
        Value::Mapping(body) => body,
        other => {
            return Err(format!(
                "a fixture is a mapping with `attrs`, `parents`, `tags`, not {other:?}"
            ))
        }
    };
    let mut attrs = serde_json::json!({});
    let mut parents = Vec::new();
    let mut tags = None;
    for (key, value) in body {
        match key.as_str() {
            Some("attrs") => attrs = yaml_to_cedar_json(&value)?,
            Some("tags") => tags = Some(yaml_to_cedar_json(&value)?),
            Some("parents") => {
                let Value::Sequence(items) = value else {
                    return Err("`parents` is a list of entity uids".to_string());
                };
                for item in items {
                    let text = item.as_str().ok_or("`parents` is a list of entity uids")?;
                    let parent = parse_uid(text)?;
                    parents.push(uid_json(&parent));
                }
            }
            _ => {
                return Err(format!(
                    "unknown fixture field {key:?}: expected `attrs`, `parents` or `tags`"
                ))
            }
        }
    }
    let mut json = serde_json::json!({ "uid": uid_json(uid), "attrs": attrs, "parents": parents });
    if let (Some(tags), Some(object)) = (tags, json.as_object_mut()) {
        object.insert("tags".into(), tags);
    }
    let mut parsed = parse_entities_json(vec![json], schema).map_err(|e| e.to_string())?;
    parsed
        .pop()
        .ok_or_else(|| format!("fixture `{uid}` vanished"))
}

fn uid_json(uid: &cedar_policy::EntityUid) -> serde_json::Value {
    serde_json::json!({ "type": uid.type_name().to_string(), "id": uid.id().unescaped() })
}

struct TablesSeed<'a> {
    ctx: &'a Ctx<'a>,
    set: &'a EntitySet,
}

impl<'de> DeserializeSeed<'de> for TablesSeed<'_> {
    type Value = Vec<TestCase>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for TablesSeed<'_> {
    type Value = Vec<TestCase>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of tables")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(cases) = seq.next_element_seed(TableSeed {
            ctx: self.ctx,
            set: self.set,
        })? {
            out.extend(cases);
        }
        Ok(out)
    }
}

struct TableSeed<'a> {
    ctx: &'a Ctx<'a>,
    set: &'a EntitySet,
}

impl<'de> DeserializeSeed<'de> for TableSeed<'_> {
    type Value = Vec<TestCase>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TableSeed<'_> {
    type Value = Vec<TestCase>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table: a mapping with `name`, then `principals` and `rows`, or `cases`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name: Option<String> = None;
        let mut principals: Option<Vec<String>> = None;
        let mut context = serde_json::Map::new();
        let mut own_set: Option<EntitySet> = None;
        let mut cases: Option<Vec<TestCase>> = None;
        loop {
            let after_rows = cases.is_some();
            let Some(key) = map.next_key_seed(Node(|value| {
                let key = known_key(value, TABLE_KEYS)?;
                if after_rows {
                    return Err(format!("`{key}` must come before `rows` or `cases`"));
                }
                Ok(key)
            }))?
            else {
                break;
            };
            match key.as_str() {
                "name" => name = Some(map.next_value()?),
                "principals" => principals = Some(map.next_value()?),
                "context" => {
                    context =
                        map.next_value_seed(Node(|value| match yaml_to_cedar_json(&value)? {
                            serde_json::Value::Object(object) => Ok(object),
                            _ => Err("`context` is a mapping".to_string()),
                        }))?
                }
                "fixtures" => {
                    let extra = map.next_value_seed(FixturesSeed { ctx: self.ctx })?;
                    let mut all = self.set.entities();
                    all.extend(extra);
                    own_set = Some(EntitySet::new(all));
                }
                "rows" | "cases" => {
                    let Some(table) = name.clone() else {
                        return Err(de::Error::custom("a table's `name` must come first"));
                    };
                    let shape = if key == "rows" {
                        match &principals {
                            Some(columns) => Shape::Matrix(columns),
                            None => {
                                return Err(de::Error::custom(
                                    "`principals` (the columns) must come before `rows`",
                                ))
                            }
                        }
                    } else {
                        Shape::List
                    };
                    let rows = RowsSeed {
                        table: Table {
                            ctx: self.ctx,
                            set: own_set.as_ref().unwrap_or(self.set),
                            name: &table,
                            context: &context,
                        },
                        shape,
                    };
                    cases = Some(map.next_value_seed(rows)?);
                }
                other => return Err(de::Error::unknown_field(other, TABLE_KEYS)),
            }
        }
        cases
            .ok_or_else(|| de::Error::custom("a table needs `rows` (with `principals`) or `cases`"))
    }
}

/// What every row of one table shares.
struct Table<'a> {
    ctx: &'a Ctx<'a>,
    set: &'a EntitySet,
    name: &'a str,
    context: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Copy)]
enum Shape<'a> {
    /// `[action, resource, cell per principal column, {context}?]`.
    Matrix(&'a [String]),
    /// `[principal, action, resource, cell, {context}?]` or a mapping.
    List,
}

struct RowsSeed<'a> {
    table: Table<'a>,
    shape: Shape<'a>,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = Vec<TestCase>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = Vec<TestCase>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        let table = &self.table;
        let shape = self.shape;
        while let Some(cases) = seq.next_element_seed(Node(|row| match shape {
            Shape::Matrix(columns) => matrix_row(table, columns, row),
            Shape::List => list_row(table, row),
        }))? {
            out.extend(cases);
        }
        Ok(out)
    }
}

fn matrix_row(table: &Table<'_>, columns: &[String], row: Value) -> Result<Vec<TestCase>, String> {
    let Value::Sequence(mut cells) = row else {
        return Err("a row is a list: [action, resource, one cell per principal]".to_string());
    };
    let context = take_trailing_context(&mut cells)?;
    if cells.len() != columns.len() + 2 {
        return Err(format!(
            "this row has {} cells; expected the action, the resource and {} decisions (one per principal)",
            cells.len(),
            columns.len()
        ));
    }
    let action = text(&cells[0], "the action")?;
    let resource = text(&cells[1], "the resource")?;
    let mut out = Vec::new();
    for (principal, cell) in columns.iter().zip(&cells[2..]) {
        let expect = parse_cell(text(cell, "a decision")?)?;
        let resource = resource.replace("{principal}", principal);
        out.push(build_case(
            table, None, principal, action, &resource, &context, expect,
        )?);
    }
    Ok(out)
}

fn list_row(table: &Table<'_>, row: Value) -> Result<Vec<TestCase>, String> {
    match row {
        Value::Sequence(mut cells) => {
            let context = take_trailing_context(&mut cells)?;
            let [principal, action, resource, cell] = cells.as_slice() else {
                return Err(format!(
                    "a case is [principal, action, resource, decision] (and an optional context mapping); found {} cells",
                    cells.len()
                ));
            };
            let expect = parse_cell(text(cell, "the decision")?)?;
            let case = build_case(
                table,
                None,
                text(principal, "the principal")?,
                text(action, "the action")?,
                text(resource, "the resource")?,
                &context,
                expect,
            )?;
            Ok(vec![case])
        }
        Value::Mapping(fields) => {
            let get = |key: &str| fields.get(key).cloned();
            for key in fields.keys() {
                let known = key.as_str().is_some_and(|k| CASE_KEYS.contains(&k));
                if !known {
                    return Err(format!(
                        "unknown case field {key:?}: expected one of {}",
                        CASE_KEYS.join(", ")
                    ));
                }
            }
            let required = |value: Option<Value>, what: &str| {
                value.ok_or_else(|| format!("a case needs `{what}`"))
            };
            let principal = required(get("principal"), "principal")?;
            let action = required(get("action"), "action")?;
            let resource = required(get("resource"), "resource")?;
            let decision = required(get("decision"), "decision")?;
            let context = match get("context") {
                Some(value) => context_map(&value)?,
                None => serde_json::Map::new(),
            };
            let Some(mut expect) = parse_cell(text(&decision, "the decision")?)? else {
                return Ok(Vec::new());
            };
            if let Some(reasons) = get("reasons") {
                expect.reasons = ReasonCheck::Exactly(string_list(&reasons, "reasons")?);
            }
            if let Some(errors) = get("errors") {
                expect.errors = match errors {
                    Value::Number(n) => ErrorCheck::Count(
                        n.as_u64()
                            .and_then(|n| usize::try_from(n).ok())
                            .ok_or("`errors` is a count or a list of strings")?,
                    ),
                    other => ErrorCheck::Contains(string_list(&other, "errors")?),
                };
            }
            let name = match get("name") {
                Some(value) => Some(text(&value, "the name")?.to_string()),
                None => None,
            };
            let case = build_case(
                table,
                name,
                text(&principal, "the principal")?,
                text(&action, "the action")?,
                text(&resource, "the resource")?,
                &context,
                Some(expect),
            )?;
            Ok(vec![case])
        }
        other => Err(format!("a case is a list or a mapping, not {other:?}")),
    }
}

/// Removes a trailing context mapping from a row.
fn take_trailing_context(
    cells: &mut Vec<Value>,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    if matches!(cells.last(), Some(Value::Mapping(_))) {
        if let Some(last) = cells.pop() {
            return context_map(&last);
        }
    }
    Ok(serde_json::Map::new())
}

fn context_map(value: &Value) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match yaml_to_cedar_json(value)? {
        serde_json::Value::Object(object) => Ok(object),
        _ => Err("a context is a mapping".to_string()),
    }
}

fn build_case(
    table: &Table<'_>,
    name: Option<String>,
    principal: &str,
    action: &str,
    resource: &str,
    row_context: &serde_json::Map<String, serde_json::Value>,
    expect: Option<Expectation>,
) -> Result<TestCase, String> {
    let schema = table.ctx.schema;
    let action_id = action_uid(action)?;
    if schema.principals_for_action(&action_id).is_none() {
        return Err(format!(
            "unknown action `{action_id}`: the schema does not declare it"
        ));
    }
    let principal_id = table
        .set
        .resolve(principal, &action_id, Role::Principal, schema)?;
    let resource_id = table
        .set
        .resolve(resource, &action_id, Role::Resource, schema)?;
    let mut context = table.context.clone();
    context.extend(row_context.clone());
    let request = checked_request(
        schema,
        principal_id,
        action_id,
        resource_id,
        serde_json::Value::Object(context),
    )?;
    let name = name.unwrap_or_else(|| format!("{principal} {action} {resource}"));
    Ok(TestCase {
        name: format!("{}: {name}", table.name),
        file: table.ctx.shown.to_string(),
        line: None,
        request,
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

/// A mapping key that must be one of `known`.
fn known_key(value: Value, known: &[&str]) -> Result<String, String> {
    match value {
        Value::String(key) if known.contains(&key.as_str()) => Ok(key),
        Value::String(key) => Err(format!(
            "unknown field `{key}`, expected one of {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        other => Err(format!("a key must be a string, not {other:?}")),
    }
}

fn text<'v>(value: &'v Value, what: &str) -> Result<&'v str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("{what} must be a string, found {value:?}"))
}

fn string_list(value: &Value, what: &str) -> Result<Vec<String>, String> {
    match value {
        Value::Sequence(items) => items
            .iter()
            .map(|item| text(item, what).map(str::to_string))
            .collect(),
        other => Err(format!("`{what}` is a list of strings, not {other:?}")),
    }
}

/// Deserializes one YAML node and converts it *inside* the deserializer's
/// call, so an error from the conversion carries that node's line and column.
struct Node<F>(F);

impl<'de, T, F> DeserializeSeed<'de> for Node<F>
where
    F: FnOnce(Value) -> Result<T, String>,
{
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T, F> Visitor<'de> for Node<F>
where
    F: FnOnce(Value) -> Result<T, String>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        (self.0)(Value::Bool(v)).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        (self.0)(Value::Number(v.into())).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.0)(Value::Number(v.into())).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        (self.0)(Value::Number(v.into())).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(Value::String(v.to_string())).map_err(E::custom)
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        (self.0)(Value::Null).map_err(E::custom)
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        (self.0)(Value::Null).map_err(E::custom)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        (self.0)(Value::Sequence(items)).map_err(de::Error::custom)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut out = Mapping::new();
        while let Some((key, value)) = map.next_entry::<Value, Value>()? {
            out.insert(key, value);
        }
        (self.0)(Value::Mapping(out)).map_err(de::Error::custom)
    }
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
