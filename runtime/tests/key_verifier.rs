//! The key verifier (`KeyVerifier`) over a real SQLite file: issue → verify → revoke, expiry,
//! checksum before lookup, the caches of verified and refused keys, single flight, evictions
//! racing with lookups, revocation notices, batched `last_used_at`, outages, and the gate in
//! front of it. The store alone: `keys_sqlite.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, header};
use tokengate_runtime::keys::{
    KeyKind, KeyRecord, KeySpec, KeyStore, KeyVerifier, LastUsed, NewKey, RevocationNotice, Secret, SecretHash,
    SqliteKeyStore, StoreError, StoreFuture, issue, now_unix,
};
use tokengate_runtime::rejection::InvalidReason;
use tokengate_runtime::verifier::{Credential, Verifier};
use tokengate_runtime::{
    Match, Policy, Rejection, Requirement, RequirementKind, TokenGate, TokenType, TokenTypes, VerifyError,
};

mod sqlite_support;

use sqlite_support::{db_path, invalid, open, verify};

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

/// A store that counts the calls reaching the real SQLite store. Its lookups pass a gate,
/// open unless the store was made with [`Counting::gated`].
struct Counting {
    inner: SqliteKeyStore,
    finds: AtomicUsize,
    last_used_batches: AtomicUsize,
    last_used_rows: AtomicUsize,
    gate: tokio::sync::Semaphore,
    /// Lookups that read the store, then wait here before answering (open by default).
    after_read: tokio::sync::Semaphore,
    reads: AtomicUsize,
    /// Revocations wait here before they reach the store (open by default).
    before_revoke: tokio::sync::Semaphore,
    revokes: AtomicUsize,
    /// Revocation notices, as a store shared with other instances sends them.
    notices: Option<tokio::sync::broadcast::Sender<RevocationNotice>>,
}

impl Counting {
    fn new(inner: SqliteKeyStore) -> Arc<Counting> {
        Counting::with_gate(inner, tokio::sync::Semaphore::MAX_PERMITS)
    }

    /// Lookups wait until the test adds permits to `gate`.
    fn gated(inner: SqliteKeyStore) -> Arc<Counting> {
        Counting::with_gate(inner, 0)
    }

    fn with_gate(inner: SqliteKeyStore, permits: usize) -> Arc<Counting> {
        Arc::new(Counting::unshared(inner, permits))
    }

    fn unshared(inner: SqliteKeyStore, permits: usize) -> Counting {
        let open = tokio::sync::Semaphore::MAX_PERMITS;
        Counting {
            inner,
            finds: AtomicUsize::new(0),
            last_used_batches: AtomicUsize::new(0),
            last_used_rows: AtomicUsize::new(0),
            gate: tokio::sync::Semaphore::new(permits),
            after_read: tokio::sync::Semaphore::new(open),
            reads: AtomicUsize::new(0),
            before_revoke: tokio::sync::Semaphore::new(open),
            revokes: AtomicUsize::new(0),
            notices: None,
        }
    }

    /// Lookups wait after reading the store, revocations before changing it, until the test
    /// adds permits: a lookup can then read a key just before its revocation lands.
    fn racing(inner: SqliteKeyStore) -> Arc<Counting> {
        Arc::new(Counting {
            after_read: tokio::sync::Semaphore::new(0),
            before_revoke: tokio::sync::Semaphore::new(0),
            ..Counting::unshared(inner, tokio::sync::Semaphore::MAX_PERMITS)
        })
    }

    /// A store that announces revocations made elsewhere, through `notices`.
    fn announcing(inner: SqliteKeyStore) -> Arc<Counting> {
        Arc::new(Counting {
            notices: Some(tokio::sync::broadcast::channel(64).0),
            ..Counting::unshared(inner, tokio::sync::Semaphore::MAX_PERMITS)
        })
    }
}

impl KeyStore for Counting {
    fn create(&self, key: NewKey) -> StoreFuture<'_, KeyRecord> {
        self.inner.create(key)
    }
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        self.inner.get(id)
    }
    fn list<'a>(&'a self, subject: Option<&'a str>) -> StoreFuture<'a, Vec<KeyRecord>> {
        self.inner.list(subject)
    }
    fn revoke<'a>(&'a self, id: &'a str, reason: Option<&'a str>, at: i64) -> StoreFuture<'a, Option<KeyRecord>> {
        self.revokes.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let _open = self.before_revoke.acquire().await;
            self.inner.revoke(id, reason, at).await
        })
    }
    fn find_by_hash<'a>(&'a self, hash: &'a SecretHash) -> StoreFuture<'a, Option<KeyRecord>> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let _open = self.gate.acquire().await;
            let found = self.inner.find_by_hash(hash).await;
            self.reads.fetch_add(1, Ordering::SeqCst);
            let _answer = self.after_read.acquire().await;
            found
        })
    }
    fn revocation_notices(&self) -> Option<tokio::sync::broadcast::Receiver<RevocationNotice>> {
        self.notices.as_ref().map(tokio::sync::broadcast::Sender::subscribe)
    }
    fn record_last_used<'a>(&'a self, uses: &'a [LastUsed]) -> StoreFuture<'a, ()> {
        self.last_used_batches.fetch_add(1, Ordering::SeqCst);
        self.last_used_rows.fetch_add(uses.len(), Ordering::SeqCst);
        self.inner.record_last_used(uses)
    }
}

