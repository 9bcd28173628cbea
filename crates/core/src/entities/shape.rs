//! What the schema declares for each entity type, in the form
//! [`super::conform`] checks entity JSON against.
//!
//! Why not ask Cedar per entity: its schema check rebuilds a description of
//! the entity's type (cloning the type's attributes and scanning every type
//! for allowed parents) for every entity it checks, which was most of the
//! time of loading a million entities. These shapes are built once per
//! schema.
//!
//! Only what the fast path decides on its own is described; everything else
//! is [`ValueShape::Unsupported`] or absent, which sends the entity to
//! Cedar's parser (so Cedar still decides, and explains, every refusal).

use std::collections::{HashMap, HashSet};

use cedar_policy::{EntityTypeName, Schema};
use cedar_policy_core::validator::types::{Attributes, BoolType, EntityKind, OpenTag, Type};
use cedar_policy_core::validator::{ValidatorEntityType, ValidatorEntityTypeKind};

/// The entity types of one schema, by the name entity JSON writes them with.
#[derive(Debug, Clone, Default)]
pub struct EntityShapes {
    by_name: HashMap<Box<str>, TypeShape, FastHash>,
}

/// Shapes are looked up several times per entity of a load.
type FastHash = foldhash::fast::RandomState;

/// One entity type.
#[derive(Debug, Clone)]
pub(super) struct TypeShape {
    /// The parsed name, cloned into every uid of this type.
    pub name: EntityTypeName,
    /// What an entity of this type must look like; `None` when the fast path
    /// leaves the type to Cedar (enumerated, external, open attributes).
    pub rules: Option<EntityRules>,
    /// Whether a uid of this type can be accepted wherever the schema allows
    /// the type, without further checks (not enumerated: Cedar checks an
    /// enumerated type's ids, and leaves that to it).
    pub referable: bool,
}

/// The attributes, tags and parent types of one entity type.
#[derive(Debug, Clone)]
pub(super) struct EntityRules {
    pub attrs: Fields,
    /// `None`: entities of this type may carry no tags.
    pub tags: Option<ValueShape>,
    /// Types a parent may have: the types this one is declared `in`,
    /// transitively, as Cedar allows.
    pub parent_types: HashSet<Box<str>, FastHash>,
}

/// The declared fields of a record or of an entity's attributes, sorted by
/// name.
#[derive(Debug, Clone, Default)]
pub(super) struct Fields(Vec<(Box<str>, Field)>);

/// One declared field.
#[derive(Debug, Clone)]
pub(super) struct Field {
    pub shape: ValueShape,
    pub required: bool,
}

/// A declared value type.
#[derive(Debug, Clone)]
pub(super) enum ValueShape {
    Bool,
    Long,
    String,
    /// A reference to an entity of this (referable) type: its name as entity
    /// JSON writes it, and parsed.
    Entity {
        text: Box<str>,
        name: EntityTypeName,
    },
    Set(Box<ValueShape>),
    /// A closed record.
    Record(Fields),
    /// Extension types, open records, enumerated entity types: Cedar's to
    /// check.
    Unsupported,
}

impl EntityShapes {
    /// Describes every entity type of `schema`.
    pub fn new(schema: &Schema) -> Self {
        let validator = schema.as_ref();
        let types: Vec<&ValidatorEntityType> = validator
            .entity_types()
            .filter(|ty| !ty.name().is_action())
            .collect();
        let referable: HashSet<String> = types
            .iter()
            .filter(|ty| matches!(ty.kind, ValidatorEntityTypeKind::Standard(_)))
            .map(|ty| ty.name().to_string())
            .collect();
        let by_name = types
            .iter()
            .map(|ty| {
                let text = ty.name().to_string();
                let shape = TypeShape {
                    name: EntityTypeName::from(ty.name().clone()),
                    rules: entity_rules(ty, &types, &referable),
                    referable: referable.contains(&text),
                };
                (text.into_boxed_str(), shape)
            })
            .collect();
        Self { by_name }
    }

    /// The type written as `name` in entity JSON.
    pub(super) fn get(&self, name: &str) -> Option<&TypeShape> {
        self.by_name.get(name)
    }

    /// True when `path`, read from an entity of type `ty`, goes through
    /// attributes that each hold one entity (not a record, a set or a
    /// value): what an index of entity-valued attributes can read
    /// backwards. False for a type whose attributes are left to Cedar.
    pub fn entity_path(&self, ty: &EntityTypeName, path: &[&str]) -> bool {
        self.entity_path_type(ty, path).is_some()
    }

