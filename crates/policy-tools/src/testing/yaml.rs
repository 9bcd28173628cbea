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
//! the line and column of the node it is about.
//!
//! The file is parsed into a tree of positioned nodes ([`super::yaml_node`]);
//! this module reads the file's and the tables' keys, [`super::yaml_rows`]
//! turns each row into test cases.

use std::path::Path;
use std::sync::Arc;

use cedar_policy::{EntityUid, Schema};

use super::case::TestCase;
use super::names::{parse_uid, yaml_to_cedar_json, EntitySet};
use super::yaml_node::{self, Mistake, Node, Value};
use super::yaml_rows::{context_map, rows, Column, Context, Shape, Table};
use crate::diagnostics::Problems;
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
    yaml_node::load(text)
        .and_then(|root| test_file(&ctx, &root))
        .map_err(|mistake| Problems(vec![mistake.into_problem(shown, text)]))
}

/// What reading any part of the file needs.
struct Ctx<'a> {
    /// Fixtures are checked and requests built against it.
    schema: &'a Schema,
    /// Entity files are named relative to the test file's folder.
    dir: &'a Path,
    /// The file as the user named it, for each case's report line.
    shown: &'a str,
}

const FILE_KEYS: &[&str] = &["name", "entities", "fixtures", "tables"];
const TABLE_KEYS: &[&str] = &["name", "principals", "context", "fixtures", "rows", "cases"];
const FIXTURE_KEYS: &[&str] = &["attrs", "parents", "tags"];

/// The whole file: entity data first, then the tables decided against it.
fn test_file(ctx: &Ctx<'_>, root: &Node) -> Result<Vec<TestCase>, Mistake> {
    let entries =
        root.mapping("a test file: a mapping with `entities`, `fixtures` and `tables`")?;
    let mut from_files = Vec::new();
    let mut fixtures = Vec::new();
    let mut cases = None;
    for (key, value) in entries {
        let field = key.key_in(FILE_KEYS)?;
        if cases.is_some() && field != "name" {
            return Err(Mistake::at(
                key,
                format!("`{field}` must come before `tables`"),
            ));
        }
        let in_field = |mistake: Mistake| mistake.in_field(field);
        match field {
            "name" => {
                value.name("the name").map_err(in_field)?;
            }
            "entities" => from_files.extend(entity_files(ctx, value).map_err(in_field)?),
            "fixtures" => fixtures.extend(fixture_map(ctx.schema, value).map_err(in_field)?),
            _ => {
                // Fixtures replace same-uid entities from files, whatever the key order.
                let mut all = std::mem::take(&mut from_files);
                all.append(&mut fixtures);
                let set = EntitySet::new(all);
                cases = Some(tables(ctx, &set, value).map_err(in_field)?);
            }
        }
    }
    cases.ok_or_else(|| Mistake::at(root, "a test file needs `tables`"))
}

/// Entity files named by `entities:` (one path or a list), relative to the test file.
fn entity_files(ctx: &Ctx<'_>, value: &Node) -> Result<Vec<StoredEntity>, Mistake> {
    let names = match &value.value {
        Value::List(items) => items,
        _ => std::slice::from_ref(value),
    };
    let mut out = Vec::new();
    for node in names {
        let name = node.string("an entities file name")?;
        let loaded = load_entities_file(&ctx.dir.join(name), ctx.schema).map_err(|problems| {
            Mistake::at(node, format!("cannot load entities `{name}`: {problems}"))
        })?;
        out.extend(loaded);
    }
    Ok(out)
}

/// `fixtures:`, entities by uid, each `{attrs, parents, tags}` (all optional).
fn fixture_map(schema: &Schema, value: &Node) -> Result<Vec<StoredEntity>, Mistake> {
    let entries =
        value.mapping("a mapping from entity uid (`Type::\"id\"`) to `{attrs, parents, tags}`")?;
    entries
        .iter()
        .map(|(key, body)| {
            let uid = uid_at(key)?;
            fixture_entity(&uid, body, schema).map_err(|mistake| mistake.in_field(&uid.to_string()))
        })
        .collect()
}