#[tokio::test]
async fn issue_verify_revoke_through_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir)).await;
    let verifier = Arc::new(KeyVerifier::new(store.clone()));
    let gate = TokenGate::builder()
        .verifier_for(
            TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::M2mToken),
            verifier.clone(),
        )
        .build()
        .unwrap();
    let policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey))
        .require(Requirement::new(RequirementKind::Scope, Match::All, ["write:users"]).unwrap());

    let key = verifier
        .issue(
            KeySpec::api_key("user_123", "ci")
                .scope("write:users")
                .claims(serde_json::json!({"team": "billing"}))
                .description("CI pipeline"),
        )
        .await
        .unwrap();
    assert!(key.record.id.starts_with("ak_"));
    for debug in [format!("{key:?}"), format!("{:?}", key.record), format!("{verifier:?}")] {
        assert!(
            !debug.contains(key.secret.expose()),
            "Debug must not show the secret: {debug}"
        );
    }
    let auth = gate
        .authorize(&bearer(key.secret.expose()), &Default::default(), &policy)
        .await
        .unwrap();
    assert_eq!(auth.token_type, TokenType::ApiKey);
    assert_eq!(auth.id.as_deref(), Some(key.record.id.as_str()));
    assert_eq!(auth.user_id.as_deref(), Some("user_123"));
    assert_eq!(auth.name.as_deref(), Some("ci"));
    assert_eq!(auth.scopes, ["write:users"]);
    assert_eq!(auth.claims["team"], "billing");

    // A key without the scope is verified, then refused by the policy with a 403.
    let reader = verifier.issue(KeySpec::api_key("user_123", "reader")).await.unwrap();
    let refused = gate
        .authorize(&bearer(reader.secret.expose()), &Default::default(), &policy)
        .await;
    assert!(matches!(refused, Err(Rejection::Forbidden(_))), "{refused:?}");

    // An M2M token is refused by an api_key-only route before verification.
    let machine = verifier
        .issue(KeySpec::m2m_token("mch_billing", "billing"))
        .await
        .unwrap();
    let refused = gate
        .authorize(&bearer(machine.secret.expose()), &Default::default(), &policy)
        .await;
    assert!(
        matches!(refused, Err(Rejection::TokenTypeNotAccepted { .. })),
        "{refused:?}"
    );
    let auth = verify(&verifier, machine.secret.expose(), TokenType::M2mToken)
        .await
        .unwrap();
    assert_eq!(auth.machine_id.as_deref(), Some("mch_billing"));

    let revoked = verifier
        .revoke(&key.record.id, Some("leaked in a log"))
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    let refused = gate
        .authorize(&bearer(key.secret.expose()), &Default::default(), &policy)
        .await;
    assert_eq!(refused, Err(Rejection::InvalidToken(InvalidReason::Revoked)));
    let stored = store.get(&key.record.id).await.unwrap().unwrap();
    assert_eq!(stored.revocation_reason.as_deref(), Some("leaked in a log"));
    // Revoking twice keeps the first reason; an unknown id is `None`.
    verifier.revoke(&key.record.id, Some("again")).await.unwrap();
    let stored = store.get(&key.record.id).await.unwrap().unwrap();
    assert_eq!(stored.revocation_reason.as_deref(), Some("leaked in a log"));
    assert!(
        verifier
            .revoke("ak_00000000000000000000000000000000", None)
            .await
            .unwrap()
            .is_none()
    );
    verifier.shutdown().await.unwrap();
}

#[tokio::test]
async fn expired_keys_are_refused_from_the_store_and_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir)).await;
    let verifier = KeyVerifier::new(store.clone());

    // Expired before it is ever seen: inserted directly with a past expiry.
    let old = Secret::generate(KeyKind::ApiKey).unwrap();
    let now = now_unix();
    let record = NewKey::new(
        "ak_0123456789abcdef0123456789abcdef".into(),
        KeyKind::ApiKey,
        old.hash(),
        "old".into(),
        "user_1".into(),
        vec![],
        now - 100,
        Some(now - 10),
    );
    store.create(record).await.unwrap();
    assert_eq!(
        verify(&verifier, old.expose(), TokenType::ApiKey).await,
        Err(invalid(InvalidReason::Expired))
    );

    // Valid, cached, then expired while in the cache.
    let key = verifier
        .issue(KeySpec::api_key("user_1", "short").expires_at(now_unix() + 2))
        .await
        .unwrap();
    let auth = verify(&verifier, key.secret.expose(), TokenType::ApiKey).await.unwrap();
    assert_eq!(auth.expiration, key.record.expires_at);
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        match verify(&verifier, key.secret.expose(), TokenType::ApiKey).await {
            Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(_) => panic!("the key was still accepted after its expiry"),
            Err(e) => {
                assert_eq!(e, invalid(InvalidReason::Expired));
                assert!(now_unix() >= key.record.expires_at.unwrap());
                break;
            }
        }
    }
    assert_eq!(verifier.cached_keys(), 0, "the expired key left the cache");
}

