//! `#[rate_limit]` through tokengate's router with real API keys (an in-memory key store):
//! per key, per subject, limited to a token type, counted only after every other check, the
//! IETF headers on every answer; counts shared by two gates ("instances") through a real Redis
//! server on loopback, and what a limited route does while Redis is down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use serde_json::Value;
use tokengate::keys::{KeyChange, KeySpec, KeyUpdate, KeyVerifier, MemoryKeyStore};
use tokengate::rate_limit::{OnRedisError, RateLimits};
use tokengate::routing::{Router, get};
use tokengate::{Auth, TokenGate, TokenType, accepts_token, rate_limit, require_scope};
use tower::ServiceExt as _;

#[path = "../runtime/tests/redis_support/mod.rs"]
mod redis_support;

#[accepts_token(api_key)]
#[rate_limit("3/min")]
async fn per_key(auth: Auth) -> String {
    auth.id.as_deref().unwrap_or_default().to_owned()
}

#[accepts_token(api_key, m2m_token)]
#[rate_limit(api_key: "2/min", per = subject)]
async fn per_subject() -> &'static str {
    "ok"
}

#[accepts_token(api_key)]
#[require_scope("write")]
#[rate_limit("1/min")]
async fn scoped() -> &'static str {
    "ok"
}

#[accepts_token(api_key)]
async fn unlimited() -> &'static str {
    "ok"
}

struct App {
    router: axum::Router,
    keys: Arc<KeyVerifier>,
}

fn app(keys: Arc<KeyVerifier>, limits: RateLimits) -> App {
    let gate = TokenGate::builder()
        .verifier(TokenType::ApiKey, keys.clone())
        .verifier(TokenType::M2mToken, keys.clone())
        .rate_limits(limits)
        .build()
        .unwrap();
    let router = Router::new()
        .route("/per-key", get(per_key))
        .route("/per-subject", get(per_subject))
        .route("/scoped", get(scoped))
        .route("/unlimited", get(unlimited))
        .with_state(gate)
        .into_axum();
    App { router, keys }
}

fn memory_keys() -> Arc<KeyVerifier> {
    Arc::new(KeyVerifier::new(Arc::new(MemoryKeyStore::new())))
}

struct Answer {
    status: StatusCode,
    policy: Option<String>,
    current: Option<String>,
    retry_after: Option<u64>,
    body: Value,
}

async fn call(app: &App, path: &str, secret: &str) -> Answer {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {secret}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (status, policy, current) = (response.status(), header("ratelimit-policy"), header("ratelimit"));
    let retry_after = header("retry-after").map(|v| v.parse().unwrap());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        policy,
        current,
        retry_after,
        body,
    }
}

async fn key(app: &App, subject: &str, scopes: &[&str]) -> String {
    let spec = KeySpec::api_key(subject, "test").scopes(scopes.iter().copied());
    app.keys.issue(spec).await.unwrap().secret.expose().to_owned()
}

#[tokio::test]
async fn each_key_gets_its_own_quota_with_headers_on_every_answer() {
    let app = app(memory_keys(), RateLimits::in_process());
    let (a, b) = (key(&app, "user_1", &[]).await, key(&app, "user_1", &[]).await);
    for remaining in [2, 1, 0] {
        let ok = call(&app, "/per-key", &a).await;
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.policy.as_deref(), Some("\"3/min\";q=3;w=60"));
        let current = ok.current.unwrap();
        assert!(current.starts_with(&format!("\"3/min\";r={remaining};t=")), "{current}");
    }
    let refused = call(&app, "/per-key", &a).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["reason"], "rate-limited");
    let wait = refused.retry_after.unwrap();
    assert!((1..=20).contains(&wait), "Retry-After {wait}");
    assert!(refused.current.unwrap().starts_with("\"3/min\";r=0;t="));
    // Another key of the same subject counts alone.
    assert_eq!(call(&app, "/per-key", &b).await.status, StatusCode::OK);
}

