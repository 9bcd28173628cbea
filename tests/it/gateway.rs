//! Gateway doors through the router (no socket): the route map and its
//! check, the JWT principal (valid, expired, wrong audience or issuer, bad
//! signature, `alg: none`), the ext_authz HTTP door and `/v1/gateway/auth`
//! (nginx and forward-auth headers), all asserting real decisions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cedar_sidecar::gateway::routes::{Route, RouteMap, Target, Unmatched};
use cedar_sidecar::gateway::template::{split_path, Template};
use cedar_sidecar::gateway::{Gateway, GatewayArgs};
use cedar_sidecar::http::{router, AppState};
use http_body_util::BodyExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::{repo, shipped, shipped_state};

pub const ISSUER: &str = "https://id.example.test";
pub const AUDIENCE: &str = "thunk-api";
pub const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for `sub`, valid for an hour.
pub fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 3600, "iat": now() })
}

/// An HS256 token over `claims`.
pub fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// base64url without padding (JWKS members, `alg: none` tokens).
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A signing key pair made for the test, with its JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
    pub public_pem: String,
}

impl TestKey {
    /// A fresh P-256 key (ES256).
    pub fn es256(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = pair.public_key_raw();
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                        "x": b64url(&raw[1..33]), "y": b64url(&raw[33..65])}),
            public_pem: pair.public_key_pem(),
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn eddsa(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap(),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64url(pair.public_key_raw())}),
            public_pem: pair.public_key_pem(),
        }
    }

    /// The fixture RSA key (RS256); ring cannot make RSA keys.
    pub fn rs256() -> Self {
        let dir = repo().join("tests/fixtures/gateway");
        let private = std::fs::read(dir.join("rsa-private.pem")).unwrap();
        Self {
            kid: "rsa".into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(&private).unwrap(),
            jwk: Value::Null,
            public_pem: std::fs::read_to_string(dir.join("rsa-public.pem")).unwrap(),
        }
    }

    /// A token over `claims` signed with this key (with its `kid`).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Writes a JWKS file of `keys`.
pub fn write_jwks(path: &Path, keys: &[&TestKey]) {
    let set = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
    std::fs::write(path, set.to_string()).unwrap();
}

/// Key files in a scratch folder: a JWKS (ES256 + EdDSA), the RSA PEM and
/// the HS256 secret.
pub struct Keys {
    pub dir: tempfile::TempDir,
    pub es: TestKey,
    pub ed: TestKey,
    pub rsa: TestKey,
}

impl Keys {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (es, ed, rsa) = (
            TestKey::es256("es-1"),
            TestKey::eddsa("ed-1"),
            TestKey::rs256(),
        );
        write_jwks(&dir.path().join("jwks.json"), &[&es, &ed]);
        std::fs::write(dir.path().join("rsa.pem"), &rsa.public_pem).unwrap();
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        Self { dir, es, ed, rsa }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Gateway settings over these keys and `routes`.
    pub fn args(&self, routes: &Path) -> GatewayArgs {
        GatewayArgs {
            routes: Some(routes.to_path_buf()),
            jwt_jwks: Some(self.path("jwks.json")),
            jwt_public_keys: Some(vec![self.path("rsa.pem")]),
            jwt_hs256_secret_file: Some(self.path("secret")),
            jwt_issuer: Some(ISSUER.into()),
            jwt_audience: Some(AUDIENCE.into()),
            ..GatewayArgs::default()
        }
    }
}

fn shipped_routes() -> PathBuf {
    repo().join("gateway/routes.toml")
}

