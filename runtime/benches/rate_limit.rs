//! The cost of a rate-limit check: in process (a `governor` bucket in a bounded cache; one key
//! reused, and 100 000 keys in turn), and over Redis on loopback (one script call, one
//! round-trip; a `redis-server` of its own, skipped with a message when none is installed).
//!
//! Run: `cargo bench -p tokengate-runtime --bench rate_limit -- --warm-up-time 1 --measurement-time 3`.
//! The figures, the machine and what they mean: BENCHMARKS.md, section 9.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use tokengate_runtime::rate_limit::{OnRedisError, Rate, RateLimits};

#[path = "../tests/redis_support/mod.rs"]
mod redis_support;

/// Polls a future that must complete without waiting (the in-process check).
fn now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-process check must not wait"),
    }
}

fn rate_limits(c: &mut Criterion) {
    // High enough that no check is refused: the cost of counting, not of refusing.
    let rate: Rate = "1000000000/s".parse().unwrap();
    let local = RateLimits::in_process();
    let keys: Vec<String> = (0..100_000).map(|i| format!("route|{rate}|k:ak_{i:032}")).collect();
    c.bench_function("rate_limit/in_process/one_key", |b| {
        b.iter(|| now(local.check(black_box(&keys[0]), rate)).unwrap());
    });
    let mut i = 0;
    c.bench_function("rate_limit/in_process/100k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            now(local.check(black_box(&keys[i]), rate)).unwrap()
        });
    });

    let Some(redis) = redis_support::Redis::start() else {
        eprintln!("rate_limit/redis: SKIPPED, no redis-server");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let shared = rt
        .block_on(RateLimits::redis(&redis.url(), OnRedisError::Refuse))
        .unwrap();
    c.bench_function("rate_limit/redis_loopback/one_key", |b| {
        b.iter(|| rt.block_on(shared.check(black_box(&keys[0]), rate)).unwrap());
    });
}

criterion_group!(benches, rate_limits);
criterion_main!(benches);
