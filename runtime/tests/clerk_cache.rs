//! What tokengate adds to Clerk's SDK, proved by counting calls at the Backend API double:
//! one call for many concurrent requests, cached results that expire on time (TTL and the
//! token's own expiration), the revocation delay, negative caching, format checks before any
//! call, and the outstanding-call budget.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod clerk_support;

use std::sync::Arc;
use std::time::Duration;

use clerk_support::*;
use tokengate_runtime::clerk::{ClerkConfig, ClerkMachineVerifier, TokenShape};
use tokengate_runtime::rejection::InvalidReason;
use tokengate_runtime::verifier::Credential;
use tokengate_runtime::{Auth, TokenType, Verifier, VerifyError};

const TYPES: [TokenType; 3] = [TokenType::ApiKey, TokenType::M2mToken, TokenType::OAuthToken];

async fn verify(verifier: &ClerkMachineVerifier, t: TokenType, token: &str) -> Result<Auth, VerifyError> {
    verifier.verify(Credential::new_for_tests(token, t)).await
}

fn verifier_with(config: ClerkConfig) -> Arc<ClerkMachineVerifier> {
    Arc::new(ClerkMachineVerifier::new(config).unwrap())
}

fn in_an_hour() -> Option<i64> {
    Some(now_ms() + 3_600_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_requests_make_one_call() {
    let double = Double::start().await;
    let app = app(double.verifier());
    for t in TYPES {
        // Slow enough that all hundred requests are waiting on the same call.
        let reply = Reply::Slow(
            Duration::from_millis(200),
            Box::new(Reply::Resource(resource(t, in_an_hour()))),
        );
        let token = Arc::new(double.token(t, reply));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (app, token) = (app.clone(), token.clone());
                tokio::spawn(async move { call(&app, &token).await })
            })
            .collect();
        for task in tasks {
            let (status, _, body) = task.await.unwrap();
            assert_eq!(status, http::StatusCode::OK, "{t}: {body}");
            assert_eq!(body["tokenType"], t.to_string());
        }
        assert_eq!(double.calls(path_of(t)), 1, "{t}");
        // And the next request is served from the cache.
        assert_eq!(call(&app, &token).await.0, http::StatusCode::OK);
        assert_eq!(double.calls(path_of(t)), 1, "{t}");
    }
    double.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_no_cache_ttl_every_request_asks_but_concurrent_ones_share_a_call() {
    let double = Double::start().await;
    let verifier = verifier_with(double.config().with_cache_ttl(Duration::ZERO));
    let reply = Reply::Slow(
        Duration::from_millis(600),
        Box::new(Reply::Resource(resource(TokenType::ApiKey, in_an_hour()))),
    );
    let token = Arc::new(double.token(TokenType::ApiKey, reply));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            tokio::spawn(async move { verify(&verifier, TokenType::ApiKey, &token).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(double.calls(API_KEYS), 1);
    verify(&verifier, TokenType::ApiKey, &token).await.unwrap();
    verify(&verifier, TokenType::ApiKey, &token).await.unwrap();
    assert_eq!(double.calls(API_KEYS), 3);
}

#[tokio::test]
async fn a_cached_result_expires_on_time() {
    let double = Double::start().await;
    let verifier = verifier_with(double.config().with_cache_ttl(Duration::from_millis(1_000)));
    for t in TYPES {
        let token = double.token(t, Reply::Resource(resource(t, in_an_hour())));
        verify(&verifier, t, &token).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        verify(&verifier, t, &token).await.unwrap();
        assert_eq!(double.calls(path_of(t)), 1, "{t}: still cached");
        tokio::time::sleep(Duration::from_millis(750)).await;
        verify(&verifier, t, &token).await.unwrap();
        assert_eq!(double.calls(path_of(t)), 2, "{t}: the TTL passed");
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_once_the_cache_ttl_has_passed() {
    let double = Double::start().await;
    let ttl = Duration::from_millis(600);
    let verifier = verifier_with(double.config().with_cache_ttl(ttl));
    for t in TYPES {
        let live = resource(t, in_an_hour());
        let token = double.token(t, Reply::Resource(live.clone()));
        verify(&verifier, t, &token).await.unwrap();
        double.reply(&token, Reply::Resource(revoked(live)));
        // Within the TTL the cached result stands: this is the documented revocation delay.
        verify(&verifier, t, &token).await.unwrap();
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        let err = verify(&verifier, t, &token).await.unwrap_err();
        assert_eq!(err, VerifyError::Invalid(InvalidReason::Revoked), "{t}");
        assert_eq!(double.calls(path_of(t)), 2, "{t}");
    }
}

#[tokio::test]
async fn the_tokens_own_expiration_bounds_the_cache() {
    let double = Double::start().await;
    // A 30 s TTL, but the token expires in about a second.
    let verifier = double.verifier();
    for t in TYPES {
        let token = double.token(t, Reply::Resource(resource(t, Some(now_ms() + 1_500))));
        verify(&verifier, t, &token).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        let err = verify(&verifier, t, &token).await.unwrap_err();
        assert_eq!(err, VerifyError::Invalid(InvalidReason::Expired), "{t}");
        assert_eq!(
            double.calls(path_of(t)),
            2,
            "{t}: the entry left the cache when the token expired"
        );
    }
}

#[tokio::test]
async fn negative_results_are_cached_briefly_and_failures_not_at_all() {
    let double = Double::start().await;
    let negative = Duration::from_millis(1_000);
    let verifier = verifier_with(double.config().with_negative_ttl(negative));
    for t in TYPES {
        let unknown = token(t);
        for _ in 0..5 {
            let err = verify(&verifier, t, &unknown).await.unwrap_err();
            assert_eq!(err, VerifyError::Invalid(InvalidReason::UnknownToken));
        }
        assert_eq!(double.calls(path_of(t)), 1, "{t}: one 404 answers the retries");
        tokio::time::sleep(negative + Duration::from_millis(50)).await;
        verify(&verifier, t, &unknown).await.unwrap_err();
        assert_eq!(double.calls(path_of(t)), 2, "{t}: the negative TTL passed");

        let flaky = double.token(t, Reply::Status(500, None));
        assert!(matches!(
            verify(&verifier, t, &flaky).await,
            Err(VerifyError::Unavailable { .. })
        ));
        double.reply(&flaky, Reply::Resource(resource(t, in_an_hour())));
        verify(&verifier, t, &flaky).await.unwrap();
        assert_eq!(double.calls(path_of(t)), 4, "{t}: the 500 was not remembered");
    }
}

#[tokio::test]
async fn strings_clerk_cannot_have_issued_never_reach_the_api() {
    let double = Double::start().await;
    let verifier = double.verifier();
    let garbage = [
        (TokenType::ApiKey, "ak_".to_owned()),
        (TokenType::ApiKey, "ak_short".to_owned()),
        (TokenType::ApiKey, "ak_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!".to_owned()),
        (TokenType::ApiKey, format!("ak_{}", "a".repeat(300))),
        (TokenType::ApiKey, "ak_abcdefghijklmnop+/=".to_owned()),
        (TokenType::ApiKey, "ak_abcdefghijklmnopqrstuv~".to_owned()),
        (TokenType::ApiKey, "sk_abcdefghijklmnopqrstuvwxyz".to_owned()),
        (TokenType::M2mToken, "mt_tiny".to_owned()),
        (TokenType::M2mToken, "ak_abcdefghijklmnopqrstuvwxyz".to_owned()),
        (TokenType::OAuthToken, format!("oat_{}", "é".repeat(20))),
    ];
    for (t, token) in &garbage {
        let err = verify(&verifier, *t, token).await.unwrap_err();
        assert_eq!(err, VerifyError::Invalid(InvalidReason::Malformed), "{t} {token}");
    }
    assert_eq!(double.total_calls(), 0);
    // Through a router too: a flood of random `ak_` strings costs no API quota.
    let app = app(verifier);
    for i in 0..50 {
        let (status, _, _) = call(&app, &format!("ak_{i}")).await;
        assert_eq!(status, http::StatusCode::UNAUTHORIZED);
    }
    assert_eq!(double.total_calls(), 0);
    // The shape is configurable, and checked.
    let strict = double
        .config()
        .with_token_shape(TokenShape {
            min_len: 40,
            max_len: 40,
        })
        .unwrap();
    let strict = verifier_with(strict);
    let ok = token(TokenType::ApiKey); // 40 characters after `ak_`
    assert!(matches!(
        verify(&strict, TokenType::ApiKey, &ok).await,
        Err(VerifyError::Invalid(InvalidReason::UnknownToken))
    ));
    assert_eq!(double.total_calls(), 1);
    assert!(
        double
            .config()
            .with_token_shape(TokenShape { min_len: 9, max_len: 3 })
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_outstanding_call_budget_is_enforced() {
    let double = Double::start().await;
    let config = double
        .config()
        .with_max_outstanding_calls(2, Duration::from_secs(3))
        .unwrap();
    let verifier = verifier_with(config);
    let tokens: Vec<String> = (0..8)
        .map(|_| {
            let slow = Reply::Slow(
                Duration::from_millis(800),
                Box::new(Reply::Resource(resource(TokenType::ApiKey, in_an_hour()))),
            );
            double.token(TokenType::ApiKey, slow)
        })
        .collect();
    let tasks: Vec<_> = tokens
        .iter()
        .cloned()
        .map(|token| {
            let verifier = verifier.clone();
            tokio::spawn(async move { verify(&verifier, TokenType::ApiKey, &token).await })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(VerifyError::Busy { retry_after, .. }) => {
                assert_eq!(retry_after, Duration::from_secs(3));
                busy += 1;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, busy), (2, 6));
    assert_eq!(double.total_calls(), 2);
    assert_eq!(double.max_in_flight(), 2);
    // The budget is given back: the refused tokens verify once calls finished.
    verify(&verifier, TokenType::ApiKey, &tokens[7])
        .await
        .unwrap_or_else(|_| {
            panic!("budget not released");
        });
    // Through a router, an exhausted budget is a 503 with Retry-After.
    let app = app(verifier.clone());
    let slow = Reply::Slow(Duration::from_millis(800), Box::new(Reply::NotFound));
    let (a, b, c) = (
        double.token(TokenType::ApiKey, slow.clone()),
        double.token(TokenType::ApiKey, slow.clone()),
        double.token(TokenType::ApiKey, slow),
    );
    let (ra, rb, rc) = tokio::join!(call(&app, &a), call(&app, &b), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        call(&app, &c).await
    });
    assert_eq!(ra.0, http::StatusCode::UNAUTHORIZED);
    assert_eq!(rb.0, http::StatusCode::UNAUTHORIZED);
    assert_eq!(rc.0, http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rc.1.as_deref(), Some("3"));
}

/// Clerk's verdict cache and Backend API calls by outcome, read back from the Prometheus
/// exporter: a first verification calls, the next two are hits; a `500` is a call that failed.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn cache_and_calls_are_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let double = Double::start().await;
    let verifier = double.verifier();
    let t = TokenType::ApiKey;
    let token = double.token(t, Reply::Resource(resource(t, in_an_hour())));
    for _ in 0..3 {
        verify(&verifier, t, &token).await.unwrap();
    }
    let failing = double.token(t, Reply::Status(500, None));
    assert!(matches!(
        verify(&verifier, t, &failing).await,
        Err(VerifyError::Unavailable { .. })
    ));
    let text = prometheus.render();
    for line in [
        r#"tokengate_cache_lookups_total{cache="clerk",result="hit"} 2"#,
        r#"tokengate_cache_lookups_total{cache="clerk",result="miss"} 2"#,
        r#"tokengate_backend_calls_total{backend="clerk",outcome="ok"} 1"#,
        r#"tokengate_backend_calls_total{backend="clerk",outcome="error"} 1"#,
        r#"tokengate_backend_calls_in_flight{backend="clerk"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(!text.contains(&token), "{text}");
}
