//! Recording a decision and a cache hit allocates nothing in tokengate: a cached API key
//! through `TokenGate::authorize` makes as many allocations with a recorder installed as
//! without one (counted on this thread by `allocation-counter`'s allocator). The Prometheus
//! exporter's recorder itself allocates one `Arc` per update (its generational storage wraps
//! the handle it returns): two per cached request, counted here so a change shows.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use http::{Extensions, HeaderMap, HeaderValue, header};
use tokengate_runtime::keys::{KeySpec, KeyVerifier, MemoryKeyStore};
use tokengate_runtime::{Policy, TokenGate, TokenType, TokenTypes};

fn now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a cached key must not wait"),
    }
}

/// A recorder that allocates nothing: every counter is one shared atomic.
struct Tally(Arc<AtomicU64>);

impl Recorder for Tally {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::clone(&self.0))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Allocations on this thread for `n` authorizations of the cached key.
fn allocations(gate: &TokenGate, headers: &HeaderMap, policy: &Policy, n: usize) -> usize {
    let extensions = Extensions::new();
    let mut accepted = 0;
    let info = allocation_counter::measure(|| {
        for _ in 0..n {
            accepted += usize::from(now(gate.authorize(headers, &extensions, policy)).is_ok());
        }
    });
    assert_eq!(accepted, n);
    usize::try_from(info.count_total).unwrap()
}

#[tokio::test]
async fn a_cached_decision_allocates_nothing_for_its_metrics() {
    let keys = Arc::new(KeyVerifier::new(Arc::new(MemoryKeyStore::new())));
    let issued = keys.issue(KeySpec::api_key("user_1", "k")).await.unwrap();
    let gate = TokenGate::builder().verifier(TokenType::ApiKey, keys).build().unwrap();
    let policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey));
    let mut headers = HeaderMap::new();
    let bearer = format!("Bearer {}", issued.secret.expose());
    headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&bearer).unwrap());
    // The key's first use reads the store; from then on it is a cache hit.
    gate.authorize(&headers, &Extensions::new(), &policy).await.unwrap();

    const N: usize = 2_000;
    let without = allocations(&gate, &headers, &policy, N);

    // A recorder that allocates nothing itself: tokengate adds no allocation either.
    let tally = Tally(Arc::default());
    let with_tally = {
        let _local = metrics::set_default_local_recorder(&tally);
        now(gate.authorize(&headers, &Extensions::new(), &policy)).unwrap();
        allocations(&gate, &headers, &policy, N)
    };
    // A decision and a cache hit per request.
    assert_eq!(tally.0.load(Ordering::Relaxed), 2 * (N as u64 + 1));
    // The key's `last_used_at` is noted at most once a second (an allocation or two when a
    // second turns during a phase); anything per request would show as thousands.
    assert!(
        with_tally <= without + 4,
        "{with_tally} allocations with a recorder, {without} without, for {N} requests"
    );

    // The Prometheus exporter: its own `Arc` per update, nothing more.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    let with_prometheus = {
        let _local = metrics::set_default_local_recorder(&recorder);
        // The first decision makes the recorder's series; the measured ones only update them.
        now(gate.authorize(&headers, &Extensions::new(), &policy)).unwrap();
        allocations(&gate, &headers, &policy, N)
    };
    let text = prometheus.render();
    let series =
        r#"tokengate_decisions_total{route="TokenGate::authorize",token_type="api_key",outcome="allowed",reason="ok"}"#;
    assert!(
        text.contains(&format!("{series} {}", N + 1)),
        "the recorder saw them:\n{text}"
    );
    assert!(
        with_prometheus.abs_diff(without + 2 * N) <= 4,
        "{with_prometheus} allocations with the Prometheus recorder, {without} without, for {N} requests"
    );
}
