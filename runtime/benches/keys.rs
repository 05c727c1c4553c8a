//! Key verification cost: a cached key (target < 2 µs, mostly the SHA-256), an uncached key
//! read from SQLite (a table of 1 000 keys, and one of 300 000 where each lookup is another
//! key, in no particular order), and a key refused by its checksum before any lookup; and
//! the `last_used_at` write behind every newly seen key (`key_usage_write`: a sorted chunk of
//! 16 384 or of 4 096 of those 300 000 keys per transaction, reported per key).
//!
//! Run: `cargo bench -p tokengate-runtime --bench keys -- --warm-up-time 1 --measurement-time 3`.
//! The figures, the machine and what they mean: BENCHMARKS.md, section 2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokengate_runtime::keys::{KeyKind, KeySpec, KeyStore, KeyVerifier, LastUsed, Secret, SqliteKeyStore};
use tokengate_runtime::verifier::{Credential, Verifier};
use tokengate_runtime::{TokenType, VerifyError};

/// Polls a future that must complete without waiting (the cached and rejected paths).
fn now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("this path must not wait"),
    }
}

fn keys(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(rt.block_on(SqliteKeyStore::open(dir.path().join("bench.db"))).unwrap());
    let cached = KeyVerifier::builder(store.clone())
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let uncached = KeyVerifier::builder(store.clone())
        .cache_ttl(Duration::ZERO)
        .negative_cache_ttl(Duration::ZERO)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    // A realistic table: the key looked up is one of a thousand.
    let mut secrets = Vec::new();
    for i in 0..1000 {
        let spec = KeySpec::api_key(format!("user_{i}"), "bench").scope("write:users");
        secrets.push(rt.block_on(cached.issue(spec)).unwrap().secret);
    }
    let secret = secrets[500].expose().to_string();
    rt.block_on(cached.verify(Credential::new_for_tests(&secret, TokenType::ApiKey)))
        .unwrap();
    let mut typo = secret.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();

    let mut group = c.benchmark_group("key_verify");
    group.bench_function("cached", |b| {
        b.iter(|| {
            let auth = now(cached.verify(Credential::new_for_tests(black_box(&secret), TokenType::ApiKey)));
            black_box(auth.unwrap())
        });
    });
    group.bench_function("uncached_sqlite", |b| {
        b.iter(|| {
            let auth = rt.block_on(uncached.verify(Credential::new_for_tests(black_box(&secret), TokenType::ApiKey)));
            black_box(auth.unwrap())
        });
    });
    group.bench_function("bad_checksum", |b| {
        b.iter(|| {
            let result = now(cached.verify(Credential::new_for_tests(black_box(&typo), TokenType::ApiKey)));
            assert!(matches!(result, Err(VerifyError::Invalid(_))));
        });
    });
    let large = large_store(&rt);
    group.bench_function("uncached_sqlite_300k", |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % large.secrets.len();
            let credential = Credential::new_for_tests(black_box(&large.secrets[next]), TokenType::ApiKey);
            black_box(rt.block_on(large.verifier.verify(credential)).unwrap())
        });
    });
    group.finish();
    usage_writes(c, &rt, &large);
}

/// One `record_last_used` call as the usage recorder makes it: a chunk of keys, sorted by id,
/// each a key not written for a while, taken at random from the 300 000.
fn usage_writes(c: &mut Criterion, rt: &tokio::runtime::Runtime, large: &LargeStore) {
    let mut group = c.benchmark_group("key_usage_write");
    group.sample_size(10);
    let mut ids = large.ids.clone();
    shuffle(&mut ids);
    for chunk in [16_384, 4_096] {
        group.throughput(Throughput::Elements(u64::try_from(chunk).unwrap()));
        group.bench_function(format!("sqlite_300k_chunk_{chunk}"), |b| {
            let (mut next, mut at) = (0, 1_000_000_000);
            b.iter(|| {
                at += 1;
                if next + chunk > ids.len() {
                    next = 0;
                }
                let mut uses: Vec<LastUsed> = ids[next..next + chunk]
                    .iter()
                    .map(|id| LastUsed { id: id.clone(), at })
                    .collect();
                uses.sort_unstable_by(|a, b| a.id.cmp(&b.id));
                next += chunk;
                rt.block_on(large.store.record_last_used(&uses)).unwrap();
            });
        });
    }
    group.finish();
}

/// An SQLite store of 300 000 keys, a verifier over it with no cache, the keys' secrets in
/// an order unrelated to their creation, and their ids.
struct LargeStore {
    store: Arc<SqliteKeyStore>,
    verifier: KeyVerifier,
    secrets: Vec<String>,
    ids: Vec<String>,
    _dir: tempfile::TempDir,
}

/// An SQLite file of 300 000 keys, each one used once (each has its `last_used_at` row), a
/// verifier with no cache over it, and the keys' secrets in an order unrelated to their
/// creation: each lookup reads pages no earlier lookup left in SQLite's cache, as a service's
/// long tail of keys used now and then does.
fn large_store(rt: &tokio::runtime::Runtime) -> LargeStore {
    const KEYS: usize = 300_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.db");
    rt.block_on(async { SqliteKeyStore::open(&path).await.unwrap().close().await });
    let mut db = rusqlite::Connection::open(&path).unwrap();
    let tx = db.transaction().unwrap();
    let (mut secrets, mut ids) = (Vec::with_capacity(KEYS), Vec::with_capacity(KEYS));
    {
        let mut key = tx
            .prepare(
                "INSERT INTO tokengate_keys (id, kind, secret_hash, name, subject, scopes, claims, created_at, seq) \
                 VALUES (?1, 'api_key', ?2, 'bench', ?3, '[\"read\"]', '{}', ?4, 1)",
            )
            .unwrap();
        let mut used = tx
            .prepare("INSERT INTO tokengate_key_usage (id, last_used_at) VALUES (?1, ?2)")
            .unwrap();
        for i in 0..KEYS {
            let secret = Secret::generate(KeyKind::ApiKey).unwrap();
            let id = format!("ak_{:032x}", i * 7919 % KEYS);
            let created = i64::try_from(i).unwrap();
            key.execute(rusqlite::params![
                id,
                &secret.hash().as_bytes()[..],
                format!("user_{i}"),
                created
            ])
            .unwrap();
            used.execute(rusqlite::params![id, created + 1]).unwrap();
            secrets.push(secret.expose().to_owned());
            ids.push(id);
        }
    }
    tx.commit().unwrap();
    shuffle(&mut secrets);
    let store = Arc::new(rt.block_on(SqliteKeyStore::open(&path)).unwrap());
    let verifier = KeyVerifier::builder(store.clone())
        .cache_ttl(Duration::ZERO)
        .negative_cache_ttl(Duration::ZERO)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    LargeStore {
        store,
        verifier,
        secrets,
        ids,
        _dir: dir,
    }
}

/// Fisher–Yates with a fixed-seed generator: the same order every run.
fn shuffle<T>(items: &mut [T]) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = usize::try_from(state >> 33).unwrap() % (i + 1);
        items.swap(i, j);
    }
}

criterion_group!(benches, keys);
criterion_main!(benches);
