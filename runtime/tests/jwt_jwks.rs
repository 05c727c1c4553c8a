//! The remote JWKS cache against a real loopback JWKS server: rotation, floods of unknown
//! `kid`s, outages, slow servers, malformed sets, size caps, headers and discovery.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod jwt_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use jwt_support::{JwksServer, Mode, RSA, RSA2, Rsa, jwks, now, session_claims};
use serde_json::json;
use tokengate_runtime::jwt::{JwksCache, JwtVerifier, OAuthRules, SessionRules, TokenCacheConfig};
use tokengate_runtime::rejection::InvalidReason;
use tokengate_runtime::verifier::VerifyError;
use tokengate_runtime::{TokenType, Verifier};

fn verifier(cache: JwksCache) -> JwtVerifier {
    JwtVerifier::builder()
        .jwks(cache)
        .session(SessionRules::new())
        .token_cache(TokenCacheConfig::disabled())
        .build()
        .unwrap()
}

async fn verify(v: &JwtVerifier, token: &str) -> Result<(), VerifyError> {
    v.verify_token(token, TokenType::SessionToken).await.map(|_| ())
}

fn invalid(reason: InvalidReason) -> Result<(), VerifyError> {
    Err(VerifyError::Invalid(reason))
}

#[tokio::test]
async fn keys_load_on_first_use_and_reads_need_no_fetch() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let v = verifier(JwksCache::new(server.url()).unwrap());
    assert_eq!(server.hits(), 0);
    let token = RSA.token(&session_claims());
    for _ in 0..20 {
        verify(&v, &token).await.unwrap();
    }
    assert_eq!(server.hits(), 1);
    assert_eq!(v.jwks().unwrap().key_count(), 1);
}

#[tokio::test]
async fn rotation_is_picked_up_on_an_unknown_kid_after_the_cooldown() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let cache = JwksCache::builder(server.url())
        .unknown_kid_cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    let v = verifier(cache);
    verify(&v, &RSA.token(&session_claims())).await.unwrap();
    // The issuer rotates: key-2 appears.
    server.set_jwks(jwks(&[RSA.jwk(Some("RS256")), RSA2.jwk(Some("RS256"))]));
    let new = RSA2.token(&session_claims());
    // Within the cooldown of the initial load: no fetch, unknown key.
    assert_eq!(verify(&v, &new).await, invalid(InvalidReason::UnknownKey));
    assert_eq!(server.hits(), 1);
    tokio::time::sleep(Duration::from_millis(120)).await;
    verify(&v, &new).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn rotation_is_picked_up_by_the_scheduled_refresh() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let cache = JwksCache::builder(server.url())
        .refresh_interval(Duration::from_millis(100))
        .unknown_kid_cooldown(Duration::from_secs(3600))
        .build()
        .unwrap();
    let v = verifier(cache.clone());
    let old = RSA.token(&session_claims());
    verify(&v, &old).await.unwrap();
    server.set_jwks(jwks(&[RSA2.jwk(Some("RS256"))]));
    tokio::time::sleep(Duration::from_millis(120)).await;
    // Keys are due: this request uses the current keys and starts a background refresh.
    verify(&v, &old).await.unwrap();
    for _ in 0..50 {
        if cache.generation() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cache.generation(), 2);
    // key-2 verifies; key-1 was removed from the set and no longer does.
    verify(&v, &RSA2.token(&session_claims())).await.unwrap();
    assert_eq!(verify(&v, &old).await, invalid(InvalidReason::UnknownKey));
}

#[tokio::test]
async fn a_removed_key_stops_verifying_after_refresh_even_when_cached() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256")), RSA2.jwk(Some("RS256"))])).await;
    let cache = JwksCache::new(server.url()).unwrap();
    // The verified-token cache is on: the cached token must not outlive its key.
    let v = JwtVerifier::builder()
        .jwks(cache.clone())
        .session(SessionRules::new())
        .build()
        .unwrap();
    let token = RSA.token(&session_claims());
    verify(&v, &token).await.unwrap();
    verify(&v, &token).await.unwrap();
    assert_eq!(v.cached_tokens(), 1);
    server.set_jwks(jwks(&[RSA2.jwk(Some("RS256"))]));
    assert_eq!(cache.refresh().await.unwrap(), 1);
    assert_eq!(verify(&v, &token).await, invalid(InvalidReason::UnknownKey));
    verify(&v, &RSA2.token(&session_claims())).await.unwrap();
}