/// One fixture, checked against the schema as an entities file would be.
fn fixture_entity(uid: &EntityUid, body: &Node, schema: &Schema) -> Result<StoredEntity, Mistake> {
    let fields = body.mapping("a fixture: a mapping with `attrs`, `parents`, `tags`")?;
    let mut attrs = serde_json::json!({});
    let mut parents = Vec::new();
    let mut tags = None;
    for (key, value) in fields {
        match key.key_in(FIXTURE_KEYS)? {
            "attrs" => attrs = yaml_to_cedar_json(value)?,
            "tags" => tags = Some(yaml_to_cedar_json(value)?),
            _ => {
                for item in value.list("`parents` to be a list of entity uids")? {
                    parents.push(uid_json(&uid_at(item)?));
                }
            }
        }
    }
    let mut json = serde_json::json!({ "uid": uid_json(uid), "attrs": attrs, "parents": parents });
    if let (Some(tags), Some(object)) = (tags, json.as_object_mut()) {
        object.insert("tags".into(), tags);
    }
    let mut parsed =
        parse_entities_json(vec![json], schema).map_err(|e| Mistake::at(body, e.to_string()))?;
    parsed
        .pop()
        .ok_or_else(|| Mistake::at(body, format!("fixture `{uid}` vanished")))
}

/// A node written `Type::"id"`.
fn uid_at(node: &Node) -> Result<EntityUid, Mistake> {
    parse_uid(node.string("an entity uid")?).map_err(|message| Mistake::at(node, message))
}

fn uid_json(uid: &EntityUid) -> serde_json::Value {
    serde_json::json!({ "type": uid.type_name().to_string(), "id": uid.id().unescaped() })
}

fn tables(ctx: &Ctx<'_>, set: &EntitySet, value: &Node) -> Result<Vec<TestCase>, Mistake> {
    let items = value.list("a list of tables")?;
    let mut out = Vec::new();
    for (index, node) in items.iter().enumerate() {
        out.extend(table(ctx, set, node).map_err(|mistake| mistake.in_item(index))?);
    }
    Ok(out)
}

/// One table: its `name`, what its rows share, then the `rows` or `cases`.
fn table(ctx: &Ctx<'_>, set: &EntitySet, node: &Node) -> Result<Vec<TestCase>, Mistake> {
    let fields =
        node.mapping("a table: a mapping with `name`, then `principals` and `rows`, or `cases`")?;
    let mut name: Option<String> = None;
    let mut principals: Option<Vec<Column<'_>>> = None;
    let mut context = Context::new();
    let mut own_set: Option<EntitySet> = None;
    let mut cases: Option<Vec<TestCase>> = None;
    for (key, value) in fields {
        let field = key.key_in(TABLE_KEYS)?;
        if cases.is_some() {
            return Err(Mistake::at(
                key,
                format!("`{field}` must come before `rows` or `cases`"),
            ));
        }
        let in_field = |mistake: Mistake| mistake.in_field(field);
        match field {
            "name" => name = Some(value.name("the name").map_err(in_field)?),
            "principals" => principals = Some(columns(value).map_err(in_field)?),
            "context" => context = context_map(value).map_err(in_field)?,
            "fixtures" => {
                let mut all = set.entities();
                all.extend(fixture_map(ctx.schema, value).map_err(in_field)?);
                own_set = Some(EntitySet::new(all));
            }
            _ => {
                let Some(name) = &name else {
                    return Err(Mistake::at(key, "a table's `name` must come first"));
                };
                let shape = match (field, &principals) {
                    ("cases", _) => Shape::List,
                    (_, Some(columns)) => Shape::Matrix(columns),
                    (_, None) => {
                        return Err(Mistake::at(
                            key,
                            "`principals` (the columns) must come before `rows`",
                        ))
                    }
                };
                let table = Table {
                    schema: ctx.schema,
                    file: ctx.shown,
                    set: own_set.as_ref().unwrap_or(set),
                    name,
                    context: &context,
                };
                cases = Some(rows(&table, shape, value).map_err(in_field)?);
            }
        }
    }
    cases.ok_or_else(|| Mistake::at(node, "a table needs `rows` (with `principals`) or `cases`"))
}

/// `principals:`, the columns of a `rows` table.
fn columns(value: &Node) -> Result<Vec<Column<'_>>, Mistake> {
    let items = value.list("a list of principals (the columns)")?;
    items
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let name = node
                .name("a principal")
                .map_err(|mistake| mistake.in_item(index))?;
            Ok(Column { name, node })
        })
        .collect()
}
