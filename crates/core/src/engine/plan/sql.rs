//! A reference translation of a plan's condition to a SQL `WHERE` clause,
//! for a table with one row per resource:
//!
//! - column `uid` holds the resource's uid as Cedar writes it
//!   (`Document::"q3-report"`);
//! - each attribute the plan names is a column of that name; an entity
//!   attribute holds the entity's uid text, an absent attribute is `NULL`;
//! - the hierarchy is a table `ancestors(descendant, ancestor)` holding, for
//!   every entity, each of its ancestors (the transitive closure), as uid
//!   texts.
//!
//! Only paths of at most one attribute translate (longer paths would need
//! the application's joins; the translation says so rather than guess).
//! Values are always bound parameters, never spliced into the text, so no
//! entity id or string can change the query; column names come from the
//! policies' attribute names and must be plain identifiers.

use cedar_policy::EntityUid;

use super::{CompareOp, Condition, Literal};

/// A `WHERE` clause and its parameters, in order (`?` placeholders).
#[derive(Debug, Clone, PartialEq)]
pub struct SqlWhere {
    /// The clause, without the `WHERE` keyword.
    pub clause: String,
    /// Values for its `?` placeholders, in order.
    pub params: Vec<SqlParam>,
}

/// One bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlParam {
    /// Text (uids are their Cedar text).
    Text(String),
    /// An integer (booleans are 0 and 1).
    Integer(i64),
}

/// Why a condition does not translate.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SqlError {
    /// A path of more than one attribute.
    #[error("path `{0}` has more than one attribute: join the tables it crosses yourself")]
    LongPath(String),
    /// An attribute name that is not a plain SQL identifier.
    #[error("attribute `{0}` is not a plain identifier and cannot be a column name")]
    Column(String),
}

/// Translates `condition` for rows of `table` (a plain identifier).
pub fn to_sql(condition: &Condition, table: &str) -> Result<SqlWhere, SqlError> {
    let table = identifier(table)?;
    let mut params = Vec::new();
    let clause = translate(condition, &table, &mut params)?;
    Ok(SqlWhere { clause, params })
}

fn identifier(name: &str) -> Result<String, SqlError> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(format!("\"{name}\""))
    } else {
        Err(SqlError::Column(name.to_string()))
    }
}

/// The column a path reads.
fn column(path: &[String], table: &str) -> Result<String, SqlError> {
    match path {
        [] => Ok(format!("{table}.\"uid\"")),
        [attribute] => Ok(format!("{table}.{}", identifier(attribute)?)),
        _ => Err(SqlError::LongPath(path.join("."))),
    }
}

fn placeholders(entities: &[EntityUid], params: &mut Vec<SqlParam>) -> String {
    params.extend(entities.iter().map(|uid| SqlParam::Text(uid.to_string())));
    vec!["?"; entities.len()].join(", ")
}

fn translate(
    condition: &Condition,
    table: &str,
    params: &mut Vec<SqlParam>,
) -> Result<String, SqlError> {
    let joined = |parts: &[Condition], glue: &str, empty: &str, params: &mut Vec<SqlParam>| {
        if parts.is_empty() {
            return Ok(empty.to_string());
        }
        let parts = parts
            .iter()
            .map(|part| translate(part, table, params))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(glue)))
    };
    Ok(match condition {
        Condition::True => "1".to_string(),
        Condition::False => "0".to_string(),
        Condition::And(parts) => joined(parts, " AND ", "1", params)?,
        Condition::Or(parts) => joined(parts, " OR ", "0", params)?,
        Condition::Not(inner) => format!("(NOT {})", translate(inner, table, params)?),
        Condition::Eq(path, value) => {
            let column = column(path, table)?;
            params.push(match value {
                Literal::Entity(uid) => SqlParam::Text(uid.to_string()),
                Literal::String(s) => SqlParam::Text(s.clone()),
                Literal::Long(n) => SqlParam::Integer(*n),
                Literal::Bool(b) => SqlParam::Integer(i64::from(*b)),
            });
            format!("({column} = ?)")
        }
        Condition::Compare(path, op, value) => {
            let column = column(path, table)?;
            params.push(SqlParam::Integer(*value));
            let op = match op {
                CompareOp::Lt => "<",
                CompareOp::Le => "<=",
                CompareOp::Gt => ">",
                CompareOp::Ge => ">=",
            };
            format!("({column} {op} ?)")
        }
        Condition::Has(path) => format!("({} IS NOT NULL)", column(path, table)?),
        Condition::OneOf(path, entities) => {
            if entities.is_empty() {
                return Ok("0".to_string());
            }
            let column = column(path, table)?;
            format!("({column} IN ({}))", placeholders(entities, params))
        }
        Condition::In(path, entities) => {
            if entities.is_empty() {
                return Ok("0".to_string());
            }
            let column = column(path, table)?;
            let equal = placeholders(entities, params);
            let above = placeholders(entities, params);
            format!(
                "({column} IN ({equal}) OR EXISTS (SELECT 1 FROM \"ancestors\" \
                 WHERE \"ancestors\".\"descendant\" = {column} \
                 AND \"ancestors\".\"ancestor\" IN ({above})))"
            )
        }
        Condition::Is(path, entity_type) => {
            let column = column(path, table)?;
            // `Org::"` (with the quote), so `Org` never matches `Org::Sub::"x"`.
            let prefix = format!("{entity_type}::\"");
            let length = i64::try_from(prefix.len()).unwrap_or(i64::MAX);
            params.push(SqlParam::Integer(length));
            params.push(SqlParam::Text(prefix));
            format!("(substr({column}, 1, ?) = ?)")
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn uid(entity_type: &str, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(entity_type.parse().unwrap(), id.parse().unwrap())
    }

    /// The example of docs/plans.md, quote in the id included.
    #[test]
    fn the_documented_example_translates_as_shown() {
        let condition = Condition::Or(vec![
            Condition::Eq(
                vec!["owner".to_string()],
                Literal::Entity(uid("User", "o'brien")),
            ),
            Condition::In(vec![], vec![uid("Folder", "shared")]),
        ]);
        let sql = to_sql(&condition, "documents").unwrap();
        assert_eq!(
            sql.clause,
            r#"(("documents"."owner" = ?) OR ("documents"."uid" IN (?) OR EXISTS (SELECT 1 FROM "ancestors" WHERE "ancestors"."descendant" = "documents"."uid" AND "ancestors"."ancestor" IN (?))))"#
        );
        assert_eq!(
            sql.params,
            vec![
                // Cedar's own text of the uid (it escapes the quote).
                SqlParam::Text(r#"User::"o\'brien""#.to_string()),
                SqlParam::Text(r#"Folder::"shared""#.to_string()),
                SqlParam::Text(r#"Folder::"shared""#.to_string()),
            ]
        );
    }

    #[test]
    fn names_that_are_not_identifiers_and_long_paths_are_refused() {
        let odd = Condition::Has(vec!["a\"; DROP TABLE x; --".to_string()]);
        assert!(matches!(to_sql(&odd, "t"), Err(SqlError::Column(_))));
        let long = Condition::Has(vec!["a".to_string(), "b".to_string()]);
        assert!(matches!(to_sql(&long, "t"), Err(SqlError::LongPath(_))));
        assert!(matches!(
            to_sql(&Condition::True, "t; --"),
            Err(SqlError::Column(_))
        ));
    }
}
