//! Fuzzing the decision API: generated single and batch bodies, from valid
//! requests of the shipped model with forged entities to arbitrary JSON,
//! through the whole router. Whatever comes in, the answer is never a
//! panic, never a 5xx besides the documented 503s, and under the modes
//! `off` and `new-only` never an Allow that stored data does not grant.
//!
//! CI runs a bounded count; a longer run:
//! `CEDAR_FUZZ_CASES=20000 cargo test --test it fuzz::`

use std::str::FromStr;

use axum::body::Body;
use axum::http::Request;
use cedar_policy::EntityTypeName;
use cedar_sidecar::engine::{RequestEntityMode, RequestEntityPolicy};
use cedar_sidecar::http::{router, AppState};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::shipped_state;

const USERS: &[&str] = &[
    "pete", "ghost", "paula", "adam", "pete", "ghost", "ana", "olivia", "parker", "gina",
];
const ACTIONS: &[&str] = &[
    "CreateOrg",
    "ListOrgs",
    "ReadOrg",
    "DeleteOrg",
    "RemoveMember",
    "RemoveAdmin",
    "AppointAdmin",
    "AddApiKey",
    "UseModel",
    "UseEnvironment",
    "ManageEnvironment",
    "RunThunk",
    "EditThunk",
    "MoveThunk",
    "TransferOrgOwnership",
    "Teleport",
];
const RESOURCES: &[(&str, &str)] = &[
    ("Platform", "thunk"),
    ("Org", "acme"),
    ("Org", "globex"),
    ("Org", "nowhere"),
    ("Environment", "acme-prod"),
    ("Environment", "personal-pete"),
    ("Environment", "new-env"),
    ("Model", "acme-prod-gpt4o"),
    ("Thunk", "paula-report"),
    ("Thunk", "pete-draft"),
    ("Thunk", "new-thunk"),
    ("ApiKey", "acme-openai"),
    ("User", "paula"),
];
/// Stored groups an attacker would like to join, and new ones.
const PARENTS: &[(&str, &str)] = &[
    ("PlatformAdmins", "thunk"),
    ("OrgAdmins", "acme"),
    ("Org", "acme"),
    ("Environment", "acme-prod"),
    ("ApiKey", "acme-openai"),
    ("Org", "new-org"),
    ("User", "ghost"),
];

/// What a principal with no rights would like to be in.
const ATTACKED: &[(&str, &str)] = &[
    ("PlatformAdmins", "thunk"),
    ("OrgAdmins", "acme"),
    ("Environment", "acme-prod"),
    ("Org", "acme"),
];

fn cases() -> u32 {
    std::env::var("CEDAR_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000)
}

fn uid((entity_type, id): (&str, &str)) -> Value {
    json!({"type": entity_type, "id": id})
}

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(items)
}

/// Attribute sets that fit some types and not others.
fn attrs() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        Just(json!({"name": "forged"})),
        Just(json!({"name": 7})),
        (pick(USERS), pick(RESOURCES)).prop_map(|(owner, (ty, id))| json!({
            "owner": {"type": "User", "id": owner},
            "environment": {"type": ty, "id": id}})),
        pick(USERS).prop_map(|owner| json!({
            "name": "Acme Corp", "sku": "enterprise",
            "owner": {"type": "User", "id": owner},
            "admins": {"type": "OrgAdmins", "id": "acme"}})),
        any::<String>().prop_map(|s| json!({ "x": s })),
    ]
}

/// Attributes that fit an entity of `entity_type`, from the demo's values
/// and new ones.
fn fitting_attrs(entity_type: &'static str) -> BoxedStrategy<Value> {
    let user = || pick(USERS).prop_map(|u| json!({"type": "User", "id": u}));
    let environment = || {
        pick(
            &[
                "acme-prod",
                "acme-staging",
                "personal-pete",
                "personal-paula",
                "new-env",
            ][..],
        )
        .prop_map(|e| json!({"type": "Environment", "id": e}))
    };
    match entity_type {
        "Thunk" => (user(), environment())
            .prop_map(|(owner, environment)| json!({"owner": owner, "environment": environment}))
            .boxed(),
        "Org" => user()
            .prop_map(
                |owner| json!({"owner": owner, "admins": {"type": "OrgAdmins", "id": "acme"}}),
            )
            .boxed(),
        "Environment" => prop_oneof![
            user().prop_map(|owner| json!({"owner": owner})),
            Just(json!({"org": {"type": "Org", "id": "acme"}})),
        ]
        .boxed(),
        "Model" => environment()
            .prop_map(|e| json!({"environment": e}))
            .boxed(),
        _ => Just(json!({})).boxed(),
    }
}

