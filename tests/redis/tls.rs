//! `rediss://` against a TLS redis-server whose certificate comes from a
//! private CA made at test time: trusting that CA, mutual TLS, a wrong CA,
//! and the settings as the command line takes them.

use std::process::Command;

use axum::http::StatusCode;
use cedar_sidecar::sync::{TlsFiles, Topology};

use super::harness::*;
use super::pki::Pki;
use super::server::{RedisCluster, RedisServer};

const ADMINS: (&str, &str) = ("PlatformAdmins", "thunk");

fn tls_options(tls: TlsFiles) -> SidecarOptions {
    SidecarOptions {
        tls,
        ..SidecarOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_trusts_a_private_ca_and_a_wrong_ca_is_refused() {
    let pki = Pki::generate();
    let redis = RedisServer::start_tls(&pki, false);
    let urls = vec![redis.tls_url()];
    // The writer talks TLS too (same target code), through the CA file.
    let writer = tls_writer(&urls, Topology::Single, &pki.ca_only());
    put(&writer, &platform()).await;
    let replica = sidecar(&urls, tls_options(pki.ca_only()));
    eventually(10, "first snapshot over TLS", || replica.revision() == 1).await;
    assert_eq!(replica.decision("ana").await, "Deny");
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let (status, body) = replica.may_create_org("ana", Some(rev)).await;
    assert_eq!(
        (status, body["decision"].as_str()),
        (StatusCode::OK, Some("Allow")),
        "{body}"
    );
    // The plain unix socket sees the same data: the writes went to this server.
    assert!(redis
        .command(&["GET", "cedar:{p0}:rev"])
        .contains("\r\n2\r\n"));

    // A CA that did not sign the server's certificate: never connects.
    let wrong = sidecar(&urls, tls_options(pki.wrong_ca()));
    let error = refused(&wrong).await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    // Nor do the system's roots, which know nothing of the test CA.
    let system = sidecar(&urls, SidecarOptions::default());
    let error = refused(&system).await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::generate();
    let redis = RedisServer::start_tls(&pki, true);
    let urls = vec![redis.tls_url()];
    let writer = tls_writer(&urls, Topology::Single, &pki.mutual());
    put(&writer, &platform()).await;

    let anonymous = sidecar(&urls, tls_options(pki.ca_only()));
    let error = refused(&anonymous).await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");

    let replica = sidecar(&urls, tls_options(pki.mutual()));
    eventually(10, "snapshot with a client certificate", || {
        replica.revision() == 1
    })
    .await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let (_, body) = replica.may_create_org("ana", Some(rev)).await;
    assert_eq!(body["decision"], "Allow", "{body}");
    let rev = delete_users(&writer, &["ana"]).await;
    let (_, body) = replica.may_create_org("ana", Some(rev)).await;
    assert_eq!(body["decision"], "Deny", "{body}");
    // Still refused: the missing certificate is not a passing glitch.
    assert_eq!(anonymous.revision(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_with_client_certificates_serves_the_flow() {
    let pki = Pki::generate();
    let cluster = RedisCluster::start_tls(&pki);
    let urls = cluster.urls();
    assert!(urls.iter().all(|u| u.starts_with("rediss://")), "{urls:?}");
    let writer = tls_writer(&urls, Topology::Cluster, &pki.mutual());
    put(&writer, &platform()).await;
    let replica = sidecar(
        &urls,
        SidecarOptions {
            topology: Topology::Cluster,
            tls: pki.mutual(),
            ..SidecarOptions::default()
        },
    );
    eventually(20, "snapshot from the TLS cluster", || {
        replica.revision() == 1
    })
    .await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let (_, body) = replica.may_create_org("ana", Some(rev)).await;
    assert_eq!(body["decision"], "Allow", "{body}");

    let anonymous = sidecar(
        &urls,
        SidecarOptions {
            topology: Topology::Cluster,
            tls: pki.ca_only(),
            ..SidecarOptions::default()
        },
    );
    let error = refused(&anonymous).await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

fn sidecar_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cedar-sidecar"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

fn output(command: &mut Command) -> (i32, String, String) {
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_takes_tls_flags_and_environment() {
    let pki = Pki::generate();
    let redis = RedisServer::start_tls(&pki, true);
    let tls_url = redis.tls_url();
    let path = |name: &str| pki.path(name).display().to_string();

    // Flags: import the demo data over mutual TLS.
    let (code, out, err) = output(sidecar_command().args([
        "entities",
        "--redis-url",
        &tls_url,
        "--redis-tls-ca",
        &path("ca.pem"),
        "--redis-tls-cert",
        &path("client.pem"),
        "--redis-tls-key",
        &path("client.key"),
        "import",
        "demo/entities.json",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"revision\":1"), "{out}");

    // Environment variables: read it back.
    let (code, out, err) = output(
        sidecar_command()
            .args(["entities", "get", "PlatformAdmins::\"thunk\""])
            .env("CEDAR_SIDECAR_REDIS_URL", &tls_url)
            .env("CEDAR_SIDECAR_REDIS_TLS_CA", path("ca.pem"))
            .env("CEDAR_SIDECAR_REDIS_TLS_CERT", path("client.pem"))
            .env("CEDAR_SIDECAR_REDIS_TLS_KEY", path("client.key")),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("PlatformAdmins"), "{out}");

    // Without the client certificate the server refuses: exit 2 (unavailable).
    let (code, _, err) = output(sidecar_command().args([
        "entities",
        "--redis-url",
        &tls_url,
        "--redis-tls-ca",
        &path("ca.pem"),
        "get",
        "PlatformAdmins::\"thunk\"",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn serve_shows_tls_files_and_names_a_bad_one() {
    let pki = Pki::generate();
    let path = |name: &str| pki.path(name).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "[redis]\nurl = [\"rediss://127.0.0.1:6380\"]\ntls_ca = \"{}\"\ntls_cert = \"/from/the/file.pem\"\n",
            path("other-ca.pem")
        ),
    )
    .unwrap();

    // File < environment < flag, and the paths are shown.
    let (code, out, err) = output(
        sidecar_command()
            .args(["serve", "--print-config", "--config"])
            .arg(&config)
            .args(["--redis-tls-ca", &path("ca.pem")])
            .env("CEDAR_SIDECAR_REDIS_TLS_CA", path("other-ca.pem"))
            .env("CEDAR_SIDECAR_REDIS_TLS_CERT", path("client.pem"))
            .env("CEDAR_SIDECAR_REDIS_TLS_KEY", path("client.key")),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("tls_ca = \"{}\"", path("ca.pem"))),
        "{out}"
    );
    assert!(
        out.contains(&format!("tls_cert = \"{}\"", path("client.pem"))),
        "{out}"
    );
    assert!(
        out.contains(&format!("tls_key = \"{}\"", path("client.key"))),
        "{out}"
    );
    assert!(!out.contains("PRIVATE KEY"), "{out}");

    // Each broken setting stops start-up (exit 2) with a message naming it.
    let missing = dir.path().join("missing.pem").display().to_string();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let not_pem = not_pem.display().to_string();
    let (client_pem, server_key) = (path("client.pem"), path("server.key"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--redis-tls-ca", &missing], &missing),
        (vec!["--redis-tls-ca", &not_pem], &not_pem),
        (vec!["--redis-tls-cert", &client_pem], "tls_key"),
        (
            vec![
                "--redis-tls-cert",
                &client_pem,
                "--redis-tls-key",
                &server_key,
            ],
            "do not fit together",
        ),
    ];
    for (args, expected) in cases {
        let (code, _, err) = output(
            sidecar_command()
                .args(["serve", "--redis-url", "rediss://127.0.0.1:6380"])
                .args(&args),
        );
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    // TLS files with a plain URL would do nothing: refused, not ignored.
    let (code, _, err) = output(sidecar_command().args([
        "serve",
        "--redis-url",
        "redis://127.0.0.1:6379",
        "--redis-tls-ca",
        &path("ca.pem"),
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("rediss://"), "{err}");
}
