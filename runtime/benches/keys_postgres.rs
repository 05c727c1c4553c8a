//! An uncached key from PostgreSQL on loopback: `KeyVerifier::verify` with its caches off over
//! a table of 300 000 keys, each lookup another key (one statement, one round-trip).
//!
//! Run: `cargo bench -p tokengate-runtime --features postgres --bench keys_postgres --
//! --warm-up-time 1 --measurement-time 3`. The server: `TOKENGATE_TEST_POSTGRES_URL` when set,
//! else a cluster of its own started with `initdb`/`pg_ctl` (PostgreSQL's binaries must be
//! installed; without them the benchmark says so and measures nothing). BENCHMARKS.md, section 8.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/pg_support/mod.rs"]
mod pg_support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokengate_runtime::TokenType;
use tokengate_runtime::keys::{KeySpec, KeyVerifier, PostgresKeyStore};
use tokengate_runtime::verifier::{Credential, Verifier};

fn keys_postgres(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let Some((_cluster, url)) = rt.block_on(pg_support::database()) else {
        eprintln!("PostgreSQL is not available here: keys_postgres measured nothing");
        return;
    };
    let store = Arc::new(rt.block_on(PostgresKeyStore::connect(&url)).unwrap());
    // 299 000 rows with random hashes, so the index has its real depth, and 1 000 issued keys.
    rt.block_on(
        sqlx::query(
            "INSERT INTO tokengate_keys (id, kind, secret_hash, name, subject, scopes, claims, created_at) \
             SELECT 'ak_' || lpad(to_hex(i), 32, '0'), 'api_key', sha256(i::text::bytea), 'bench', \
             'user_' || i, '[\"read\"]', '{}', i FROM generate_series(1, 299000) AS i",
        )
        .execute(store.pool()),
    )
    .unwrap();
    rt.block_on(sqlx::query("ANALYZE tokengate_keys").execute(store.pool()))
        .unwrap();
    let verifier = KeyVerifier::builder(store)
        .cache_ttl(Duration::ZERO)
        .negative_cache_ttl(Duration::ZERO)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let secrets: Vec<String> = (0..1000)
        .map(|i| {
            let spec = KeySpec::api_key(format!("user_owner{i}"), "bench").scope("write:users");
            rt.block_on(verifier.issue(spec)).unwrap().secret.expose().to_string()
        })
        .collect();
    let mut group = c.benchmark_group("key_verify");
    group.bench_function("uncached_postgres_300k", |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % secrets.len();
            let credential = Credential::new_for_tests(black_box(&secrets[next]), TokenType::ApiKey);
            black_box(rt.block_on(verifier.verify(credential)).unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, keys_postgres);
criterion_main!(benches);
