//! A failing key store or introspection endpoint is logged (and answered 503), and no secret
//! ever appears in a log line, even at `trace` level.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, header};
use tokengate_runtime::keys::{KeySpec, KeyVerifier, SqliteKeyStore};
use tokengate_runtime::{IntrospectionConfig, IntrospectionVerifier, Policy, TokenGate, TokenType, TokenTypes};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

#[tokio::test(flavor = "current_thread")]
async fn outages_are_logged_without_secrets() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteKeyStore::open(dir.path().join("keys.db")).await.unwrap());
    let verifier = Arc::new(KeyVerifier::new(store.clone()));
    let key = verifier.issue(KeySpec::api_key("user_1", "ci")).await.unwrap();
    let secret = key.secret.expose().to_string();

    // An unreachable introspection endpoint, for an opaque OAuth token.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let introspection = IntrospectionVerifier::new(IntrospectionConfig::new(
        format!("http://{closed}/introspect"),
        "client",
        "client-secret-value",
    ))
    .unwrap();
    let gate = TokenGate::builder()
        .verifier_for(TokenTypes::EMPTY.with(TokenType::ApiKey), verifier.clone())
        .verifier(TokenType::OAuthToken, Arc::new(introspection))
        .opaque_oauth_tokens(true)
        .build()
        .unwrap();
    let policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::OAuthToken));

    store.close().await;
    let rejection = gate
        .authorize(&bearer(&secret), &Default::default(), &policy)
        .await
        .unwrap_err();
    assert_eq!(rejection.status(), 503);
    let opaque = "opaque-oauth-token-value-123";
    let rejection = gate
        .authorize(&bearer(opaque), &Default::default(), &policy)
        .await
        .unwrap_err();
    assert_eq!(rejection.status(), 503);

    let text = logs.text();
    assert!(
        text.contains("key store lookup failed"),
        "the store failure is logged:\n{text}"
    );
    assert!(
        text.contains("introspection endpoint"),
        "the introspection failure is logged:\n{text}"
    );
    for needle in [secret.as_str(), &secret[3..20], opaque, "client-secret-value"] {
        assert!(!text.contains(needle), "a secret leaked into the logs:\n{text}");
    }
}
