//! Reading the change stream: entries of the `log` stream as the write
//! script produced them (`gen`, `wid`, `ts`, then `u`/`e` pairs for
//! entities and `l`/`lj` pairs for template links, in order).

use redis::Value;

use super::keys::parse_entry_id;
use super::SyncError;

/// One write, as recorded in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The revision this write produced (the entry id is `<revision>-0`).
    pub revision: u64,
    /// The dataset generation the write belongs to.
    pub generation: String,
    /// A unique id of the write: how a replica recognises the entry it
    /// applied, even after a restore brought back the same revision number
    /// with different content.
    pub write_id: String,
    /// Server time of the write, in Unix milliseconds (absent in entries
    /// written by older writers).
    pub written_at_ms: Option<u64>,
    /// The entities and links the write set or deleted, in order.
    pub changes: Vec<RawChange>,
    /// Why the entry could not be read, if it could not: then it has no
    /// changes and no generation, and `write_id` is a fingerprint of its
    /// raw fields (so the replica still recognises it at its cursor).
    pub malformed: Option<String>,
}

/// What a change in a write is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawKind {
    /// An entity (`u`/`e` fields): the key is its uid.
    Entity,
    /// A template link (`l`/`lj` fields): the key is its link id.
    Link,
}

/// One entity or link in a write, not yet parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawChange {
    /// Entity or link.
    pub kind: RawKind,
    /// The entity uid as written (`Type::"id"`), or the link id.
    pub key: String,
    /// The full new JSON, or `None` for a delete.
    pub json: Option<String>,
}

/// Parses an `XRANGE` reply: an array of `[id, [field, value, ...]]`.
pub fn parse_range(value: Value) -> Result<Vec<LogEntry>, SyncError> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) => items.into_iter().map(parse_or_mark).collect(),
        other => Err(malformed(format!(
            "unexpected stream range reply {other:?}"
        ))),
    }
}

/// Parses an `XREAD` reply for one stream: nil on timeout, else
/// `[[key, entries]]` (RESP2) or `{key: entries}` (RESP3).
pub fn parse_read(value: Value) -> Result<Vec<LogEntry>, SyncError> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => match streams.into_iter().next() {
            Some(Value::Array(pair)) => match pair.into_iter().nth(1) {
                Some(entries) => parse_range(entries),
                None => Err(malformed("stream reply without entries".to_string())),
            },
            None => Ok(Vec::new()),
            Some(other) => Err(malformed(format!("unexpected stream reply {other:?}"))),
        },
        Value::Map(streams) => match streams.into_iter().next() {
            Some((_, entries)) => parse_range(entries),
            None => Ok(Vec::new()),
        },
        other => Err(malformed(format!("unexpected stream read reply {other:?}"))),
    }
}

/// Parses an entry; one whose id is a revision but whose fields are not as
/// the write script makes them is returned marked malformed (a replica
/// skips it and reloads) rather than failing the whole read forever.
fn parse_or_mark(value: Value) -> Result<LogEntry, SyncError> {
    let fingerprint = format!("{value:?}");
    let revision = match &value {
        Value::Array(parts) => match parts.first() {
            Some(Value::BulkString(id)) => std::str::from_utf8(id).ok().and_then(parse_entry_id),
            Some(Value::SimpleString(id)) => parse_entry_id(id),
            _ => None,
        },
        _ => None,
    };
    let error = match parse_entry(value) {
        Ok(entry) if entry.generation.is_empty() || entry.write_id.is_empty() => {
            SyncError::Malformed("no `gen` or no `wid` field".to_string())
        }
        Ok(entry) => return Ok(entry),
        Err(error) => error,
    };
    // Without a revision in its id the entry cannot be placed in the history.
    let Some(revision) = revision else {
        return Err(error);
    };
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&fingerprint, &mut hasher);
    Ok(LogEntry {
        revision,
        generation: String::new(),
        write_id: format!("malformed:{:016x}", std::hash::Hasher::finish(&hasher)),
        written_at_ms: None,
        changes: Vec::new(),
        malformed: Some(format!("entry `{revision}-0`: {error}")),
    })
}

