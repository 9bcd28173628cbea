//! One decision: validate the request against the schema, slice the entity
//! store, ask Cedar, then apply our fail-closed rules.

use cedar_policy::{Context, Decision as CedarDecision, EntityUid, Request};

use super::request_entities::{RequestEntityError, RequestEntityMode, RequestEntityPolicy};
use super::PolicyPack;
use crate::diagnostics::one_line;
use crate::entities::{EntityMap, Slicer};

/// A decision request in Cedar terms (uids already parsed).
#[derive(Debug, Clone)]
pub struct DecisionRequest {
    /// Who is asking.
    pub principal: EntityUid,
    /// What they want to do.
    pub action: EntityUid,
    /// On what.
    pub resource: EntityUid,
    /// The context record as JSON (`null` or absent means empty).
    pub context: Option<serde_json::Value>,
    /// Entities sent with this request; how they join the stored ones is
    /// the operator's [`RequestEntityPolicy`].
    pub entities: Vec<serde_json::Value>,
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Verdict {
    /// At least one permit applied, no forbid applied, nothing failed closed.
    Allow,
    /// Anything else.
    Deny,
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow or Deny.
    pub verdict: Verdict,
    /// Ids of the policies that determined the decision.
    pub reasons: Vec<String>,
    /// Evaluation errors and fail-closed explanations.
    pub errors: Vec<String>,
    /// How many of `errors` are Cedar policy evaluation errors (the rest
    /// explain a fail-closed deny); what Cedar's `num_errors` counts.
    pub evaluation_errors: usize,
}

/// A request the schema (or Cedar's formats) rejects; a client error.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// The request does not fit the schema: unknown action, wrong principal
    /// or resource type for the action, context of the wrong shape.
    #[error("{0}")]
    SchemaViolation(String),
    /// An entity supplied with the request is malformed or breaks the schema.
    #[error("{0}")]
    InvalidEntity(String),
    /// The request's entities break the operator's rules for them.
    #[error(transparent)]
    EntitiesRefused(RequestEntityError),
}

/// Decides `request` against one snapshot of policies and entities; the
/// entities it carries are admitted under `trust` (see
/// [`super::request_entities`]).
pub fn decide(
    pack: &PolicyPack,
    store: &EntityMap,
    request: &DecisionRequest,
    trust: &RequestEntityPolicy,
) -> Result<Decision, RequestError> {
    if !pack.actions.contains_key(&request.action) {
        return Err(RequestError::SchemaViolation(format!(
            "unknown action `{}`: the schema does not declare it",
            request.action
        )));
    }
    let (context, context_entities, context_conforms) = request_context(pack, request)?;
    // A request whose every part was checked against the action's shape
    // needs no second check by Cedar (see `request_shape`).
    let conforms = context_conforms
        && crate::shortcuts::enabled()
        && pack.request_shapes.scope_conforms(
            &request.action,
            request.principal.type_name(),
            request.resource.type_name(),
        );
    let cedar_request = Request::new(
        request.principal.clone(),
        request.action.clone(),
        request.resource.clone(),
        context,
        (!conforms).then_some(&pack.schema),
    )
    .map_err(|e| RequestError::SchemaViolation(one_line(&e)))?;

    let overlay = trust
        .admit(&request.entities, pack, store, &request.principal)
        .map_err(RequestError::EntitiesRefused)?;
    let slicer = Slicer {
        overlay: &overlay,
        overlay_everywhere: trust.mode == RequestEntityMode::Override,
        actions: &pack.actions,
        store,
        policy_literals: &pack.policy_literals,
        reads: &pack.reads,
        parentless: &pack.parentless,
    };

    Ok(decide_sliced(
        pack,
        &slicer,
        &cedar_request,
        request,
        context_entities,
    ))
}

/// The request's context, the entities it names, and whether it is known
/// to conform to the action's context type. Flat contexts are built directly
/// ([`super::request_shape`]); the rest go through Cedar's parser (and are
/// checked again by `Request::new`).
fn request_context(
    pack: &PolicyPack,
    request: &DecisionRequest,
) -> Result<(Context, ContextEntities, bool), RequestError> {
    let empty = serde_json::Map::new();
    let fields = match &request.context {
        None | Some(serde_json::Value::Null) => Some(&empty),
        Some(serde_json::Value::Object(fields)) => Some(fields),
        Some(_) => None,
    };
    // An empty context needs no parsing; it conforms when the action has no
    // required context field, else `Request::new` checks it (and refuses it).
    if fields.is_some_and(serde_json::Map::is_empty) {
        let none = ContextEntities {
            refs: Vec::new(),
            named: Vec::new(),
        };
        let conforms = pack.request_shapes.takes_empty_context(&request.action);
        return Ok((Context::empty(), none, conforms));
    }
    if let Some(built) = fields
        .filter(|_| crate::shortcuts::enabled())
        .and_then(|fields| {
            pack.request_shapes
                .build(&request.action, fields, &pack.type_names)
        })
    {
        // Flat fields only: every named entity is outside a set.
        let entities = ContextEntities {
            refs: built.entities.clone(),
            named: built.entities,
        };
        return Ok((built.context, entities, built.conforms));
    }
    let json = request.context.clone().unwrap_or_default();
    let context =
        Context::from_json_value(json, Some((&pack.schema, &request.action))).map_err(|e| {
            RequestError::SchemaViolation(format!(
                "context does not match the schema: {}",
                one_line(&e)
            ))
        })?;
    let entities = context_entities(&context, fields.unwrap_or(&empty));
    Ok((context, entities, false))
}