fn app_with(args: &GatewayArgs) -> axum::Router {
    let config = args.config().unwrap().unwrap();
    let gateway = Gateway::start(config, &shipped().pack).unwrap_or_else(|e| panic!("{e}"));
    let mut state = AppState::new(shipped_state());
    state.gateway = Some(Arc::new(gateway));
    router(state)
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn send(app: &axum::Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// ext_authz HTTP: real decisions of the shipped pack through the shipped
/// route map, one row per case.
#[tokio::test]
async fn ext_authz_http_decides_with_the_shipped_route_map() {
    let keys = Keys::new();
    let app = app_with(&keys.args(&shipped_routes()));
    // (user, method, original path, status, route)
    let cases = [
        (
            "paula",
            "GET",
            "/orgs/acme/environments/acme-prod",
            200,
            "use-environment",
        ),
        (
            "pete",
            "GET",
            "/orgs/acme/environments/acme-prod",
            403,
            "use-environment",
        ),
        (
            "olivia",
            "PUT",
            "/orgs/acme/members/pete",
            200,
            "add-member",
        ),
        (
            "olivia",
            "DELETE",
            "/orgs/acme/members/olivia",
            403,
            "remove-member",
        ),
        (
            "adam",
            "PATCH",
            "/orgs/acme/environments/acme-dev",
            200,
            "update-environment",
        ),
        (
            "paula",
            "PATCH",
            "/orgs/acme/environments/acme-dev",
            403,
            "update-environment",
        ),
        ("ana", "GET", "/orgs", 200, "list-orgs"),
        ("olivia", "GET", "/orgs", 403, "list-orgs"),
        (
            "paula",
            "POST",
            "/orgs/acme/environments/acme-prod/models/acme-prod-gpt4o/invoke",
            200,
            "use-model",
        ),
        (
            "greg",
            "POST",
            "/orgs/acme/environments/acme-prod/models/acme-prod-gpt4o/invoke",
            403,
            "use-model",
        ),
        (
            "pete",
            "POST",
            "/me/environments/personal-pete/models/none/invoke",
            403,
            "use-personal-model",
        ),
        (
            "pete",
            "GET",
            "/me/environments/personal-pete",
            200,
            "use-personal-environment",
        ),
        (
            "paula",
            "GET",
            "/me/environments/personal-pete",
            403,
            "use-personal-environment",
        ),
        (
            "olivia",
            "POST",
            "/thunks/paula-report/move?to=acme-staging",
            200,
            "move-thunk",
        ),
        (
            "paula",
            "POST",
            "/thunks/paula-report/move?to=acme-staging",
            403,
            "move-thunk",
        ),
        (
            "paula",
            "POST",
            "/thunks/paula-report/run",
            200,
            "run-thunk",
        ),
        ("pete", "POST", "/thunks/paula-report/run", 403, "run-thunk"),
        (
            "paula",
            "POST",
            "/orgs/acme/api-keys/acme-openai/completions",
            200,
            "use-api-key",
        ),
        (
            "paula",
            "POST",
            "/orgs/acme/api-keys/acme-anthropic/completions",
            403,
            "use-api-key",
        ),
        (
            "adam",
            "GET",
            "/orgs/acme/environments/acme-prod/mcp-servers/acme-prod-salesforce/tools/list",
            200,
            "use-mcp-server",
        ),
    ];
    for (user, method, path, status, route) in cases {
        let token = keys.es.sign(&claims(user));
        let answer = send(
            &app,
            method,
            &format!("/ext_authz{path}"),
            &[("authorization", &bearer(&token))],
        )
        .await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{user} {method} {path}: {:?}",
            answer.body
        );
        assert_eq!(
            answer.headers["x-cedar-route"], route,
            "{user} {method} {path}"
        );
        assert!(answer.headers.contains_key("x-cedar-decision-id"));
        if status == 200 {
            assert_eq!(
                answer.headers["x-cedar-principal"],
                format!("User::\"{user}\"")
            );
            assert_eq!(answer.body, Value::Null);
        } else {
            assert!(!answer.headers.contains_key("x-cedar-principal"));
            assert_eq!(answer.body["code"], "forbidden", "{user} {method} {path}");
        }
    }
}

/// Every kind of key verifies, and every bad token is a 401 that says why.
#[tokio::test]
async fn tokens_are_verified_and_refusals_say_why() {
    let keys = Keys::new();
    let app = app_with(&keys.args(&shipped_routes()));
    let path = "/ext_authz/orgs/acme/environments/acme-prod";
    let paula = claims("paula");
    for token in [
        keys.es.sign(&paula),
        keys.ed.sign(&paula),
        keys.rsa.sign(&paula),
        hs256(&paula),
    ] {
        let answer = send(&app, "GET", path, &[("authorization", &bearer(&token))]).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    }
    let mut expired = claims("paula");
    expired["exp"] = json!(now() - 3600);
    let mut early = claims("paula");
    early["nbf"] = json!(now() + 3600);
    let mut audience = claims("paula");
    audience["aud"] = json!("another-api");
    let mut issuer = claims("paula");
    issuer["iss"] = json!("https://evil.example.test");
    let mut no_exp = claims("paula");
    no_exp.as_object_mut().unwrap().remove("exp");
    let other = TestKey::es256("es-1"); // same kid, another key
    let mut tampered = keys.es.sign(&claims("pete"));
    let payload = b64url(claims("paula").to_string().as_bytes());
    let parts: Vec<&str> = tampered.split('.').collect();
    tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims("paula").to_string().as_bytes())
    );
    // An HS256 token signed with the RSA public key as its secret (the
    // algorithm-confusion attack) must not verify.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &paula,
        &EncodingKey::from_secret(keys.rsa.public_pem.as_bytes()),
    )
    .unwrap();
    let cases: Vec<(String, &str, &str)> = vec![
        (keys.es.sign(&expired), "token_expired", "expired"),
        (keys.es.sign(&early), "invalid_token", "not valid yet"),
        (keys.es.sign(&audience), "invalid_token", "audience"),
        (keys.es.sign(&issuer), "invalid_token", "issuer"),
        (keys.es.sign(&no_exp), "invalid_token", "`exp`"),
        (
            other.sign(&paula),
            "invalid_token",
            "signature does not verify",
        ),
        (tampered, "invalid_token", "signature does not verify"),
        (confused, "invalid_token", "signature does not verify"),
        (none, "invalid_token", "malformed"),
        ("not-a-token".into(), "invalid_token", "malformed"),
    ];
    for (token, code, says) in cases {
        let answer = send(&app, "GET", path, &[("authorization", &bearer(&token))]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{code} {says}");
        assert_eq!(answer.body["code"], code, "{says}: {:?}", answer.body);
        let message = answer.body["message"].as_str().unwrap();
        assert!(message.contains(says), "{message} should say {says}");
        let challenge = answer.headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
    }
    let missing = send(&app, "GET", path, &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.body["code"], "missing_token");
    assert!(missing.headers.contains_key("www-authenticate"));
}