fn parse_entry(value: Value) -> Result<LogEntry, SyncError> {
    let Value::Array(parts) = value else {
        return Err(malformed("stream entry is not an array".to_string()));
    };
    let mut parts = parts.into_iter();
    let id = parts.next().map(text).transpose()?.unwrap_or_default();
    let revision = parse_entry_id(&id)
        .ok_or_else(|| malformed(format!("stream entry id `{id}` is not `<revision>-0`")))?;
    let fields = match parts.next() {
        Some(Value::Array(fields)) => fields,
        Some(Value::Map(pairs)) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return Err(malformed(format!("stream entry `{id}` has no fields"))),
    };
    let mut entry = LogEntry {
        revision,
        generation: String::new(),
        write_id: String::new(),
        written_at_ms: None,
        changes: Vec::new(),
        malformed: None,
    };
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let value = text(value)?;
        let name = text(name)?;
        match name.as_str() {
            "gen" => entry.generation = value,
            "wid" => entry.write_id = value,
            "ts" => entry.written_at_ms = value.parse().ok(),
            "u" | "l" => entry.changes.push(RawChange {
                kind: if name == "u" {
                    RawKind::Entity
                } else {
                    RawKind::Link
                },
                key: value,
                json: None,
            }),
            "e" | "lj" => {
                let (kind, key) = if name == "e" {
                    (RawKind::Entity, "u")
                } else {
                    (RawKind::Link, "l")
                };
                match entry.changes.last_mut() {
                    Some(change) if change.kind == kind => {
                        if !value.is_empty() {
                            change.json = Some(value);
                        }
                    }
                    _ => {
                        return Err(malformed(format!(
                            "entry `{id}`: `{name}` not right after its `{key}`"
                        )))
                    }
                }
            }
            // Unknown fields are left for newer writers.
            _ => {}
        }
    }
    Ok(entry)
}

fn text(value: Value) -> Result<String, SyncError> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes).map_err(|_| malformed("stream field is not UTF-8".to_string()))
        }
        Value::SimpleString(s) => Ok(s),
        Value::Int(i) => Ok(i.to_string()),
        other => Err(malformed(format!("unexpected stream field {other:?}"))),
    }
}

fn malformed(message: String) -> SyncError {
    SyncError::Malformed(message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_an_entry_with_an_upsert_and_a_delete() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("cedar:{p0}:log"),
            Value::Array(vec![Value::Array(vec![
                bulk("7-0"),
                Value::Array(
                    [
                        "gen",
                        "g1",
                        "wid",
                        "w7",
                        "ts",
                        "1700000000123",
                        "u",
                        "User::\"a\"",
                        "e",
                        "{}",
                        "u",
                        "User::\"b\"",
                        "e",
                        "",
                        "l",
                        "paula-uses-prod",
                        "lj",
                        "{\"template_id\":\"t\"}",
                        "l",
                        "gone",
                        "lj",
                        "",
                    ]
                    .into_iter()
                    .map(bulk)
                    .collect(),
                ),
            ])]),
        ])]);
        let entries = parse_read(reply).unwrap();
        assert_eq!(
            entries,
            vec![LogEntry {
                revision: 7,
                generation: "g1".into(),
                write_id: "w7".into(),
                written_at_ms: Some(1_700_000_000_123),
                changes: vec![
                    RawChange {
                        kind: RawKind::Entity,
                        key: "User::\"a\"".into(),
                        json: Some("{}".into())
                    },
                    RawChange {
                        kind: RawKind::Entity,
                        key: "User::\"b\"".into(),
                        json: None
                    },
                    RawChange {
                        kind: RawKind::Link,
                        key: "paula-uses-prod".into(),
                        json: Some("{\"template_id\":\"t\"}".into())
                    },
                    RawChange {
                        kind: RawKind::Link,
                        key: "gone".into(),
                        json: None
                    },
                ],
                malformed: None,
            }]
        );
        assert!(parse_read(Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn a_link_value_after_an_entity_uid_is_malformed() {
        let entry = Value::Array(vec![
            bulk("3-0"),
            Value::Array(
                ["gen", "g", "wid", "w", "u", "User::\"a\"", "lj", "{}"]
                    .into_iter()
                    .map(bulk)
                    .collect(),
            ),
        ]);
        let entries = parse_range(Value::Array(vec![entry])).unwrap();
        assert_eq!(entries[0].revision, 3);
        assert!(entries[0].changes.is_empty());
        assert!(
            entries[0]
                .malformed
                .as_deref()
                .unwrap()
                .contains("`lj` not right after its `l`"),
            "{:?}",
            entries[0].malformed
        );
    }

    #[test]
    fn rejects_foreign_entry_ids() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("1700000000000-3"),
            Value::Array(vec![]),
        ])]);
        assert!(parse_range(reply).is_err());
    }
}
