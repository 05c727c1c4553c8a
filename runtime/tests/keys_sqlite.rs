//! The SQLite key store on a real file: keys persist across reopening, secrets are never
//! stored in plaintext, database URLs and paths, invalid specs. The key verifier over it:
//! `key_verifier.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use tokengate_runtime::TokenType;
use tokengate_runtime::keys::{KeySpec, KeyStore, KeyVerifier, StoreError, issue, now_unix};
use tokengate_runtime::rejection::InvalidReason;

mod sqlite_support;

use sqlite_support::{db_path, invalid, open, verify};

#[tokio::test]
async fn keys_persist_across_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let (kept, dropped) = {
        let store = open(&path).await;
        let kept = issue(&*store, KeySpec::api_key("user_7", "kept").scope("read:users"))
            .await
            .unwrap();
        let dropped = issue(&*store, KeySpec::api_key("user_7", "dropped")).await.unwrap();
        store
            .revoke(&dropped.record.id, Some("rotated"), now_unix())
            .await
            .unwrap()
            .unwrap();
        store.close().await;
        (kept, dropped)
    };
    assert!(path.exists());

    let store = open(&path).await;
    let verifier = KeyVerifier::new(store.clone());
    let auth = verify(&verifier, kept.secret.expose(), TokenType::ApiKey)
        .await
        .unwrap();
    assert_eq!(auth.scopes, ["read:users"]);
    assert_eq!(
        verify(&verifier, dropped.secret.expose(), TokenType::ApiKey).await,
        Err(invalid(InvalidReason::Revoked))
    );
    let listed = store.list(Some("user_7")).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["kept", "dropped"]
    );
    assert_eq!(listed[0], kept.record);
    assert!(store.list(Some("user_8")).await.unwrap().is_empty());
    assert_eq!(store.list(None).await.unwrap().len(), 2);
}

#[tokio::test]
async fn plaintext_secrets_appear_nowhere_in_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;
    let verifier = KeyVerifier::new(store.clone());
    let mut keys = Vec::new();
    for i in 0..20 {
        let spec = if i % 2 == 0 {
            KeySpec::api_key("user_1", format!("key-{i}"))
        } else {
            KeySpec::m2m_token("mch_1", format!("token-{i}"))
        };
        let key = verifier.issue(spec).await.unwrap();
        verifier.verify_secret(key.secret.expose()).await.unwrap();
        keys.push(key);
    }
    verifier.flush().await.unwrap();

    let scan = |label: &str| {
        let mut bytes = std::fs::read(&path).unwrap();
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        if wal.exists() {
            bytes.extend(std::fs::read(&wal).unwrap());
        }
        for key in &keys {
            let secret = key.secret.expose();
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{label}: a secret is stored in plaintext"
            );
            // Nor its random part alone (e.g. stored without the prefix).
            assert!(
                !contains(&bytes, &secret.as_bytes()[3..25]),
                "{label}: part of a secret is stored"
            );
            // The scan does see what is stored: the hash and the id.
            assert!(
                contains(&bytes, key.secret.hash().as_bytes()),
                "{label}: the hash should be stored"
            );
            assert!(
                contains(&bytes, key.record.id.as_bytes()),
                "{label}: the id should be stored"
            );
        }
    };
    // While open: the newest pages are in the WAL.
    assert!(
        PathBuf::from(format!("{}-wal", path.display())).exists(),
        "the store should run in WAL mode"
    );
    scan("open");
    store.close().await;
    scan("closed");
}

#[tokio::test]
async fn open_store_understands_urls_and_paths() {
    use tokengate_runtime::keys::open_store;
    let dir = tempfile::tempdir().unwrap();
    let by_path = open_store(dir.path().join("a.db").to_str().unwrap()).await.unwrap();
    assert_eq!(by_path.name(), "sqlite");
    let url = format!("sqlite://{}", dir.path().join("b.db").display());
    let by_url = open_store(&url).await.unwrap();
    issue(&*by_url, KeySpec::api_key("user_1", "x")).await.unwrap();
    assert!(dir.path().join("b.db").exists());
    let shared = tokengate_runtime::keys::open_sqlite(dir.path().join("c.db").to_str().unwrap())
        .await
        .unwrap();
    sqlx::query("CREATE TABLE users (id TEXT PRIMARY KEY)")
        .execute(shared.pool())
        .await
        .unwrap();
    let memory = open_store("sqlite::memory:").await.unwrap();
    issue(&*memory, KeySpec::api_key("user_1", "x")).await.unwrap();
    assert_eq!(memory.list(None).await.unwrap().len(), 1);
    assert_eq!(open_store("memory:").await.unwrap().name(), "memory");

    // PostgreSQL URLs go to the PostgreSQL store (tested in keys_postgres.rs); a malformed one
    // is a configuration error that does not echo the password.
    let err = open_store("postgres://app:hunter2@localhost:notaport/app")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::InvalidConfig(_)), "{err:?}");
    assert!(err.to_string().contains("not a valid PostgreSQL URL"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = open_store("mysql://localhost/app").await.err().unwrap();
    assert!(err.to_string().contains("sqlite://"), "{err}");
    assert!(open_store("  ").await.is_err());
}

#[tokio::test]
async fn invalid_specs_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir)).await;
    let deduplicated = issue(&*store, KeySpec::api_key("user_1", "dup").scopes(["a", "b", "a"]))
        .await
        .unwrap();
    assert_eq!(deduplicated.record.scopes, ["a", "b"]);
    store.revoke(&deduplicated.record.id, None, now_unix()).await.unwrap();
    let err = issue(&*store, KeySpec::api_key("alice", "ci")).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    let err = issue(&*store, KeySpec::api_key("user_1", "ci").claims(serde_json::json!("x")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("JSON object"), "{err}");
    assert_eq!(
        store.list(None).await.unwrap().len(),
        1,
        "only the valid key was created"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Lookups by hash run on connections of their own (`keys/sqlite/readers.rs`): they see what
/// the store's pool wrote as soon as it is committed, refuse a row they cannot read, and an
/// in-memory database (which only the pool's connection sees) is still looked up through the pool.
#[tokio::test]
async fn lookups_by_hash_see_every_committed_write_and_refuse_a_corrupt_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir)).await;
    let key = issue(&*store, KeySpec::api_key("user_9", "ci")).await.unwrap();
    let hash = key.record.secret_hash;
    assert_eq!(store.find_by_hash(&hash).await.unwrap().unwrap().id, key.record.id);
    store.revoke(&key.record.id, None, 1_700_000_000).await.unwrap();
    let found = store.find_by_hash(&hash).await.unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(1_700_000_000), "the revocation is read at once");

    sqlx::query("UPDATE tokengate_keys SET scopes = 'not json' WHERE id = ?")
        .bind(&key.record.id)
        .execute(store.pool())
        .await
        .unwrap();
    match store.find_by_hash(&hash).await {
        Err(StoreError::Unavailable(message)) => assert!(message.contains("scope list"), "{message}"),
        other => panic!("a corrupt row must be unavailable, not {other:?}"),
    }
    store.close().await;
    assert!(matches!(
        store.find_by_hash(&hash).await,
        Err(StoreError::Unavailable(_))
    ));

    let memory = tokengate_runtime::keys::SqliteKeyStore::connect("sqlite::memory:")
        .await
        .unwrap();
    let key = issue(&memory, KeySpec::api_key("user_9", "ci")).await.unwrap();
    let found = memory.find_by_hash(&key.record.secret_hash).await.unwrap();
    assert_eq!(found.unwrap().id, key.record.id);
}
