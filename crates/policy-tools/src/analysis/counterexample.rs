//! A solver's model as the sidecar's own JSON: the request `serve` takes on
//! `/v1/is_authorized` and the entities file it takes with `--entities`, and
//! the same request decided again by the engine (`decide`, as `serve` and
//! `test` decide) against a pack.

use cedar_policy::{EntityUid, Schema};
use cedar_policy_symcc::Env;
use serde_json::{json, Value};

use crate::engine::{decide, DecisionRequest, PolicyPack, RequestEntityPolicy, Verdict};
use crate::entities::{parse_entities_json, EntityMap};

/// A concrete request and the entity data it is decided against.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// The request, as `/v1/is_authorized` takes it.
    pub request: Value,
    /// The entities, as an `--entities` file holds them (no action
    /// entities: the sidecar takes those from the schema only).
    pub entities: Value,
    decision: DecisionRequest,
}

impl Counterexample {
    /// Reads the solver's model; `schema` tells action entities apart.
    pub fn from_env(env: &Env, schema: &Schema) -> Result<Self, String> {
        let request = &env.request;
        let (Some(principal), Some(action), Some(resource)) =
            (request.principal(), request.action(), request.resource())
        else {
            return Err("the solver's request leaves a variable unknown".to_string());
        };
        let context = match request.context() {
            Some(context) => context
                .to_json_value()
                .map_err(|error| format!("cannot write the context as JSON: {error}"))?,
            None => json!({}),
        };
        let actions: Vec<EntityUid> = schema
            .action_entities()
            .map(|entities| entities.iter().map(|e| e.uid()).collect())
            .unwrap_or_default();
        let mut entities: Vec<Value> = Vec::new();
        for entity in env.entities.iter() {
            if actions.contains(&entity.uid()) {
                continue;
            }
            entities.push(
                entity
                    .to_json_value()
                    .map_err(|error| format!("cannot write an entity as JSON: {error}"))?,
            );
        }
        // A stable order, so reports and files do not change run to run.
        entities.sort_by_cached_key(|e| e.get("uid").map(Value::to_string).unwrap_or_default());
        let wire = |uid: &EntityUid| json!({"type": uid.type_name().to_string(), "id": uid.id().unescaped()});
        Ok(Self {
            request: json!({
                "principal": wire(principal),
                "action": wire(action),
                "resource": wire(resource),
                "context": context,
            }),
            entities: Value::Array(entities),
            decision: DecisionRequest {
                principal: principal.clone(),
                action: action.clone(),
                resource: resource.clone(),
                context: Some(context),
                entities: Vec::new(),
            },
        })
    }

    /// The engine's verdict on this request against `pack`, with these
    /// entities as the stored data (as `serve --entities` would hold them).
    pub fn decide(&self, pack: &PolicyPack) -> Result<Verdict, String> {
        let values = match &self.entities {
            Value::Array(values) => values.clone(),
            _ => Vec::new(),
        };
        let stored = parse_entities_json(values, &pack.schema)
            .map_err(|error| format!("the counterexample's entities do not load: {error}"))?;
        let store = EntityMap::from_entities(stored, 1);
        decide(
            pack,
            &store,
            &self.decision,
            &RequestEntityPolicy::default(),
        )
        .map(|decision| decision.verdict)
        .map_err(|error| format!("the counterexample's request is refused: {error}"))
    }
}