fn decide_sliced(
    pack: &PolicyPack,
    slicer: &Slicer<'_>,
    cedar_request: &Request,
    request: &DecisionRequest,
    context_entities: ContextEntities,
) -> Decision {
    // Fail closed on unknown principals and resources: a policy without
    // conditions must not hand rights to an id nobody has created.
    let mut unknown = Vec::new();
    for (role, uid) in [
        ("principal", &request.principal),
        ("resource", &request.resource),
    ] {
        if slicer.get(uid).is_none() {
            unknown.push(format!("{role} `{uid}` is not a known entity; denying"));
        }
    }
    if !unknown.is_empty() {
        return deny(unknown);
    }

    let mut roots = vec![
        request.principal.clone(),
        request.action.clone(),
        request.resource.clone(),
    ];
    roots.extend(context_entities.refs);
    roots.extend(pack.literal_roots.iter().cloned());
    let mut named = context_entities.named;

    // Only the policies whose action scope can match: the same answer as
    // the whole set (a policy out of scope is not applicable), less work;
    // plus the template links that can apply to this principal and
    // resource (see `links`), whose slot values policies can then name.
    let base = pack.policies_for(&request.action);
    let linked = match applicable_links(pack, slicer, request, base, &mut named) {
        Ok(linked) => linked,
        Err(error) => {
            return deny(vec![format!(
                "template links could not be applied; denying (fail closed): {error}"
            )])
        }
    };
    let policies = linked.as_ref().unwrap_or(base);
    let entities = match slicer.slice(&roots, &named, pack.slice_limits) {
        Ok(entities) => entities,
        Err(error) => return deny(vec![format!("entity data is inconsistent: {error}")]),
    };

    let response = pack
        .authorizer
        .is_authorized(cedar_request, policies, &entities);
    let mut errors: Vec<String> = Vec::new();
    let mut forbid_failed = false;
    let evaluation_errors = response.diagnostics().errors().count();
    for error in response.diagnostics().errors() {
        let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
        // By effect, from the set decided on: a linked forbid counts too,
        // and a policy we cannot find is taken for a forbid.
        let is_forbid = pack.forbids.contains(e.policy_id())
            || policies
                .policy(e.policy_id())
                .is_none_or(|p| p.effect() == cedar_policy::Effect::Forbid);
        if is_forbid {
            forbid_failed = true;
        }
        errors.push(one_line(error));
    }
    if forbid_failed {
        errors.push("a forbid policy failed to evaluate; denying (fail closed)".to_string());
        return Decision {
            evaluation_errors,
            ..deny(errors)
        };
    }
    let verdict = match response.decision() {
        CedarDecision::Allow => Verdict::Allow,
        CedarDecision::Deny => Verdict::Deny,
    };
    let mut reasons: Vec<String> = response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect();
    reasons.sort();
    Decision {
        verdict,
        reasons,
        errors,
        evaluation_errors,
    }
}

/// The action's policies plus the template links that can apply to this
/// request, or `None` when none can (the common case: no new set is built).
/// A link can apply only when its slot values are the principal or the
/// resource or ancestors of them, so those are the only ones looked up;
/// their values are added to what the slice may name.
fn applicable_links(
    pack: &PolicyPack,
    slicer: &Slicer<'_>,
    request: &DecisionRequest,
    base: &cedar_policy::PolicySet,
    named: &mut Vec<EntityUid>,
) -> Result<Option<cedar_policy::PolicySet>, String> {
    let links = slicer.store.links();
    if links.is_empty() {
        return Ok(None);
    }
    if let Some(id) = links.unplaced().next() {
        return Err(format!(
            "template link `{id}` in the entity source cannot be read, and what it applies to is unknown: every decision denies until it is rewritten or deleted (fail closed)"
        ));
    }
    let with_ancestors = |uid: &EntityUid| -> Vec<EntityUid> {
        let found = std::cell::RefCell::new(vec![uid.clone()]);
        if let Some(entity) = slicer.get(uid) {
            slicer.ancestors_where(entity, |a| {
                found.borrow_mut().push(a.clone());
                false
            });
        }
        found.into_inner()
    };
    let principals = with_ancestors(&request.principal);
    let resources = with_ancestors(&request.resource);
    let candidates = links.candidates(&principals, &resources);
    if candidates.is_empty() {
        return Ok(None);
    }
    for link in &candidates {
        named.extend(link.principal.iter().chain(&link.resource).cloned());
    }
    super::links::with_links(pack, base, &candidates).map(Some)
}

fn deny(errors: Vec<String>) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        reasons: Vec::new(),
        errors,
        evaluation_errors: 0,
    }
}

/// The entities a request's context names.
struct ContextEntities {
    /// Outside sets: slice roots.
    refs: Vec<EntityUid>,
    /// All of them, inside sets too.
    named: Vec<EntityUid>,
}

/// Entities the context's values name: those outside sets (a policy can
/// dereference them: slice roots), and all of them, inside sets too (a
/// policy can name them on the right of `in`).
fn context_entities(
    context: &Context,
    context_json: &serde_json::Map<String, serde_json::Value>,
) -> ContextEntities {
    let mut refs = Vec::new();
    let mut named = Vec::new();
    for key in context_json.keys() {
        if let Some(value) = context.get(key) {
            crate::entities::collect_uids(&value, &mut refs, &mut named);
        }
    }
    ContextEntities { refs, named }
}
