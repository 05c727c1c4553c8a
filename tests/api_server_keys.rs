//! End to end, API keys as a product: the example server as a process and the `tokengate` CLI
//! on the same SQLite file. A key rerolled, disabled and updated with the CLI is seen by the
//! server within its cache TTL; `POST /github/secret-scanning`, fed reports signed as GitHub
//! signs them (a loopback double of GitHub's meta API), revokes the leaked demo key at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod process;
use process::{Server, cli, create_key};

#[path = "../runtime/tests/redis_support/mod.rs"]
mod redis_support;

#[path = "../runtime/tests/github_support/mod.rs"]
mod github_support;
use github_support::{GitHub, KEY_ID};

/// Polls `GET /api/example` with `secret` until it answers `status` (the cache TTL is 1 s).
async fn eventually(s: &Server, secret: &str, status: u16, reason: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (got, body) = s.get("/api/example", Some(secret)).await;
        if got == status && (reason.is_empty() || body["reason"] == reason) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {got} {body} instead of {status} {reason}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn keys_changed_with_the_cli_are_seen_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("keys.db").display());
    let s = Server::start(dir.path(), &["--database", &database, "--key-cache-ttl", "1"]);
    let (id, first) = create_key(&database, "user_1", &[]);
    let db = ["--database", database.as_str()];
    let run = |args: &[&str]| {
        let (code, out, err) = cli(&[args, &db].concat(), None);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    };
    assert_eq!(s.status_with(&first).await, 200);

    let rerolled = run(&["keys", "reroll", &id, "--grace", "0", "--format", "json"]);
    let second: Value = serde_json::from_str(&rerolled).unwrap();
    let second = second["secret"].as_str().unwrap().to_owned();
    eventually(&s, &first, 401, "token-rotated").await;
    assert_eq!(s.status_with(&second).await, 200);

    run(&["keys", "disable", &id]);
    eventually(&s, &second, 401, "token-disabled").await;
    run(&["keys", "enable", &id]);
    eventually(&s, &second, 200, "").await;

    run(&["keys", "update", &id, "--no-expiry", "--claims", r#"{"plan":"gold"}"#]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.get("/api/example", Some(&second)).await.1["claims"]["plan"] != "gold" {
        assert!(Instant::now() < deadline, "the update did not reach the server");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn github_secret_scanning_revokes_a_leaked_key() {
    let github = GitHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--github-meta-url", &github.url]);
    let writer = s.printed("demo API key (write:users):");
    assert_eq!(s.status_with(&writer).await, 200);
    let url = format!("{}/github/secret-scanning", s.base);
    let client = reqwest::Client::new();
    let body = serde_json::to_vec(&json!([
        {"token": writer, "type": "tokengate_api_key", "url": "https://github.com/o/r/blob/1/.env", "source": "content"},
        {"token": "ak_not_ours", "type": "tokengate_api_key", "url": "", "source": "commit"},
    ]))
    .unwrap();

    // Signed over another body: refused, and the key still works.
    let forged = client
        .post(&url)
        .headers(github.headers(KEY_ID, b"[]"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(s.status_with(&writer).await, 200);

    let response = client
        .post(&url)
        .headers(github.headers(KEY_ID, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let labels: Value = response.json().await.unwrap();
    assert_eq!(labels[0]["label"], "true_positive");
    assert_eq!(labels[1]["label"], "false_positive");
    assert_eq!(labels[0]["token_type"], "tokengate_api_key");
    assert_eq!(labels[0]["token_hash"].as_str().unwrap().len(), 64);
    // Revoked at once in this process, though the key was cached.
    let (status, refused) = s.get("/api/example", Some(&writer)).await;
    assert_eq!((status, refused["reason"].as_str()), (401, Some("token-revoked")));
}

/// `GET /api/search`: 10 a minute per key, with the IETF headers; two instances on one Redis
/// (`--redis-url`) share the count.
#[tokio::test]
async fn search_is_rate_limited_per_key_and_shared_through_redis() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("keys.db").display());
    let one = Server::start(dir.path(), &["--database", &database]);
    let key = one.printed("demo API key (no scopes):");
    let client = reqwest::Client::new();
    let search = |s: &Server, key: &str| client.get(format!("{}/api/search", s.base)).bearer_auth(key).send();
    for remaining in (0..10).rev() {
        let ok = search(&one, &key).await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["ratelimit-policy"], "\"10/min\";q=10;w=60");
        let current = ok.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(current.starts_with(&format!("\"10/min\";r={remaining};")), "{current}");
    }
    let refused = search(&one, &key).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["reason"], "rate-limited");
    let other = one.printed("demo API key (write:users):");
    assert_eq!(search(&one, &other).await.unwrap().status(), 200);
    drop(one);

    let Some(redis) = redis_support::Redis::start() else {
        return;
    };
    let (_, shared_key) = create_key(&database, "user_1", &[]);
    let args = ["--database", database.as_str(), "--redis-url", &redis.url()];
    let (a, b) = (Server::start(dir.path(), &args), Server::start(dir.path(), &args));
    let mut admitted = 0;
    for i in 0..16 {
        let instance = if i % 2 == 0 { &a } else { &b };
        match search(instance, &shared_key).await.unwrap().status().as_u16() {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 10, "two instances on one Redis allow 10 a minute in all");
}
