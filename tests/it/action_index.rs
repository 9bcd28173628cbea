//! The action index is an optimisation: it must not change a decision.

use cedar_sidecar::engine::{
    decide, ActionIndex, DecisionRequest, PackSources, PolicyPack, RequestEntityPolicy,
};
use cedar_sidecar::entities::EntityMap;
use cedar_sidecar_bench::gen::{generate, uid};

fn shipped_pack() -> PolicyPack {
    PolicyPack::load(&PackSources {
        policies: "policies".into(),
        schema: "schema".into(),
    })
    .unwrap()
}

/// The optimisation must not change a single decision: every action,
/// over generated data, decided with the index and with the whole set.
#[test]
fn indexed_decisions_equal_whole_set_decisions() {
    let indexed = shipped_pack();
    let mut whole = shipped_pack();
    whole.by_action = ActionIndex::default();
    let data = generate(4_000, 21);
    let store = EntityMap::from_entities(data.to_stored().unwrap(), 1);
    let mut requests = data.requests(3_000, 22);
    // Every action against resources of every type, valid or not.
    let resources = [
        uid("Platform", "thunk"),
        uid("Org", "org0"),
        uid("Org", "org1"),
        uid("Environment", "org0-env-1"),
        uid("Environment", "org1-personal-3"),
        uid("Thunk", "org0-thunk-7"),
        uid("Model", "org1-model-2"),
        uid("ApiKey", "org0-key-1"),
        uid("McpServer", "org0-mcp-1"),
        uid("OAuthConnection", "org1-oauth-4"),
    ];
    for action in indexed.actions.keys() {
        let principals = [
            uid("User", "org0-user-0"),
            uid("User", "org0-user-3"),
            uid("User", "org0-user-700"),
            uid("User", "org1-user-9"),
            uid("Thunk", "org0-thunk-7"),
        ];
        for principal in &principals {
            for resource in &resources {
                // Each action takes one of these context shapes.
                for context in [
                    None,
                    Some(serde_json::json!({ "target": { "type": "User", "id": "org0-user-0" } })),
                    Some(
                        serde_json::json!({ "newOwner": { "type": "User", "id": "org0-user-3" } }),
                    ),
                    Some(serde_json::json!({
                        "targetEnvironment": { "type": "Environment", "id": "org0-env-2" }
                    })),
                ] {
                    requests.push(DecisionRequest {
                        principal: principal.clone(),
                        action: action.clone(),
                        resource: resource.clone(),
                        context,
                        entities: Vec::new(),
                    });
                }
            }
        }
    }
    let mut decided = 0;
    for request in &requests {
        let a = decide(&indexed, &store, request, &RequestEntityPolicy::default());
        let b = decide(&whole, &store, request, &RequestEntityPolicy::default());
        assert_eq!(a, b, "{request:?}");
        decided += usize::from(a.is_ok());
    }
    assert!(decided > 3_100, "only {decided} requests were valid");
}
