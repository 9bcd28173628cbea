//! One decision-log line read back as the request it recorded, or the
//! reason it cannot be decided again.
//!
//! A line is *malformed* when it is not a decision record (not JSON, a
//! field missing or of the wrong kind, a uid that does not parse); it is
//! *not replayable* when it is a record that does not hold what was
//! decided: a masked value (the context or an entity's attributes), or
//! request entities logged as digests only. Both are counted and reported,
//! never skipped in silence.

use std::str::FromStr;

use cedar_policy::{EntityTypeName, EntityUid};
use serde::Deserialize;

use crate::engine::{DecisionRequest, RequestEntityMode, RequestEntityPolicy, Verdict};

/// The fields of a decision record that replay reads (others are ignored,
/// so logs written by older versions read as long as these are there).
#[derive(Debug, Deserialize)]
struct Logged {
    #[serde(default)]
    decision_id: String,
    principal: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: Option<serde_json::Value>,
    decision: String,
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    request_entities: Vec<LoggedEntity>,
    #[serde(default)]
    request_entities_mode: Option<String>,
    #[serde(default)]
    masked: bool,
}

#[derive(Debug, Deserialize)]
struct LoggedEntity {
    #[serde(default)]
    entity: Option<serde_json::Value>,
}

/// Why a well-formed record cannot be decided again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unreplayable {
    /// Masking replaced a value in the context or in a request entity.
    Masked,
    /// The request carried entities and the log kept only their digests
    /// (`decision_log.request_entities = "digest"`, the default).
    EntitiesNotLogged,
}

impl Unreplayable {
    /// The name used in reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::Masked => "masked",
            Self::EntitiesNotLogged => "request_entities_not_logged",
        }
    }
}

/// A record that can be decided again.
#[derive(Debug)]
pub struct Replayable {
    /// The recorded decision's id.
    pub decision_id: String,
    /// The request as it was decided.
    pub request: DecisionRequest,
    /// How its entities are admitted: as they were when it was served.
    pub trust: RequestEntityPolicy,
    /// The recorded verdict.
    pub verdict: Verdict,
    /// The recorded determining policies.
    pub reasons: Vec<String>,
}

/// What one line holds.
#[derive(Debug)]
pub enum Read {
    /// Nothing (a blank line).
    Blank,
    /// A record to decide again.
    Record(Box<Replayable>),
    /// A record that cannot be decided again.
    Unreplayable(Unreplayable),
}

/// Why a line is not a decision record: a message and the 1-based column
/// it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// 1-based column in the line.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Reads one line of a decision log.
pub fn read_line(line: &str) -> Result<Read, Malformed> {
    if line.trim().is_empty() {
        return Ok(Read::Blank);
    }
    let logged: Logged = serde_json::from_str(line).map_err(|error| {
        // serde's text ends with "at line 1 column N": the place says it.
        let text = error.to_string();
        let text = text.split(" at line ").next().unwrap_or(&text);
        Malformed {
            column: error.column().max(1),
            message: format!("not a decision record: {text}"),
        }
    })?;
    let at = |field: &str| {
        line.find(&format!("\"{field}\""))
            .map_or(1, |offset| line[..offset].chars().count() + 1)
    };
    let uid = |field: &str, text: &str| {
        EntityUid::from_str(text).map_err(|error| Malformed {
            column: at(field),
            message: format!("`{field}` is not an entity uid (`Type::\"id\"`): {error}"),
        })
    };
    let principal = uid("principal", &logged.principal)?;
    let action = uid("action", &logged.action)?;
    let resource = uid("resource", &logged.resource)?;
    let verdict = match logged.decision.as_str() {
        "Allow" => Verdict::Allow,
        "Deny" => Verdict::Deny,
        other => {
            return Err(Malformed {
                column: at("decision"),
                message: format!("`decision` is `{other}`, not `Allow` or `Deny`"),
            })
        }
    };
    if logged.masked {
        return Ok(Read::Unreplayable(Unreplayable::Masked));
    }
    let mut entities = Vec::with_capacity(logged.request_entities.len());
    for logged_entity in logged.request_entities {
        match logged_entity.entity {
            Some(entity) => entities.push(entity),
            None => return Ok(Read::Unreplayable(Unreplayable::EntitiesNotLogged)),
        }
    }
    let trust = if entities.is_empty() {
        RequestEntityPolicy::default()
    } else {
        let mode = logged
            .request_entities_mode
            .as_deref()
            .map(RequestEntityMode::from_str)
            .transpose()
            .ok()
            .flatten()
            .filter(|mode| *mode != RequestEntityMode::Off)
            .ok_or_else(|| Malformed {
                column: at("request_entities"),
                message:
                    "request entities without `request_entities_mode` (`new-only` or `override`)"
                        .to_string(),
            })?;
        RequestEntityPolicy {
            mode,
            // The types these entities are of were allowed when the
            // request was served (it would not have been logged else).
            types: entities.iter().filter_map(entity_type).collect(),
            max: usize::MAX,
        }
    };
    Ok(Read::Record(Box::new(Replayable {
        decision_id: logged.decision_id,
        request: DecisionRequest {
            principal,
            action,
            resource,
            context: logged.context,
            entities,
        },
        trust,
        verdict,
        reasons: logged.reasons,
    })))
}

/// The type of an entity in Cedar's JSON (`{"uid": {"type": ...}}`).
fn entity_type(entity: &serde_json::Value) -> Option<EntityTypeName> {
    let uid = entity.get("uid")?;
    let uid = uid.get("__entity").unwrap_or(uid);
    uid.get("type")?.as_str()?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_records_unreplayable_or_malformed_with_a_column() {
        let ok = r#"{"decision_id":"d","principal":"User::\"a\"","action":"Action::\"UseEnvironment\"","resource":"Environment::\"e\"","context":{},"decision":"Allow","reasons":["p"]}"#;
        match read_line(ok).unwrap() {
            Read::Record(record) => {
                assert_eq!(record.verdict, Verdict::Allow);
                assert_eq!(record.reasons, vec!["p".to_string()]);
                assert_eq!(record.request.principal.to_string(), r#"User::"a""#);
            }
            other => panic!("{other:?}"),
        }
        let masked = ok.replace(r#""reasons""#, r#""masked":true,"reasons""#);
        assert!(matches!(
            read_line(&masked).unwrap(),
            Read::Unreplayable(Unreplayable::Masked)
        ));
        let digest = ok.replace(
            r#""reasons""#,
            r#""request_entities":[{"uid":"T::\"x\"","sha256":"00"}],"request_entities_mode":"new-only","reasons""#,
        );
        assert!(matches!(
            read_line(&digest).unwrap(),
            Read::Unreplayable(Unreplayable::EntitiesNotLogged)
        ));
        let bad_uid = ok.replace(r#""User::\"a\"""#, r#""a user""#);
        let error = read_line(&bad_uid).unwrap_err();
        assert_eq!(error.column, 20, "{error:?}");
        assert!(error.message.contains("`principal`"), "{error:?}");
        let torn = &ok[..40];
        let error = read_line(torn).unwrap_err();
        assert_eq!(error.column, 40, "{error:?}");
        assert!(!error.message.contains("line 1"), "{error:?}");
        assert!(matches!(read_line("  ").unwrap(), Read::Blank));
    }
}