/// A verifier that remembers verified tokens for up to an hour: longer than every JWKS
/// interval below, so only the key set can end an entry early.
fn remembering(cache: JwksCache) -> JwtVerifier {
    JwtVerifier::builder()
        .jwks(cache)
        .session(SessionRules::new())
        .token_cache(TokenCacheConfig::default().max_ttl(Duration::from_secs(3600)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_remembered_token_stops_counting_once_the_refreshed_set_lacks_its_kid() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let cache = JwksCache::builder(server.url())
        .refresh_interval(Duration::from_millis(400))
        .unknown_kid_cooldown(Duration::from_secs(3600))
        .build()
        .unwrap();
    let v = remembering(cache.clone());
    let mut claims = session_claims();
    claims["exp"] = json!(now() + 3600);
    let token = RSA.token(&claims);
    verify(&v, &token).await.unwrap();
    assert_eq!(v.cached_tokens(), 1);
    // key-1 is rotated out. While the set is fresh, the remembered answer stands (the JWKS
    // cache itself would still verify the token with the keys it holds), without a fetch.
    server.set_jwks(jwks(&[RSA2.jwk(Some("RS256"))]));
    verify(&v, &token).await.unwrap();
    assert!(v.recall_jwt(&token).is_some());
    assert_eq!(server.hits(), 1);
    // Once the set is due, a remembered answer starts the refresh a signature check would.
    // Only answers from memory are asked for here: nothing else would start it.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while cache.generation() == 1 {
        assert!(
            Instant::now() < deadline,
            "the key set was never refreshed: remembered tokens outlive the JWKS (hits {})",
            server.hits()
        );
        let _ = v.recall_jwt(&token);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The set no longer holds key-1: neither memory nor a signature check accepts the token.
    assert!(v.recall_jwt(&token).is_none());
    assert_eq!(verify(&v, &token).await, invalid(InvalidReason::UnknownKey));
    verify(&v, &RSA2.token(&session_claims())).await.unwrap();
}

#[tokio::test]
async fn a_remembered_token_is_not_answered_from_keys_too_stale_to_use() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let cache = JwksCache::builder(server.url())
        .refresh_interval(Duration::from_millis(50))
        .stale_if_error(Duration::from_millis(400))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();
    let v = remembering(cache);
    let mut claims = session_claims();
    claims["exp"] = json!(now() + 3600);
    let token = RSA.token(&claims);
    verify(&v, &token).await.unwrap();
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    // Due, the refresh fails: the last good keys still count, from memory too.
    verify(&v, &token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Past stale_if_error the JWKS cache answers 503 for a signature check; memory agrees.
    assert!(v.recall_jwt(&token).is_none());
    match verify(&v, &token).await {
        Err(VerifyError::Unavailable { .. }) => {}
        other => panic!("expected 503 once the keys are too stale, got {other:?}"),
    }
}

#[tokio::test]
async fn a_thousand_unknown_kids_cost_at_most_one_fetch_per_cooldown() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let cooldown = Duration::from_millis(500);
    let cache = JwksCache::builder(server.url())
        .unknown_kid_cooldown(cooldown)
        .build()
        .unwrap();
    let v = Arc::new(verifier(cache));
    verify(&v, &RSA.token(&session_claims())).await.unwrap();
    assert_eq!(server.hits(), 1);
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;

    // Built up front, so a round takes only the verifications. An attacker cannot sign with
    // a key the set lacks, so each token carries a real RS256 signature of another message
    // (the `kid` lookup fails before any signature check).
    let payload = jwt_support::b64(session_claims().to_string());
    let signature = RSA.token(&session_claims()).rsplit('.').next().unwrap().to_owned();
    let rounds: Vec<Vec<String>> = (0..3)
        .map(|round| {
            (0..1000)
                .map(|i| {
                    let header = json!({"alg":"RS256","kid":format!("random-{round}-{i}")});
                    format!("{}.{payload}.{signature}", jwt_support::b64(header.to_string()))
                })
                .collect()
        })
        .collect();
    let flood = |tokens: Vec<String>| {
        let v = Arc::clone(&v);
        async move {
            let tasks: Vec<_> = tokens
                .into_iter()
                .map(|token| {
                    let v = Arc::clone(&v);
                    tokio::spawn(async move { v.verify_token(&token, TokenType::SessionToken).await })
                })
                .collect();
            for t in tasks {
                assert_eq!(
                    t.await.unwrap().unwrap_err(),
                    VerifyError::Invalid(InvalidReason::UnknownKey)
                );
            }
        }
    };
    let mut rounds = rounds.into_iter();
    let started = Instant::now();
    flood(rounds.next().unwrap()).await;
    assert_eq!(server.hits(), 2, "the whole flood shares one fetch");
    flood(rounds.next().unwrap()).await;
    assert!(
        started.elapsed() < cooldown,
        "the test machine is too slow for this cooldown"
    );
    assert_eq!(server.hits(), 2, "still within the cooldown: no fetch");
    tokio::time::sleep(cooldown).await;
    flood(rounds.next().unwrap()).await;
    assert_eq!(server.hits(), 3, "one more fetch in the next cooldown window");
}

#[tokio::test]
async fn server_down_known_keys_keep_verifying_new_keys_do_not() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let cache = JwksCache::builder(server.url())
        .unknown_kid_cooldown(Duration::from_millis(1))
        .refresh_interval(Duration::from_millis(50))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();
    let v = verifier(cache.clone());
    let known = RSA.token(&session_claims());
    verify(&v, &known).await.unwrap();
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    for _ in 0..5 {
        // Due for refresh, the refresh fails; the last good keys still verify.
        verify(&v, &known).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A key the cache never saw: 401 unknown key, not 503.
    assert_eq!(
        verify(&v, &RSA2.token(&session_claims())).await,
        invalid(InvalidReason::UnknownKey)
    );
    assert!(cache.refresh().await.is_err());
    verify(&v, &known).await.unwrap();
}

#[tokio::test]
async fn stale_keys_expire_after_the_stale_if_error_bound() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let cache = JwksCache::builder(server.url())
        .refresh_interval(Duration::from_millis(50))
        .stale_if_error(Duration::from_millis(100))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();
    let v = verifier(cache);
    let token = RSA.token(&session_claims());
    verify(&v, &token).await.unwrap();
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    match verify(&v, &token).await {
        Err(VerifyError::Unavailable { .. }) => {}
        other => panic!("expected 503 once the keys are too stale, got {other:?}"),
    }
}

