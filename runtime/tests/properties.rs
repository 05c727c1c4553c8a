//! Property tests: whatever arrives in the `Authorization` header or the `__session` cookie,
//! the guard answers 400/401/403, never panics, never lets it through, and never calls a
//! verifier for a token type the route does not accept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderValue, Request, header};
use proptest::prelude::*;
use tokengate_runtime::{
    Auth, AuthInfo, Guard, Policy, PolicySource, StaticVerifier, TokenGate, TokenType, TokenTypes,
};
use tower::ServiceExt as _;

struct KeysOnly;
impl PolicySource for KeysOnly {
    fn policy() -> &'static Policy {
        static P: Policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey));
        &P
    }
}

struct SessionsOnly;
impl PolicySource for SessionsOnly {
    fn policy() -> &'static Policy {
        static P: Policy = Policy::accepting(TokenTypes::DEFAULT);
        &P
    }
}

struct Fixture {
    router: Router,
    keys: Arc<StaticVerifier>,
    others: Vec<Arc<StaticVerifier>>,
    runtime: tokio::runtime::Runtime,
}

/// One router and one set of counting verifiers shared by the properties that only check
/// the verifiers a route does not accept (those are never called by any test).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

/// A fixture of its own for the property that counts calls to the API-key verifier, which
/// the other properties (running on parallel threads) may legitimately call.
fn isolated_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    {
        let mut info = AuthInfo::new(TokenType::ApiKey);
        info.subject = Some("user_1".into());
        let keys = Arc::new(StaticVerifier::new().with_token("ak_the_only_valid_key", info));
        let others: Vec<Arc<StaticVerifier>> = (0..3).map(|_| Arc::new(StaticVerifier::new())).collect();
        let gate = TokenGate::builder()
            .verifier(TokenType::ApiKey, keys.clone())
            .verifier(TokenType::SessionToken, others[0].clone())
            .verifier(TokenType::OAuthToken, others[1].clone())
            .verifier(TokenType::M2mToken, others[2].clone())
            .opaque_oauth_tokens(true)
            .build()
            .unwrap();
        let router = Router::new()
            .route("/keys", get(|_g: Guard<KeysOnly>, _a: Auth| async { "through" }))
            .route("/sessions", get(|_g: Guard<SessionsOnly>| async { "through" }))
            .with_state(gate);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        Fixture {
            router,
            keys,
            others,
            runtime,
        }
    }
}

fn status_for(path: &str, name: header::HeaderName, value: &[u8]) -> Option<u16> {
    status_with(fixture(), path, name, value)
}

fn status_with(f: &Fixture, path: &str, name: header::HeaderName, value: &[u8]) -> Option<u16> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let request = Request::get(path).header(name, value).body(Body::empty()).unwrap();
    let response = f.runtime.block_on(f.router.clone().oneshot(request)).unwrap();
    Some(response.status().as_u16())
}

fn assert_refused(status: Option<u16>) -> Result<(), TestCaseError> {
    if let Some(status) = status {
        prop_assert!(matches!(status, 400 | 401 | 403), "status {status}");
    }
    Ok(())
}

fn assert_no_foreign_verifier_called() -> Result<(), TestCaseError> {
    let f = fixture();
    // Sessions can be verified (the /sessions route accepts them); the others never.
    prop_assert_eq!(f.others[1].calls() + f.others[2].calls(), 0);
    Ok(())
}

/// A JWT-shaped string from arbitrary JSON-ish header and payload text.
fn jwt_like() -> impl Strategy<Value = String> {
    let json = prop_oneof![
        "\\PC{0,64}",
        Just(r#"{"alg":"none"}"#.to_owned()),
        Just(r#"{"alg":"RS256","typ":"at+jwt"}"#.to_owned()),
        Just(r#"{"sub":"mch_x"}"#.to_owned()),
        Just(r#"{"sub":["user_1"],"exp":"soon"}"#.to_owned()),
        "\\{\"[a-z]{1,5}\":\"\\PC{0,20}\"\\}",
    ];
    (json.clone(), json, any::<Vec<u8>>(), any::<bool>()).prop_map(|(h, p, sig, padded)| {
        let enc = |b: &[u8]| {
            if padded {
                STANDARD.encode(b)
            } else {
                URL_SAFE_NO_PAD.encode(b)
            }
        };
        format!("{}.{}.{}", enc(h.as_bytes()), enc(p.as_bytes()), enc(&sig))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_authorization_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        assert_refused(status_for("/keys", header::AUTHORIZATION, &bytes))?;
        assert_refused(status_for("/sessions", header::AUTHORIZATION, &bytes))?;
        assert_no_foreign_verifier_called()?;
    }

    #[test]
    fn arbitrary_bearer_strings(token in "\\PC{0,200}") {
        let value = format!("Bearer {token}");
        assert_refused(status_for("/keys", header::AUTHORIZATION, value.as_bytes()))?;
        assert_no_foreign_verifier_called()?;
    }

    #[test]
    fn arbitrary_session_cookies(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut cookie = b"__session=".to_vec();
        cookie.extend_from_slice(&bytes);
        assert_refused(status_for("/sessions", header::COOKIE, &cookie))?;
        assert_refused(status_for("/keys", header::COOKIE, &cookie))?;
        assert_no_foreign_verifier_called()?;
    }

    #[test]
    fn jwt_shaped_strings(token in jwt_like()) {
        let value = format!("Bearer {token}");
        assert_refused(status_for("/keys", header::AUTHORIZATION, value.as_bytes()))?;
        assert_refused(status_for("/sessions", header::AUTHORIZATION, value.as_bytes()))?;
        assert_no_foreign_verifier_called()?;
    }

    #[test]
    fn prefixed_opaque_strings(prefix in prop_oneof![Just("ak_"), Just("mt_"), Just("oat_")], rest in "[A-Za-z0-9_~+/.-]{0,120}") {
        let value = format!("Bearer {prefix}{rest}");
        let f = isolated_fixture();
        let before = f.keys.calls();
        let status = status_with(f, "/keys", header::AUTHORIZATION, value.as_bytes());
        assert_refused(status)?;
        if prefix != "ak_" {
            prop_assert_eq!(f.keys.calls(), before, "a non-key token reached the key verifier");
        }
        prop_assert_eq!(f.others[1].calls() + f.others[2].calls(), 0);
        assert_no_foreign_verifier_called()?;
    }
}

#[test]
fn the_fixture_does_let_the_valid_key_through() {
    // Guards the properties above against passing only because everything is refused.
    assert_eq!(
        status_for("/keys", header::AUTHORIZATION, b"Bearer ak_the_only_valid_key"),
        Some(200)
    );
}
