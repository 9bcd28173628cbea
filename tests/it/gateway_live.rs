//! Gateway doors on the real binary: Envoy's gRPC ext_authz called with a
//! tonic client as Envoy calls it; key rotation and a bad route-map edit
//! without a restart; and real nginx (`auth_request`) and Caddy
//! (`forward_auth`) in front of a tiny upstream, with the shipped configs
//! of `deploy/gateways/` adapted to test ports.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

use crate::gateway::{claims, hs256, now, write_jwks, Keys, TestKey, AUDIENCE, ISSUER};
use crate::loopback::{free_port, http, Sidecar};
use crate::support::repo;

/// Serve flags for the shipped route map and the test keys.
fn gateway_flags(keys: &Keys) -> Vec<String> {
    let path = |name: &str| keys.path(name).display().to_string();
    vec![
        "--routes".into(),
        repo().join("gateway/routes.toml").display().to_string(),
        "--jwt-jwks".into(),
        path("jwks.json"),
        "--jwt-hs256-secret-file".into(),
        path("secret"),
        "--jwt-issuer".into(),
        ISSUER.into(),
        "--jwt-audience".into(),
        AUDIENCE.into(),
    ]
}

fn start(keys: &Keys, extra: &[String]) -> Sidecar {
    let mut args = gateway_flags(keys);
    args.extend(extra.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Sidecar::start(&args, &[])
}

fn check_request(method: &str, path: &str, token: Option<&str>) -> CheckRequest {
    let mut headers = HashMap::from([
        (":authority".to_string(), "api.example.test".to_string()),
        (":method".to_string(), method.to_string()),
        (":path".to_string(), path.to_string()),
        ("x-request-id".to_string(), "test".to_string()),
    ]);
    if let Some(token) = token {
        headers.insert("authorization".into(), format!("Bearer {token}"));
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    host: "api.example.test".into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// (method, path, token, gRPC code, HTTP status or 0 for an allow, body code)
type GrpcCase<'a> = (&'a str, &'a str, Option<&'a str>, i32, u32, &'a str);

#[tokio::test]
async fn grpc_ext_authz_answers_envoy_check_requests() {
    let keys = Keys::new();
    let grpc = free_port();
    let sidecar = start(&keys, &["--grpc-listen".into(), grpc.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        match AuthorizationClient::connect(format!("http://{grpc}")).await {
            Ok(client) => break client,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => panic!("cannot connect to the gRPC door: {error}"),
        }
    };
    let paula = keys.es.sign(&claims("paula"));
    let pete = keys.ed.sign(&claims("pete"));
    let mut expired = claims("paula");
    expired["exp"] = serde_json::json!(now() - 600);
    let expired = keys.es.sign(&expired);
    let cases: Vec<GrpcCase> = vec![
        (
            "GET",
            "/orgs/acme/environments/acme-prod",
            Some(&paula),
            0,
            0,
            "",
        ),
        (
            "GET",
            "/orgs/acme/environments/acme-prod?view=full",
            Some(&paula),
            0,
            0,
            "",
        ),
        (
            "GET",
            "/orgs/acme/environments/acme-prod",
            Some(&pete),
            7,
            403,
            "forbidden",
        ),
        (
            "GET",
            "/orgs/acme/environments/acme-prod",
            None,
            16,
            401,
            "missing_token",
        ),
        (
            "GET",
            "/orgs/acme/environments/acme-prod",
            Some(&expired),
            16,
            401,
            "token_expired",
        ),
        (
            "GET",
            "/not/a/route",
            Some(&paula),
            7,
            403,
            "route_not_mapped",
        ),
        ("GET", "/healthz", None, 0, 0, ""),
    ];
    for (method, path, token, code, status, body_code) in cases {
        let response = client
            .check(check_request(method, path, token))
            .await
            .unwrap()
            .into_inner();
        let rpc = response.status.as_ref().unwrap();
        assert_eq!(rpc.code, code, "{method} {path}: {:?}", response);
        match response.http_response.unwrap() {
            HttpResponse::OkResponse(ok) => {
                assert_eq!(status, 0, "{method} {path} allowed");
                let headers: HashMap<String, String> = ok
                    .headers
                    .iter()
                    .filter_map(|h| h.header.as_ref())
                    .map(|h| (h.key.clone(), h.value.clone()))
                    .collect();
                if path == "/healthz" {
                    assert!(!headers.contains_key("x-cedar-principal"));
                    assert!(ok
                        .headers_to_remove
                        .contains(&"x-cedar-principal".to_string()));
                } else {
                    assert_eq!(headers["x-cedar-principal"], "User::\"paula\"");
                    assert!(headers.contains_key("x-cedar-decision-id"));
                }
            }
            HttpResponse::ErrorResponse(error) => {
                panic!("{method} {path}: an error response: {error:?}")
            }
            HttpResponse::DeniedResponse(denied) => {
                assert_eq!(
                    denied.status.unwrap().code as u32,
                    status,
                    "{method} {path}"
                );
                let body: serde_json::Value = serde_json::from_str(&denied.body).unwrap();
                assert_eq!(body["code"], body_code, "{method} {path}");
                let challenge = denied
                    .headers
                    .iter()
                    .filter_map(|h| h.header.as_ref())
                    .any(|h| {
                        h.key == "www-authenticate"
                            && h.value.starts_with("Bearer error=\"invalid_token\"")
                    });
                assert_eq!(challenge, status == 401, "{method} {path}");
            }
        }
    }
    // A check request without HTTP attributes is denied.
    let empty = client
        .check(CheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(empty.status.unwrap().code, 7);
    // Counted by door.
    let (_, metrics) = http(sidecar.address, "GET", "/metrics", "", &[]);
    assert!(
        metrics
            .contains("cedar_gateway_requests_total{door=\"ext_authz_grpc\",outcome=\"allow\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "cedar_gateway_requests_total{door=\"ext_authz_grpc\",outcome=\"unauthenticated\"} 2"
    ));
}

/// A new key in the JWKS file is taken without a restart (the file
/// watcher reloads it with the pack); a bad route-map edit keeps the last
/// good map, and says so.
#[test]
fn keys_and_routes_reload_without_restart() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::copy(repo().join("gateway/routes.toml"), &routes).unwrap();
    let mut args = gateway_flags(&keys);
    args[1] = routes.display().to_string();
    args.extend([
        "--watch".into(),
        "true".into(),
        "--watch-debounce-ms".into(),
        "50".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sidecar = Sidecar::start(&args, &[]);
    let path = "/ext_authz/orgs/acme/environments/acme-prod";
    let rotated = TestKey::es256("es-2");
    let token = rotated.sign(&claims("paula"));
    let auth = format!("Bearer {token}");
    let (status, _) = http(
        sidecar.address,
        "GET",
        path,
        "",
        &[("authorization", &auth)],
    );
    assert_eq!(status, 401, "an unknown key is refused");
    write_jwks(&keys.path("jwks.json"), &[&keys.es, &rotated]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = http(
            sidecar.address,
            "GET",
            path,
            "",
            &[("authorization", &auth)],
        );
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated key was not picked up: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A broken edit: the last good map keeps serving, status and metrics say so.
    std::fs::write(
        &routes,
        "[[route]]\nid = \"x\"\npath = \"/x\"\naction = \"Nope\"\nresource = \"Org::{o}\"\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, status) = sidecar.send("GET", "/v1/status", "", &[]);
        if let Some(error) = status["gateway"]["last_error"].as_str() {
            assert!(error.contains("unknown action `Nope`"), "{error}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bad edit was not reported: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = http(
        sidecar.address,
        "GET",
        path,
        "",
        &[("authorization", &auth)],
    );
    assert_eq!(status, 200, "the last good map still serves");
    let (_, metrics) = http(sidecar.address, "GET", "/metrics", "", &[]);
    assert!(
        metrics.contains("cedar_gateway_reload_failing 1"),
        "{metrics}"
    );
    assert!(metrics.contains("cedar_gateway_reloads_total{result=\"failed\"} 1"));
}

/// The route map reloads with the policies, as one: while the route map
/// does not fit, a policy edit does not take effect either (the last good
/// pack and map serve together), and once it fits both take effect.
#[test]
fn policies_and_the_route_map_reload_as_one() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    for folder in ["policies", "schema"] {
        std::fs::create_dir(dir.path().join(folder)).unwrap();
        for entry in std::fs::read_dir(repo().join(folder)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                dir.path().join(folder).join(entry.file_name()),
            )
            .unwrap();
        }
    }
    let routes = dir.path().join("routes.toml");
    let good_routes = std::fs::read_to_string(repo().join("gateway/routes.toml")).unwrap();
    std::fs::write(&routes, &good_routes).unwrap();
    let mut args = gateway_flags(&keys);
    args[1] = routes.display().to_string();
    let at = |name: &str| dir.path().join(name).display().to_string();
    args.extend([
        "--policies".into(),
        at("policies"),
        "--schema".into(),
        at("schema"),
        "--watch".into(),
        "true".into(),
        "--watch-debounce-ms".into(),
        "50".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sidecar = Sidecar::start(&args, &[]);
    let path = "/ext_authz/orgs/acme/environments/acme-prod";
    let auth = format!("Bearer {}", keys.es.sign(&claims("paula")));
    let paula = || {
        http(
            sidecar.address,
            "GET",
            path,
            "",
            &[("authorization", &auth)],
        )
        .0
    };
    let reload_error_at = || {
        let (_, status) = sidecar.send("GET", "/v1/status", "", &[]);
        status["last_reload"]["last_error_at"]
            .as_str()
            .map(String::from)
    };
    let wait = |what: &str, mut done: Box<dyn FnMut() -> bool + '_>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(paula(), 200);

    // A route map that names an action the policies do not have.
    std::fs::write(
        &routes,
        format!("{good_routes}\n[[route]]\nid = \"x\"\npath = \"/x/{{o}}\"\naction = \"Nope\"\nresource = \"Org::{{o}}\"\n"),
    )
    .unwrap();
    wait("the map refused", Box::new(|| reload_error_at().is_some()));
    let first_refusal = reload_error_at();
    let (_, status) = sidecar.send("GET", "/v1/status", "", &[]);
    let error = status["last_reload"]["last_error"].as_str().unwrap();
    assert!(error.contains("unknown action `Nope`"), "{error}");
    assert!(error.contains("nothing was reloaded"), "{error}");

    // A policy edit while the map does not fit: refused with it.
    std::fs::write(
        dir.path().join("policies/zz-deny-paula.cedar"),
        "@id(\"deny-paula\")\nforbid (principal == User::\"paula\", action == Action::\"UseEnvironment\", resource);\n",
    )
    .unwrap();
    wait(
        "the policy edit refused",
        Box::new(|| reload_error_at() != first_refusal),
    );
    assert_eq!(paula(), 200, "the forbid must not apply without its map");

    // The map fixed: the forbid and the map take effect together.
    std::fs::write(&routes, &good_routes).unwrap();
    wait("the forbid applied", Box::new(|| paula() == 403));
    let (_, status) = sidecar.send("GET", "/v1/status", "", &[]);
    assert!(status["last_reload"]["last_error"].is_null(), "{status}");
    assert!(status["gateway"]["last_error"].is_null(), "{status}");
    assert_eq!(
        status["gateway"]["checked_against"], status["policies"]["version"],
        "{status}"
    );
}

/// A key removed from the JWKS file stops working even while the policies
/// on disk do not load (keys do not wait for policies), and a route edit
/// then applies to the policies in force.
#[test]
fn a_revoked_key_does_not_wait_for_valid_policies() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("policies").join(entry.file_name()),
        )
        .unwrap();
    }
    let routes = dir.path().join("routes.toml");
    let good_routes = std::fs::read_to_string(repo().join("gateway/routes.toml")).unwrap();
    std::fs::write(&routes, &good_routes).unwrap();
    let mut args = gateway_flags(&keys);
    args[1] = routes.display().to_string();
    args.extend([
        "--policies".into(),
        dir.path().join("policies").display().to_string(),
        "--watch".into(),
        "true".into(),
        "--watch-debounce-ms".into(),
        "50".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sidecar = Sidecar::start(&args, &[]);
    let get = |path: &str, token: &str| {
        let auth = format!("Bearer {token}");
        http(
            sidecar.address,
            "GET",
            path,
            "",
            &[("authorization", &auth)],
        )
        .0
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let env = "/ext_authz/orgs/acme/environments/acme-prod";
    let es_token = keys.es.sign(&claims("paula"));
    let ed_token = keys.ed.sign(&claims("paula"));
    assert_eq!(get(env, &es_token), 200);

    // Someone is half-way through a policy edit: the policies do not load.
    std::fs::write(
        dir.path().join("policies/broken.cedar"),
        "permit (principal,",
    )
    .unwrap();
    wait("the broken policies refused", &|| {
        let (_, status) = sidecar.send("GET", "/v1/status", "", &[]);
        status["last_reload"]["last_error"].is_string()
    });

    // The ES256 key is revoked: its tokens fail at once, the other key's pass.
    write_jwks(&keys.path("jwks.json"), &[&keys.ed]);
    wait("the revoked key refused", &|| get(env, &es_token) == 401);
    assert_eq!(get(env, &ed_token), 200);

    // A route edit (the environment route made public) applies to the
    // policies in force while the new ones still do not load.
    let public = good_routes.replace(
        "id = \"use-environment\"\nmethods = [\"GET\"]\npath = \"/orgs/{org}/environments/{env}\"\naction = \"UseEnvironment\"\nresource = \"Environment::{env}\"",
        "id = \"use-environment\"\nmethods = [\"GET\"]\npath = \"/orgs/{org}/environments/{env}\"\npublic = true",
    );
    assert_ne!(public, good_routes);
    std::fs::write(&routes, public).unwrap();
    wait("the route edit applied", &|| {
        http(sidecar.address, "GET", env, "", &[]).0 == 200
    });
}

// ---- real gateways ----------------------------------------------------------

/// A tiny upstream: answers 200 to everything and keeps every request head.
pub struct Upstream {
    pub address: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve_upstream(stream, &log));
            }
        });
        Self { address, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Answers each request on a (keep-alive) connection with a small body.
fn serve_upstream(mut stream: TcpStream, log: &Mutex<Vec<String>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = find(&buffer, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buffer.len() < end + 4 + length {
                break;
            }
            buffer.drain(..end + 4 + length);
            log.lock().unwrap().push(head);
            // One write: a head and a body in two would meet Nagle's
            // algorithm and a delayed ACK (40 ms a response).
            let body = "{\"upstream\":true}";
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A gateway process, killed on drop.
pub struct Proxy {
    child: Child,
    pub address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require(binary: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(found, "`{binary}` is not installed: `bash scripts/test.sh` installs it (apt-get install {package})");
}

/// The shipped config with the documented ports replaced by test ports.
fn adapted(file: &str, ports: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(repo().join("deploy/gateways").join(file)).unwrap();
    for (from, to) in ports {
        assert!(text.contains(from), "{file} no longer holds `{from}`");
        text = text.replace(from, to);
    }
    text
}

fn wait_for(address: SocketAddr, child: &mut Child, what: &str, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(address).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            panic!("{what} exited with {status}: {log}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {address}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// nginx with `deploy/gateways/nginx.conf`, in front of `upstream`,
/// asking the sidecar at `sidecar`.
pub fn nginx(sidecar: SocketAddr, upstream: SocketAddr) -> Proxy {
    nginx_with(sidecar, upstream, true)
}

/// [`nginx`]; without `auth`, the `auth_request` lines are left out (nginx
/// straight to the upstream, for the latency baseline).
pub fn nginx_with(sidecar: SocketAddr, upstream: SocketAddr, auth: bool) -> Proxy {
    require("nginx", "nginx-light");
    let address = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let config = adapted(
        "nginx.conf",
        &[
            ("127.0.0.1:8000", address.to_string()),
            ("127.0.0.1:8080", upstream.to_string()),
            ("127.0.0.1:8180", sidecar.to_string()),
        ],
    );
    let config: String = if auth {
        config
    } else {
        config
            .lines()
            .filter(|line| {
                !line.trim_start().starts_with("auth_request") && !line.contains("$cedar_")
            })
            .map(|line| format!("{line}\n"))
            .collect()
    };
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config).unwrap();
    let globals = format!(
        "daemon off; master_process off; pid {}; error_log {} warn;",
        dir.path().join("nginx.pid").display(),
        dir.path().join("error.log").display()
    );
    let mut child = Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .args(["-g", &globals])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(address, &mut child, "nginx", dir.path());
    Proxy {
        child,
        address,
        _dir: dir,
    }
}

/// Caddy with `deploy/gateways/Caddyfile`.
fn caddy(sidecar: SocketAddr, upstream: SocketAddr) -> Proxy {
    require("caddy", "caddy");
    let address = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = adapted(
        "Caddyfile",
        &[
            (":8000", format!("http://{address}")),
            ("127.0.0.1:8080", upstream.to_string()),
            ("127.0.0.1:8180", sidecar.to_string()),
        ],
    );
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, config).unwrap();
    let log = std::fs::File::create(dir.path().join("error.log")).unwrap();
    let mut child = Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for(address, &mut child, "caddy", dir.path());
    Proxy {
        child,
        address,
        _dir: dir,
    }
}

/// The same cases through any gateway: allowed requests reach the
/// upstream with the identity headers (a client's own replaced), denied
/// ones get 403 and never reach it, no token is 401, unmapped is 403.
/// `bad_path` is what an ambiguous path gets: 403 from nginx (which takes
/// only 2xx, 401 and 403 from auth_request), 400 through forward-auth.
fn gateway_cases(proxy: &Proxy, upstream: &Upstream, bad_path: u16) {
    let paula = format!("Bearer {}", hs256(&claims("paula")));
    let pete = format!("Bearer {}", hs256(&claims("pete")));
    let before = upstream.requests().len();
    let (status, body) = http(
        proxy.address,
        "GET",
        "/orgs/acme/environments/acme-prod?view=full",
        "",
        &[
            ("authorization", &paula),
            ("x-cedar-principal", "User::\"olivia\""),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "{\"upstream\":true}");
    let seen = upstream.requests();
    assert_eq!(seen.len(), before + 1);
    let head = seen.last().unwrap();
    assert!(
        head.starts_with("get /orgs/acme/environments/acme-prod?view=full "),
        "{head}"
    );
    assert!(
        head.contains("x-cedar-principal: user::\"paula\""),
        "{head}"
    );
    assert!(
        !head.contains("olivia"),
        "a client's own identity header reached the upstream: {head}"
    );
    assert!(head.contains("x-cedar-decision-id: "), "{head}");

    for (auth, method, path, status) in [
        (Some(&pete), "GET", "/orgs/acme/environments/acme-prod", 403),
        (Some(&paula), "DELETE", "/orgs/acme", 403),
        (None, "GET", "/orgs/acme/environments/acme-prod", 401),
        (Some(&paula), "GET", "/internal/admin", 403),
        (Some(&paula), "GET", "/orgs/acme/../globex", bad_path),
    ] {
        let before = upstream.requests().len();
        let headers: Vec<(&str, &str)> = auth
            .map(|a| ("authorization", a.as_str()))
            .into_iter()
            .collect();
        let (got, body) = http(proxy.address, method, path, "", &headers);
        assert_eq!(got, status, "{method} {path}: {body}");
        assert_eq!(
            upstream.requests().len(),
            before,
            "{method} {path} reached the upstream"
        );
    }
    // A public route passes without a token, without an identity.
    let (status, _) = http(
        proxy.address,
        "GET",
        "/healthz",
        "",
        &[("x-cedar-principal", "User::\"ana\"")],
    );
    assert_eq!(status, 200);
    let head = upstream.requests().last().unwrap().clone();
    assert!(head.starts_with("get /healthz"), "{head}");
    assert!(!head.contains("ana") && !head.contains("{http."), "{head}");
}

#[test]
fn nginx_auth_request_in_front_of_an_upstream() {
    let keys = Keys::new();
    let sidecar = start(&keys, &[]);
    let upstream = Upstream::start();
    let proxy = nginx(sidecar.address, upstream.address);
    gateway_cases(&proxy, &upstream, 403);
}

#[test]
fn caddy_forward_auth_in_front_of_an_upstream() {
    let keys = Keys::new();
    let sidecar = start(&keys, &[]);
    let upstream = Upstream::start();
    let proxy = caddy(sidecar.address, upstream.address);
    gateway_cases(&proxy, &upstream, 400);
}
