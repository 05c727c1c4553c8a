//! Valid tokens end to end: Clerk-shaped session tokens (v1 and v2 claims), OAuth JWT access
//! tokens and M2M JWTs through a real axum router, the verified-token cache, key loading
//! from text and files, and configuration errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod jwt_support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use jwt_support::{CLERK_ISSUER, JwksServer, RSA, jwks, m2m_claims, now, session_claims};
use serde_json::{Value, json};
use tokengate_runtime::jwt::{
    Algorithm, JwksCache, JwtConfigError, JwtVerifier, KeySet, M2mRules, OAuthRules, SessionRules, TokenCacheConfig,
    jwks_from_pem,
};
use tokengate_runtime::rejection::{InvalidReason, Rejection};
use tokengate_runtime::verifier::{ByFormat, Credential, Verifier, VerifyError};
use tokengate_runtime::{Auth, Policy, PolicyLayer, TokenGate, TokenType, TokenTypes};
use tower::ServiceExt as _;

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://api.example.com";

/// One verifier for the three kinds, as a Clerk instance uses one key set for all.
fn verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .session(SessionRules::new().authorized_parties(["https://app.example.com"]))
        .oauth(OAuthRules::new(ISSUER, [AUDIENCE]))
        .m2m(M2mRules::new().issuer(CLERK_ISSUER))
        .build()
        .unwrap()
}

fn router(accepts: TokenTypes) -> Router {
    let v = verifier();
    let gate = TokenGate::builder()
        .verifier_for(v.token_types(), Arc::new(v))
        .build()
        .unwrap();
    Router::new()
        .route("/me", get(|auth: Auth| async move { axum::Json(auth) }))
        .layer(PolicyLayer::new(gate, Policy::accepting(accepts)))
}

