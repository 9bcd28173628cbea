//! Entity JSON checked against the schema and turned into the stored form in
//! one pass, without Cedar's parser: the bulk-load path (files, Redis
//! snapshots, the change stream).
//!
//! [`parse_conforming`] accepts an entity only when it is sure Cedar would:
//! a declared, non-enumerated type; exactly the declared attributes, each of
//! its declared type (booleans, integers, strings, references to entities of
//! the declared type, sets and closed records of these); tags only where
//! declared; parents of the types the schema allows. Anything else (an
//! error, an extension value, an escape, an unknown field, an enumerated
//! type) returns `None`, and the caller hands the text to Cedar, which
//! decides and explains. So this path can make loading faster but can never
//! let in an entity Cedar would refuse; `tests/it/conform_equivalence.rs`
//! checks it produces exactly what Cedar's path produces.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use cedar_policy::{EntityId, EntityUid};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::shape::{EntityShapes, Fields, TypeShape, ValueShape};
use super::{AttrValue, StoredEntity};

/// Parses `text` as one entity and checks it against `shapes`; `None` when
/// it does not conform or uses a form only Cedar's parser decides on.
pub fn parse_conforming(text: &str, shapes: &EntityShapes) -> Option<StoredEntity> {
    let Json::Object(fields) = serde_json::from_str::<Json<'_>>(text).ok()? else {
        return None;
    };
    let (mut uid, mut attrs, mut parents, mut tags) = (None, None, None, None);
    for (key, value) in fields {
        let slot = match key.as_ref() {
            "uid" => &mut uid,
            "attrs" => &mut attrs,
            "parents" => &mut parents,
            "tags" => &mut tags,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    let (type_name, id) = uid_parts(uid?)?;
    let shape = shapes.get(&type_name)?;
    let rules = shape.rules.as_ref()?;
    let uid = EntityUid::from_type_name_and_id(shape.name.clone(), EntityId::new(id));
    let Json::Object(attrs) = attrs? else {
        return None;
    };
    let attrs = conform_fields(attrs, &rules.attrs, shapes)?;
    let Json::Array(parents) = parents? else {
        return None;
    };
    let parents = parents
        .into_iter()
        .map(|parent| {
            let (type_name, id) = uid_parts(parent)?;
            let parent_shape = referable(shapes.get(&type_name)?)?;
            rules.parent_types.contains(type_name.as_ref()).then(|| {
                EntityUid::from_type_name_and_id(parent_shape.name.clone(), EntityId::new(id))
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let tags = match tags {
        None => Vec::new(),
        Some(Json::Object(tags)) if tags.is_empty() => Vec::new(),
        Some(Json::Object(tags)) => {
            let shape = rules.tags.as_ref()?;
            let mut values = tags
                .into_iter()
                .map(|(name, value)| {
                    let value = conform(value, shape, shapes)?;
                    Some((Box::<str>::from(name.as_ref()), value))
                })
                .collect::<Option<Vec<_>>>()?;
            sorted_without_repeats(&mut values)?;
            values
        }
        Some(_) => return None,
    };
    Some(StoredEntity::from_checked_parts(uid, attrs, tags, parents))
}

/// A type whose uids need no check beyond their type.
fn referable(shape: &TypeShape) -> Option<&TypeShape> {
    shape.referable.then_some(shape)
}

/// `{"type": T, "id": I}` or `{"__entity": {"type": T, "id": I}}`, exactly:
/// one `__entity` wrapper at most (Cedar refuses a second).
fn uid_parts(json: Json<'_>) -> Option<(Cow<'_, str>, String)> {
    let Json::Object(mut fields) = json else {
        return None;
    };
    if fields.len() == 1 && fields[0].0 == "__entity" {
        let (_, Json::Object(inner)) = fields.pop()? else {
            return None;
        };
        return type_and_id(inner);
    }
    type_and_id(fields)
}

/// An object of exactly the two string fields `type` and `id`.
fn type_and_id<'a>(fields: Vec<(Cow<'a, str>, Json<'a>)>) -> Option<(Cow<'a, str>, String)> {
    let [(k1, v1), (k2, v2)] = <[_; 2]>::try_from(fields).ok()?;
    let (ty, id) = match (k1.as_ref(), k2.as_ref()) {
        ("type", "id") => (v1, v2),
        ("id", "type") => (v2, v1),
        _ => return None,
    };
    match (ty, id) {
        (Json::Str(ty), Json::Str(id)) => Some((ty, id.into_owned())),
        _ => None,
    }
}

/// The declared fields of a record or of an entity's attributes: each
/// present field declared and of its type, each required one present, none
/// twice. Sorted by name, as the store keeps them.
fn conform_fields(
    json: Vec<(Cow<'_, str>, Json<'_>)>,
    declared: &Fields,
    shapes: &EntityShapes,
) -> Option<Vec<(Box<str>, AttrValue)>> {
    let mut values = json
        .into_iter()
        .map(|(name, value)| {
            let field = declared.get(&name)?;
            Some((
                Box::<str>::from(name.as_ref()),
                conform(value, &field.shape, shapes)?,
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    sorted_without_repeats(&mut values)?;
    declared
        .required()
        .all(|name| {
            values
                .binary_search_by(|(n, _)| n.as_ref().cmp(name))
                .is_ok()
        })
        .then_some(values)
}

/// Sorts fields by name; `None` when a name appears twice (Cedar refuses
/// duplicate keys).
fn sorted_without_repeats(values: &mut [(Box<str>, AttrValue)]) -> Option<()> {
    values.sort_by(|a, b| a.0.cmp(&b.0));
    values
        .windows(2)
        .all(|pair| pair[0].0 != pair[1].0)
        .then_some(())
}

fn conform(json: Json<'_>, shape: &ValueShape, shapes: &EntityShapes) -> Option<AttrValue> {
    Some(match (shape, json) {
        (ValueShape::Bool, Json::Bool(b)) => AttrValue::Bool(b),
        (ValueShape::Long, Json::Long(n)) => AttrValue::Long(n),
        (ValueShape::String, Json::Str(s)) => AttrValue::String(s.as_ref().into()),
        (ValueShape::Entity { text, name }, json @ Json::Object(_)) => {
            let (type_name, id) = uid_parts(json)?;
            if type_name != text.as_ref() {
                return None;
            }
            AttrValue::Entity(Box::new(EntityUid::from_type_name_and_id(
                name.clone(),
                EntityId::new(id),
            )))
        }
        (ValueShape::Set(element), Json::Array(items)) => {
            let mut elements = items
                .into_iter()
                .map(|item| conform(item, element, shapes))
                .collect::<Option<Vec<_>>>()?;
            elements.sort_by(cedar_order);
            elements.dedup_by(|a, b| cedar_order(a, b) == Ordering::Equal);
            AttrValue::Set(elements.into_boxed_slice())
        }
        (ValueShape::Record(fields), Json::Object(json)) => {
            if json.iter().any(|(name, _)| name.starts_with("__")) {
                return None;
            }
            AttrValue::Record(conform_fields(json, fields, shapes)?.into_boxed_slice())
        }
        _ => return None,
    })
}

/// The order Cedar keeps set elements in (that of its `EvalResult`), so a
/// set checked here is stored exactly as one Cedar parsed.
fn cedar_order(a: &AttrValue, b: &AttrValue) -> Ordering {
    fn rank(value: &AttrValue) -> u8 {
        match value {
            AttrValue::Bool(_) => 0,
            AttrValue::Long(_) => 1,
            AttrValue::String(_) => 2,
            AttrValue::Entity(_) => 3,
            AttrValue::Set(_) => 4,
            AttrValue::Record(_) => 5,
            AttrValue::Extension(_) => 6,
        }
    }
    match (a, b) {
        (AttrValue::Bool(x), AttrValue::Bool(y)) => x.cmp(y),
        (AttrValue::Long(x), AttrValue::Long(y)) => x.cmp(y),
        (AttrValue::String(x), AttrValue::String(y)) => x.cmp(y),
        (AttrValue::Entity(x), AttrValue::Entity(y)) => x.cmp(y),
        (AttrValue::Set(x), AttrValue::Set(y)) => lexicographic(x, y, cedar_order),
        (AttrValue::Record(x), AttrValue::Record(y)) => lexicographic(x, y, |p, q| {
            p.0.cmp(&q.0).then_with(|| cedar_order(&p.1, &q.1))
        }),
        (AttrValue::Extension(x), AttrValue::Extension(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn lexicographic<T>(x: &[T], y: &[T], order: impl Fn(&T, &T) -> Ordering) -> Ordering {
    x.iter()
        .zip(y)
        .map(|(p, q)| order(p, q))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| x.len().cmp(&y.len()))
}

/// A JSON document that borrows its strings from the text where it can and
/// keeps object fields in order, repeats included (so they can be refused).
#[derive(Debug)]
enum Json<'a> {
    Null,
    Bool(bool),
    /// An integer that fits in 64 signed bits.
    Long(i64),
    /// Any other number: never a Cedar value.
    OtherNumber,
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Json::Long(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(n).map_or(Json::OtherNumber, Json::Long))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Json::OtherNumber)
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(text)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0));
        // JSON keys are strings: read with the same visitor, they arrive as
        // `Json::Str`.
        while let Some((key, value)) = map.next_entry::<Json<'de>, Json<'de>>()? {
            let Json::Str(key) = key else {
                return Err(serde::de::Error::custom(
                    "an object key that is not a string",
                ));
            };
            fields.push((key, value));
        }
        Ok(Json::Object(fields))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn numbers(json: &str) -> Vec<bool> {
        let Ok(Json::Array(items)) = serde_json::from_str::<Json<'_>>(json) else {
            panic!("not an array");
        };
        items.iter().map(|i| matches!(i, Json::Long(_))).collect()
    }

    #[test]
    fn only_integers_in_range_are_longs() {
        assert_eq!(
            numbers(
                "[1, -9223372036854775808, 9223372036854775807, 9223372036854775808, 1.0, 1e3]"
            ),
            [true, true, true, false, false, false]
        );
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let Ok(Json::Object(fields)) =
            serde_json::from_str::<Json<'_>>(r#"{"a": "x", "b\n": "y\"z"}"#)
        else {
            panic!("not an object");
        };
        assert!(matches!(fields[0].0, Cow::Borrowed("a")));
        assert!(matches!(&fields[0].1, Json::Str(Cow::Borrowed("x"))));
        assert!(matches!(&fields[1].0, Cow::Owned(k) if k == "b\n"));
        assert!(matches!(&fields[1].1, Json::Str(Cow::Owned(v)) if v == "y\"z"));
    }
}
