//! GitHub's secret-scanning endpoint against a loopback double of GitHub's meta API, built to
//! GitHub's documentation (`GET /meta/public_keys/secret_scanning` →
//! `{"public_keys": [{"key_identifier", "key", "is_current"}]}`), with a real P-256 key signing
//! each body, and a real SQLite key store.
#![cfg(feature = "secret-scanning")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokengate_runtime::VerifyError;
use tokengate_runtime::keys::{KeyAction, KeyKind, KeySpec, KeyVerifier, Secret, SqliteKeyStore};
use tokengate_runtime::rejection::InvalidReason;
use tokengate_runtime::secret_scanning::{OnLeak, SecretScanning};

mod github_support;
use github_support::{GitHub, KEY_ID};

async fn keys() -> (tempfile::TempDir, Arc<KeyVerifier>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteKeyStore::open(dir.path().join("keys.db")).await.unwrap();
    (dir, Arc::new(KeyVerifier::new(Arc::new(store))))
}

async fn body_of(response: Response) -> (StatusCode, Value, String) {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

fn report(tokens: &[&str]) -> Bytes {
    let matches: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"token": t, "type": "tokengate_api_key", "url": "https://github.com/o/r/blob/abc/.env", "source": "content"}))
        .collect();
    Bytes::from(serde_json::to_vec(&matches).unwrap())
}

fn hex_sha256(token: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn refusal(keys: &KeyVerifier, secret: &str) -> Option<InvalidReason> {
    match keys.verify_secret(secret).await {
        Ok(_) => None,
        Err(VerifyError::Invalid(reason)) => Some(reason),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn leaked_keys_are_revoked_and_labelled_as_github_documents() {
    let github = GitHub::start().await;
    let (_dir, keys) = keys().await;
    let scanning = SecretScanning::builder(Arc::clone(&keys))
        .meta_url(&github.url)
        .build()
        .unwrap();
    let leaked = keys.issue(KeySpec::api_key("user_1", "leaked")).await.unwrap();
    let leaked = leaked.secret.expose().to_owned();
    let rolled = keys.issue(KeySpec::api_key("user_1", "rolled")).await.unwrap();
    let old = rolled.secret.expose().to_owned();
    let new = keys
        .reroll(&rolled.record.id, Duration::from_secs(3600), "ops")
        .await
        .unwrap()
        .unwrap();
    let new = new.secret.expose().to_owned();
    let stranger = Secret::generate(KeyKind::ApiKey).unwrap();
    let stranger = stranger.expose();

    let body = report(&[&leaked, "not-ours-at-all", stranger, &old, &leaked]);
    let (status, answer, text) = body_of(scanning.handle(&github.headers(KEY_ID, &body), &body).await).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let labels: Vec<&str> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "true_positive",
            "false_positive",
            "false_positive",
            "true_positive",
            "true_positive"
        ]
    );
    assert_eq!(answer[0]["token_hash"], hex_sha256(&leaked));
    assert_eq!(answer[1]["token_type"], "tokengate_api_key");
    for token in [leaked.as_str(), old.as_str(), stranger] {
        assert!(!text.contains(token), "the answer holds a token");
    }

    // The leaked key is revoked; the rerolled key's old secret lost its grace, the new works.
    assert_eq!(refusal(&keys, &leaked).await, Some(InvalidReason::Revoked));
    assert_eq!(refusal(&keys, &old).await, Some(InvalidReason::Rotated));
    assert_eq!(refusal(&keys, &new).await, None);
    let id = keys
        .store()
        .find_by_hash(&tokengate_runtime::keys::SecretHash::of(&leaked))
        .await
        .unwrap()
        .unwrap()
        .id;
    let history = keys.history(&id).await.unwrap();
    let leak = history.last().unwrap();
    assert_eq!(
        (leak.action, leak.actor.as_str()),
        (KeyAction::Leak, "github-secret-scanning")
    );
    assert_eq!(leak.changes["url"], "https://github.com/o/r/blob/abc/.env");
    assert_eq!(leak.changes["done"], "revoked");
    assert_eq!(
        history.iter().filter(|e| e.action == KeyAction::Leak).count(),
        1,
        "a token twice is one report"
    );
    assert_eq!(github.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn record_only_keeps_the_key_working() {
    let github = GitHub::start().await;
    let (_dir, keys) = keys().await;
    let scanning = SecretScanning::builder(Arc::clone(&keys))
        .meta_url(&github.url)
        .on_leak(OnLeak::Record)
        .build()
        .unwrap();
    let issued = keys.issue(KeySpec::api_key("user_1", "watched")).await.unwrap();
    let body = report(&[issued.secret.expose()]);
    let (status, answer, _) = body_of(scanning.handle(&github.headers(KEY_ID, &body), &body).await).await;
    assert_eq!(
        (status, answer[0]["label"].as_str()),
        (StatusCode::OK, Some("true_positive"))
    );
    assert_eq!(refusal(&keys, issued.secret.expose()).await, None);
    let history = keys.history(&issued.record.id).await.unwrap();
    assert_eq!(history.last().unwrap().changes["done"], "recorded");
}

#[tokio::test]
async fn bad_signatures_unknown_key_ids_and_bad_bodies_are_refused() {
    let github = GitHub::start().await;
    let (_dir, keys) = keys().await;
    let scanning = SecretScanning::builder(Arc::clone(&keys))
        .meta_url(&github.url)
        .build()
        .unwrap();
    let issued = keys.issue(KeySpec::api_key("user_1", "safe")).await.unwrap();
    let body = report(&[issued.secret.expose()]);

    // Signed over another body, no headers, a signature that is not base64, another key.
    let other = report(&["something else"]);
    let forged = github.headers(KEY_ID, &other);
    assert_eq!(scanning.handle(&forged, &body).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        scanning.handle(&HeaderMap::new(), &body).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mut garbage = github.headers(KEY_ID, &body);
    garbage.insert("github-public-key-signature", HeaderValue::from_static("%%%"));
    assert_eq!(
        scanning.handle(&garbage, &body).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let impostor = GitHub::start().await;
    assert_eq!(
        scanning.handle(&impostor.headers(KEY_ID, &body), &body).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Nothing happened to the key.
    assert_eq!(refusal(&keys, issued.secret.expose()).await, None);

    // An unknown key id: refused, and GitHub's API asked again at most once a minute.
    let fetched = github.fetches.load(Ordering::SeqCst);
    for _ in 0..5 {
        let unknown = github.headers("ffff", &body);
        assert_eq!(
            scanning.handle(&unknown, &body).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert!(github.fetches.load(Ordering::SeqCst) <= fetched + 1);

    // A well-signed body that is not GitHub's JSON.
    let not_json = Bytes::from_static(b"{\"token\": 1}");
    let (status, answer, _) = body_of(scanning.handle(&github.headers(KEY_ID, &not_json), &not_json).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("JSON array"));
}

#[tokio::test]
async fn github_unreachable_is_a_503_and_plain_http_off_loopback_is_refused() {
    let (_dir, keys) = keys().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/meta/public_keys/secret_scanning",
        closed.local_addr().unwrap()
    );
    drop(closed);
    let scanning = SecretScanning::builder(Arc::clone(&keys))
        .meta_url(url)
        .build()
        .unwrap();
    let body = report(&["x"]);
    let github = GitHub::start().await;
    let response = scanning.handle(&github.headers(KEY_ID, &body), &body).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    let error = SecretScanning::builder(keys)
        .meta_url("http://api.github.example/meta/public_keys/secret_scanning")
        .build()
        .unwrap_err();
    assert!(error.contains("https"), "{error}");
}
