//! Key verification cost: a cached key (target < 2 µs, mostly the SHA-256), an uncached key
//! read from SQLite (a table of 1 000 keys, and one of 300 000 where each lookup is another
//! key), and a key refused by its checksum before any lookup.
//!
//! Run: `cargo bench -p tokengate-runtime --bench keys -- --warm-up-time 1 --measurement-time 3`.
//! The figures, the machine and what they mean: BENCHMARKS.md, section 2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokengate_runtime::keys::{KeySpec, KeyVerifier, SqliteKeyStore};
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
    let (large, _large_dir, large_secrets) = large_store(&rt);
    group.bench_function("uncached_sqlite_300k", |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % large_secrets.len();
            let credential = Credential::new_for_tests(black_box(&large_secrets[next]), TokenType::ApiKey);
            black_box(rt.block_on(large.verify(credential)).unwrap())
        });
    });
    group.finish();
}

/// A verifier with no cache over an SQLite file of 300 000 keys: 1 000 issued through the
/// verifier (whose secrets it returns), the rest rows with random hashes, so the index has its
/// real depth and each lookup reads other pages.
fn large_store(rt: &tokio::runtime::Runtime) -> (KeyVerifier, tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(rt.block_on(SqliteKeyStore::open(dir.path().join("large.db"))).unwrap());
    rt.block_on(
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 299000) \
             INSERT INTO tokengate_keys (id, kind, secret_hash, name, subject, scopes, claims, created_at) \
             SELECT printf('ak_%032x', i), 'api_key', randomblob(32), 'bench', 'user_' || i, \
             '[\"read\"]', '{}', i FROM n",
        )
        .execute(store.pool()),
    )
    .unwrap();
    let verifier = KeyVerifier::builder(store)
        .cache_ttl(Duration::ZERO)
        .negative_cache_ttl(Duration::ZERO)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let secrets = (0..1000)
        .map(|i| {
            let spec = KeySpec::api_key(format!("user_owner{i}"), "bench").scope("write:users");
            rt.block_on(verifier.issue(spec)).unwrap().secret.expose().to_string()
        })
        .collect();
    (verifier, dir, secrets)
}

criterion_group!(benches, keys);
criterion_main!(benches);
