//! RFC 7662 introspection against a loopback authorization server built to the spec: active,
//! inactive, malformed, slow, failing and oversized answers, answers that name a member twice,
//! the checks on `exp`, `aud` and `iss`, the cache bound by `exp`, and one request for many
//! concurrent lookups. Floods of unknown tokens: `floods.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use tokengate_runtime::introspection::IntrospectionConfig;
use tokengate_runtime::keys::now_unix;
use tokengate_runtime::rejection::InvalidReason;
use tokengate_runtime::verifier::{Credential, Verifier};
use tokengate_runtime::{
    IntrospectionVerifier, Match, Policy, Requirement, RequirementKind, TokenGate, TokenType, TokenTypes, VerifyError,
};

const CLIENT_ID: &str = "api-client";
const CLIENT_SECRET: &str = "s3cr3t:with%chars";

#[derive(Clone)]
struct Server {
    requests: Arc<Mutex<HashMap<String, usize>>>,
    /// `tok-short` expires two seconds after the server started, however often it is asked.
    short_exp: i64,
}

impl Server {
    fn count(&self, token: &str) -> usize {
        self.requests.lock().unwrap().get(token).copied().unwrap_or(0)
    }
}

fn raw(text: &str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text.to_owned()).into_response()
}

fn json(value: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

async fn introspect(State(server): State<Server>, headers: HeaderMap, body: String) -> Response {
    // RFC 6749 §2.3.1: form-urlencoded id and secret, then Basic.
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("api-client:s3cr3t%3Awith%25chars")
    );
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "bad client credentials").into_response();
    }
    if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) != Some("application/x-www-form-urlencoded") {
        return (StatusCode::BAD_REQUEST, "not a form").into_response();
    }
    let form: HashMap<&str, &str> = body.split('&').filter_map(|pair| pair.split_once('=')).collect();
    if form.get("token_type_hint") != Some(&"access_token") {
        return (StatusCode::BAD_REQUEST, "no token_type_hint").into_response();
    }
    let Some(token) = form.get("token").map(|t| t.to_string()) else {
        return (StatusCode::BAD_REQUEST, "no token").into_response();
    };
    *server.requests.lock().unwrap().entry(token.clone()).or_default() += 1;
    let now = now_unix();
    let active = |extra: serde_json::Value| {
        let mut body = serde_json::json!({
            "active": true,
            "scope": "read:users write:users",
            "sub": "user_42",
            "client_id": "dashboard",
            "jti": "tok-1",
            "iss": "https://issuer.example",
            "aud": ["https://api.example", "other"],
            "exp": now + 3600,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        json(body)
    };
    match token.as_str() {
        "tok-active" | "tok-gate" => active(serde_json::json!({})),
        "tok-inactive" => json(serde_json::json!({"active": false})),
        "tok-string-active" => json(serde_json::json!({"active": "true", "sub": "user_42"})),
        "tok-malformed" => ([(header::CONTENT_TYPE, "text/html")], "<html>oops</html>").into_response(),
        "tok-array" => json(serde_json::json!([{"active": true}])),
        "tok-slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            active(serde_json::json!({}))
        }
        "tok-fail" => (StatusCode::INTERNAL_SERVER_ERROR, "database down").into_response(),
        "tok-redirect" => (StatusCode::FOUND, [(header::LOCATION, "http://127.0.0.1:1/")]).into_response(),
        "tok-huge" => active(serde_json::json!({"padding": "x".repeat(100_000)})),
        "tok-expired" => active(serde_json::json!({"exp": now - 10})),
        "tok-short" => active(serde_json::json!({"exp": server.short_exp})),
        "tok-wrong-aud" => active(serde_json::json!({"aud": "https://elsewhere.example"})),
        "tok-wrong-iss" => active(serde_json::json!({"iss": "https://evil.example"})),
        "tok-bad-scope" => active(serde_json::json!({"scope": ["read"]})),
        "tok-refresh" => active(serde_json::json!({"token_type": "refresh_token"})),
        "tok-mfa" => active(serde_json::json!({"acr": "mfa", "auth_time": now - 30})),
        "tok-mfa-old" => active(serde_json::json!({"acr": "mfa", "auth_time": now - 3000})),
        "tok-bad-acr" => active(serde_json::json!({"acr": ["mfa"]})),
        "tok-bad-auth-time" => active(serde_json::json!({"acr": "mfa", "auth_time": "yesterday"})),
        // Two readings of one answer: a parser that keeps the last member sees an active token.
        "tok-duplicate" => raw(r#"{"active": false, "sub": "user_42", "active": true}"#),
        "tok-duplicate-nested" => raw(&format!(
            r#"{{"active": true, "sub": "user_42", "exp": {}, "ext": {{"role": "user", "role": "admin"}}}}"#,
            now + 3600
        )),
        "tok-concurrent" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            active(serde_json::json!({}))
        }
        _ => json(serde_json::json!({"active": false})),
    }
}