#[tokio::test]
async fn per_subject_limits_share_a_quota_and_type_limits_hold() {
    let app = app(memory_keys(), RateLimits::in_process());
    let (a1, a2) = (key(&app, "user_1", &[]).await, key(&app, "user_1", &[]).await);
    let other = key(&app, "user_2", &[]).await;
    assert_eq!(call(&app, "/per-subject", &a1).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/per-subject", &a2).await.status, StatusCode::OK);
    assert_eq!(
        call(&app, "/per-subject", &a1).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(call(&app, "/per-subject", &other).await.status, StatusCode::OK);
    // The limit is for API keys: an M2M token of the same subject is not counted.
    let machine = app.keys.issue(KeySpec::m2m_token("user_1", "worker")).await.unwrap();
    for _ in 0..5 {
        let answer = call(&app, "/per-subject", machine.secret.expose()).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.current.is_none());
    }
}

#[tokio::test]
async fn refused_requests_spend_no_quota() {
    let app = app(memory_keys(), RateLimits::in_process());
    let secret = key(&app, "user_1", &[]).await;
    for _ in 0..3 {
        let answer = call(&app, "/scoped", &secret).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert!(answer.current.is_none(), "a refusal for a scope is not counted");
    }
    let id = app.keys.store().list(None).await.unwrap()[0].id.clone();
    let add = KeyChange::Update(KeyUpdate::new().add_scope("write"));
    app.keys.change(&id, &add, "test").await.unwrap();
    assert_eq!(call(&app, "/scoped", &secret).await.status, StatusCode::OK);
    assert_eq!(
        call(&app, "/scoped", &secret).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_key_of_its_own_limit_is_counted_on_every_route() {
    let app = app(memory_keys(), RateLimits::in_process());
    let spec = KeySpec::api_key("user_1", "metered").rate_limit("2/min".parse().unwrap());
    let issued = app.keys.issue(spec).await.unwrap();
    let secret = issued.secret.expose();
    assert_eq!(call(&app, "/unlimited", secret).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/per-key", secret).await.status, StatusCode::OK);
    // Its own 2/min is spent across both routes, though /per-key allows 3.
    let refused = call(&app, "/unlimited", secret).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.policy.as_deref(), Some("\"2/min\";q=2;w=60"));
    assert_eq!(
        call(&app, "/per-key", secret).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another key without a limit of its own is not affected.
    let free = key(&app, "user_1", &[]).await;
    for _ in 0..5 {
        assert_eq!(call(&app, "/unlimited", &free).await.status, StatusCode::OK);
    }
    // Removing the key's limit is seen at once by this process.
    let remove = KeyChange::Update(KeyUpdate::new().rate_limit(None));
    app.keys.change(&issued.record.id, &remove, "ops").await.unwrap();
    assert_eq!(call(&app, "/unlimited", secret).await.status, StatusCode::OK);
}

#[tokio::test]
async fn two_instances_share_their_counts_through_redis() {
    let Some(_redis) = redis_support::Redis::start() else {
        return;
    };
    let url = _redis.url();
    let keys = memory_keys();
    let one = app(
        keys.clone(),
        RateLimits::redis(&url, OnRedisError::Refuse).await.unwrap(),
    );
    let two = app(keys, RateLimits::redis(&url, OnRedisError::Refuse).await.unwrap());
    let secret = key(&one, "user_1", &[]).await;
    let mut admitted = 0;
    for i in 0..10 {
        let instance = if i % 2 == 0 { &one } else { &two };
        let answer = call(instance, "/per-key", &secret).await;
        if answer.status == StatusCode::OK {
            admitted += 1;
        } else {
            assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
            assert!(answer.retry_after.is_some_and(|s| (1..=20).contains(&s)));
        }
    }
    assert_eq!(admitted, 3, "both instances together stay within 3/min");
}

#[tokio::test]
async fn redis_down_refuses_or_admits_as_configured_and_recovers() {
    let Some(mut redis) = redis_support::Redis::start() else {
        return;
    };
    let url = redis.url();
    let keys = memory_keys();
    let strict = app(
        keys.clone(),
        RateLimits::redis(&url, OnRedisError::Refuse).await.unwrap(),
    );
    let lenient = app(keys, RateLimits::redis(&url, OnRedisError::Allow).await.unwrap());
    let secret = key(&strict, "user_1", &[]).await;
    assert_eq!(call(&strict, "/per-key", &secret).await.status, StatusCode::OK);

    redis.stop();
    let refused = call(&strict, "/per-key", &secret).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.body["reason"], "rate-limiter-unavailable");
    assert_eq!(refused.retry_after, Some(1));
    assert_eq!(call(&lenient, "/per-key", &secret).await.status, StatusCode::OK);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&strict, "/per-key", &secret).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "the limiter did not reconnect to Redis");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn the_report_and_openapi_show_each_limit() {
    let report = Router::<TokenGate>::new()
        .route("/per-key", get(per_key))
        .route("/per-subject", get(per_subject))
        .report();
    let text = report.render(tokengate::report::Format::Markdown);
    assert!(text.contains("rate limit `3/min` per key (for api_key)"), "{text}");
    assert!(text.contains("rate limit `2/min` per subject (for api_key)"), "{text}");
    let openapi = report.openapi();
    let op = &openapi["paths"]["/per-subject"]["get"];
    assert_eq!(op["x-tokengate-rate-limits"][0]["rate"], "2/min");
    assert_eq!(op["x-tokengate-rate-limits"][0]["per"], "subject");
    assert!(op["responses"]["429"]["description"].is_string());
}