fn entity() -> impl Strategy<Value = Value> {
    let uids = prop_oneof![
        pick(USERS).prop_map(|u| ("User", u)),
        pick(RESOURCES),
        pick(PARENTS),
        pick(
            &[
                ("User", "ghost"),
                ("Thunk", "new-thunk"),
                ("Environment", "new-env"),
                ("Org", "nowhere")
            ][..]
        ),
    ];
    let parents = proptest::collection::vec(pick(PARENTS), 0..3);
    (uids, any::<bool>(), parents)
        .prop_flat_map(|(id, fits, parents)| {
            let attrs = if fits { fitting_attrs(id.0) } else { attrs().boxed() };
            (Just(id), attrs, Just(parents))
        })
        .prop_map(|(id, attrs, parents)| {
            json!({"uid": uid(id), "attrs": attrs, "parents": parents.into_iter().map(uid).collect::<Vec<_>>()})
        })
}

fn context() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        pick(USERS).prop_map(|u| Some(json!({"target": {"type": "User", "id": u}}))),
        pick(USERS).prop_map(|u| Some(json!({"newOwner": {"type": "User", "id": u}}))),
        pick(RESOURCES).prop_map(|r| Some(json!({"targetEnvironment": uid(r)}))),
        Just(Some(json!("not an object"))),
    ]
}

/// Actions with a resource and context of the types they take.
fn fitting() -> impl Strategy<Value = (&'static str, (&'static str, &'static str), Option<Value>)> {
    let thunks = &[
        ("Thunk", "paula-report"),
        ("Thunk", "pete-draft"),
        ("Thunk", "new-thunk"),
    ][..];
    let orgs = &[("Org", "acme"), ("Org", "globex"), ("Org", "nowhere")][..];
    let user = || pick(USERS).prop_map(|u| json!({"type": "User", "id": u}));
    prop_oneof![
        pick(&["CreateOrg", "ListOrgs"][..]).prop_map(|a| (a, ("Platform", "thunk"), None)),
        (
            pick(&["RemoveMember", "RemoveAdmin", "AppointAdmin"][..]),
            pick(orgs),
            user()
        )
            .prop_map(|(a, r, u)| (a, r, Some(json!({"target": u})))),
        (pick(orgs), user()).prop_map(|(r, u)| (
            "TransferOrgOwnership",
            r,
            Some(json!({"newOwner": u}))
        )),
        (pick(&["RunThunk", "EditThunk"][..]), pick(thunks)).prop_map(|(a, r)| (a, r, None)),
        (pick(thunks), pick(RESOURCES)).prop_map(|(r, e)| (
            "MoveThunk",
            r,
            Some(json!({"targetEnvironment": uid(e)}))
        )),
        pick(
            &[
                ("Environment", "acme-prod"),
                ("Environment", "new-env"),
                ("Environment", "personal-pete")
            ][..]
        )
        .prop_map(|r| ("UseEnvironment", r, None)),
        Just(("UseModel", ("Model", "acme-prod-gpt4o"), None)),
    ]
}

