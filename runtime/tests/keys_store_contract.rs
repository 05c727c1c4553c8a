//! The `KeyStore` contract, run against every store (memory, a real SQLite file and a real
//! PostgreSQL server): the same operations must mean the same thing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

mod pg_support;

use tokengate_runtime::keys::{
    KeyKind, KeyQuery, KeySpec, KeyStore, LastUsed, MemoryKeyStore, NewKey, PostgresKeyStore, Secret, SqliteKeyStore,
    StoreError, issue, open_store,
};

async fn contract(store: Arc<dyn KeyStore>) {
    let name = store.name();
    let a = issue(&*store, KeySpec::api_key("user_1", "a").scopes(["x:y", "z"]))
        .await
        .unwrap();
    let b = issue(&*store, KeySpec::m2m_token("mch_1", "b").description("worker"))
        .await
        .unwrap();
    let c = issue(
        &*store,
        KeySpec::api_key("org_1", "c").claims(serde_json::json!({"n": 1, "nested": {"ok": true}})),
    )
    .await
    .unwrap();

    // get / find_by_hash return exactly what was created.
    assert_eq!(store.get(&a.record.id).await.unwrap().unwrap(), a.record, "{name}");
    assert_eq!(
        store.find_by_hash(&b.secret.hash()).await.unwrap().unwrap(),
        b.record,
        "{name}"
    );
    assert_eq!(
        store.get(&c.record.id).await.unwrap().unwrap().claims["nested"]["ok"],
        true,
        "{name}"
    );
    assert_eq!(
        store.get(&b.record.id).await.unwrap().unwrap().description.as_deref(),
        Some("worker")
    );
    assert!(store.get("ak_missing").await.unwrap().is_none(), "{name}");
    let stranger = Secret::generate(KeyKind::ApiKey).unwrap();
    assert!(store.find_by_hash(&stranger.hash()).await.unwrap().is_none(), "{name}");

    // list: all in creation order, or one subject's.
    let ids = |records: Vec<tokengate_runtime::keys::KeyRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list(None).await.unwrap()),
        [a.record.id.clone(), b.record.id.clone(), c.record.id.clone()],
        "{name}"
    );
    assert_eq!(
        ids(store.list(Some("mch_1")).await.unwrap()),
        [b.record.id.as_str()],
        "{name}"
    );

    // list_page: pages in the same order as the whole list (keys created in the same second
    // keep their order of insertion), by subject and name, after a key; an unknown `after` is
    // refused.
    let mut paged = Vec::new();
    let mut query = KeyQuery::new().limit(2);
    loop {
        let page = store.list_page(&query).await.unwrap();
        assert!(page.len() <= 2, "{name}");
        let Some(last) = page.last() else { break };
        query = query.after(last.id.clone());
        paged.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(paged, ids(store.list(None).await.unwrap()), "{name}");
    let by_name = store
        .list_page(&KeyQuery::new().subject("user_1").name("a"))
        .await
        .unwrap();
    assert_eq!(ids(by_name), [a.record.id.as_str()], "{name}");
    let other_subject = KeyQuery::new().subject("mch_1").name("a");
    assert!(store.list_page(&other_subject).await.unwrap().is_empty(), "{name}");
    let after_b = KeyQuery::new().after(b.record.id.clone());
    assert_eq!(
        ids(store.list_page(&after_b).await.unwrap()),
        [c.record.id.as_str()],
        "{name}"
    );
    match store.list_page(&KeyQuery::new().after("ak_missing")).await {
        Err(StoreError::Invalid(message)) => assert!(message.contains("ak_missing"), "{name}: {message}"),
        other => panic!("{name}: an unknown `after` must be refused, not {other:?}"),
    }

    // The same id or the same secret hash twice is a conflict.
    let mut dup = NewKey::new(
        a.record.id.clone(),
        KeyKind::ApiKey,
        stranger.hash(),
        "dup".into(),
        "user_1".into(),
        vec![],
        1,
        None,
    );
    assert_eq!(
        store.create(dup.clone()).await.unwrap_err(),
        StoreError::Conflict,
        "{name}"
    );
    dup.id = "ak_ffffffffffffffffffffffffffffffff".into();
    dup.secret_hash = a.secret.hash();
    assert_eq!(store.create(dup).await.unwrap_err(), StoreError::Conflict, "{name}");

    // revoke: first time and reason kept; unknown id is None.
    let revoked = store.revoke(&a.record.id, Some("first"), 100).await.unwrap().unwrap();
    assert_eq!(
        (revoked.revoked_at, revoked.revocation_reason.as_deref()),
        (Some(100), Some("first"))
    );
    let again = store.revoke(&a.record.id, Some("second"), 200).await.unwrap().unwrap();
    assert_eq!(
        (again.revoked_at, again.revocation_reason.as_deref()),
        (Some(100), Some("first"))
    );
    assert!(store.revoke("ak_missing", None, 1).await.unwrap().is_none(), "{name}");

    // last_used: batched, never moving backwards, unknown ids ignored.
    let batch = [
        LastUsed {
            id: b.record.id.clone(),
            at: 500,
        },
        LastUsed {
            id: c.record.id.clone(),
            at: 600,
        },
        LastUsed {
            id: "mt_missing".into(),
            at: 700,
        },
    ];
    store.record_last_used(&batch).await.unwrap();
    store
        .record_last_used(&[LastUsed {
            id: b.record.id.clone(),
            at: 400,
        }])
        .await
        .unwrap();
    store.record_last_used(&[]).await.unwrap();
    assert_eq!(
        store.get(&b.record.id).await.unwrap().unwrap().last_used_at,
        Some(500),
        "{name}"
    );
    assert_eq!(
        store.get(&c.record.id).await.unwrap().unwrap().last_used_at,
        Some(600),
        "{name}"
    );
    assert_eq!(
        store.get(&a.record.id).await.unwrap().unwrap().last_used_at,
        None,
        "{name}"
    );
    // find_by_hash and list read it too; verification's lookup is the same key, its
    // last_used_at left out or not.
    let found = store.find_by_hash(&b.secret.hash()).await.unwrap().unwrap();
    assert_eq!(found.last_used_at, Some(500), "{name}");
    let listed = store.list(Some("mch_1")).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|r| r.id == b.record.id && r.last_used_at == Some(500)),
        "{name}"
    );
    let mut to_verify = store.find_to_verify(&b.secret.hash()).await.unwrap().unwrap();
    assert!(matches!(to_verify.last_used_at, None | Some(500)), "{name}");
    to_verify.last_used_at = found.last_used_at;
    assert_eq!(to_verify, found, "{name}");
    assert!(
        store.find_to_verify(&stranger.hash()).await.unwrap().is_none(),
        "{name}"
    );
}

