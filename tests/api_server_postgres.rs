//! End to end on PostgreSQL: two example-server processes on one database (as two instances
//! behind a load balancer), keys made and revoked with the `tokengate` CLI, and the database
//! stopped and restarted under them.
//!
//! The server runs on a PostgreSQL cluster of its own in a temporary directory (see
//! `runtime/tests/pg_support`); without PostgreSQL installed the test prints `SKIPPED` and
//! returns, unless `TOKENGATE_REQUIRE_POSTGRES=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

#[path = "../runtime/tests/pg_support/mod.rs"]
mod pg_support;
mod process;
use process::{Server, cli, create_key};

/// Far longer than the test: what is refused in time was evicted by a notice, not the TTL.
const KEY_CACHE_TTL: &str = "600";
/// The promised revocation delay across instances ("about a second"), with slack for a
/// loaded CI machine.
const PROPAGATION: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_keys_and_revocations_and_survive_a_database_outage() {
    let Some(cluster) = pg_support::Cluster::start() else {
        return;
    };
    let database = pg_support::create_database(&cluster.url()).await;
    // Each instance in a directory of its own (each keeps its development signing key there).
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Server::start(
        dir_a.path(),
        &["--database", &database, "--key-cache-ttl", KEY_CACHE_TTL],
    );
    let mut b = Server::start(
        dir_b.path(),
        &["--database", &database, "--key-cache-ttl", KEY_CACHE_TTL],
    );

    // A key created through the CLI is accepted by both instances.
    let (id, secret) = create_key(&database, "user_123", &[]);
    for s in [&a, &b] {
        let (status, body) = s.get("/api/example", Some(&secret)).await;
        assert_eq!((status, body["userId"].as_str()), (200, Some("user_123")));
    }

    // Revoked through the CLI, it is refused by both within the promised time (the cache TTL
    // is 10 minutes: only the notice can do this).
    let (code, out, err) = cli(
        &["keys", "revoke", &id, "--database", &database, "--reason", "leaked"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("within about a second"), "{out}");
    let revoked_at = Instant::now();
    for s in [&a, &b] {
        loop {
            let (status, body) = s.get("/api/example", Some(&secret)).await;
            if status == 401 {
                assert_eq!(body["reason"], "token-revoked");
                break;
            }
            assert_eq!(status, 200);
            assert!(
                revoked_at.elapsed() < PROPAGATION,
                "{} still accepted the revoked key after {PROPAGATION:?}",
                s.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "both instances refused the revoked key after {:?}",
        revoked_at.elapsed()
    );

    // PostgreSQL stops: keys in the cache keep working until their TTL, others get 503.
    let (_, cached) = create_key(&database, "user_cached", &[]);
    let (_, uncached) = create_key(&database, "user_uncached", &[]);
    for s in [&a, &b] {
        assert_eq!(s.status_with(&cached).await, 200);
    }
    cluster.stop();
    for s in [&a, &b] {
        assert_eq!(s.status_with(&cached).await, 200);
        let (status, _) = s.get("/api/example", Some(&uncached)).await;
        assert_eq!(status, 503);
        assert_eq!(s.get("/health", None).await.0, 200);
    }
    assert!(
        a.still_running() && b.still_running(),
        "an instance died with the database"
    );

    // Back up: both recover without a restart.
    cluster.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in [&a, &b] {
        loop {
            match s.status_with(&uncached).await {
                200 => break,
                503 if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                other => panic!("{} answered {other} after the database came back", s.base),
            }
        }
    }
    assert!(a.still_running() && b.still_running());
}