#[tokio::test]
async fn a_bad_checksum_never_reaches_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let counting = Counting::new(SqliteKeyStore::open(db_path(&dir)).await.unwrap());
    let verifier = KeyVerifier::new(counting.clone());
    let key = verifier.issue(KeySpec::api_key("user_1", "ci")).await.unwrap();
    let secret = key.secret.expose();

    for i in 3..secret.len() {
        let mut typo = secret.as_bytes().to_vec();
        typo[i] = if typo[i] == b'q' { b'r' } else { b'q' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(
            verify(&verifier, &typo, TokenType::ApiKey).await,
            Err(invalid(InvalidReason::BadChecksum)),
            "a change at {i} must fail the checksum"
        );
    }
    let truncated = &secret[..secret.len() - 1];
    assert_eq!(
        verify(&verifier, truncated, TokenType::ApiKey).await,
        Err(invalid(InvalidReason::Malformed))
    );
    assert_eq!(
        verify(&verifier, "ak_short", TokenType::ApiKey).await,
        Err(invalid(InvalidReason::Malformed))
    );
    let swapped = format!("mt_{}", &secret[3..]);
    assert_eq!(
        verify(&verifier, &swapped, TokenType::M2mToken).await,
        Err(invalid(InvalidReason::BadChecksum))
    );
    assert_eq!(
        counting.finds.load(Ordering::SeqCst),
        0,
        "no rejected secret may reach the store"
    );

    // A well-formed unknown secret does reach it, once: then the negative cache answers.
    let unknown = Secret::generate(KeyKind::ApiKey).unwrap();
    for _ in 0..3 {
        assert_eq!(
            verify(&verifier, unknown.expose(), TokenType::ApiKey).await,
            Err(invalid(InvalidReason::UnknownToken))
        );
    }
    assert_eq!(counting.finds.load(Ordering::SeqCst), 1);
    // A valid key reaches it once, then comes from the cache.
    for _ in 0..5 {
        verify(&verifier, secret, TokenType::ApiKey).await.unwrap();
    }
    assert_eq!(counting.finds.load(Ordering::SeqCst), 2);
    // An API key presented where an M2M token is expected is the wrong type.
    assert_eq!(
        verify(&verifier, secret, TokenType::M2mToken).await,
        Err(invalid(InvalidReason::WrongType))
    );

    // The synchronous path the gate asks first: the cached key answers at once; typos of it
    // fail their checksum there too, and are not remembered as refusals.
    let cached = |token: &str| verifier.verify_cached(&Credential::new_for_tests(token, TokenType::ApiKey));
    assert_eq!(cached(secret).unwrap().unwrap().id, Some(key.record.id.as_str().into()));
    let refusals = verifier.cached_rejections();
    for i in 3..secret.len() {
        let mut typo = secret.as_bytes().to_vec();
        typo[i] = if typo[i] == b'q' { b'r' } else { b'q' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(
            cached(&typo),
            Some(Err(invalid(InvalidReason::BadChecksum))),
            "a change at {i}"
        );
    }
    assert_eq!(
        verifier.cached_rejections(),
        refusals,
        "no bad checksum in the negative cache"
    );
    assert_eq!(
        cached(unknown.expose()),
        Some(Err(invalid(InvalidReason::UnknownToken))),
        "a remembered refusal"
    );
    assert_eq!(
        cached(Secret::generate(KeyKind::ApiKey).unwrap().expose()),
        None,
        "not known yet"
    );
    assert_eq!(
        counting.finds.load(Ordering::SeqCst),
        2,
        "the synchronous path never reads the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_verify_many_keys_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir)).await;
    let verifier = Arc::new(KeyVerifier::new(store.clone()));
    let mut keys = Vec::new();
    for i in 0..40 {
        let key = verifier
            .issue(KeySpec::api_key(format!("user_{i}"), "k"))
            .await
            .unwrap();
        keys.push((key.secret.expose().to_string(), format!("user_{i}")));
    }
    let keys = Arc::new(keys);
    let mut tasks = Vec::new();
    for t in 0..32 {
        let verifier = verifier.clone();
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for round in 0..5 {
                for j in 0..keys.len() {
                    let (secret, subject) = &keys[(j * 7 + t + round) % keys.len()];
                    let auth = verify(&verifier, secret, TokenType::ApiKey).await.unwrap();
                    assert_eq!(auth.subject.as_deref(), Some(subject.as_str()));
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 32 * 5 * 40);
    verifier.shutdown().await.unwrap();
    let used = store.list(None).await.unwrap();
    assert!(
        used.iter().all(|r| r.last_used_at.is_some()),
        "every key's use is recorded"
    );
}

/// Neither cache keeps a key longer than a day: past it, a revocation made elsewhere could go
/// unseen as long, so the builder refuses and says why.
#[tokio::test]
async fn cache_ttls_over_a_day_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn KeyStore> = open(&db_path(&dir)).await;
    let day = tokengate_runtime::keys::MAX_CACHE_TTL;
    assert_eq!(day, Duration::from_secs(86_400));
    let built = KeyVerifier::builder(Arc::clone(&store))
        .cache_ttl(day)
        .negative_cache_ttl(day)
        .build();
    assert_eq!(built.unwrap().cache_ttl(), day);
    let over = day + Duration::from_secs(1);
    for (builder, what) in [
        (
            KeyVerifier::builder(Arc::clone(&store)).cache_ttl(over),
            "cache_ttl of 86401s",
        ),
        (
            KeyVerifier::builder(Arc::clone(&store)).cache_ttl(Duration::MAX),
            "cache_ttl of",
        ),
        (
            KeyVerifier::builder(Arc::clone(&store)).negative_cache_ttl(over),
            "negative_cache_ttl of 86401s",
        ),
    ] {
        let err = builder.build().unwrap_err().to_string();
        assert!(err.contains(what) && err.contains("one day"), "{err}");
    }
}

#[tokio::test]
async fn a_revocation_from_another_process_is_seen_within_the_cache_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let ttl = Duration::from_millis(800);
    let server = KeyVerifier::builder(open(&path).await).cache_ttl(ttl).build().unwrap();
    assert_eq!(server.cache_ttl(), ttl);
    // The "CLI": another store on the same file.
    let cli = open(&path).await;
    let key = issue(&*cli, KeySpec::api_key("user_1", "ci")).await.unwrap();
    verify(&server, key.secret.expose(), TokenType::ApiKey).await.unwrap();

    cli.revoke(&key.record.id, Some("compromised"), now_unix())
        .await
        .unwrap()
        .unwrap();
    let revoked_at = Instant::now();
    // Still cached right after: the documented delay.
    assert!(verify(&server, key.secret.expose(), TokenType::ApiKey).await.is_ok());
    // An explicit eviction (what a cross-instance notice would do) takes effect at once.
    let spare = issue(&*cli, KeySpec::api_key("user_1", "spare")).await.unwrap();
    verify(&server, spare.secret.expose(), TokenType::ApiKey).await.unwrap();
    cli.revoke(&spare.record.id, None, now_unix()).await.unwrap().unwrap();
    server.evict(&spare.secret.hash());
    assert_eq!(
        verify(&server, spare.secret.expose(), TokenType::ApiKey).await,
        Err(invalid(InvalidReason::Revoked))
    );
    loop {
        match verify(&server, key.secret.expose(), TokenType::ApiKey).await {
            Ok(_) => {
                assert!(
                    revoked_at.elapsed() < ttl + Duration::from_millis(400),
                    "still accepted {:?} after revocation, TTL is {ttl:?}",
                    revoked_at.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                assert_eq!(e, invalid(InvalidReason::Revoked));
                break;
            }
        }
    }

    // Revoking through the verifier itself takes effect at once, whatever the TTL.
    let long = KeyVerifier::builder(open(&path).await)
        .cache_ttl(Duration::from_secs(3600))
        .build()
        .unwrap();
    let other = long.issue(KeySpec::api_key("user_1", "other")).await.unwrap();
    verify(&long, other.secret.expose(), TokenType::ApiKey).await.unwrap();
    long.revoke(&other.record.id, None).await.unwrap().unwrap();
    assert_eq!(
        verify(&long, other.secret.expose(), TokenType::ApiKey).await,
        Err(invalid(InvalidReason::Revoked))
    );
}

#[tokio::test]
async fn last_used_is_written_in_batches_and_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let counting = Counting::new(SqliteKeyStore::open(db_path(&dir)).await.unwrap());
    let verifier = KeyVerifier::builder(counting.clone())
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let a = verifier.issue(KeySpec::api_key("user_1", "a")).await.unwrap();
    let b = verifier.issue(KeySpec::api_key("user_1", "b")).await.unwrap();
    for _ in 0..100 {
        verifier.verify_secret(a.secret.expose()).await.unwrap();
        verifier.verify_secret(b.secret.expose()).await.unwrap();
    }
    assert_eq!(
        counting.last_used_batches.load(Ordering::SeqCst),
        0,
        "no write per request"
    );
    assert_eq!(counting.get(&a.record.id).await.unwrap().unwrap().last_used_at, None);

    assert_eq!(verifier.flush().await.unwrap(), 2);
    assert_eq!(counting.last_used_batches.load(Ordering::SeqCst), 1);
    assert_eq!(counting.last_used_rows.load(Ordering::SeqCst), 2);
    let used = counting.get(&a.record.id).await.unwrap().unwrap().last_used_at.unwrap();
    assert!((now_unix() - used).abs() <= 2);
    assert_eq!(verifier.flush().await.unwrap(), 0, "nothing pending after a flush");

    // Used again, then a graceful shutdown writes it.
    let c = verifier.issue(KeySpec::api_key("user_1", "c")).await.unwrap();
    verifier.verify_secret(c.secret.expose()).await.unwrap();
    verifier.shutdown().await.unwrap();
    assert!(
        counting
            .get(&c.record.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .is_some()
    );
    assert_eq!(counting.last_used_batches.load(Ordering::SeqCst), 2);

    // The background task flushes on its own.
    let background = KeyVerifier::builder(counting.clone())
        .flush_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let d = background.issue(KeySpec::api_key("user_1", "d")).await.unwrap();
    background.verify_secret(d.secret.expose()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while counting
        .get(&d.record.id)
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the background flusher did not write last_used_at"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_failing_store_is_unavailable_not_unauthorized() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir)).await;
    let verifier = Arc::new(KeyVerifier::new(store.clone()));
    let cached = verifier.issue(KeySpec::api_key("user_1", "cached")).await.unwrap();
    let uncached = verifier.issue(KeySpec::api_key("user_1", "uncached")).await.unwrap();
    verifier.verify_secret(cached.secret.expose()).await.unwrap();
    store.close().await;

    // Cached keys keep working until the TTL; uncached ones get a 503.
    verifier.verify_secret(cached.secret.expose()).await.unwrap();
    let err = verifier.verify_secret(uncached.secret.expose()).await.unwrap_err();
    assert!(matches!(err, VerifyError::Unavailable { .. }), "{err:?}");
    assert!(!err.to_string().contains(uncached.secret.expose()));
    let gate = TokenGate::builder()
        .verifier(TokenType::ApiKey, verifier.clone())
        .build()
        .unwrap();
    let policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey));
    let rejection = gate
        .authorize(&bearer(uncached.secret.expose()), &Default::default(), &policy)
        .await
        .unwrap_err();
    assert_eq!(rejection.status(), 503);
    // The pending last_used_at write fails and stays pending.
    assert!(matches!(verifier.flush().await, Err(StoreError::Unavailable(_))));

    // A database in a directory that does not exist: a clear error at open.
    let err = SqliteKeyStore::open(dir.path().join("missing/dir/keys.db"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)));
    assert!(err.to_string().contains("directory exists"), "{err}");
}

async fn gated(dir: &tempfile::TempDir) -> (Arc<Counting>, Arc<KeyVerifier>) {
    let store = Counting::gated(SqliteKeyStore::open(db_path(dir)).await.unwrap());
    let verifier = Arc::new(KeyVerifier::new(store.clone()));
    (store, verifier)
}

/// Waits until `count()` reaches `n` (the spawned requests have reached the store or joined).
async fn until(n: usize, count: impl Fn() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() < n {
        assert!(Instant::now() < deadline, "timed out waiting for {n}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_secret_share_one_store_query() {
    let dir = tempfile::tempdir().unwrap();
    let (store, verifier) = gated(&dir).await;
    let key = verifier.issue(KeySpec::api_key("user_1", "burst")).await.unwrap();
    let secret = key.secret.expose().to_string();
    let stranger = Secret::generate(KeyKind::ApiKey).unwrap();

    // 32 requests with a key no cache holds yet, 8 with an unknown (well-formed) secret.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (verifier, secret) = (verifier.clone(), secret.clone());
        let stranger = stranger.expose().to_string();
        tasks.push(tokio::spawn(async move {
            let presented = if i < 32 { secret } else { stranger };
            verify(&verifier, &presented, TokenType::ApiKey).await
        }));
    }
    until(2, || store.finds.load(Ordering::SeqCst)).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // the rest join the two lookups
    assert_eq!(verifier.lookups_in_flight(), 2);
    store.gate.add_permits(1_000);
    for (i, task) in tasks.into_iter().enumerate() {
        let answer = task.await.unwrap();
        if i < 32 {
            assert_eq!(answer.unwrap().subject.as_deref(), Some("user_1"));
        } else {
            assert_eq!(answer.unwrap_err(), invalid(InvalidReason::UnknownToken));
        }
    }
    assert_eq!(store.finds.load(Ordering::SeqCst), 2, "one store query per secret");
    assert_eq!(verifier.lookups_in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_lookup_leaves_nothing_behind_and_a_revocation_drops_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let (store, verifier) = gated(&dir).await;
    let key = verifier.issue(KeySpec::api_key("user_1", "cancel")).await.unwrap();
    let secret = key.secret.expose().to_string();

    // A client that disconnects while its lookup waits on the store.
    let spawn = |secret: String| {
        let verifier = verifier.clone();
        tokio::spawn(async move { verify(&verifier, &secret, TokenType::ApiKey).await })
    };
    let gone = spawn(secret.clone());
    until(1, || store.finds.load(Ordering::SeqCst)).await;
    gone.abort();
    assert!(gone.await.unwrap_err().is_cancelled());
    assert_eq!(verifier.lookups_in_flight(), 0, "the cancelled lookup is removed");

    // A lookup in flight when the key is revoked: a request that starts after the revocation
    // does not join it. It is refused at once (the revocation is remembered), while the
    // earlier lookup still waits on the store.
    let before = spawn(secret.clone());
    until(2, || store.finds.load(Ordering::SeqCst)).await;
    verifier.revoke(&key.record.id, Some("leaked")).await.unwrap();
    assert_eq!(verifier.lookups_in_flight(), 0, "the revocation dropped the lookup");
    let after = spawn(secret.clone());
    assert_eq!(after.await.unwrap().unwrap_err(), invalid(InvalidReason::Revoked));
    assert!(!before.is_finished());
    store.gate.add_permits(1_000);
    // The earlier request reads the store once the gate opens, so it is refused as well.
    assert!(before.await.unwrap().is_err());
    assert_eq!(store.finds.load(Ordering::SeqCst), 2);
    assert_eq!(verifier.lookups_in_flight(), 0);
}

#[tokio::test]
async fn evicting_one_key_by_its_hash_leaves_the_others_cached() {
    let dir = tempfile::tempdir().unwrap();
    let counting = Counting::new(SqliteKeyStore::open(db_path(&dir)).await.unwrap());
    let verifier = KeyVerifier::new(counting.clone());
    let mut keys = Vec::new();
    for user in ["user_1", "user_2", "user_3"] {
        keys.push(verifier.issue(KeySpec::api_key(user, "ci")).await.unwrap());
    }
    for key in &keys {
        verify(&verifier, key.secret.expose(), TokenType::ApiKey).await.unwrap();
    }
    assert_eq!(counting.finds.load(Ordering::SeqCst), 3);
    assert_eq!(verifier.cached_keys(), 3);

    // A revocation notice names a key by the SHA-256 the store holds.
    verifier.evict(&keys[1].record.secret_hash);
    assert_eq!(verifier.cached_keys(), 2);
    for (i, key) in keys.iter().enumerate() {
        let credential = Credential::new_for_tests(key.secret.expose(), TokenType::ApiKey);
        let cached = verifier.verify_cached(&credential);
        assert_eq!(
            cached.is_some(),
            i != 1,
            "key {i} answered without the store: {cached:?}"
        );
        let auth = verifier.verify(credential).await.unwrap();
        assert_eq!(auth.id.as_deref(), Some(keys[i].record.id.as_str()));
    }
    assert_eq!(
        counting.finds.load(Ordering::SeqCst),
        4,
        "only the evicted key was looked up again"
    );
    assert_eq!(verifier.cached_keys(), 3);

    verifier.evict(&SecretHash::of("ak_not_cached"));
    assert_eq!(verifier.cached_keys(), 3, "an unknown hash evicts nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_that_read_the_store_before_a_revocation_does_not_cache_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Counting::racing(SqliteKeyStore::open(db_path(&dir)).await.unwrap());
    let verifier = Arc::new(KeyVerifier::new(store.clone()));
    let key = verifier.issue(KeySpec::api_key("user_1", "race")).await.unwrap();
    let secret = key.secret.expose().to_string();

    // The revocation starts, and waits before its change reaches the store.
    let revoking = tokio::spawn({
        let (verifier, id) = (verifier.clone(), key.record.id.clone());
        async move { verifier.revoke(&id, None).await }
    });
    until(1, || store.revokes.load(Ordering::SeqCst)).await;
    // A request reads the key, still valid, and waits before its answer comes back.
    let request = tokio::spawn({
        let (verifier, secret) = (verifier.clone(), secret.clone());
        async move { verify(&verifier, &secret, TokenType::ApiKey).await }
    });
    until(1, || store.reads.load(Ordering::SeqCst)).await;
    // The revocation lands and evicts (nothing is cached yet); then the request's answer.
    store.before_revoke.add_permits(1);
    assert!(revoking.await.unwrap().unwrap().is_some());
    store.after_read.add_permits(1_000);
    let _ = request.await.unwrap(); // read before the revocation: either answer is fair

    assert_eq!(
        verifier.cached_keys(),
        0,
        "the key read before its revocation was cached"
    );
    assert_eq!(
        verify(&verifier, &secret, TokenType::ApiKey).await,
        Err(invalid(InvalidReason::Revoked))
    );
}

#[tokio::test]
async fn revocation_notices_evict_what_they_name_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let store = Counting::announcing(SqliteKeyStore::open(db_path(&dir)).await.unwrap());
    let verifier = KeyVerifier::new(store.clone());
    let mut keys = Vec::new();
    for user in ["user_1", "user_2", "user_3", "user_4"] {
        let key = verifier.issue(KeySpec::api_key(user, "ci")).await.unwrap();
        verify(&verifier, key.secret.expose(), TokenType::ApiKey).await.unwrap();
        keys.push(key);
    }
    assert_eq!(verifier.cached_keys(), 4);
    let cached = |i: usize| {
        verifier
            .verify_cached(&Credential::new_for_tests(keys[i].secret.expose(), TokenType::ApiKey))
            .is_some()
    };

    // Two keys revoked by another instance, announced back to back.
    let notices = store.notices.as_ref().unwrap();
    for i in [0, 2] {
        notices
            .send(RevocationNotice::Revoked(keys[i].record.secret_hash))
            .unwrap();
    }
    until(2, || 4 - verifier.cached_keys() as usize).await;
    assert_eq!((cached(0), cached(1), cached(2), cached(3)), (false, true, false, true));

    // Notices may have been missed: everything goes.
    notices.send(RevocationNotice::Resync).unwrap();
    until(4, || 4 - verifier.cached_keys() as usize).await;
    assert_eq!(verifier.cached_keys(), 0);
}

/// A thread of its own that answers from the verifier's memory (`verify_cached`), as a
/// server's worker thread does on each request: what it verified stays in its memory between
/// the requests it is sent.
struct Worker {
    requests: std::sync::mpsc::Sender<String>,
    answers: std::sync::mpsc::Receiver<Option<Result<tokengate_runtime::Auth, VerifyError>>>,
}

impl Worker {
    fn start(verifier: KeyVerifier) -> Worker {
        let (requests, incoming) = std::sync::mpsc::channel::<String>();
        let (outgoing, answers) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for secret in incoming {
                let answer = verifier.verify_cached(&Credential::new_for_tests(&secret, TokenType::ApiKey));
                if outgoing.send(answer).is_err() {
                    return;
                }
            }
        });
        Worker { requests, answers }
    }

    fn answer(&self, secret: &str) -> Option<Result<tokengate_runtime::Auth, VerifyError>> {
        self.requests.send(secret.to_owned()).unwrap();
        self.answers.recv_timeout(Duration::from_secs(10)).unwrap()
    }
}

#[tokio::test]
async fn every_eviction_reaches_the_keys_each_thread_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Counting::announcing(SqliteKeyStore::open(db_path(&dir)).await.unwrap());
    let verifier = KeyVerifier::new(store.clone());
    let other_thread = Worker::start(verifier.clone());
    let here = |secret: &str| verifier.verify_cached(&Credential::new_for_tests(secret, TokenType::ApiKey));
    let notices = store.notices.clone().unwrap();

    for eviction in ["revoke", "evict", "clear_cache", "notice", "resync"] {
        let key = verifier.issue(KeySpec::api_key("user_1", eviction)).await.unwrap();
        let secret = key.secret.expose();
        verify(&verifier, secret, TokenType::ApiKey).await.unwrap();
        // Both threads take the key from the shared cache, then from their own memory.
        for _ in 0..3 {
            assert!(matches!(here(secret), Some(Ok(_))), "{eviction}: not cached");
            assert!(
                matches!(other_thread.answer(secret), Some(Ok(_))),
                "{eviction}: not cached"
            );
        }
        assert_eq!(verifier.cached_keys(), 1);

        // Revoked through this verifier, or elsewhere (the store alone) and then evicted.
        if eviction == "revoke" {
            verifier.revoke(&key.record.id, None).await.unwrap().unwrap();
        } else {
            store
                .inner
                .revoke(&key.record.id, None, now_unix())
                .await
                .unwrap()
                .unwrap();
            match eviction {
                "evict" => verifier.evict(&key.record.secret_hash),
                "clear_cache" => verifier.clear_cache(),
                "notice" => notices
                    .send(RevocationNotice::Revoked(key.record.secret_hash))
                    .map(drop)
                    .unwrap(),
                _ => notices.send(RevocationNotice::Resync).map(drop).unwrap(),
            }
            until(1, || 1 - verifier.cached_keys() as usize).await;
        }

        for (thread, answer) in [("this", here(secret)), ("the other", other_thread.answer(secret))] {
            assert!(
                !matches!(answer, Some(Ok(_))),
                "{eviction}: {thread} thread accepted the key from its memory"
            );
        }
        assert_eq!(
            verify(&verifier, secret, TokenType::ApiKey).await,
            Err(invalid(InvalidReason::Revoked)),
            "{eviction}"
        );
    }
}