/// nginx and forward-auth headers on `/v1/gateway/auth`; public and
/// unmapped routes; nginx never gets a status other than 2xx/401/403.
#[tokio::test]
async fn auth_request_and_forward_auth_read_the_original_request() {
    let keys = Keys::new();
    let app = app_with(&keys.args(&shipped_routes()));
    let paula = bearer(&hs256(&claims("paula")));
    let nginx = |method: &'static str, uri: &'static str| {
        vec![("x-original-method", method), ("x-original-uri", uri)]
    };
    let mut headers = nginx("GET", "/orgs/acme/environments/acme-prod");
    headers.push(("authorization", paula.as_str()));
    let allowed = send(&app, "GET", "/v1/gateway/auth", &headers).await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(allowed.headers["x-cedar-principal"], "User::\"paula\"");

    let mut headers = nginx("DELETE", "/orgs/acme");
    headers.push(("authorization", paula.as_str()));
    let denied = send(&app, "GET", "/v1/gateway/auth", &headers).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.body["code"], "forbidden");

    let no_token = send(&app, "GET", "/v1/gateway/auth", &nginx("GET", "/orgs/acme")).await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);

    let unmapped = send(
        &app,
        "GET",
        "/v1/gateway/auth",
        &nginx("GET", "/admin/secrets"),
    )
    .await;
    assert_eq!(unmapped.status, StatusCode::FORBIDDEN);
    assert_eq!(unmapped.body["code"], "route_not_mapped");

    let public = send(&app, "GET", "/v1/gateway/auth", &nginx("GET", "/healthz")).await;
    assert_eq!(public.status, StatusCode::OK);
    assert_eq!(
        public.headers["x-cedar-principal"], "",
        "public: no principal"
    );

    // A bad value is a 400 elsewhere, a 403 for nginx.
    let mut headers = nginx("GET", "/orgs/acme/../globex");
    headers.push(("authorization", paula.as_str()));
    let dots = send(&app, "GET", "/v1/gateway/auth", &headers).await;
    assert_eq!(dots.status, StatusCode::FORBIDDEN);
    assert_eq!(dots.body["code"], "invalid_path");
    let dots = send(
        &app,
        "GET",
        "/ext_authz/orgs/acme/%2e%2e/globex",
        &[("authorization", &paula)],
    )
    .await;
    assert_eq!(dots.status, StatusCode::BAD_REQUEST);

    // Forward-auth (Traefik, Caddy): X-Forwarded-Method and -Uri.
    let forwarded = |method: &'static str, uri: &'static str| {
        vec![
            ("x-forwarded-method", method),
            ("x-forwarded-uri", uri),
            ("x-forwarded-host", "api.example.test"),
        ]
    };
    let mut headers = forwarded("POST", "/thunks/paula-report/run?trace=1");
    headers.push(("authorization", paula.as_str()));
    let ran = send(&app, "GET", "/v1/gateway/auth", &headers).await;
    assert_eq!(ran.status, StatusCode::OK);
    assert_eq!(ran.headers["x-cedar-route"], "run-thunk");
    let mut headers = forwarded("POST", "/thunks/pete-draft/run");
    headers.push(("authorization", paula.as_str()));
    let other = send(&app, "GET", "/v1/gateway/auth", &headers).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);

    // Neither header set: denied, never allowed.
    let bare = send(
        &app,
        "GET",
        "/v1/gateway/auth",
        &[("authorization", &paula)],
    )
    .await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    assert_eq!(bare.body["code"], "missing_original_request");

    // A required query parameter: missing is a 400 at ext_authz.
    let paula_admin = bearer(&hs256(&claims("olivia")));
    let no_target = send(
        &app,
        "POST",
        "/ext_authz/thunks/paula-report/move",
        &[("authorization", &paula_admin)],
    )
    .await;
    assert_eq!(no_target.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_target.body["code"], "invalid_request_value");

    // Counted by door and outcome.
    let metrics = send_text(&app, "/metrics").await;
    assert!(
        metrics.contains("cedar_gateway_requests_total{door=\"auth_request\",outcome=\"allow\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cedar_gateway_requests_total{door=\"forward_auth\",outcome=\"deny\"} 1")
    );
    assert!(metrics
        .contains("cedar_gateway_requests_total{door=\"auth_request\",outcome=\"not_mapped\"} 1"));
}

