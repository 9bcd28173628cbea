//! Pure Cedar: loading and validating policies and schema, building requests
//! and deciding them. No I/O happens here except reading the files a loader
//! is pointed at; nothing here touches the network.

mod action_index;
mod decide;
mod hierarchy;
mod links;
mod pack;
pub mod plan;
mod policies;
mod reads;
mod request_entities;
mod request_shape;
mod schema;
mod search;

pub use action_index::ActionIndex;
pub use decide::{decide, Decision, DecisionRequest, RequestError, Verdict};
pub use hierarchy::only_roots_tested_for_ancestry;
pub use links::{
    check_link, check_links, check_links_kept, load_links_file, parse_links, LinkError, SlotRules,
    TemplateSlots,
};
#[cfg(test)]
pub(crate) use pack::shipped_pack;
pub use pack::{PackSources, PolicyPack, TypeNames};
pub use plan::{plan, Condition, Plan, PlanError};
pub use policies::{
    deref_level, load_policy_dir, parse_policy_texts, validate_policies, PolicyFiles, PolicyInfo,
};
pub use request_entities::{
    RequestEntityError, RequestEntityMode, RequestEntityPolicy, DEFAULT_MAX_REQUEST_ENTITIES,
};
pub use schema::{load_schema, parse_schema_text};
pub use search::{
    candidates as search_candidates, search, search_every_candidate, search_while, SearchRequest,
    Searched,
};
