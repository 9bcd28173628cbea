//! The in-memory entity graph: entities by uid with their direct parents,
//! persistent (copy-on-write) so that a snapshot costs one pointer copy and
//! applying a change costs time proportional to the change, never to the
//! store. Each decision gets a small slice of it ([`slice`]).
//!
//! Cedar's own `Entities` keeps a transitive closure that it recomputes on
//! every change (seconds at a million entities); we keep only direct parents
//! and walk them per request, which is a handful of hash look-ups.

mod conform;
mod index;
mod links;
mod load;
mod shape;
mod slice;
mod store;
mod stored;

pub use conform::parse_conforming;
pub use links::{
    parse_link, parse_links_text, LinkChange, LinkFormatError, LinkMap, StoredLink,
    UNREADABLE_TEMPLATE,
};
pub use load::{
    load_entities_file, parse_entities_json, parse_entities_text, parse_entity, parse_entity_str,
    parse_in_parallel, uid_display, EntityLoadError,
};
pub use shape::EntityShapes;
pub use slice::{AttributeReads, SliceLimits, Slicer, TypeSet, UidMap, UidSet};
pub use store::{EntityChange, EntityMap};
pub use stored::{collect_uids, AttrValue, ConversionError, StoredEntity};