/// A key verifier over a counting SQLite store, and a gate that sends API keys and M2M tokens
/// to it; `prefixes` replaces Clerk's.
async fn gate_over_store(
    dir: &tempfile::TempDir,
    prefixes: Option<tokengate_runtime::classify::Prefixes>,
) -> (Arc<Counting>, Arc<KeyVerifier>, TokenGate) {
    let store = Counting::new(SqliteKeyStore::open(db_path(dir)).await.unwrap());
    let keys = Arc::new(KeyVerifier::new(store.clone()));
    let mut builder = TokenGate::builder().verifier_for(
        TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::M2mToken),
        keys.clone(),
    );
    if let Some(prefixes) = prefixes {
        builder = builder.prefixes(prefixes);
    }
    (store, keys, builder.build().unwrap())
}

fn headers_with(values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    }
    headers
}

#[tokio::test]
async fn a_reused_key_is_answered_from_memory_with_the_same_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (store, keys, gate) = gate_over_store(&dir, None).await;
    let extensions = http::Extensions::new();
    let keys_only = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey));
    let key = keys.issue(KeySpec::api_key("user_1", "ci")).await.unwrap();
    let secret = key.secret.expose();

    // First use reads the store; reuse does not. The scheme's case does not matter.
    let first = gate.authorize(&bearer(secret), &extensions, &keys_only).await.unwrap();
    assert_eq!(store.finds.load(Ordering::SeqCst), 1);
    let again = gate.authorize(&bearer(secret), &extensions, &keys_only).await.unwrap();
    assert_eq!(again, first);
    let lowercase = headers_with(&[&format!("bearer {secret}")]);
    assert_eq!(
        gate.authorize(&lowercase, &extensions, &keys_only).await.unwrap(),
        first
    );
    assert_eq!(store.finds.load(Ordering::SeqCst), 1, "reuse answered from memory");

    // Bytes that differ from the key get the usual rejection.
    let (rest, last) = secret.split_at(secret.len() - 1);
    let changed = format!("{rest}{}", if last == "A" { "B" } else { "A" });
    assert_eq!(
        gate.authorize(&bearer(&changed), &extensions, &keys_only)
            .await
            .unwrap_err(),
        Rejection::InvalidToken(InvalidReason::BadChecksum)
    );
    assert_eq!(
        gate.authorize(&headers_with(&[&format!("Bearer {rest}!")]), &extensions, &keys_only)
            .await
            .unwrap_err()
            .reason(),
        "malformed-authorization-header"
    );
    let mut header = format!("Bearer {rest}").into_bytes();
    header.push(0xE9);
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_bytes(&header).unwrap());
    assert_eq!(
        gate.authorize(&headers, &extensions, &keys_only)
            .await
            .unwrap_err()
            .reason(),
        "malformed-authorization-header"
    );

    // A route that does not accept API keys refuses the type.
    let machines_only = Policy::accepting(TokenTypes::EMPTY.with(TokenType::M2mToken));
    assert!(matches!(
        gate.authorize(&bearer(secret), &extensions, &machines_only).await,
        Err(Rejection::TokenTypeNotAccepted {
            presented: TokenType::ApiKey,
            ..
        })
    ));
    // Two Authorization headers are refused, the first one a remembered key or not.
    assert_eq!(
        gate.authorize(
            &headers_with(&[&format!("Bearer {secret}"), "Bearer other"]),
            &extensions,
            &keys_only
        )
        .await
        .unwrap_err()
        .reason(),
        "multiple-authorization-headers"
    );
    // A remembered key still meets the route's requirements.
    let writers = keys_only
        .clone()
        .require(Requirement::new(RequirementKind::Scope, Match::All, ["write:users"]).unwrap());
    assert!(matches!(
        gate.authorize(&bearer(secret), &extensions, &writers).await,
        Err(Rejection::Forbidden(_))
    ));

    // A revoked key is refused.
    keys.revoke(&key.record.id, None).await.unwrap().unwrap();
    assert_eq!(
        gate.authorize(&bearer(secret), &extensions, &keys_only)
            .await
            .unwrap_err(),
        Rejection::InvalidToken(InvalidReason::Revoked)
    );
    keys.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_remembered_key_is_taken_only_as_the_type_this_gate_gives_its_prefix() {
    // This gate swaps the two prefixes, so `ak_…` is an M2M token here. The key verifier
    // remembers the key as an API key: the gate must not take it as one.
    let dir = tempfile::tempdir().unwrap();
    let swapped = tokengate_runtime::classify::Prefixes {
        m2m_token: "ak_".into(),
        api_key: "mt_".into(),
        ..Default::default()
    };
    let (store, keys, gate) = gate_over_store(&dir, Some(swapped)).await;
    let key = keys.issue(KeySpec::api_key("user_1", "ci")).await.unwrap();
    let secret = key.secret.expose();
    verify(&keys, secret, TokenType::ApiKey).await.unwrap();
    let extensions = http::Extensions::new();
    let keys_only = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey));
    assert!(matches!(
        gate.authorize(&bearer(secret), &extensions, &keys_only).await,
        Err(Rejection::TokenTypeNotAccepted {
            presented: TokenType::M2mToken,
            ..
        })
    ));
    let machines = Policy::accepting(TokenTypes::EMPTY.with(TokenType::M2mToken));
    assert_eq!(
        gate.authorize(&bearer(secret), &extensions, &machines)
            .await
            .unwrap_err(),
        Rejection::InvalidToken(InvalidReason::WrongType)
    );
    assert_eq!(store.finds.load(Ordering::SeqCst), 1, "refused without a store lookup");
    keys.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_remembered_key_that_expired_is_refused_from_memory_and_machines_are_remembered_too() {
    let dir = tempfile::tempdir().unwrap();
    let (store, keys, gate) = gate_over_store(&dir, None).await;
    let extensions = http::Extensions::new();
    let both = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::M2mToken));

    // An `mt_` token is remembered like an API key, as an M2M token.
    let machine = keys.issue(KeySpec::m2m_token("mch_1", "billing")).await.unwrap();
    let first = gate
        .authorize(&bearer(machine.secret.expose()), &extensions, &both)
        .await
        .unwrap();
    assert_eq!(first.token_type, TokenType::M2mToken);
    assert_eq!(
        gate.authorize(&bearer(machine.secret.expose()), &extensions, &both)
            .await
            .unwrap(),
        first
    );
    assert_eq!(store.finds.load(Ordering::SeqCst), 1);

    // A key that expires while cached is refused from memory: no store lookup.
    let key = keys
        .issue(KeySpec::api_key("user_1", "short").expires_at(now_unix() + 2))
        .await
        .unwrap();
    gate.authorize(&bearer(key.secret.expose()), &extensions, &both)
        .await
        .unwrap();
    let finds = store.finds.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(4);
    let refused = loop {
        match gate.authorize(&bearer(key.secret.expose()), &extensions, &both).await {
            Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(_) => panic!("the key was still accepted after its expiry"),
            Err(refused) => break refused,
        }
    };
    assert_eq!(refused, Rejection::InvalidToken(InvalidReason::Expired));
    assert!(now_unix() >= key.record.expires_at.unwrap());
    assert_eq!(store.finds.load(Ordering::SeqCst), finds, "refused from memory");
    keys.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_cached_key_is_one_shared_auth_not_a_copy_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir)).await;
    let verifier = KeyVerifier::builder(Arc::new(store)).build().unwrap();
    let key = verifier.issue(KeySpec::api_key("user_1", "shared")).await.unwrap();
    let first = verifier.verify_secret(key.secret.expose()).await.unwrap();
    let second = verifier.verify_secret(key.secret.expose()).await.unwrap();
    assert!(
        Arc::ptr_eq(first.info(), second.info()),
        "the second request got a copy"
    );
    // Two references from the requests, one from the cache (the `last_used_at` batch may hold
    // another until it is written).
    assert!(Arc::strong_count(first.info()) >= 3);
}