#[tokio::test]
async fn no_key_ever_loaded_is_a_503_and_backs_off() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    server.set_mode(Mode::Status(StatusCode::INTERNAL_SERVER_ERROR));
    let cache = JwksCache::builder(server.url())
        .backoff(Duration::from_secs(30), Duration::from_secs(60))
        .build()
        .unwrap();
    let v = verifier(cache);
    let token = RSA.token(&session_claims());
    for _ in 0..20 {
        match verify(&v, &token).await {
            Err(VerifyError::Unavailable { .. }) => {}
            other => panic!("expected 503, got {other:?}"),
        }
    }
    assert_eq!(server.hits(), 1, "failures back off instead of hammering the server");
    let second = match verify(&v, &token).await {
        Err(VerifyError::Unavailable { retry_after, .. }) => retry_after,
        other => panic!("{other:?}"),
    };
    assert!(second.is_some_and(|d| d > Duration::from_secs(20)), "{second:?}");

    // Through the gate: a 503 with Retry-After, never a 401.
    let gate = tokengate_runtime::TokenGate::builder()
        .verifier(TokenType::SessionToken, Arc::new(v))
        .build()
        .unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let policy = tokengate_runtime::Policy::accepting(tokengate_runtime::TokenTypes::DEFAULT);
    let rejection = gate
        .authorize(&headers, &http::Extensions::new(), &policy)
        .await
        .unwrap_err();
    assert_eq!(rejection.status(), 503);
}

