//! End to end on PostgreSQL: two example-server processes on one database (as two instances
//! behind a load balancer), keys made and revoked with the `tokengate` CLI, and the database
//! stopped and restarted under them.
//!
//! The server runs on a PostgreSQL cluster of its own in a temporary directory (see
//! `runtime/tests/pg_support`); without PostgreSQL installed the test prints `SKIPPED` and
//! returns, unless `TOKENGATE_REQUIRE_POSTGRES=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../runtime/tests/pg_support/mod.rs"]
mod pg_support;

/// Far longer than the test: what is refused in time was evicted by a notice, not the TTL.
const KEY_CACHE_TTL: &str = "600";
/// The promised revocation delay across instances ("about a second"), with slack for a
/// loaded CI machine.
const PROPAGATION: Duration = Duration::from_secs(2);

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn bin(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

/// A running example server; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path, database: &str) -> Server {
        let mut child = Command::new(bin(target_dir().join("examples").join("api_server")))
            .args(["--addr", "127.0.0.1:0", "--database", database])
            .args(["--key-cache-ttl", KEY_CACHE_TTL])
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("CLERK_SECRET_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line == "ready" => break,
                Ok(line) => lines.push(line),
                Err(_) => panic!("the server did not get ready; it printed:\n{}", lines.join("\n")),
            }
        }
        let base = lines
            .iter()
            .find_map(|l| l.strip_prefix("tokengate example server listening on "))
            .expect("the address line")
            .to_owned();
        Server { child, base }
    }

    fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(15));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The status of `GET /api/example` with `secret`.
    async fn status_with(&self, secret: &str) -> u16 {
        self.get("/api/example", Some(secret)).await.0
    }
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin(target_dir().join("tokengate")))
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn create_key(database: &str, subject: &str) -> (String, String) {
    let (code, out, err) = cli(&[
        "keys",
        "create",
        "--database",
        database,
        "--subject",
        subject,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "keys create failed: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_keys_and_revocations_and_survive_a_database_outage() {
    let Some(cluster) = pg_support::Cluster::start() else {
        return;
    };
    let database = pg_support::create_database(&cluster.url()).await;
    // Each instance in a directory of its own (each keeps its development signing key there).
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Server::start(dir_a.path(), &database);
    let mut b = Server::start(dir_b.path(), &database);

    // A key created through the CLI is accepted by both instances.
    let (id, secret) = create_key(&database, "user_123");
    for s in [&a, &b] {
        let (status, body) = s.get("/api/example", Some(&secret)).await;
        assert_eq!((status, body["userId"].as_str()), (200, Some("user_123")));
    }

    // Revoked through the CLI, it is refused by both within the promised time (the cache TTL
    // is 10 minutes: only the notice can do this).
    let (code, out, err) = cli(&["keys", "revoke", &id, "--database", &database, "--reason", "leaked"]);
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
    let (_, cached) = create_key(&database, "user_cached");
    let (_, uncached) = create_key(&database, "user_uncached");
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