/// A request of the shipped model: valid or nearly, with or without entities.
fn request() -> impl Strategy<Value = Value> {
    let scope = prop_oneof![
        3 => fitting(),
        1 => (pick(ACTIONS), pick(RESOURCES), context()).prop_map(|(a, r, c)| (a, r, c)),
    ];
    (
        pick(USERS),
        scope,
        proptest::option::of(proptest::collection::vec(entity(), 0..4)),
    )
        .prop_flat_map(|(principal, (action, resource, context), entities)| {
            // Often the request describes its own resource or principal, as
            // an application with `new-only` would.
            let described = prop_oneof![
                Just(None),
                (fitting_attrs(resource.0), any::<bool>(), proptest::collection::vec(pick(PARENTS), 0..2))
                    .prop_map(move |(mut attrs, own, parents)| {
                        // The likeliest forgery: "that one is mine", in an
                        // environment of my own.
                        if own && attrs.get("owner").is_some() {
                            attrs["owner"] = json!({"type": "User", "id": principal});
                            if attrs.get("environment").is_some() {
                                attrs["environment"] = json!({"type": "Environment", "id": format!("personal-{principal}")});
                            }
                        }
                        Some(json!({"uid": uid(resource), "attrs": attrs,
                        "parents": parents.into_iter().map(uid).collect::<Vec<_>>()}))
                    }),
                proptest::collection::vec(pick(ATTACKED), 1..3).prop_map(move |parents| Some(json!({
                    "uid": {"type": "User", "id": principal}, "attrs": {},
                    "parents": parents.into_iter().map(uid).collect::<Vec<_>>()}))),
            ];
            (Just((principal, (action, resource, context), entities)), described)
        })
        .prop_map(|((principal, (action, resource, context), entities), described)| {
            let entities = match (entities, described) {
                (Some(mut entities), Some(entity)) => {
                    entities.insert(0, entity);
                    Some(entities)
                }
                (None, Some(entity)) => Some(vec![entity]),
                (entities, None) => entities,
            };
            let mut request = json!({
                "principal": {"type": "User", "id": principal},
                "action": {"type": "Action", "id": action},
                "resource": uid(resource),
            });
            if let Some(context) = context {
                request["context"] = context;
            }
            if let Some(entities) = entities {
                request["entities"] = Value::Array(entities);
            }
            request
        })
}

/// Arbitrary JSON, for bodies and for fields of the wrong type.
fn junk() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("principal".to_string()),
                    Just("entities".to_string()),
                    any::<String>()
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A whole body: a request, a request with one field replaced by junk, a
/// batch of them, or junk.
fn body() -> impl Strategy<Value = (&'static str, String)> {
    let field = pick(
        &[
            "principal",
            "action",
            "resource",
            "context",
            "entities",
            "consistency",
        ][..],
    );
    let mutated = (request(), field, junk()).prop_map(|(mut request, field, junk)| {
        request[field] = junk;
        request
    });
    let single = prop_oneof![4 => request(), 2 => mutated, 1 => junk()];
    prop_oneof![
        3 => single.clone().prop_map(|r| ("/v1/is_authorized", r.to_string())),
        1 => proptest::collection::vec(single, 0..5)
            .prop_map(|items| ("/v1/is_authorized/batch", json!({"requests": items}).to_string())),
        1 => any::<String>().prop_map(|text| ("/v1/is_authorized", text)),
    ]
}

fn app(mode: RequestEntityMode) -> axum::Router {
    let mut state = AppState::new(shipped_state());
    state.request_entities = std::sync::Arc::new(RequestEntityPolicy {
        mode,
        types: ["User", "Thunk", "Group", "Org", "Environment"]
            .iter()
            .map(|t| EntityTypeName::from_str(t).unwrap())
            .collect(),
        max: 100,
    });
    router(state)
}

async fn post(app: &axum::Router, path: &str, body: String) -> (u16, Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{status}: body is not JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, json)
}

/// The documented statuses; a 503 only with its documented codes.
fn documented(status: u16, body: &Value) -> bool {
    match status {
        200 | 400 | 413 => true,
        503 => matches!(
            body["code"].as_str(),
            Some("not_ready" | "stale" | "overloaded" | "timeout")
        ),
        _ => false,
    }
}

/// The decisions of a single or batch answer, by item.
fn decisions(status: u16, body: &Value) -> Vec<Option<String>> {
    if status != 200 {
        return Vec::new();
    }
    match body.get("responses").and_then(Value::as_array) {
        Some(items) => items
            .iter()
            .map(|i| i["decision"].as_str().map(str::to_string))
            .collect(),
        None => vec![body["decision"].as_str().map(str::to_string)],
    }
}

