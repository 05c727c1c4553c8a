//! Clerk machine tokens through a real router and the Backend API double: valid, revoked,
//! expired, unknown, wrong secret key, rate-limited, slow, failing and malformed answers, for
//! each of `ak_`, `mt_` and `oat_`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod clerk_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clerk_support::*;
use http::StatusCode;
use serde_json::json;
use tokengate_runtime::clerk::{ClerkConfig, ClerkMachineVerifier};
use tokengate_runtime::rejection::InvalidReason;
use tokengate_runtime::verifier::Credential;
use tokengate_runtime::{AuthInfo, StaticVerifier, TokenType, Verifier, VerifyError};

const TYPES: [TokenType; 3] = [TokenType::ApiKey, TokenType::M2mToken, TokenType::OAuthToken];

fn in_an_hour() -> Option<i64> {
    Some(now_ms() + 3_600_000)
}

#[tokio::test]
async fn valid_tokens_map_to_auth() {
    let double = Double::start().await;
    let app = app(double.verifier());
    let exp = now_ms() + 3_600_000;

    let key = double.token(
        TokenType::ApiKey,
        Reply::Resource(resource(TokenType::ApiKey, Some(exp))),
    );
    let (status, _, body) = call(&app, &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tokenType"], "api_key");
    assert!(body["id"].as_str().unwrap().starts_with("ak_"));
    assert_eq!(body["subject"], USER);
    assert_eq!(body["userId"], USER);
    assert_eq!(body["orgId"], json!(null));
    assert_eq!(body["name"], "BILLING_SERVICE");
    assert_eq!(body["scopes"], json!(["read:invoices", "write:invoices"]));
    assert_eq!(body["claims"], json!({"tier": "gold"}));
    assert_eq!(body["expiration"], json!(exp / 1000), "milliseconds become seconds");

    let mut org_key = resource(TokenType::ApiKey, None);
    org_key["subject"] = json!(ORG);
    org_key["claims"] = json!(null);
    let key = double.token(TokenType::ApiKey, Reply::Resource(org_key));
    let (status, _, body) = call(&app, &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["orgId"], ORG);
    assert_eq!(body["userId"], json!(null));
    assert_eq!(body["expiration"], json!(null));
    assert_eq!(body["claims"], json!({}));

    let m2m = double.token(
        TokenType::M2mToken,
        Reply::Resource(resource(TokenType::M2mToken, Some(exp))),
    );
    let (status, _, body) = call(&app, &m2m).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tokenType"], "m2m_token");
    assert_eq!(body["machineId"], MACHINE);
    assert_eq!(body["scopes"], json!([OTHER_MACHINE]));
    assert_eq!(body["claims"], json!({"region": "eu"}));

    let oat = double.token(
        TokenType::OAuthToken,
        Reply::Resource(resource(TokenType::OAuthToken, Some(exp))),
    );
    let (status, _, body) = call(&app, &oat).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tokenType"], "oauth_token");
    assert_eq!(body["clientId"], "client_2xhFjEI5X2qWRvtV13BzSj8H6Dk");
    assert_eq!(body["userId"], USER);
    assert_eq!(body["scopes"], json!(["profile", "email"]));

    assert_eq!(double.calls(API_KEYS), 2);
    assert_eq!(double.calls(M2M), 1);
    assert_eq!(double.calls(OAUTH), 1);
    double.assert_no_violations();
}

async fn assert_invalid(app: &axum::Router, token: &str, reason: InvalidReason) {
    let (status, _, body) = call(app, token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["reason"], reason.as_str(), "{body}");
}

#[tokio::test]
async fn a_200_that_says_revoked_or_expired_is_refused() {
    let double = Double::start().await;
    let app = app(double.verifier());
    for t in TYPES {
        let token = double.token(t, Reply::Resource(revoked(resource(t, in_an_hour()))));
        assert_invalid(&app, &token, InvalidReason::Revoked).await;
        let token = double.token(t, Reply::Resource(expired(resource(t, in_an_hour()))));
        assert_invalid(&app, &token, InvalidReason::Expired).await;
        // The flag says valid but the expiration is in the past.
        let token = double.token(t, Reply::Resource(resource(t, Some(now_ms() - 1_000))));
        assert_invalid(&app, &token, InvalidReason::Expired).await;
        assert_eq!(double.calls(path_of(t)), 3, "{t}");
    }
    let token = double.token(TokenType::OAuthToken, Reply::Inactive);
    assert_invalid(&app, &token, InvalidReason::Inactive).await;
    double.assert_no_violations();
}

#[tokio::test]
async fn unknown_tokens_are_invalid() {
    let double = Double::start().await;
    let app = app(double.verifier());
    for t in TYPES {
        // Never registered: the double answers 404.
        assert_invalid(&app, &token(t), InvalidReason::UnknownToken).await;
        assert_eq!(double.calls(path_of(t)), 1, "{t}");
    }
    double.assert_no_violations();
}

#[tokio::test]
async fn forbidden_is_a_configuration_error_too() {
    let double = Double::start().await;
    let verifier = double.verifier();
    for t in TYPES {
        let token = double.token(t, Reply::Status(403, None));
        let err = verifier.verify(Credential::new_for_tests(&token, t)).await.unwrap_err();
        assert!(
            matches!(&err, VerifyError::Misconfigured(d) if d.contains("403")),
            "{t}: {err:?}"
        );
    }
    let app = app(verifier);
    let token = double.token(TokenType::ApiKey, Reply::Status(403, None));
    assert_eq!(call(&app, &token).await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_machine_secret_key_verifies_m2m_tokens() {
    let double = Double::start_with_machine_secret().await;
    let config = ClerkConfig::new(WRONG_SECRET)
        .unwrap()
        .with_api_url(&double.url)
        .unwrap()
        .with_machine_secret_key(MACHINE_SECRET)
        .unwrap();
    let app = app(Arc::new(ClerkMachineVerifier::new(config).unwrap()));
    let m2m = double.token(
        TokenType::M2mToken,
        Reply::Resource(resource(TokenType::M2mToken, in_an_hour())),
    );
    assert_eq!(call(&app, &m2m).await.0, StatusCode::OK);
    // API keys still go with the (here wrong) secret key, not the machine key.
    let key = double.token(
        TokenType::ApiKey,
        Reply::Resource(resource(TokenType::ApiKey, in_an_hour())),
    );
    assert_eq!(call(&app, &key).await.0, StatusCode::SERVICE_UNAVAILABLE);
    double.assert_no_violations();
}

#[tokio::test]
async fn rate_limits_and_failures_are_503s_with_retry_after() {
    let double = Double::start().await;
    for t in TYPES {
        // A fresh verifier per case: a 429 pauses the endpoint (tested below).
        let token = double.token(t, Reply::Status(429, Some(7)));
        let (status, retry_after, body) = call(&app(double.verifier()), &token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{t}: {body}");
        assert_eq!(body["reason"], "verifier-unavailable");
        assert_eq!(retry_after.as_deref(), Some("7"), "{t}");
        let app = app(double.verifier());
        for code in [500, 502, 503] {
            let token = double.token(t, Reply::Status(code, None));
            let (status, retry_after, _) = call(&app, &token).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{t} {code}");
            assert_eq!(retry_after.as_deref(), Some("5"), "{t} {code}: the gate's default");
            // A failure is not cached and, without Retry-After, does not pause: asked again.
            call(&app, &token).await;
        }
        let token = double.token(t, Reply::Status(503, Some(2)));
        assert_eq!(call(&app, &token).await.1.as_deref(), Some("2"));
        assert_eq!(double.calls(path_of(t)), 8, "{t}");
    }
    double.assert_no_violations();
}

#[tokio::test]
async fn after_a_rate_limit_the_endpoint_pauses_for_retry_after() {
    let double = Double::start().await;
    let app = app(double.verifier());
    let limited = double.token(TokenType::ApiKey, Reply::Status(429, Some(1)));
    let good = double.token(
        TokenType::ApiKey,
        Reply::Resource(resource(TokenType::ApiKey, in_an_hour())),
    );
    let m2m = double.token(
        TokenType::M2mToken,
        Reply::Resource(resource(TokenType::M2mToken, in_an_hour())),
    );
    assert_eq!(call(&app, &limited).await.0, StatusCode::SERVICE_UNAVAILABLE);
    // During the pause: refused without a call, with the time left.
    let (status, retry_after, _) = call(&app, &good).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(double.calls(API_KEYS), 1);
    // Other endpoints are not paused.
    assert_eq!(call(&app, &m2m).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(call(&app, &good).await.0, StatusCode::OK);
    assert_eq!(double.calls(API_KEYS), 2);
}

#[tokio::test]
async fn slow_answers_time_out_into_a_503() {
    let double = Double::start().await;
    let config = double
        .config()
        .with_timeouts(Duration::from_millis(200), Duration::from_millis(300))
        .unwrap();
    let app = app(Arc::new(ClerkMachineVerifier::new(config).unwrap()));
    for t in TYPES {
        let slow = Reply::Slow(
            Duration::from_secs(3),
            Box::new(Reply::Resource(resource(t, in_an_hour()))),
        );
        let token = double.token(t, slow);
        let started = Instant::now();
        let (status, _, _) = call(&app, &token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{t}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{t}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn malformed_or_unexpected_answers_are_503s_not_200s() {
    let double = Double::start().await;
    let app = app(double.verifier().clone());
    for t in TYPES {
        let mut wrong_object = resource(t, in_an_hour());
        wrong_object["object"] = json!("something_else");
        let mut no_revoked = resource(t, in_an_hour());
        no_revoked.as_object_mut().unwrap().remove("revoked");
        let mut string_flag = resource(t, in_an_hour());
        string_flag["revoked"] = json!("false");
        let bodies = [
            "{not json".to_owned(),
            "[]".to_owned(),
            "null".to_owned(),
            String::new(),
            wrong_object.to_string(),
            no_revoked.to_string(),
            string_flag.to_string(),
            // Bigger than the 64 KiB cap.
            json!({"object": "x", "padding": "a".repeat(100_000)}).to_string(),
        ];
        for raw in bodies {
            let token = double.token(t, Reply::Raw(raw.clone()));
            let (status, _, _) = call(&app, &token).await;
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{t}: {}",
                &raw[..raw.len().min(60)]
            );
        }
    }
}

#[tokio::test]
async fn jwt_machine_tokens_go_to_the_jwt_verifier() {
    let double = Double::start().await;
    let jwt_m2m = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtY2hfMSJ9.c2ln";
    let credential = Credential::new_for_tests(jwt_m2m, TokenType::M2mToken);
    // Without a JWT verifier: a configuration error, no API call.
    let alone = double.verifier();
    assert!(matches!(
        alone.verify(credential).await,
        Err(VerifyError::Misconfigured(_))
    ));
    let mut info = AuthInfo::new(TokenType::M2mToken);
    info.subject = Some("mch_1".into());
    let jwt = Arc::new(StaticVerifier::new().with_token(jwt_m2m, info));
    let with_jwt = ClerkMachineVerifier::new(double.config())
        .unwrap()
        .with_jwt_verifier(jwt.clone());
    let auth = with_jwt.verify(credential).await.unwrap();
    assert_eq!(auth.machine_id.as_deref(), Some("mch_1"));
    assert_eq!(jwt.calls(), 1);
    assert_eq!(double.total_calls(), 0);
}
