//! One entity as the store keeps it.

use cedar_policy::{Entity, EntityUid, EvalResult};

/// Cedar's parsed entity plus the edges that slicing follows, extracted once
/// when the entity is written so requests never re-walk attribute values.
#[derive(Debug, Clone)]
pub struct StoredEntity {
    /// The entity exactly as Cedar parsed (and schema-checked) it.
    pub entity: Entity,
    /// Direct parents (Cedar's `parents`); ancestors are found by walking these.
    pub parents: Box<[EntityUid]>,
    /// Entities named by attribute or tag values outside of sets: the only
    /// places a policy can dereference (a set's elements can be compared or
    /// tested with `in`, which needs the *left* side's data, never theirs).
    pub refs: Box<[EntityUid]>,
}

impl StoredEntity {
    /// Indexes a parsed entity.
    pub fn new(entity: Entity) -> Self {
        let (_, _, parents) = entity.clone().into_inner();
        let mut parents: Vec<EntityUid> = parents.into_iter().collect();
        parents.sort_by_cached_key(ToString::to_string);
        let mut refs = Vec::new();
        for (_, value) in entity.attrs().chain(entity.tags()) {
            if let Ok(value) = value {
                collect_refs(&value, &mut refs);
            }
        }
        refs.dedup();
        Self {
            entity,
            parents: parents.into_boxed_slice(),
            refs: refs.into_boxed_slice(),
        }
    }

    /// The entity's uid.
    pub fn uid(&self) -> EntityUid {
        self.entity.uid()
    }
}

/// Entity uids reachable from a value through records (not sets).
pub fn collect_refs(value: &EvalResult, out: &mut Vec<EntityUid>) {
    match value {
        EvalResult::EntityUid(uid) => out.push(uid.clone()),
        EvalResult::Record(record) => {
            for (_, field) in record.iter() {
                collect_refs(field, out);
            }
        }
        _ => {}
    }
}
