//! The figures of BENCHMARKS.md's gateway section (ignored: run them on a
//! release build, `cargo test --release --test it gateway_figures --
//! --ignored --nocapture`):
//! - a gateway check (JWT verified + route matched + decision) against a
//!   native `POST /v1/is_authorized` decision, the same request, through
//!   the same router in the same run: p50 and decisions/s per key type;
//! - nginx → sidecar → upstream against nginx → upstream: the added p50.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use cedar_sidecar::gateway::Gateway;
use cedar_sidecar::http::{router, AppState};
use tower::ServiceExt;

use crate::gateway::{claims, hs256, Keys};
use crate::gateway_live::{nginx, nginx_with, Upstream};
use crate::loopback::Sidecar;
use crate::support::{repo, shipped, shipped_state};

const ROUNDS: usize = 20_000;

/// Signs claims into a token.
type Signer<'a> = Box<dyn Fn(&serde_json::Value) -> String + 'a>;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

/// p50 and decisions/s of `make()` requests through `app`, one at a time.
async fn measure(
    app: &axum::Router,
    make: impl Fn() -> Request<Body>,
    expect: u16,
) -> (Duration, f64) {
    for _ in 0..2000 {
        let response = app.clone().oneshot(make()).await.unwrap();
        assert_eq!(response.status().as_u16(), expect);
    }
    let mut samples = Vec::with_capacity(ROUNDS);
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let request = make();
        let at = Instant::now();
        let response = app.clone().oneshot(request).await.unwrap();
        samples.push(at.elapsed());
        drop(response);
    }
    let rate = ROUNDS as f64 / started.elapsed().as_secs_f64();
    (percentile(&mut samples, 0.5), rate)
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "figures for BENCHMARKS.md: run on a release build"]
async fn gateway_figures_check_vs_native() {
    let keys = Keys::new();
    let config = keys
        .args(&repo().join("gateway/routes.toml"))
        .config()
        .unwrap()
        .unwrap();
    let gateway = Gateway::start(config, &shipped().pack).unwrap();
    let mut state = AppState::new(shipped_state());
    state.gateway = Some(Arc::new(gateway));
    let app = router(state);
    let native_body = r#"{"principal":{"type":"User","id":"paula"},"action":{"type":"Action","id":"UseEnvironment"},"resource":{"type":"Environment","id":"acme-prod"}}"#;
    let native = || {
        Request::builder()
            .method("POST")
            .uri("/v1/is_authorized")
            .header("content-type", "application/json")
            .body(Body::from(native_body))
            .unwrap()
    };
    let (native_p50, native_rate) = measure(&app, native, 200).await;
    println!(
        "| native `POST /v1/is_authorized` | {:.1} µs | {:.0} | 1.00× |",
        native_p50.as_secs_f64() * 1e6,
        native_rate
    );
    let paula = claims("paula");
    let tokens = [
        ("HS256", hs256(&paula)),
        ("ES256", keys.es.sign(&paula)),
        ("EdDSA", keys.ed.sign(&paula)),
        ("RS256", keys.rsa.sign(&paula)),
    ];
    // Every request with a token not seen before: the signature checked
    // each time (the verified-token cache never hits).
    let fresh = |sign: &dyn Fn(&serde_json::Value) -> String, n: usize| -> Vec<String> {
        (0..n)
            .map(|i| {
                let mut c = claims("paula");
                c["jti"] = serde_json::json!(i);
                sign(&c)
            })
            .collect()
    };
    let signers: [(&str, Signer, usize); 4] = [
        ("HS256", Box::new(hs256), 20_000),
        ("ES256", Box::new(|c| keys.es.sign(c)), 5_000),
        ("EdDSA", Box::new(|c| keys.ed.sign(c)), 5_000),
        ("RS256", Box::new(|c| keys.rsa.sign(c)), 1_000),
    ];
    for (alg, sign, n) in &signers {
        let tokens = fresh(sign.as_ref(), *n);
        let mut samples = Vec::with_capacity(*n);
        let started = Instant::now();
        for token in &tokens {
            let request = Request::builder()
                .uri("/ext_authz/orgs/acme/environments/acme-prod")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let at = Instant::now();
            let response = app.clone().oneshot(request).await.unwrap();
            samples.push(at.elapsed());
            assert_eq!(response.status(), 200);
        }
        let rate = *n as f64 / started.elapsed().as_secs_f64();
        let p50 = percentile(&mut samples, 0.5);
        println!(
            "| gateway check, {alg}, every token new (signature verified) | {:.1} µs | {:.0} | {:.2}× |",
            p50.as_secs_f64() * 1e6,
            rate,
            p50.as_secs_f64() / native_p50.as_secs_f64()
        );
    }
    for (alg, token) in tokens {
        let auth = format!("Bearer {token}");
        let gateway = || {
            Request::builder()
                .uri("/ext_authz/orgs/acme/environments/acme-prod")
                .header("authorization", auth.as_str())
                .body(Body::empty())
                .unwrap()
        };
        let (p50, rate) = measure(&app, gateway, 200).await;
        println!(
            "| gateway check, {alg}, the same token again (verified once) | {:.1} µs | {:.0} | {:.2}× |",
            p50.as_secs_f64() * 1e6,
            rate,
            p50.as_secs_f64() / native_p50.as_secs_f64()
        );
    }
}

#[test]
#[ignore = "figures for BENCHMARKS.md: run on a release build"]
fn gateway_figures_nginx_added_latency() {
    let keys = Keys::new();
    let path = |name: &str| keys.path(name).display().to_string();
    let routes = repo().join("gateway/routes.toml").display().to_string();
    let secret = path("secret");
    let sidecar = Sidecar::start(
        &[
            "--routes",
            &routes,
            "--jwt-hs256-secret-file",
            &secret,
            "--jwt-issuer",
            crate::gateway::ISSUER,
            "--jwt-audience",
            crate::gateway::AUDIENCE,
        ],
        &[],
    );
    let upstream = Upstream::start();
    // The shipped nginx.conf, and the same without its auth_request lines.
    let with_sidecar = nginx(sidecar.address, upstream.address);
    let without = nginx_with(sidecar.address, upstream.address, false);
    let token = format!("Bearer {}", hs256(&claims("paula")));
    let run = |address| {
        let connect = || {
            let stream = std::net::TcpStream::connect(address).unwrap();
            stream.set_nodelay(true).unwrap();
            stream
        };
        let mut stream = connect();
        let request = format!(
            "GET /orgs/acme/environments/acme-prod HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n"
        );
        let mut samples = Vec::new();
        for round in 0..5000 {
            // nginx closes a connection after 1000 requests (keepalive_requests).
            if round % 500 == 0 {
                stream = connect();
            }
            let at = Instant::now();
            std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
            read_response(&mut stream);
            if round >= 500 {
                samples.push(at.elapsed());
            }
        }
        percentile(&mut samples, 0.5)
    };
    let direct = run(without.address);
    let through = run(with_sidecar.address);
    println!(
        "| nginx → upstream | {:.0} µs |",
        direct.as_secs_f64() * 1e6
    );
    println!(
        "| nginx → sidecar → upstream | {:.0} µs | added p50 {:.0} µs |",
        through.as_secs_f64() * 1e6,
        (through.as_secs_f64() - direct.as_secs_f64()) * 1e6
    );
}

/// Reads one response with a content-length body.
fn read_response(stream: &mut std::net::TcpStream) {
    use std::io::Read;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer);
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return;
            }
        }
    }
}
