//! Redis Sentinel: the replica finds the master through a Sentinel, and
//! follows it when Sentinel promotes a replica after the master dies.

use std::time::{Duration, Instant};

use cedar_sidecar::entities::StoredEntity;
use cedar_sidecar::sync::{RedisWriter, Topology};

use super::harness::*;
use super::pki::Pki;
use super::server::{SentinelSetup, SENTINEL_MASTER};

const ADMINS: (&str, &str) = ("PlatformAdmins", "thunk");

fn via_sentinel() -> Topology {
    Topology::Sentinel {
        master: SENTINEL_MASTER.to_string(),
    }
}

fn sentinel_options() -> SidecarOptions {
    SidecarOptions {
        topology: via_sentinel(),
        ..SidecarOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_is_found_through_sentinel() {
    let setup = SentinelSetup::start(false);
    // Only the Sentinel's URL is given: the master's address comes from it.
    let urls = vec![setup.sentinel_url.clone()];
    let writer = writer(&urls, via_sentinel(), 1000);
    put(&writer, &platform()).await;
    let replica = sidecar(&urls, sentinel_options());
    eventually(10, "snapshot via sentinel", || replica.revision() == 1).await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let (_, body) = replica.may_create_org("ana", Some(rev)).await;
    assert_eq!(body["decision"], "Allow", "{body}");
    let rev = delete_users(&writer, &["ana"]).await;
    let (_, body) = replica.may_create_org("ana", Some(rev)).await;
    assert_eq!(body["decision"], "Deny", "{body}");
    // The data really is on the master Sentinel names.
    assert!(setup
        .master
        .command(&["GET", "cedar:{p0}:rev"])
        .contains("\r\n3\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_and_master_over_mutual_tls() {
    let pki = Pki::generate();
    let setup = SentinelSetup::start_tls(&pki);
    let urls = vec![setup.sentinel_url.clone()];
    // The client certificate is needed twice: by the Sentinel and by the
    // master it names.
    let writer = tls_writer(&urls, via_sentinel(), &pki.mutual());
    put(&writer, &platform()).await;
    let replica = sidecar(
        &urls,
        SidecarOptions {
            tls: pki.mutual(),
            ..sentinel_options()
        },
    );
    eventually(10, "snapshot via sentinel over TLS", || {
        replica.revision() == 1
    })
    .await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let (_, body) = replica.may_create_org("ana", Some(rev)).await;
    assert_eq!(body["decision"], "Allow", "{body}");
    assert!(setup
        .master
        .command(&["GET", "cedar:{p0}:rev"])
        .contains("\r\n2\r\n"));

    // Without the client certificate the Sentinel refuses: never ready.
    let anonymous = sidecar(
        &urls,
        SidecarOptions {
            tls: pki.ca_only(),
            ..sentinel_options()
        },
    );
    refused(&anonymous).await;
}

/// Writes, retrying while the master is unreachable (a failover in progress).
async fn put_until_accepted(writer: &RedisWriter, entities: &[StoredEntity]) -> u64 {
    let writes: Vec<_> = entities
        .iter()
        .map(|e| cedar_sidecar::sync::EntityWrite::put(e).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match writer.write(&writes, None).await {
            Ok(rev) => return rev,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "no master took the write: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_the_replica_follows_the_new_master() {
    let mut setup = SentinelSetup::start(true);
    let urls = vec![setup.sentinel_url.clone()];
    let writer = writer(&urls, via_sentinel(), 1000);
    put(&writer, &platform()).await;
    let rev = put(&writer, &[user("ana", &[ADMINS])]).await;
    let replica = sidecar(&urls, sentinel_options());
    eventually(10, "snapshot via sentinel", || replica.revision() == rev).await;
    assert_eq!(replica.decision("ana").await, "Allow");
    // Both writes are on the Redis replica before its master dies (`WAIT`
    // would not do: it only waits for writes made on its own connection).
    let replicated = format!("\r\n{rev}\r\n");
    eventually(10, "writes replicated", || {
        setup
            .replica
            .as_ref()
            .unwrap()
            .command(&["GET", "cedar:{p0}:rev"])
            .contains(&replicated)
    })
    .await;

    let old_port = setup.master.port().to_string();
    setup.master.kill();
    let new_port = setup.replica.as_ref().unwrap().port().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while setup.master_port() != new_port {
        assert!(Instant::now() < deadline, "sentinel did not fail over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(old_port, new_port);

    // Writes through Sentinel now land on the promoted replica, and the
    // sidecar converges on them.
    let rev = put_until_accepted(&writer, &[user("bob", &[ADMINS]), user("ana", &[])]).await;
    assert_eq!(rev, 3, "the promoted replica had every write");
    eventually(20, "caught up after the failover", || {
        replica.revision() == rev
    })
    .await;
    assert_eq!(replica.decision("bob").await, "Allow");
    assert_eq!(
        replica.decision("ana").await,
        "Deny",
        "the revocation arrived"
    );
    assert_eq!(replica.contents(), redis_contents(&writer).await);
    assert_eq!(replica.reloads(), 0, "same history: resumed, no reload");
}