async fn send_text(app: &axum::Router, uri: &str) -> String {
    let response = app
        .clone()
        .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A caller cannot widen its rights with request entities or a forged
/// identity header: the gateway path carries none.
#[tokio::test]
async fn trusted_header_is_the_principal_only_when_configured() {
    let keys = Keys::new();
    // With JWT: an X-User-Id header is ignored, the token names the principal.
    let app = app_with(&keys.args(&shipped_routes()));
    let pete = bearer(&hs256(&claims("pete")));
    let forged = send(
        &app,
        "GET",
        "/ext_authz/orgs/acme/environments/acme-prod",
        &[
            ("authorization", &pete),
            ("x-user-id", "paula"),
            ("x-cedar-principal", "User::\"paula\""),
        ],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // With a trusted header configured, that header names the principal.
    let args = GatewayArgs {
        routes: Some(shipped_routes()),
        trusted_principal_header: Some("X-User-Id".into()),
        ..GatewayArgs::default()
    };
    let app = app_with(&args);
    let path = "/ext_authz/orgs/acme/environments/acme-prod";
    assert_eq!(
        send(&app, "GET", path, &[("x-user-id", "paula")])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "GET", path, &[("x-user-id", "pete")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let missing = send(&app, "GET", path, &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.body["code"], "missing_token");
}

/// `check --routes` reports each problem at file:line:column.
#[test]
fn check_reports_route_map_problems_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        r#"[[route]]
id = "a"
methods = ["GET"]
path = "/orgs/{org}"
action = "NoSuchAction"
resource = "Org::{org}"

[[route]]
id = "b"
methods = ["GET"]
path = "/orgs/{org}/environments/{env}"
action = "UseEnvironment"
resource = "Org::{org}"

[[route]]
id = "c"
methods = ["POST"]
path = "/thunks/{thunk}/move"
action = "MoveThunk"
resource = "Thunk::{thing}"
context = { targetEnvironment = 42 }

[[route]]
id = "d"
methods = ["GET"]
path = "/x/{a}"
action = "ReadOrg"
resource = "Org::{a}"

[[route]]
id = "e"
methods = ["GET", "POST"]
path = "/x/{b}"
action = "ReadOrg"
resource = "Org::{b}"
context = { limit = "query:limit" }
"#,
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
        .current_dir(repo())
        .args(["check", "--routes"])
        .arg(&routes)
        .args(["--trusted-principal-header", "x-user-id"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let name = routes.display().to_string();
    for expected in [
        format!("{name}:5:10: unknown action `NoSuchAction`"),
        format!("{name}:13:12: action `Action::\"UseEnvironment\"` does not take a resource of type `Org`"),
        format!("{name}:20:12: `{{thing}}` is not captured"),
        format!("{name}:21:33: context field `targetEnvironment` of `Action::\"MoveThunk\"` is an entity of type `Environment`, but `42` is integer"),
        format!("{name}:33:8: route `e` overlaps route `d`"),
        format!("{name}:36:21: action `Action::\"ReadOrg\"` declares no context field `limit`"),
    ] {
        assert!(stderr.contains(&expected), "missing `{expected}` in:\n{stderr}");
    }
    // The shipped map is clean.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"))
        .current_dir(repo())
        .args([
            "check",
            "--routes",
            "gateway/routes.toml",
            "--trusted-principal-header",
            "x-user-id",
        ])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("route map `gateway/routes.toml`"));
}

// ---- precedence: exactly one route, or none ----------------------------------

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("{x}".to_string()),
        Just("{y}".to_string()),
    ]
}

fn template_text() -> impl Strategy<Value = String> {
    (prop::collection::vec(segment(), 0..4), any::<bool>()).prop_map(|(segments, wildcard)| {
        // Capture names made unique by position.
        let mut parts: Vec<String> = segments
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                if s.starts_with('{') {
                    format!("{{c{i}}}")
                } else {
                    s
                }
            })
            .collect();
        if wildcard {
            parts.push("{*rest}".into());
        }
        format!("/{}", parts.join("/"))
    })
}