#[tokio::test]
async fn a_server_that_was_never_reachable_is_a_503() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let url = server.url();
    server.stop().await;
    let v = verifier(JwksCache::new(url).unwrap());
    match verify(&v, &RSA.token(&session_claims())).await {
        Err(VerifyError::Unavailable { detail, .. }) => assert!(detail.contains("no usable key")),
        other => panic!("expected 503, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_server_times_out_instead_of_hanging() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    server.set_mode(Mode::Slow(Duration::from_secs(30)));
    let cache = JwksCache::builder(server.url())
        .fetch_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let v = verifier(cache.clone());
    let started = Instant::now();
    match verify(&v, &RSA.token(&session_claims())).await {
        Err(VerifyError::Unavailable { .. }) => {}
        other => panic!("expected 503, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let err = cache.refresh().await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn malformed_symmetric_and_encryption_keys_are_skipped_without_breaking_the_set() {
    let enc = Rsa::generate("enc-key");
    let mut enc_jwk = enc.jwk(None);
    enc_jwk["use"] = json!("enc");
    let set = jwks(&[
        json!({"kty":"RSA","kid":"broken","n":"!!!","e":"AQAB"}),
        json!({"kid":"no-kty"}),
        json!("not an object"),
        json!({"kty":"oct","kid":"hmac","k":"c2VjcmV0"}),
        json!({"kty":"EC","crv":"P-521","kid":"p521","x":"AA","y":"AA"}),
        enc_jwk,
        RSA.jwk(Some("RS256")),
    ]);
    let server = JwksServer::start(set).await;
    let cache = JwksCache::new(server.url()).unwrap();
    let v = verifier(cache.clone());
    verify(&v, &RSA.token(&session_claims())).await.unwrap();
    assert_eq!(cache.key_count(), 1);
    assert_eq!(
        verify(&v, &enc.token(&session_claims())).await,
        invalid(InvalidReason::UnknownKey)
    );
}

#[tokio::test]
async fn an_oversized_or_invalid_jwks_is_a_failed_fetch() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let padding: Vec<_> = (0..400)
        .map(|i| json!({"kty":"RSA","kid":format!("pad-{i}"),"n":"AQAB","e":"AQAB"}))
        .collect();
    server.set_jwks(json!({"keys": padding}));
    let cache = JwksCache::builder(server.url())
        .max_response_bytes(16 * 1024)
        .build()
        .unwrap();
    let err = cache.refresh().await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    server.set_raw("{\"keys\": [".into());
    let err = cache.refresh().await.unwrap_err();
    assert!(err.to_string().contains("JSON"), "{err}");
    assert_eq!(cache.key_count(), 0);
}

#[tokio::test]
async fn clerk_style_authorization_header_is_sent_and_never_shown() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    server.require_authorization("Bearer sk_test_secret");
    let wrong = JwksCache::builder(server.url())
        .header("Authorization", "Bearer sk_test_wrong")
        .build()
        .unwrap();
    let err = wrong.refresh().await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    assert!(!err.to_string().contains("sk_test"));
    let right = JwksCache::builder(server.url())
        .header("Authorization", "Bearer sk_test_secret")
        .build()
        .unwrap();
    assert_eq!(right.refresh().await.unwrap(), 1);
    let v = verifier(right.clone());
    verify(&v, &RSA.token(&session_claims())).await.unwrap();
    for shown in [format!("{right:?}"), format!("{v:?}")] {
        assert!(!shown.contains("sk_test_secret"), "{shown}");
        assert!(shown.contains("authorization"), "{shown}");
    }
}

#[tokio::test]
async fn discovery_finds_the_jwks_and_verifies_oauth_tokens() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let issuer = server.base.clone();
    server.set_doc(
        "/.well-known/openid-configuration",
        json!({"issuer": issuer, "jwks_uri": server.url()}),
    );
    let v = JwtVerifier::oauth_from_issuer(&issuer, ["https://api.example.com"])
        .await
        .unwrap();
    let now = now();
    let claims = json!({"iss":issuer,"aud":["https://api.example.com"],"sub":"user_1","client_id":"c_1",
                        "iat":now,"exp":now + 60,"jti":"j_1","scp":["read","write"]});
    let token = RSA.token_with_header(&json!({"alg":"RS256","typ":"at+jwt","kid":RSA.kid}), &claims);
    let auth = v.verify_token(&token, TokenType::OAuthToken).await.unwrap();
    assert_eq!(auth.scopes, ["read", "write"]);
    assert_eq!(auth.client_id.as_deref(), Some("c_1"));
    assert_eq!(v.name(), "jwt");

    // A metadata document naming another issuer is refused.
    let other = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    other.set_doc(
        "/.well-known/openid-configuration",
        json!({"issuer": "https://evil.example.com", "jwks_uri": other.url()}),
    );
    let err = JwtVerifier::oauth_from_issuer(&other.base, ["https://api.example.com"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("evil.example.com"), "{err}");
    let _ = OAuthRules::new(issuer, ["x"]);
}

#[tokio::test]
async fn rfc8414_metadata_is_used_when_oidc_is_absent() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    server.set_doc(
        "/.well-known/oauth-authorization-server",
        json!({"issuer": server.base, "jwks_uri": server.url()}),
    );
    let v = JwtVerifier::oauth_from_issuer(&server.base, ["api"]).await.unwrap();
    assert_eq!(v.jwks().unwrap().url(), server.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_share_one_initial_fetch() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let v = Arc::new(verifier(JwksCache::new(server.url()).unwrap()));
    let token = Arc::new(RSA.token(&session_claims()));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (v, token) = (Arc::clone(&v), Arc::clone(&token));
            tokio::spawn(async move { v.verify_token(&token, TokenType::SessionToken).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(server.hits(), 1);
}
