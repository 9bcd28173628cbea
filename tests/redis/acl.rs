//! Redis ACL users: credentials in the URL reach Redis over TCP and over a
//! unix socket, and a wrong password never connects (fail closed).

use cedar_sidecar::sync::Topology;

use super::harness::*;
use super::server::{free_port, Persistence, RedisServer};

const ADMINS: (&str, &str) = ("PlatformAdmins", "thunk");

/// A server where only the ACL user `sidecar` (password `s3cret`) may touch
/// the `cedar:` keys: the default user (no password, used by the harness to
/// see that the server is up) may not, so a client that dropped the URL's
/// credentials would fail.
fn server_with_acl_user(socket: &str) -> RedisServer {
    RedisServer::start_with(
        Persistence::None,
        Some(free_port()),
        &[
            "--unixsocket",
            socket,
            "--user",
            "default",
            "on",
            "nopass",
            "resetkeys",
            "~other:*",
            "+@all",
            "--user",
            "sidecar",
            "on",
            ">s3cret",
            "~cedar:*",
            "+@all",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_credentials_in_the_url_are_used_and_a_wrong_password_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("acl.sock").display().to_string();
    let redis = server_with_acl_user(&socket);
    let port = redis.port();
    // Without the credentials, the keys are out of reach.
    assert!(redis
        .command(&["GET", "cedar:{p0}:rev"])
        .starts_with("-NOPERM"));
    let tcp = vec![format!("redis://sidecar:s3cret@127.0.0.1:{port}")];
    let writer = writer(&tcp, Topology::Single, 1000);
    put(&writer, &platform()).await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;

    let replica = sidecar(&tcp, SidecarOptions::default());
    eventually(10, "snapshot over TCP", || replica.revision() == rev).await;
    assert_eq!(replica.decision("ana").await, "Allow");

    let over_socket = sidecar(
        &[format!("redis+unix://{socket}?user=sidecar&pass=s3cret")],
        SidecarOptions::default(),
    );
    eventually(10, "snapshot over the socket", || {
        over_socket.revision() == rev
    })
    .await;
    assert_eq!(over_socket.decision("ana").await, "Allow");

    let wrong = sidecar(
        &[format!("redis://sidecar:wrong@127.0.0.1:{port}")],
        SidecarOptions::default(),
    );
    let error = refused(&wrong).await;
    assert!(
        error.to_lowercase().contains("auth") || error.to_lowercase().contains("password"),
        "{error}"
    );
}