fn path_segments() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(String::from),
        0..5,
    )
}

proptest! {
    /// For any route set the loader accepts (no two routes of equal rank
    /// overlap) and any path: the route found is the one route that
    /// matches and outranks every other match, or none matches at all.
    #[test]
    fn a_path_matches_the_one_most_specific_route_or_none(
        texts in prop::collection::vec(template_text(), 1..8),
        path in path_segments(),
    ) {
        let mut templates: Vec<Template> = Vec::new();
        for text in &texts {
            let template = Template::parse(text).unwrap();
            if templates.iter().all(|t| !t.overlaps(&template)) {
                templates.push(template);
            }
        }
        let routes: Vec<Route> = templates.iter().enumerate().map(|(i, template)| Route {
            id: Arc::from(format!("r{i}").as_str()),
            methods: None,
            template: template.clone(),
            target: Target::Public,
        }).collect();
        let map = RouteMap::from_routes(routes.clone(), Unmatched::Forbidden);
        let matching: Vec<&Route> = routes.iter().filter(|r| r.template.matches(&path).is_some()).collect();
        let found = map.find(&axum::http::Method::GET, &path);
        match found {
            None => prop_assert!(matching.is_empty()),
            Some((route, _)) => {
                prop_assert!(matching.iter().any(|r| r.id == route.id));
                for other in &matching {
                    if other.id != route.id {
                        prop_assert_eq!(
                            route.template.precedence(&other.template),
                            std::cmp::Ordering::Greater,
                            "{:?} should outrank {:?}", route.template, other.template
                        );
                    }
                }
            }
        }
    }
}

/// The documented precedence, case by case.
#[test]
fn most_specific_wins() {
    let cases = [
        // (templates, path, winner index or none)
        (vec!["/orgs/{org}", "/orgs/new"], "/orgs/new", Some(1)),
        (vec!["/orgs/{org}", "/orgs/new"], "/orgs/acme", Some(0)),
        (vec!["/a/{*rest}", "/a/b"], "/a/b", Some(1)),
        (vec!["/a/{*rest}", "/a/b"], "/a/b/c", Some(0)),
        (vec!["/a/{*rest}", "/a"], "/a", Some(1)),
        (vec!["/a/{*rest}"], "/a", Some(0)),
        (vec!["/{x}/b", "/a/{y}"], "/a/b", Some(1)),
        (vec!["/{x}/{*rest}", "/a/{*rest}"], "/a/b", Some(1)),
        (vec!["/a/{x}"], "/a", None),
        (vec!["/a"], "/b", None),
    ];
    for (texts, path, winner) in cases {
        let routes: Vec<Route> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Route {
                id: Arc::from(i.to_string().as_str()),
                methods: None,
                template: Template::parse(t).unwrap(),
                target: Target::Public,
            })
            .collect();
        let map = RouteMap::from_routes(routes, Unmatched::Forbidden);
        let segments = split_path(path).unwrap();
        let found = map
            .find(&axum::http::Method::GET, &segments)
            .map(|(r, _)| r.id.to_string());
        assert_eq!(
            found,
            winner.map(|w: usize| w.to_string()),
            "{texts:?} {path}"
        );
    }
}

