//! Parsing entities in Cedar's JSON format (`uid`, `attrs`, `parents`,
//! optional `tags`), checked against the schema before they are stored.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cedar_policy::{Entity, EntityUid, Schema};
use serde_json::value::RawValue;

use super::conform::parse_conforming;
use super::{EntityShapes, StoredEntity};
use crate::diagnostics::{offset_of, one_line, Problem, Problems};

/// Why one entity was refused.
#[derive(Debug, thiserror::Error)]
pub enum EntityLoadError {
    /// Not valid Cedar entity JSON, or does not conform to the schema.
    #[error("invalid entity{}: {message}", uid.as_ref().map(|u| format!(" `{u}`")).unwrap_or_default())]
    Invalid {
        /// The uid, when it could be read.
        uid: Option<String>,
        /// Cedar's explanation.
        message: String,
    },
    /// Action entities are defined by the schema, never by data.
    #[error("entity `{0}` is an action: actions come from the schema, not from entity data")]
    Action(String),
}

/// Parses and schema-checks one entity given as JSON.
pub fn parse_entity(
    value: serde_json::Value,
    schema: &Schema,
) -> Result<StoredEntity, EntityLoadError> {
    let uid_text = value.get("uid").map(uid_display);
    let entity =
        Entity::from_json_value(value, Some(schema)).map_err(|error| EntityLoadError::Invalid {
            uid: uid_text,
            message: one_line(&error),
        })?;
    store_form(entity)
}

/// Parses and schema-checks one entity given as JSON text (the bulk-load
/// path): checked against `shapes` in one pass when it plainly conforms,
/// else by Cedar's parser, which decides and explains.
pub fn parse_entity_str(
    text: &str,
    schema: &Schema,
    shapes: &EntityShapes,
) -> Result<StoredEntity, EntityLoadError> {
    if crate::shortcuts::enabled() {
        if let Some(entity) = parse_conforming(text, shapes) {
            return Ok(entity);
        }
    }
    match Entity::from_json_str(text, Some(schema)) {
        Ok(entity) => store_form(entity),
        // Only a failure pays for a second parse, to name the entity.
        Err(error) => Err(EntityLoadError::Invalid {
            uid: serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|value| value.get("uid").map(uid_display)),
            message: one_line(&error),
        }),
    }
}

fn store_form(entity: Entity) -> Result<StoredEntity, EntityLoadError> {
    let uid = entity.uid();
    if uid.type_name().basename() == "Action" {
        return Err(EntityLoadError::Action(uid.to_string()));
    }
    StoredEntity::new(entity).map_err(|e| EntityLoadError::Invalid {
        uid: Some(e.uid),
        message: e.message,
    })
}

/// Applies `parse` to every item on all cores (entities are independent,
/// and parsing is most of a load's time). Results keep the
/// items' order.
pub fn parse_in_parallel<T: Sync, R: Send>(items: &[T], parse: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || items.len() < 1_000 {
        return items.iter().map(parse).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let parse = &parse;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(parse).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            // A worker panicking is a bug in Cedar's parser; re-raise it
            // rather than lose entities silently.
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e))
            })
            .collect()
    })
}

/// Parses a list of entities given as JSON values (for example with a request).
pub fn parse_entities_json(
    values: Vec<serde_json::Value>,
    schema: &Schema,
) -> Result<Vec<StoredEntity>, EntityLoadError> {
    values
        .into_iter()
        .map(|v| parse_entity(v, schema))
        .collect()
}

/// Reads an entities file: a JSON array of entities. Every problem is
/// reported with the line and column of the entity it concerns.
pub fn load_entities_file(path: &Path, schema: &Schema) -> Result<Vec<StoredEntity>, Problems> {
    let shown = path.display().to_string();
    let text: Arc<str> = std::fs::read_to_string(path)
        .map_err(|error| {
            Problems(vec![Problem::message(
                &shown,
                format!("cannot read entities file: {error}"),
            )])
        })?
        .into();
    parse_entities_text(&shown, &text, schema)
}

/// Parses entities file text (see [`load_entities_file`]).
pub fn parse_entities_text(
    shown: &str,
    text: &Arc<str>,
    schema: &Schema,
) -> Result<Vec<StoredEntity>, Problems> {
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|error| {
        let offset = offset_of(text, error.line(), error.column());
        Problems(vec![Problem::message(
            shown,
            format!("entities file must be a JSON array of entities: {error}"),
        )
        .at(text.clone(), offset)])
    })?;
    let shapes = EntityShapes::new(schema);
    let parsed = parse_in_parallel(&items, |raw| parse_entity_str(raw.get(), schema, &shapes));
    let mut problems = Problems::default();
    let mut entities = Vec::with_capacity(items.len());
    let offset_of_item =
        |raw: &RawValue| (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    for (index, (raw, parsed)) in items.iter().zip(parsed).enumerate() {
        match parsed {
            Ok(entity) => entities.push((index, entity)),
            Err(error) => problems.push(
                Problem::message(shown, format!("entry {index}: {error}"))
                    .at(text.clone(), offset_of_item(raw)),
            ),
        }
    }
    let mut seen: HashMap<&EntityUid, usize> = HashMap::with_capacity(entities.len());
    for (index, entity) in &entities {
        if let Some(first) = seen.insert(entity.uid_ref(), *index) {
            problems.push(
                Problem::message(
                    shown,
                    format!(
                        "duplicate entity `{}` (entries {first} and {index})",
                        entity.uid_ref()
                    ),
                )
                .at(text.clone(), offset_of_item(items[*index])),
            );
        }
    }
    drop(seen);
    let entities: Vec<StoredEntity> = entities.into_iter().map(|(_, e)| e).collect();
    if problems.is_empty() {
        Ok(entities)
    } else {
        Err(problems)
    }
}

/// An entity's uid as `Type::"id"`, read from the `uid` JSON of an entity
/// (either form Cedar takes: `{"type", "id"}` or `{"__entity": {...}}`),
/// for messages and logs; the raw JSON when it has neither form.
pub fn uid_display(uid: &serde_json::Value) -> String {
    let uid = uid.get("__entity").unwrap_or(uid);
    match (
        uid.get("type").and_then(|t| t.as_str()),
        uid.get("id").and_then(|i| i.as_str()),
    ) {
        (Some(ty), Some(id)) => format!("{ty}::{}", serde_json::Value::String(id.to_string())),
        _ => uid.to_string(),
    }
}