async fn start() -> (Server, SocketAddr) {
    let server = Server {
        requests: Arc::default(),
        short_exp: now_unix() + 2,
    };
    let app = Router::new()
        .route("/introspect", post(introspect))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (server, addr)
}

fn config(addr: SocketAddr) -> IntrospectionConfig {
    IntrospectionConfig::new(format!("http://{addr}/introspect"), CLIENT_ID, CLIENT_SECRET)
        .audience("https://api.example")
        .issuer("https://issuer.example")
        .timeout(Duration::from_millis(500))
}

async fn check(verifier: &IntrospectionVerifier, token: &str) -> Result<tokengate_runtime::Auth, VerifyError> {
    verifier
        .verify(Credential::new_for_tests(token, TokenType::OAuthToken))
        .await
}

fn unavailable(result: Result<tokengate_runtime::Auth, VerifyError>) -> String {
    match result {
        Err(VerifyError::Unavailable { detail, .. }) => detail,
        other => panic!("expected a 503, got {other:?}"),
    }
}

#[tokio::test]
async fn an_active_token_is_accepted_and_cached() {
    let (server, addr) = start().await;
    let verifier = IntrospectionVerifier::new(config(addr)).unwrap();
    let auth = check(&verifier, "tok-active").await.unwrap();
    assert_eq!(auth.token_type, TokenType::OAuthToken);
    assert_eq!(auth.subject.as_deref(), Some("user_42"));
    assert_eq!(auth.user_id.as_deref(), Some("user_42"));
    assert_eq!(auth.client_id.as_deref(), Some("dashboard"));
    assert_eq!(auth.id.as_deref(), Some("tok-1"));
    assert_eq!(auth.scopes, ["read:users", "write:users"]);
    assert!(auth.expiration.unwrap() > now_unix());
    for _ in 0..5 {
        check(&verifier, "tok-active").await.unwrap();
    }
    assert_eq!(server.count("tok-active"), 1, "the result is cached");
}