/// What a review found a gateway could be talked into: each is refused, and
/// none reaches an Allow.
#[tokio::test]
async fn smuggled_paths_methods_and_values_are_refused() {
    let keys = Keys::new();
    let app = app_with(&keys.args(&shipped_routes()));
    let paula = bearer(&hs256(&claims("paula")));
    let auth = |headers: Vec<(&'static str, &'static str)>| {
        let app = app.clone();
        async move { send(&app, "GET", "/v1/gateway/auth", &headers).await }
    };

    // A `://` in the query is data: it does not replace the path decided.
    let smuggled = auth(vec![
        ("x-original-method", "GET"),
        ("x-original-uri", "/orgs/acme?u=http://a/healthz"),
    ])
    .await;
    assert_eq!(
        smuggled.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        smuggled.body
    );

    // A client's own X-Original-* passed on by a forward-auth proxy.
    let both = auth(vec![
        ("x-forwarded-method", "DELETE"),
        ("x-forwarded-uri", "/orgs/acme"),
        ("x-original-method", "GET"),
        ("x-original-uri", "/healthz"),
    ])
    .await;
    assert_eq!(both.status, StatusCode::FORBIDDEN);
    assert_eq!(both.body["code"], "ambiguous_original_request");

    // `..;` and `\` segments, which some upstreams resolve as `..` and `/`.
    for path in [
        "/ext_authz/docs/..;/orgs/acme",
        "/ext_authz/docs/%2e%2e;/orgs/acme",
        "/ext_authz/docs/a%5C..%5Corgs",
    ] {
        let answer = send(&app, "DELETE", path, &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(answer.body["code"], "invalid_path", "{path}");
    }

    // A mapped query parameter given twice, or one that does not decode.
    for uri in [
        "/ext_authz/thunks/paula-report/move?to=acme-prod&to=globex-prod",
        "/ext_authz/thunks/paula-report/move?to=acme-prod&x=%ZZ",
    ] {
        let answer = send(&app, "POST", uri, &[("authorization", &paula)]).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {:?}",
            answer.body
        );
        assert_eq!(answer.body["code"], "invalid_request_value", "{uri}");
    }

    // A method override would run another method than the one decided.
    let allowed = "/ext_authz/orgs/acme/environments/acme-prod";
    let plain = send(&app, "GET", allowed, &[("authorization", &paula)]).await;
    assert_eq!(plain.status, StatusCode::OK);
    let overridden = send(
        &app,
        "GET",
        allowed,
        &[
            ("authorization", &paula),
            ("x-http-method-override", "DELETE"),
        ],
    )
    .await;
    assert_eq!(overridden.status, StatusCode::BAD_REQUEST);
    let overridden = send(
        &app,
        "GET",
        "/ext_authz/orgs/acme/environments/acme-prod?_method=DELETE",
        &[("authorization", &paula)],
    )
    .await;
    assert_eq!(overridden.status, StatusCode::BAD_REQUEST);
}

/// A prefix axum would read as a capture, and a leeway that would make any
/// expired token valid (or overflow), are start-up errors naming the key.
#[test]
fn prefix_and_leeway_are_bounded() {
    let keys = Keys::new();
    for prefix in ["/x/:y", "/x/*y", "/x/{y}", "/v1/authz", "/a//b", "/a/../b"] {
        let args = GatewayArgs {
            ext_authz_prefix: Some(prefix.into()),
            ..keys.args(&shipped_routes())
        };
        let (key, _) = args.config().unwrap_err();
        assert_eq!(key, "gateway.ext_authz_prefix", "{prefix}");
    }
    let args = GatewayArgs {
        jwt_leeway_secs: Some(u64::MAX),
        ..keys.args(&shipped_routes())
    };
    assert_eq!(args.config().unwrap_err().0, "gateway.jwt_leeway_secs");
    let fine = GatewayArgs {
        ext_authz_prefix: Some("/authz/envoy-1".into()),
        jwt_leeway_secs: Some(600),
        ..keys.args(&shipped_routes())
    };
    assert!(fine.config().unwrap().is_some());
}