/// The same body with every `entities` removed: what stored data alone grants.
fn without_entities(path: &str, body: &str) -> Option<String> {
    let mut value: Value = serde_json::from_str(body).ok()?;
    let strip = |item: &mut Value| {
        if let Some(object) = item.as_object_mut() {
            object.remove("entities");
        }
    };
    if path.ends_with("batch") {
        value
            .get_mut("requests")?
            .as_array_mut()?
            .iter_mut()
            .for_each(strip);
    } else {
        strip(&mut value);
    }
    Some(value.to_string())
}

/// Ids the demo data does not hold.
fn is_new(uid: &Value) -> bool {
    matches!(
        uid["id"].as_str().unwrap_or_default(),
        "ghost" | "nowhere" | "new-env" | "new-thunk" | "new-org" | ""
    )
}

/// Item `index` of a single or batch body.
fn item(path: &str, body: &Value, index: usize) -> Value {
    if path.ends_with("batch") {
        body["requests"][index].clone()
    } else {
        body.clone()
    }
}

/// `new-only` exists to decide about entities the store lacks, so an Allow
/// that stored data alone does not give is expected when the principal or
/// resource is new. What it must never do is let them join stored groups:
/// the same item, with every parent edge into stored data cut and decided
/// with entities trusted, must be allowed too.
fn stored_parents_cut(item: &Value) -> Value {
    let mut item = item.clone();
    if let Some(entities) = item.get_mut("entities").and_then(Value::as_array_mut) {
        for entity in entities {
            if let Some(parents) = entity.get_mut("parents").and_then(Value::as_array_mut) {
                parents.retain(is_new);
            }
        }
    }
    item
}

fn fuzz(mode: RequestEntityMode) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = app(mode);
    let trusting = self::app(RequestEntityMode::Override);
    let widened = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        ..Config::default()
    });
    runner
        .run(&body(), |(path, body)| {
            runtime.block_on(async {
                let (status, answer) = post(&app, path, body.clone()).await;
                prop_assert!(documented(status, &answer), "{status} {answer} for {body}");
                if mode == RequestEntityMode::Override {
                    return Ok(());
                }
                let Some(plain) = without_entities(path, &body) else {
                    return Ok(());
                };
                let (plain_status, plain_answer) = post(&app, path, plain).await;
                let forged = decisions(status, &answer);
                let stored = decisions(plain_status, &plain_answer);
                for (index, decision) in forged.iter().enumerate() {
                    if decision.as_deref() != Some("Allow") {
                        continue;
                    }
                    if stored.get(index).and_then(Option::as_deref) == Some("Allow") {
                        continue;
                    }
                    widened.set(widened.get() + 1);
                    let sent: Value = serde_json::from_str(&body).unwrap();
                    let sent = item(path, &sent, index);
                    // `new-only` decides about resources the store lacks;
                    // who asks is always stored.
                    prop_assert!(
                        mode == RequestEntityMode::NewOnly && is_new(&sent["resource"]) && !is_new(&sent["principal"]),
                        "entities widened a decision on stored data ({mode:?}): {body}\nwith: {answer}\nwithout: {plain_answer}"
                    );
                    let cut = stored_parents_cut(&sent);
                    let (_, cut_answer) = post(&trusting, "/v1/is_authorized", cut.to_string()).await;
                    prop_assert_eq!(
                        cut_answer["decision"].as_str(), Some("Allow"),
                        "an Allow came from joining stored groups: {}\nwith: {}\ncut: {}", body, answer, cut_answer
                    );
                }
                Ok(())
            })
        })
        .unwrap();
    eprintln!(
        "{mode:?}: {} Allows that only request entities gave",
        widened.get()
    );
}

#[test]
fn fuzz_off() {
    fuzz(RequestEntityMode::Off);
}

#[test]
fn fuzz_new_only() {
    fuzz(RequestEntityMode::NewOnly);
}

#[test]
fn fuzz_override_never_fails_badly() {
    fuzz(RequestEntityMode::Override);
}