/// RFC 9470 step-up on an introspected token: `acr` and `auth_time` are kept, of their types.
#[tokio::test]
async fn introspected_acr_and_auth_time_meet_a_step_up_policy() {
    let (_server, addr) = start().await;
    let verifier = IntrospectionVerifier::new(config(addr)).unwrap();
    let policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::OAuthToken))
        .require(Requirement::new(RequirementKind::Acr, Match::Any, ["mfa"]).unwrap())
        .require(Requirement::new(RequirementKind::MaxAge, Match::All, ["600"]).unwrap());
    let fresh = check(&verifier, "tok-mfa").await.unwrap();
    assert_eq!(fresh.claims["acr"], "mfa");
    assert!(policy.check(&fresh).is_ok());
    let old = check(&verifier, "tok-mfa-old").await.unwrap();
    match policy.check(&old) {
        Err(tokengate_runtime::Rejection::InsufficientUserAuthentication(s)) => {
            assert_eq!((s.max_age, s.stale), (Some(600), true));
        }
        other => panic!("{other:?}"),
    }
    let plain = check(&verifier, "tok-active").await.unwrap();
    assert!(policy.check(&plain).is_err(), "no acr");
    for malformed in ["tok-bad-acr", "tok-bad-auth-time"] {
        let refused = check(&verifier, malformed).await.unwrap_err();
        assert!(
            matches!(refused, VerifyError::Invalid(InvalidReason::InvalidClaims)),
            "{malformed}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn inactive_and_invalid_answers_are_refused() {
    let (server, addr) = start().await;
    let verifier = IntrospectionVerifier::new(config(addr)).unwrap();
    let refused = |reason| Err::<(), _>(VerifyError::Invalid(reason));
    let cases = [
        ("tok-inactive", InvalidReason::Inactive),
        ("tok-string-active", InvalidReason::Inactive),
        ("tok-unknown", InvalidReason::Inactive),
        ("tok-expired", InvalidReason::Expired),
        ("tok-wrong-aud", InvalidReason::WrongAudience),
        ("tok-wrong-iss", InvalidReason::WrongIssuer),
        ("tok-bad-scope", InvalidReason::InvalidClaims),
        ("tok-refresh", InvalidReason::WrongType),
        ("tok-duplicate", InvalidReason::InvalidClaims),
        ("tok-duplicate-nested", InvalidReason::InvalidClaims),
    ];
    for (token, reason) in cases {
        assert_eq!(check(&verifier, token).await.map(drop), refused(reason), "{token}");
        // Negative results are cached briefly too.
        assert_eq!(check(&verifier, token).await.map(drop), refused(reason), "{token}");
        assert_eq!(server.count(token), 1, "{token}");
    }
    // Without configured aud/iss, those are not checked.
    let lax = IntrospectionVerifier::new(IntrospectionConfig::new(
        format!("http://{addr}/introspect"),
        CLIENT_ID,
        CLIENT_SECRET,
    ))
    .unwrap();
    check(&lax, "tok-wrong-aud").await.unwrap();
    check(&lax, "tok-wrong-iss").await.unwrap();
}

#[tokio::test]
async fn malformed_slow_failing_and_oversized_answers_are_503() {
    let (server, addr) = start().await;
    let verifier = IntrospectionVerifier::new(config(addr)).unwrap();
    assert!(unavailable(check(&verifier, "tok-malformed").await).contains("not a JSON object"));
    assert!(unavailable(check(&verifier, "tok-array").await).contains("not a JSON object"));
    assert!(unavailable(check(&verifier, "tok-fail").await).contains("500"));
    assert!(unavailable(check(&verifier, "tok-redirect").await).contains("302"));
    assert!(unavailable(check(&verifier, "tok-huge").await).contains("larger than"));
    let started = std::time::Instant::now();
    let detail = unavailable(check(&verifier, "tok-slow").await);
    assert!(detail.contains("timed out"), "{detail}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Failures are not cached: the next call asks again.
    let _ = check(&verifier, "tok-fail").await;
    assert_eq!(server.count("tok-fail"), 2);

    // Wrong client credentials: the server says 401, which is our misconfiguration → 503.
    let wrong = IntrospectionVerifier::new(IntrospectionConfig::new(
        format!("http://{addr}/introspect"),
        CLIENT_ID,
        "wrong",
    ))
    .unwrap();
    assert!(unavailable(check(&wrong, "tok-active").await).contains("401"));

    // Nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let nowhere = IntrospectionVerifier::new(config(closed)).unwrap();
    unavailable(check(&nowhere, "tok-active").await);
}

#[tokio::test]
async fn the_cache_never_outlives_the_token() {
    let (server, addr) = start().await;
    let verifier = IntrospectionVerifier::new(config(addr).cache_ttl(Duration::from_secs(3600))).unwrap();
    let auth = check(&verifier, "tok-short").await.unwrap();
    assert_eq!(auth.expiration, Some(server.short_exp));
    tokio::time::sleep(Duration::from_millis(3100)).await;
    // The entry expired with the token (min(TTL, exp − now)): asked again, now expired.
    assert_eq!(
        check(&verifier, "tok-short").await.map(drop),
        Err(VerifyError::Invalid(InvalidReason::Expired))
    );
    assert_eq!(server.count("tok-short"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_of_one_token_make_one_request() {
    let (server, addr) = start().await;
    let verifier = Arc::new(IntrospectionVerifier::new(config(addr)).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let verifier = verifier.clone();
        tasks.push(tokio::spawn(async move { check(&verifier, "tok-concurrent").await }));
    }
    for task in tasks {
        let auth = task.await.unwrap().unwrap();
        assert_eq!(auth.subject.as_deref(), Some("user_42"));
    }
    assert_eq!(server.count("tok-concurrent"), 1);
}

#[tokio::test]
async fn opaque_tokens_through_the_gate() {
    let (server, addr) = start().await;
    let verifier = Arc::new(IntrospectionVerifier::new(config(addr)).unwrap());
    let gate = TokenGate::builder()
        .verifier(TokenType::OAuthToken, verifier)
        .opaque_oauth_tokens(true)
        .build()
        .unwrap();
    let policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::OAuthToken))
        .require(Requirement::new(RequirementKind::Scope, Match::All, ["write:users"]).unwrap());
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(header::AUTHORIZATION, "Bearer tok-gate".parse().unwrap());
    let auth = gate.authorize(&headers, &Default::default(), &policy).await.unwrap();
    assert_eq!(auth.user_id.as_deref(), Some("user_42"));
    headers.insert(header::AUTHORIZATION, "Bearer tok-fail".parse().unwrap());
    let rejection = gate
        .authorize(&headers, &Default::default(), &policy)
        .await
        .unwrap_err();
    assert_eq!(rejection.status(), 503);
    assert_eq!(server.count("tok-gate"), 1);
}

#[test]
fn configuration_mistakes_are_explained_and_the_secret_redacted() {
    let config = IntrospectionConfig::new("https://auth.example/introspect", CLIENT_ID, CLIENT_SECRET);
    let debug = format!("{config:?}");
    assert!(
        !debug.contains(CLIENT_SECRET) && debug.contains("<redacted>"),
        "{debug}"
    );
    let verifier = IntrospectionVerifier::new(config).unwrap();
    assert!(!format!("{verifier:?}").contains(CLIENT_SECRET));

    let err = |c: IntrospectionConfig| IntrospectionVerifier::new(c).unwrap_err().to_string();
    assert!(err(IntrospectionConfig::new("http://auth.example/introspect", "a", "b")).contains("https"));
    assert!(err(IntrospectionConfig::new("not a url", "a", "b")).contains("not a valid URL"));
    assert!(err(IntrospectionConfig::new("https://auth.example/i", "", "b")).contains("empty"));
    assert!(err(IntrospectionConfig::new("https://u:p@auth.example/i", "a", "b")).contains("client_id"));
    IntrospectionVerifier::new(IntrospectionConfig::new("http://localhost:9/i", "a", "b")).unwrap();
    IntrospectionVerifier::new(IntrospectionConfig::new("http://[::1]:9/i", "a", "b")).unwrap();
}

/// The introspection cache's hits and misses and the endpoint's calls by outcome, read back
/// from the Prometheus exporter.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn cache_and_calls_are_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (server, addr) = start().await;
    let verifier = IntrospectionVerifier::new(config(addr)).unwrap();
    for _ in 0..3 {
        check(&verifier, "tok-active").await.unwrap();
    }
    unavailable(check(&verifier, "tok-fail").await);
    assert_eq!((server.count("tok-active"), server.count("tok-fail")), (1, 1));
    let text = prometheus.render();
    for line in [
        r#"tokengate_cache_lookups_total{cache="introspection",result="hit"} 2"#,
        r#"tokengate_cache_lookups_total{cache="introspection",result="miss"} 2"#,
        r#"tokengate_backend_calls_total{backend="introspection",outcome="ok"} 1"#,
        r#"tokengate_backend_calls_total{backend="introspection",outcome="error"} 1"#,
        r#"tokengate_backend_calls_in_flight{backend="introspection"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(!text.contains("tok-active") && !text.contains(CLIENT_SECRET), "{text}");
}