async fn call(router: Router, token: &str) -> (StatusCode, Value) {
    let request = Request::get("/me")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(!text.contains(token), "a response body must never echo the token");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn clerk_v2_session_token_maps_to_auth() {
    let (status, body) = call(router(TokenTypes::DEFAULT), &RSA.token(&session_claims())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tokenType"], "session_token");
    assert_eq!(body["userId"], "user_123");
    assert_eq!(body["subject"], "user_123");
    assert_eq!(body["sessionId"], "sess_456");
    assert_eq!(body["sessionStatus"], "active");
    assert_eq!(body["orgId"], "org_1");
    assert_eq!(body["orgRole"], "org:admin");
    assert_eq!(body["orgSlug"], "acme");
    assert_eq!(
        body["orgPermissions"],
        json!(["org:invoices:read", "org:invoices:create"])
    );
    assert_eq!(body["claims"]["azp"], "https://app.example.com");
    assert_eq!(body["claims"]["o"]["fpm"], "3");
    assert!(body["expiration"].as_i64().unwrap() > now());
}

#[tokio::test]
async fn clerk_v1_session_token_maps_to_auth() {
    let now = now();
    let claims = json!({"sub":"user_9","sid":"sess_9","azp":"https://app.example.com","exp":now + 60,"iat":now,
        "org_id":"org_9","org_role":"org:member","org_slug":"nine","org_permissions":["org:reports:read"],
        "act":{"sub":"user_support"},"fva":[3,-1]});
    let (status, body) = call(router(TokenTypes::DEFAULT), &RSA.token(&claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["orgId"], "org_9");
    assert_eq!(body["orgRole"], "org:member");
    assert_eq!(body["orgPermissions"], json!(["org:reports:read"]));
    assert_eq!(body["claims"]["act"]["sub"], "user_support");
    assert_eq!(body["claims"]["fva"], json!([3, -1]));
}

#[tokio::test]
async fn wrong_or_missing_authorized_party_is_a_401_with_its_reason() {
    let mut claims = session_claims();
    claims["azp"] = json!("https://evil.example.com");
    let (status, body) = call(router(TokenTypes::DEFAULT), &RSA.token(&claims)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "wrong-authorized-party");
    claims.as_object_mut().unwrap().remove("azp");
    let (_, body) = call(router(TokenTypes::DEFAULT), &RSA.token(&claims)).await;
    assert_eq!(body["reason"], "wrong-authorized-party");
}

fn oauth_claims() -> Value {
    let now = now();
    json!({"iss":ISSUER,"aud":[AUDIENCE, "other"],"sub":"user_1","client_id":"client_1","iat":now,
           "exp":now + 60,"jti":"at_1","scope":"read:users write:users"})
}

fn at(claims: &Value, typ: &str) -> String {
    RSA.token_with_header(&json!({"alg":"RS256","typ":typ,"kid":"k"}), claims)
}

#[tokio::test]
async fn oauth_jwt_access_tokens_are_verified_per_rfc_9068() {
    let accepts = TokenTypes::EMPTY.with(TokenType::OAuthToken);
    for typ in ["at+jwt", "application/at+jwt"] {
        let (status, body) = call(router(accepts), &at(&oauth_claims(), typ)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["tokenType"], "oauth_token");
        assert_eq!(body["scopes"], json!(["read:users", "write:users"]));
        assert_eq!(body["clientId"], "client_1");
        assert_eq!(body["userId"], "user_1");
        assert_eq!(body["id"], "at_1");
    }
    let cases = [
        ("iss", json!("https://other.example.com"), "wrong-issuer"),
        ("aud", json!("https://other-api.example.com"), "wrong-audience"),
        ("jti", Value::Null, "invalid-claims"),
        ("client_id", Value::Null, "invalid-claims"),
        ("iat", Value::Null, "invalid-claims"),
    ];
    for (claim, value, reason) in cases {
        let mut claims = oauth_claims();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(claim);
        } else {
            claims[claim] = value;
        }
        let (status, body) = call(router(accepts), &at(&claims, "at+jwt")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{claim}");
        assert_eq!(body["reason"], reason, "{claim}");
    }
}

#[tokio::test]
async fn m2m_jwts_are_classified_and_verified() {
    let claims = m2m_claims();
    let accepts = TokenTypes::EMPTY.with(TokenType::M2mToken);
    let (status, body) = call(router(accepts), &RSA.token(&claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tokenType"], "m2m_token");
    assert_eq!(body["machineId"], "mch_1");
    assert_eq!(body["scopes"], json!(["mch_2", "mch_3"]));
    // The same token is refused on a session-only route, before verification.
    let (status, body) = call(router(TokenTypes::DEFAULT), &RSA.token(&claims)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "token-type-mismatch");
}

#[tokio::test]
async fn the_synchronous_path_answers_only_for_tokens_already_verified() {
    let verifier = Arc::new(
        JwtVerifier::builder()
            .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
            .session(SessionRules::new())
            .build()
            .unwrap(),
    );
    let by_format = ByFormat::new().jwt(verifier.clone());
    let token = RSA.token(&session_claims());
    let session = Credential::new_for_tests(&token, TokenType::SessionToken);
    assert!(verifier.verify_cached(&session).is_none(), "nothing verified yet");
    assert!(by_format.verify_cached(&session).is_none());

    let verified = verifier.verify(session).await.unwrap();
    assert_eq!(verifier.verify_cached(&session), Some(Ok(verified.clone())));
    assert_eq!(by_format.verify_cached(&session), Some(Ok(verified)));
    // The entry is a session token's: the same token as another type is not answered here.
    let as_oauth = Credential::new_for_tests(&token, TokenType::OAuthToken);
    assert!(verifier.verify_cached(&as_oauth).is_none());
    // An opaque token is no JWT: the JWT verifier refuses it at once; a ByFormat without an
    // opaque verifier leaves the answer to `verify`.
    let opaque = Credential::new_for_tests("oat_opaque", TokenType::OAuthToken);
    assert_eq!(
        verifier.verify_cached(&opaque),
        Some(Err(VerifyError::Invalid(InvalidReason::Malformed)))
    );
    assert!(by_format.verify_cached(&opaque).is_none());

    let uncached = JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .session(SessionRules::new())
        .token_cache(TokenCacheConfig::disabled())
        .build()
        .unwrap();
    uncached.verify(session).await.unwrap();
    assert!(uncached.verify_cached(&session).is_none(), "the cache is off");
}

#[tokio::test]
async fn the_token_cache_remembers_verified_tokens_and_never_serves_them_past_exp() {
    let v = JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .session(SessionRules::new())
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let mut claims = session_claims();
    let exp = now() + 1;
    claims["exp"] = json!(exp);
    let token = RSA.token(&claims);
    let first = v.verify_token(&token, TokenType::SessionToken).await.unwrap();
    let second = v.verify_token(&token, TokenType::SessionToken).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(v.cached_tokens(), 1);
    while now() < exp {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        v.verify_token(&token, TokenType::SessionToken).await.unwrap_err(),
        VerifyError::Invalid(InvalidReason::Expired)
    );
    // Another type never hits the entry of a session token.
    let fresh = RSA.token(&session_claims());
    v.verify_token(&fresh, TokenType::SessionToken).await.unwrap();
    assert_eq!(
        v.verify_token(&fresh, TokenType::OAuthToken).await.unwrap_err(),
        VerifyError::Invalid(InvalidReason::WrongType)
    );
}

#[tokio::test]
async fn the_token_cache_can_be_turned_off() {
    let v = JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .session(SessionRules::new())
        .token_cache(TokenCacheConfig::disabled())
        .build()
        .unwrap();
    let token = RSA.token(&session_claims());
    v.verify_token(&token, TokenType::SessionToken).await.unwrap();
    v.verify_token(&token, TokenType::SessionToken).await.unwrap();
    assert_eq!(v.cached_tokens(), 0);
}

#[tokio::test]
async fn keys_load_from_pem_jwk_and_jwks_text_and_files() {
    let dir = std::env::temp_dir().join(format!("tokengate-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = RSA.token(&session_claims());
    let texts = [
        RSA.public_pem(),
        RSA.jwk(Some("RS256")).to_string(),
        jwks(&[RSA.jwk(None)]).to_string(),
    ];
    for (i, text) in texts.iter().enumerate() {
        let from_text = JwtVerifier::builder()
            .keys(KeySet::from_text(text).unwrap())
            .session(SessionRules::new())
            .build()
            .unwrap();
        from_text.verify_token(&token, TokenType::SessionToken).await.unwrap();
        let path = dir.join(format!("key-{i}"));
        std::fs::write(&path, text).unwrap();
        let from_file = JwtVerifier::session_from_key_file(&path).unwrap();
        from_file.verify_token(&token, TokenType::SessionToken).await.unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let missing = JwtVerifier::session_from_key_file("/nonexistent/key.pem").unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/key.pem"), "{missing}");
}

#[tokio::test]
async fn jwks_from_pem_serves_a_key_a_jwks_verifier_can_use() {
    let doc = jwks_from_pem(&RSA.public_pem(), None, Algorithm::RS256).unwrap();
    let kid = doc["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(kid.len(), 43, "an RFC 7638 SHA-256 thumbprint");
    assert_eq!(doc["keys"][0]["alg"], "RS256");
    assert_eq!(doc["keys"][0]["use"], "sig");
    let server = JwksServer::start(doc).await;
    let v = JwtVerifier::session_from_jwks_url(&server.url()).unwrap();
    let token = RSA.token_with_header(&json!({"alg":"RS256","kid":kid}), &session_claims());
    v.verify_token(&token, TokenType::SessionToken).await.unwrap();
    assert!(jwks_from_pem(&RSA.public_pem(), None, Algorithm::ES256).is_err());
}

#[test]
fn configuration_mistakes_get_clear_errors() {
    let pem = RSA.public_pem();
    let keys = || KeySet::from_pem(&pem).unwrap();
    let err = |r: Result<JwtVerifier, JwtConfigError>| r.unwrap_err().to_string();
    assert!(err(JwtVerifier::builder().session(SessionRules::new()).build()).contains("no keys"));
    assert!(err(JwtVerifier::builder().keys(keys()).build()).contains("enable sessions"));
    assert!(
        err(JwtVerifier::builder()
            .keys(keys())
            .oauth(OAuthRules::new(ISSUER, Vec::<String>::new()))
            .build())
        .contains("audience")
    );
    assert!(
        err(JwtVerifier::builder()
            .keys(keys())
            .session(SessionRules::new().authorized_parties([" "]))
            .build())
        .contains("authorized party")
    );
    assert!(
        err(JwtVerifier::builder()
            .keys(keys())
            .session(SessionRules::new())
            .leeway(Duration::from_secs(3600))
            .build())
        .contains("too large")
    );
    assert!(err(JwtVerifier::session_from_jwks_url("http://jwks.example.com/keys")).contains("https"));
    assert!(err(JwtVerifier::session_from_jwks_url("not a url")).contains("not an absolute URL"));
    assert!(
        err(JwtVerifier::session_from_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
        ))
        .contains("PEM")
    );
    let bad_header = JwksCache::builder("https://example.com/jwks")
        .header("Authorization", "Bearer sk_live_secret\n")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        bad_header.contains("authorization") && !bad_header.contains("sk_live_secret"),
        "{bad_header}"
    );
}

#[tokio::test]
async fn opaque_credentials_and_api_keys_are_not_jwts() {
    use tokengate_runtime::verifier::{Credential, Verifier};
    let v = verifier();
    for (token, token_type) in [("ak_123", TokenType::ApiKey), ("mt_123", TokenType::M2mToken)] {
        assert_eq!(
            v.verify(Credential::new_for_tests(token, token_type))
                .await
                .unwrap_err(),
            VerifyError::Invalid(InvalidReason::Malformed)
        );
    }
    // A JWT handed over as an API key: this verifier has no rules for API keys.
    let jwt = RSA.token(&session_claims());
    assert_eq!(
        v.verify(Credential::new_for_tests(&jwt, TokenType::ApiKey))
            .await
            .unwrap_err(),
        VerifyError::Invalid(InvalidReason::WrongType)
    );
    assert_eq!(
        v.token_types(),
        TokenTypes::from_slice(&[TokenType::SessionToken, TokenType::OAuthToken, TokenType::M2mToken])
    );
}

#[tokio::test]
async fn pending_sessions_are_refused_unless_accepted() {
    let mut claims = session_claims();
    claims["sts"] = json!("pending");
    let token = RSA.token(&claims);
    let (status, body) = call(router(TokenTypes::DEFAULT), &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "token-inactive");
    let accepting = JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .session(SessionRules::new().accept_pending_sessions(true))
        .build()
        .unwrap();
    let auth = accepting.verify_token(&token, TokenType::SessionToken).await.unwrap();
    assert_eq!(auth.session_status.as_deref(), Some("pending"));
}

fn bearer(token: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    headers
}

#[tokio::test]
async fn a_reused_jwt_is_recalled_before_classification_with_the_same_checks() {
    let jwt = Arc::new(verifier());
    let gate = TokenGate::builder()
        .verifier_for(jwt.token_types(), jwt.clone())
        .build()
        .unwrap();
    let extensions = http::Extensions::new();
    let sessions = Policy::accepting(TokenTypes::DEFAULT);
    let machines = Policy::accepting(TokenTypes::EMPTY.with(TokenType::M2mToken));
    let session = RSA.token(&session_claims());
    let machine = RSA.token(&m2m_claims());

    // First use: verified, then remembered; reuse answers with the same identity.
    assert!(jwt.recall_jwt(&session).is_none(), "nothing verified yet");
    let first = gate.authorize(&bearer(&session), &extensions, &sessions).await.unwrap();
    assert_eq!(jwt.recall_jwt(&session).as_ref(), Some(&first));
    let again = gate.authorize(&bearer(&session), &extensions, &sessions).await.unwrap();
    assert_eq!(again, first);

    // A remembered M2M JWT keeps its type: refused where only sessions are accepted, refused
    // from the session cookie, accepted where machines are.
    gate.authorize(&bearer(&machine), &extensions, &machines).await.unwrap();
    assert_eq!(
        jwt.recall_jwt(&machine).map(|a| a.token_type),
        Some(TokenType::M2mToken)
    );
    assert!(matches!(
        gate.authorize(&bearer(&machine), &extensions, &sessions).await,
        Err(Rejection::TokenTypeNotAccepted {
            presented: TokenType::M2mToken,
            ..
        })
    ));
    let mut cookie = http::HeaderMap::new();
    cookie.insert(header::COOKIE, format!("__session={machine}").parse().unwrap());
    let both = Policy::accepting(TokenTypes::DEFAULT.with(TokenType::M2mToken));
    assert_eq!(
        gate.authorize(&cookie, &extensions, &both).await.unwrap_err(),
        Rejection::InvalidToken(InvalidReason::MachineTokenInCookie)
    );
    assert!(gate.authorize(&bearer(&machine), &extensions, &machines).await.is_ok());
    let all_jwts = Policy::accepting(
        TokenTypes::DEFAULT
            .with(TokenType::M2mToken)
            .with(TokenType::OAuthToken),
    );
    assert!(gate.authorize(&bearer(&session), &extensions, &all_jwts).await.is_ok());

    // A route that accepts no JWT type refuses a remembered JWT by its type.
    let keys_only = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey));
    assert!(matches!(
        gate.authorize(&bearer(&session), &extensions, &keys_only).await,
        Err(Rejection::TokenTypeNotAccepted {
            presented: TokenType::SessionToken,
            ..
        })
    ));

    // A tampered token is not recalled; it is classified and its signature fails.
    let at = session.len() - 10;
    let flipped = if &session[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &session[..at], &session[at + 1..]);
    assert!(jwt.recall_jwt(&tampered).is_none());
    assert!(
        gate.authorize(&bearer(&tampered), &extensions, &sessions)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_recalled_type_counts_only_if_the_gate_sends_that_type_to_the_same_verifier() {
    // The JWT verifier serves sessions here; M2M tokens go to another verifier that knows
    // none. A machine token the JWT verifier remembers must not be accepted through it.
    let jwt = Arc::new(verifier());
    let machines_elsewhere = Arc::new(tokengate_runtime::StaticVerifier::new());
    let gate = TokenGate::builder()
        .verifier(TokenType::SessionToken, jwt.clone())
        .verifier(TokenType::M2mToken, machines_elsewhere.clone())
        .build()
        .unwrap();
    let machine = RSA.token(&m2m_claims());
    jwt.verify_token(&machine, TokenType::M2mToken).await.unwrap();
    assert_eq!(
        jwt.recall_jwt(&machine).map(|a| a.token_type),
        Some(TokenType::M2mToken)
    );

    let machines = Policy::accepting(TokenTypes::DEFAULT.with(TokenType::M2mToken));
    let refused = gate
        .authorize(&bearer(&machine), &http::Extensions::new(), &machines)
        .await
        .unwrap_err();
    assert_eq!(refused, Rejection::InvalidToken(InvalidReason::UnknownToken));
    // Not trusted from the JWT verifier, so classified and sent to the M2M verifier.
    assert_eq!(machines_elsewhere.calls(), 1);
}

#[tokio::test]
async fn a_jwt_is_verified_only_as_the_type_it_classifies_as() {
    // An RFC 9068-shaped token whose subject is a machine: Clerk reads it as an M2M token,
    // tokengate as neither (two readings, `token-type-ambiguous`).
    let v = verifier();
    let mut claims = oauth_claims();
    claims["sub"] = json!("mch_1");
    let token = at(&claims, "at+jwt");
    for token_type in [TokenType::OAuthToken, TokenType::M2mToken] {
        assert_eq!(
            v.verify_token(&token, token_type).await.unwrap_err(),
            VerifyError::Invalid(InvalidReason::TypeAmbiguous),
            "{token_type}"
        );
    }
    assert!(v.recall_jwt(&token).is_none(), "a refused token is not remembered");
    // A session token asked for as an OAuth token, and the reverse, are refused too.
    let session = RSA.token(&session_claims());
    assert!(v.verify_token(&session, TokenType::OAuthToken).await.is_err());
    let oauth = at(&oauth_claims(), "at+jwt");
    assert!(v.verify_token(&oauth, TokenType::SessionToken).await.is_err());
    assert!(v.recall_jwt(&oauth).is_none() && v.recall_jwt(&session).is_none());

    // Through the gate, the classifier refuses it on every route, before any verifier.
    let gate = TokenGate::builder()
        .verifier_for(v.token_types(), Arc::new(v))
        .build()
        .unwrap();
    for accepts in [TokenType::OAuthToken, TokenType::M2mToken, TokenType::SessionToken] {
        let policy = Policy::accepting(TokenTypes::EMPTY.with(accepts));
        for _ in 0..2 {
            assert_eq!(
                gate.authorize(&bearer(&token), &http::Extensions::new(), &policy)
                    .await
                    .unwrap_err(),
                Rejection::InvalidToken(InvalidReason::TypeAmbiguous),
                "{accepts}"
            );
        }
    }
}