    /// The entity type found at the end of `path` read from an entity of
    /// type `ty` (the type itself for an empty path), when every step is an
    /// attribute declared to hold one entity; `None` otherwise.
    pub fn entity_path_type(&self, ty: &EntityTypeName, path: &[&str]) -> Option<EntityTypeName> {
        let mut current = ty.clone();
        for attribute in path {
            let rules = self
                .by_name
                .get(current.to_string().as_str())
                .and_then(|shape| shape.rules.as_ref())?;
            match rules.attrs.get(attribute).map(|field| &field.shape) {
                Some(ValueShape::Entity { name, .. }) => current = name.clone(),
                _ => return None,
            }
        }
        Some(current)
    }
}

fn entity_rules(
    ty: &ValidatorEntityType,
    all: &[&ValidatorEntityType],
    referable: &HashSet<String>,
) -> Option<EntityRules> {
    let ValidatorEntityTypeKind::Standard(_) = ty.kind else {
        return None;
    };
    if matches!(ty.open_attributes(), OpenTag::OpenAttributes) {
        return None;
    }
    let parent_types = all
        .iter()
        .filter(|parent| parent.has_descendant_entity_type(ty.name()))
        .map(|parent| parent.name().to_string().into_boxed_str())
        .collect();
    Some(EntityRules {
        attrs: Fields::new(ty.attributes(), referable),
        tags: ty.tag_type().map(|tags| ValueShape::new(tags, referable)),
        parent_types,
    })
}

impl Fields {
    fn new(attributes: &Attributes, referable: &HashSet<String>) -> Self {
        let mut fields: Vec<(Box<str>, Field)> = attributes
            .iter()
            .map(|(name, attr)| {
                let field = Field {
                    shape: ValueShape::new(&attr.attr_type, referable),
                    required: attr.is_required,
                };
                (Box::from(name.as_str()), field)
            })
            .collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Self(fields)
    }

    /// The declared field `name`.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.0
            .binary_search_by(|(field, _)| field.as_ref().cmp(name))
            .ok()
            .map(|at| &self.0[at].1)
    }

    /// The names of the required fields.
    pub fn required(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(_, field)| field.required)
            .map(|(name, _)| name.as_ref())
    }
}

impl ValueShape {
    fn new(declared: &Type, referable: &HashSet<String>) -> Self {
        match declared {
            Type::Bool(BoolType::AnyBool) => Self::Bool,
            Type::Long => Self::Long,
            Type::String => Self::String,
            Type::Entity(EntityKind::Entity(lub)) => match lub.get_single_entity() {
                Some(name) if referable.contains(&name.to_string()) => Self::Entity {
                    text: name.to_string().into_boxed_str(),
                    name: EntityTypeName::from(name.clone()),
                },
                _ => Self::Unsupported,
            },
            Type::Set {
                element_type: Some(element),
            } => Self::Set(Box::new(Self::new(element, referable))),
            Type::Record {
                attrs,
                open_attributes: OpenTag::ClosedAttributes,
            } => Self::Record(Fields::new(attrs, referable)),
            _ => Self::Unsupported,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn shapes(text: &str) -> EntityShapes {
        let (schema, _) = Schema::from_cedarschema_str(text).expect("schema");
        EntityShapes::new(&schema)
    }

    #[test]
    fn parents_are_the_declared_ancestor_types_transitively() {
        let shapes = shapes(
            "entity Org; entity Team in [Org]; entity User in [Team] { n: Long, tags?: Set<String> };",
        );
        let user = shapes
            .get("User")
            .and_then(|t| t.rules.as_ref())
            .expect("user");
        let mut parents: Vec<&str> = user.parent_types.iter().map(AsRef::as_ref).collect();
        parents.sort_unstable();
        assert_eq!(parents, ["Org", "Team"]);
        assert!(user.attrs.get("n").is_some_and(|f| f.required));
        assert!(user.attrs.get("tags").is_some_and(|f| !f.required));
        assert!(user.attrs.get("other").is_none());
    }

    #[test]
    fn enumerated_types_are_left_to_cedar() {
        let shapes = shapes(r#"entity Color enum ["red"]; entity Car { color: Color };"#);
        let color = shapes.get("Color").expect("color");
        assert!(color.rules.is_none() && !color.referable);
        let car = shapes
            .get("Car")
            .and_then(|t| t.rules.as_ref())
            .expect("car");
        assert!(matches!(
            car.attrs.get("color").map(|f| &f.shape),
            Some(ValueShape::Unsupported)
        ));
    }
}
