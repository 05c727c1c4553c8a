//! Logs and `Debug` output of Clerk verification: a wrong secret key is logged loudly as a
//! configuration problem, and no secret key or token ever appears. One test in this binary,
//! so the process-wide subscriber sees every event (scoped subscribers miss events when
//! tests run on parallel threads).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod clerk_support;

use std::sync::Arc;

use clerk_support::*;
use http::StatusCode;
use tokengate_runtime::TokenType;
use tokengate_runtime::clerk::{ClerkConfig, ClerkMachineVerifier};

const TYPES: [TokenType; 3] = [TokenType::ApiKey, TokenType::M2mToken, TokenType::OAuthToken];

fn in_an_hour() -> Option<i64> {
    Some(now_ms() + 3_600_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_name_the_configuration_and_never_a_secret() {
    let logs = LogBuffer::default();
    logs.install_global();
    a_wrong_secret_key_is_a_503_logged_as_configuration(&logs).await;
    no_secret_or_token_in_logs_or_debug(&logs).await;
}

async fn a_wrong_secret_key_is_a_503_logged_as_configuration(logs: &LogBuffer) {
    let double = Double::start().await;
    let config = ClerkConfig::new(WRONG_SECRET)
        .unwrap()
        .with_api_url(&double.url)
        .unwrap();
    let app = app(Arc::new(ClerkMachineVerifier::new(config).unwrap()));
    for t in TYPES {
        let token = double.token(t, Reply::Resource(resource(t, in_an_hour())));
        let (status, _, body) = call(&app, &token).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{t}: never a 401 that blames the caller"
        );
        assert_eq!(body["reason"], "verifier-unavailable");
        assert_eq!(double.calls(path_of(t)), 1, "{t}");
    }
    // The refused key pauses calls: the next request does not spend quota on a known-bad key.
    let token = double.token(
        TokenType::ApiKey,
        Reply::Resource(resource(TokenType::ApiKey, in_an_hour())),
    );
    assert_eq!(call(&app, &token).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(double.calls(API_KEYS), 1);
    let text = logs.text();
    assert!(text.contains("ERROR"), "{text}");
    assert!(
        text.contains("configuration is wrong") && text.contains("CLERK_SECRET_KEY"),
        "{text}"
    );
    assert!(!text.contains(WRONG_SECRET) && !text.contains(SECRET), "{text}");
    double.assert_no_violations();
}

async fn no_secret_or_token_in_logs_or_debug(logs: &LogBuffer) {
    let double = Double::start_with_machine_secret().await;
    let config = double.config().with_machine_secret_key(MACHINE_SECRET).unwrap();
    let verifier = Arc::new(ClerkMachineVerifier::new(config.clone()).unwrap());
    let app = app(verifier.clone());
    let mut tokens = Vec::new();
    for t in TYPES {
        for reply in [
            Reply::Resource(resource(t, in_an_hour())),
            Reply::Resource(revoked(resource(t, in_an_hour()))),
            Reply::NotFound,
            Reply::Status(500, Some(1)),
            Reply::Raw("{oops".into()),
        ] {
            let token = double.token(t, reply);
            call(&app, &token).await;
            tokens.push(token);
        }
    }
    let debug = format!("{config:?} {verifier:?} {:?}", verifier.api());
    let text = logs.text();
    assert!(
        text.contains("verifier backend unavailable"),
        "the capture works: {text}"
    );
    for secret in tokens.iter().map(String::as_str).chain([SECRET, MACHINE_SECRET]) {
        assert!(!text.contains(secret), "a secret in the logs: {text}");
        assert!(!debug.contains(secret), "a secret in Debug: {debug}");
    }
    // The token's distinctive part is not there either (not even truncated).
    assert!(!text.contains("Tk0000"), "{text}");
}