#[tokio::test]
async fn memory_store() {
    contract(Arc::new(MemoryKeyStore::new())).await;
}

#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(
        SqliteKeyStore::open(dir.path().join("contract.db")).await.unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn sqlite_store_shares_a_pool_with_application_tables() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteKeyStore::open(dir.path().join("app.db")).await.unwrap();
    sqlx::query("CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT)")
        .execute(first.pool())
        .await
        .unwrap();
    // Re-running the migrations on the same database (a second process, a restart) is a no-op.
    let second = SqliteKeyStore::from_pool(first.pool().clone()).await.unwrap();
    contract(Arc::new(second)).await;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(first.pool())
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn postgres_store() {
    let Some((_cluster, url)) = pg_support::database().await else {
        return;
    };
    let store = open_store(&url).await.unwrap();
    assert_eq!(store.name(), "postgres");
    contract(store).await;
}

#[tokio::test]
async fn postgres_store_shares_a_pool_with_application_tables() {
    let Some((_cluster, url)) = pg_support::database().await else {
        return;
    };
    let first = PostgresKeyStore::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT)")
        .execute(first.pool())
        .await
        .unwrap();
    // Re-running the migrations on the same database (a second instance, a restart) is a no-op.
    let second = PostgresKeyStore::from_pool(first.pool().clone()).await.unwrap();
    contract(Arc::new(second)).await;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(first.pool())
        .await
        .unwrap();
    assert_eq!(users, 0);
    first.close().await;
}
