//! A matched route and a gateway request into one Cedar decision request:
//! the resource uid from a capture, the context from captures, query
//! parameters, headers and token claims, each parsed as the schema types
//! the field (a Long that does not parse is the caller's error, a 400).
//! The request carries no entities: nothing a caller sends can add to the
//! stored data.

use axum::http::HeaderMap;
use cedar_policy::{EntityId, EntityUid};
use serde_json::{json, Map, Value};

use super::principal::Identity;
use super::routes::{ContextField, FieldType, Source};
use super::template::query_pairs;
use crate::engine::DecisionRequest;

/// A value the caller sent that does not fit the route; a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadValue(pub String);

/// What the values are read from.
pub struct Inputs<'a> {
    /// The path's captures.
    pub captures: &'a [(String, String)],
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The original request's headers.
    pub headers: &'a HeaderMap,
    /// The principal and its claims.
    pub identity: &'a Identity,
}

/// Builds the decision request for `action` on `resource_type` with the
/// id from `resource_id` and the route's `context` fields.
pub fn build(
    action: &EntityUid,
    resource_type: &cedar_policy::EntityTypeName,
    resource_id: &Source,
    context: &[ContextField],
    inputs: &Inputs<'_>,
) -> Result<DecisionRequest, BadValue> {
    let query = match inputs.query {
        Some(query) => query_pairs(query)
            .ok_or_else(|| BadValue("the query string has a bad percent-encoding".into()))?,
        None => Vec::new(),
    };
    let id = match value_of(resource_id, inputs, &query)? {
        Some(Value::String(id)) if !id.is_empty() => id,
        _ => return Err(BadValue("the request names no resource".into())),
    };
    let resource = EntityUid::from_type_name_and_id(resource_type.clone(), EntityId::new(id));
    let mut record = Map::new();
    for field in context {
        let Some(raw) = value_of(&field.source, inputs, &query)? else {
            if field.required {
                return Err(BadValue(format!(
                    "{} is required (context field `{}`)",
                    describe(&field.source),
                    field.name
                )));
            }
            continue;
        };
        record.insert(field.name.clone(), typed(field, raw)?);
    }
    Ok(DecisionRequest {
        principal: inputs.identity.uid.clone(),
        action: action.clone(),
        resource,
        context: Some(Value::Object(record)),
        entities: Vec::new(),
    })
}

fn value_of(
    source: &Source,
    inputs: &Inputs<'_>,
    query: &[(String, String)],
) -> Result<Option<Value>, BadValue> {
    Ok(match source {
        Source::Path(name) => inputs
            .captures
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| Value::String(v.clone())),
        Source::Query(name) => {
            // Given twice, the upstream may read the other one.
            let mut given = query.iter().filter(|(n, _)| n == name);
            let first = given.next();
            if given.next().is_some() {
                return Err(BadValue(format!(
                    "query parameter `{name}` is given more than once"
                )));
            }
            first.map(|(_, v)| Value::String(v.clone()))
        }
        Source::Header(name) => match inputs.headers.get(name.as_str()) {
            _ if inputs
                .headers
                .get_all(name.as_str())
                .iter()
                .nth(1)
                .is_some() =>
            {
                return Err(BadValue(format!("header `{name}` is given more than once")))
            }
            None => None,
            Some(value) => Some(Value::String(
                value
                    .to_str()
                    .map_err(|_| BadValue(format!("header `{name}` is not visible ASCII")))?
                    .to_string(),
            )),
        },
        Source::Claim(name) => inputs.identity.claims.get(name).cloned(),
        Source::Literal(value) => Some(value.clone()),
    })
}

/// `raw` as the field's schema type.
fn typed(field: &ContextField, raw: Value) -> Result<Value, BadValue> {
    let wrong = |what: &str| {
        BadValue(format!(
            "{} must be {what} (context field `{}`)",
            describe(&field.source),
            field.name
        ))
    };
    Ok(match (&field.ty, raw) {
        (FieldType::Long, Value::Number(n)) if n.is_i64() => Value::Number(n),
        (FieldType::Long, Value::String(s)) => {
            let n: i64 = s.trim().parse().map_err(|_| wrong("an integer"))?;
            json!(n)
        }
        (FieldType::Bool, Value::Bool(b)) => Value::Bool(b),
        (FieldType::Bool, Value::String(s)) => match s.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(wrong("`true` or `false`")),
        },
        (FieldType::String, Value::String(s)) => Value::String(s),
        (FieldType::Entity(ty), Value::String(id)) if !id.is_empty() => {
            json!({ "__entity": { "type": ty.to_string(), "id": id } })
        }
        (FieldType::Long, _) => return Err(wrong("an integer")),
        (FieldType::Bool, _) => return Err(wrong("a boolean")),
        (FieldType::String, _) => return Err(wrong("a string")),
        (FieldType::Entity(_), _) => return Err(wrong("a non-empty id")),
    })
}

fn describe(source: &Source) -> String {
    match source {
        Source::Path(name) => format!("path segment `{{{name}}}`"),
        Source::Query(name) => format!("query parameter `{name}`"),
        Source::Header(name) => format!("header `{name}`"),
        Source::Claim(name) => format!("token claim `{name}`"),
        Source::Literal(_) => "the route's value".to_string(),
    }
}
