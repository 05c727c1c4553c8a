//! The attack corpus of the JWT issue: each hostile token is its own test, signed with real
//! keys generated here, against a real verifier (static keys or a loopback JWKS server).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod jwt_support;

use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use http::{HeaderMap, HeaderValue, header};
use jwt_support::{ATTACKER, Ec, JwksServer, RSA, RSA2, b64, jwks, now, session_claims};
use serde_json::{Value, json};
use tokengate_runtime::jwt::{Algorithm, JwksCache, JwtVerifier, KeyError, KeySet, OAuthRules, SessionRules};
use tokengate_runtime::rejection::InvalidReason;
use tokengate_runtime::verifier::VerifyError;
use tokengate_runtime::{Policy, Rejection, TokenGate, TokenType, TokenTypes};

/// A session verifier with the test key as a one-key JWKS (`kid` key-1, `alg` RS256).
fn session_verifier() -> JwtVerifier {
    let keys = KeySet::from_jwks(&jwks(&[RSA.jwk(Some("RS256"))]).to_string()).unwrap();
    JwtVerifier::builder()
        .keys(keys)
        .session(SessionRules::new())
        .build()
        .unwrap()
}

async fn reason(verifier: &JwtVerifier, token: &str, token_type: TokenType) -> InvalidReason {
    match verifier.verify_token(token, token_type).await {
        Err(VerifyError::Invalid(reason)) => reason,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

async fn session_reason(token: &str) -> InvalidReason {
    reason(&session_verifier(), token, TokenType::SessionToken).await
}

fn header(alg: &str) -> Value {
    json!({"alg": alg, "typ": "JWT", "kid": RSA.kid})
}

#[tokio::test]
async fn a_valid_token_passes_so_every_rejection_below_is_meaningful() {
    let token = RSA.token(&session_claims());
    let auth = session_verifier()
        .verify_token(&token, TokenType::SessionToken)
        .await
        .unwrap();
    assert_eq!(auth.user_id.as_deref(), Some("user_123"));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let token = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(session_claims().to_string())
    );
    assert_eq!(session_reason(&token).await, InvalidReason::DisallowedAlgorithm);
}

#[tokio::test]
async fn alg_none_capitalised_is_refused() {
    let token = format!(
        "{}.{}.",
        b64(r#"{"alg":"None","typ":"JWT"}"#),
        b64(session_claims().to_string())
    );
    assert_eq!(session_reason(&token).await, InvalidReason::DisallowedAlgorithm);
}

#[tokio::test]
async fn alg_none_through_the_gate_is_a_401() {
    let gate = TokenGate::builder()
        .verifier(TokenType::SessionToken, std::sync::Arc::new(session_verifier()))
        .build()
        .unwrap();
    let token = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(session_claims().to_string()));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let result = gate
        .authorize(
            &headers,
            &http::Extensions::new(),
            &Policy::accepting(TokenTypes::DEFAULT),
        )
        .await;
    assert_eq!(
        result.unwrap_err(),
        Rejection::InvalidToken(InvalidReason::DisallowedAlgorithm)
    );
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_pem_is_refused() {
    let pem = RSA.public_pem();
    let message = format!(
        "{}.{}",
        b64(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64(session_claims().to_string())
    );
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, pem.as_bytes()), message.as_bytes());
    let token = format!("{message}.{}", b64(tag.as_ref()));
    // Against a PEM-configured verifier (the classic confusion) and a JWKS one.
    let pem_verifier = JwtVerifier::session_from_pem(&pem).unwrap();
    assert_eq!(
        reason(&pem_verifier, &token, TokenType::SessionToken).await,
        InvalidReason::DisallowedAlgorithm
    );
    assert_eq!(session_reason(&token).await, InvalidReason::DisallowedAlgorithm);
    // HS algorithms cannot even be allowed.
    let hs_only = JwtVerifier::builder()
        .keys(KeySet::from_pem(&pem).unwrap())
        .session(SessionRules::new().algorithms(&[Algorithm::HS256]))
        .build();
    assert!(hs_only.unwrap_err().to_string().contains("HS256"));
}

#[tokio::test]
async fn ps256_token_against_an_rs256_key_is_refused() {
    // The verifier allows PS256, but the JWK's `alg` binds the key to RS256.
    let keys = KeySet::from_jwks(&jwks(&[RSA.jwk(Some("RS256"))]).to_string()).unwrap();
    let verifier = JwtVerifier::builder()
        .keys(keys)
        .session(SessionRules::new().algorithms(&[Algorithm::RS256, Algorithm::PS256]))
        .build()
        .unwrap();
    let token = RSA.token_with_header(&header("PS256"), &session_claims());
    assert_eq!(
        reason(&verifier, &token, TokenType::SessionToken).await,
        InvalidReason::DisallowedAlgorithm
    );
    // A PEM key bound to RS256 behaves the same, and the default rules never allow PS256.
    let bound = JwtVerifier::builder()
        .keys(KeySet::from_pem_for(&RSA.public_pem(), Algorithm::RS256).unwrap())
        .session(SessionRules::new().algorithms(&[Algorithm::RS256, Algorithm::PS256]))
        .build()
        .unwrap();
    assert_eq!(
        reason(&bound, &token, TokenType::SessionToken).await,
        InvalidReason::DisallowedAlgorithm
    );
    assert_eq!(session_reason(&token).await, InvalidReason::DisallowedAlgorithm);
    // The same PSS signature verifies when the key allows it: the refusal is the binding.
    let unbound = JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .session(SessionRules::new().algorithms(&[Algorithm::PS256]))
        .build()
        .unwrap();
    assert!(unbound.verify_token(&token, TokenType::SessionToken).await.is_ok());
}

#[tokio::test]
async fn embedded_jwk_and_jku_pointing_at_the_attacker_are_never_used() {
    let legit = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let attacker = JwksServer::start(jwks(&[ATTACKER.jwk(Some("RS256"))])).await;
    let verifier = JwtVerifier::builder()
        .jwks(JwksCache::new(legit.url()).unwrap())
        .session(SessionRules::new())
        .build()
        .unwrap();
    for kid in [ATTACKER.kid.as_str(), RSA.kid.as_str()] {
        let hostile = json!({
            "alg":"RS256","typ":"JWT","kid":kid,
            "jku": attacker.url(), "x5u": attacker.url(),
            "jwk": ATTACKER.jwk(Some("RS256")),
            "x5c": [STANDARD.encode(b"not a certificate")]
        });
        let token = ATTACKER.token_with_header(&hostile, &session_claims());
        let got = reason(&verifier, &token, TokenType::SessionToken).await;
        let expected = if kid == RSA.kid {
            InvalidReason::BadSignature
        } else {
            InvalidReason::UnknownKey
        };
        assert_eq!(got, expected, "kid {kid}");
    }
    assert_eq!(attacker.hits(), 0, "the attacker's server must never be contacted");
    assert!(legit.paths().iter().all(|p| p == "/jwks"));
}

async fn kid_attack(kid: &str) {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let verifier = JwtVerifier::builder()
        .jwks(JwksCache::new(server.url()).unwrap())
        .session(SessionRules::new())
        .build()
        .unwrap();
    let token = RSA.token_with_header(&json!({"alg":"RS256","typ":"JWT","kid":kid}), &session_claims());
    assert_eq!(
        reason(&verifier, &token, TokenType::SessionToken).await,
        InvalidReason::UnknownKey
    );
    assert_eq!(
        reason(&verifier, &token, TokenType::SessionToken).await,
        InvalidReason::UnknownKey
    );
    // Only the configured URL, at most the initial load (the cooldown covers the rest).
    assert!(server.hits() <= 1, "{} fetches", server.hits());
    assert!(server.paths().iter().all(|p| p == "/jwks"));
}

#[tokio::test]
async fn kid_path_traversal_is_just_an_unknown_key() {
    kid_attack("../../dev/null").await;
}

#[tokio::test]
async fn kid_sql_injection_is_just_an_unknown_key() {
    kid_attack("' OR '1'='1'; DROP TABLE keys; --").await;
}

#[tokio::test]
async fn kid_of_10_kb_is_refused_without_a_fetch() {
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let verifier = JwtVerifier::builder()
        .jwks(JwksCache::new(server.url()).unwrap())
        .session(SessionRules::new())
        .build()
        .unwrap();
    let kid = "k".repeat(10 * 1024);
    let token = RSA.token_with_header(&json!({"alg":"RS256","kid":kid}), &session_claims());
    assert_eq!(
        reason(&verifier, &token, TokenType::SessionToken).await,
        InvalidReason::UnknownKey
    );
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn crit_header_is_refused() {
    let h = json!({"alg":"RS256","typ":"JWT","kid":RSA.kid,"crit":["x"],"x":1});
    let token = RSA.token_with_header(&h, &session_claims());
    assert_eq!(session_reason(&token).await, InvalidReason::UnsupportedCritical);
}

#[tokio::test]
async fn expired_beyond_the_leeway_is_refused_and_within_it_accepted() {
    let mut claims = session_claims();
    claims["exp"] = json!(now() - 10);
    assert_eq!(session_reason(&RSA.token(&claims)).await, InvalidReason::Expired);
    claims["exp"] = json!(now() - 2);
    assert!(
        session_verifier()
            .verify_token(&RSA.token(&claims), TokenType::SessionToken)
            .await
            .is_ok(),
        "2 s past exp is inside the default 5 s leeway"
    );
}

#[tokio::test]
async fn nbf_in_the_future_is_refused() {
    let mut claims = session_claims();
    claims["nbf"] = json!(now() + 60);
    assert_eq!(session_reason(&RSA.token(&claims)).await, InvalidReason::NotYetValid);
}

#[tokio::test]
async fn iat_in_the_future_is_refused() {
    let mut claims = session_claims();
    claims["iat"] = json!(now() + 60);
    assert_eq!(session_reason(&RSA.token(&claims)).await, InvalidReason::IssuedInFuture);
}

#[tokio::test]
async fn exp_as_a_string_is_refused() {
    let mut claims = session_claims();
    claims["exp"] = json!("9999999999");
    assert_eq!(session_reason(&RSA.token(&claims)).await, InvalidReason::InvalidClaims);
}

fn issuer_verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .session(SessionRules::new().issuers(["https://clerk.example.com"]))
        .build()
        .unwrap()
}

#[tokio::test]
async fn iss_as_a_number_is_refused() {
    let mut claims = session_claims();
    claims["iss"] = json!(5);
    assert_eq!(
        reason(&issuer_verifier(), &RSA.token(&claims), TokenType::SessionToken).await,
        InvalidReason::WrongIssuer
    );
}

#[tokio::test]
async fn iss_as_an_array_is_refused() {
    let mut claims = session_claims();
    claims["iss"] = json!(["https://clerk.example.com"]);
    assert_eq!(
        reason(&issuer_verifier(), &RSA.token(&claims), TokenType::SessionToken).await,
        InvalidReason::WrongIssuer
    );
    claims["iss"] = json!("https://clerk.example.com");
    assert!(
        issuer_verifier()
            .verify_token(&RSA.token(&claims), TokenType::SessionToken)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn missing_aud_when_one_is_configured_is_refused() {
    let verifier = JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .session(SessionRules::new().audiences(["https://api.example.com"]))
        .build()
        .unwrap();
    let claims = session_claims();
    assert!(claims.get("aud").is_none());
    assert_eq!(
        reason(&verifier, &RSA.token(&claims), TokenType::SessionToken).await,
        InvalidReason::WrongAudience
    );
}

fn oauth_claims() -> Value {
    let now = now();
    json!({"iss":"https://auth.example.com","aud":"https://api.example.com","sub":"user_1",
           "client_id":"client_1","iat":now,"exp":now + 60,"jti":"at_1","scope":"read"})
}

#[tokio::test]
async fn an_at_jwt_on_a_session_only_policy_is_refused() {
    let at = RSA.token_with_header(&json!({"alg":"RS256","typ":"at+jwt","kid":RSA.kid}), &oauth_claims());
    // At the gate: refused by type before any verifier runs.
    let verifier = std::sync::Arc::new(session_verifier());
    let gate = TokenGate::builder()
        .verifier(TokenType::SessionToken, verifier)
        .build()
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {at}")).unwrap(),
    );
    let err = gate
        .authorize(
            &headers,
            &http::Extensions::new(),
            &Policy::accepting(TokenTypes::DEFAULT),
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "token-type-mismatch");
    // Handed to the session verifier as a session anyway: refused by `typ`.
    assert_eq!(session_reason(&at).await, InvalidReason::WrongType);
}

#[tokio::test]
async fn a_session_jwt_on_an_oauth_only_policy_is_refused() {
    let oauth = JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .oauth(OAuthRules::new("https://auth.example.com", ["https://api.example.com"]))
        .build()
        .unwrap();
    let mut claims = oauth_claims();
    claims["sid"] = json!("sess_1");
    let session = RSA.token(&claims);
    let gate = TokenGate::builder()
        .verifier(TokenType::OAuthToken, std::sync::Arc::new(oauth.clone()))
        .build()
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {session}")).unwrap(),
    );
    let policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::OAuthToken));
    let err = gate
        .authorize(&headers, &http::Extensions::new(), &policy)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "token-type-mismatch");
    // Directly: `typ: JWT` is not an access token; and the verifier has no session rules.
    assert_eq!(
        reason(&oauth, &session, TokenType::OAuthToken).await,
        InvalidReason::WrongType
    );
    assert_eq!(
        reason(&oauth, &session, TokenType::SessionToken).await,
        InvalidReason::WrongType
    );
}

#[tokio::test]
async fn duplicate_claims_are_refused() {
    let now = now();
    let payload = format!(r#"{{"sub":"user_attacker","sub":"user_123","exp":{}}}"#, now + 60);
    let token = RSA.sign_raw("RS256", &header("RS256").to_string(), &payload);
    assert_eq!(session_reason(&token).await, InvalidReason::Malformed);
    let nested = format!(
        r#"{{"sub":"user_1","exp":{},"v":2,"o":{{"id":"org_1","rol":"member","rol":"admin"}}}}"#,
        now + 60
    );
    let token = RSA.sign_raw("RS256", &header("RS256").to_string(), &nested);
    assert_eq!(session_reason(&token).await, InvalidReason::Malformed);
}

#[tokio::test]
async fn duplicate_header_members_are_refused() {
    let h = format!(r#"{{"alg":"RS256","alg":"none","kid":"{}"}}"#, RSA.kid);
    let token = RSA.sign_raw("RS256", &h, &session_claims().to_string());
    assert_eq!(session_reason(&token).await, InvalidReason::Malformed);
}

#[tokio::test]
async fn padded_base64_is_refused_even_when_correctly_signed() {
    // Padding on the header: the signature covers the padded text, so only the encoding is wrong.
    let mut h = header("RS256").to_string();
    while h.len().is_multiple_of(3) {
        h.push(' ');
    }
    let message = format!("{}.{}", URL_SAFE.encode(&h), b64(session_claims().to_string()));
    assert!(message.contains('='));
    let token = format!("{message}.{}", b64(RSA.sign_message("RS256", message.as_bytes())));
    assert_eq!(session_reason(&token).await, InvalidReason::Malformed);
    // Padding on the signature.
    let good = RSA.token(&session_claims());
    assert_eq!(session_reason(&format!("{good}=")).await, InvalidReason::Malformed);
}

#[tokio::test]
async fn standard_alphabet_base64_is_refused_even_when_correctly_signed() {
    // A claim whose bytes encode to `+` and `/` in the standard alphabet.
    let mut claims = session_claims();
    claims["pad"] = json!("\u{3ff}\u{3ff}\u{3ff}>>>???");
    let payload = STANDARD.encode(claims.to_string()).trim_end_matches('=').to_owned();
    assert!(payload.contains('+') || payload.contains('/'), "{payload}");
    let message = format!("{}.{payload}", b64(header("RS256").to_string()));
    let token = format!("{message}.{}", b64(RSA.sign_message("RS256", message.as_bytes())));
    assert_eq!(session_reason(&token).await, InvalidReason::Malformed);
}

#[tokio::test]
async fn four_segments_are_refused() {
    let token = format!("{}.{}", RSA.token(&session_claims()), b64("extra"));
    assert_eq!(session_reason(&token).await, InvalidReason::Malformed);
}

/// Runs `openssl` (a dependency of Debian's ca-certificates, so present wherever TLS roots
/// are): aws-lc-rs refuses to generate or sign with RSA keys under 2048 bits.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("the 1024-bit key test needs the `openssl` command (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn a_1024_bit_rsa_key_is_refused() {
    let dir = std::env::temp_dir().join(format!("tokengate-rsa1024-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join("key.pem");
    let private = private.to_str().unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        private,
    ]);
    let public_pem = String::from_utf8(openssl(&["pkey", "-in", private, "-pubout"])).unwrap();
    // A correctly signed token.
    let message = format!(
        "{}.{}",
        b64(r#"{"alg":"RS256","typ":"JWT","kid":"weak"}"#),
        b64(session_claims().to_string())
    );
    let msg_file = dir.join("msg");
    std::fs::write(&msg_file, &message).unwrap();
    let sig = openssl(&["dgst", "-sha256", "-sign", private, msg_file.to_str().unwrap()]);
    let token = format!("{message}.{}", b64(sig));
    std::fs::remove_dir_all(&dir).unwrap();

    // As a PEM: refused at configuration time, with the reason.
    assert_eq!(
        KeySet::from_pem(&public_pem).unwrap_err(),
        KeyError::WeakRsaKey { bits: 1024 }
    );
    // In a JWKS: skipped; the token signed with it finds no key.
    let weak_jwk = {
        let text = String::from_utf8(openssl_modulus(&public_pem)).unwrap();
        let hex = text.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(n.len(), 128, "a 1024-bit modulus");
        json!({"kty":"RSA","kid":"weak","alg":"RS256","use":"sig","n":b64(n),"e":"AQAB"})
    };
    let set = jwks(&[weak_jwk, RSA.jwk(Some("RS256"))]);
    let keys = KeySet::from_jwks(&set.to_string()).unwrap();
    assert_eq!(keys.kids().collect::<Vec<_>>(), [Some(RSA.kid.as_str())]);
    let verifier = JwtVerifier::builder()
        .keys(keys)
        .session(SessionRules::new())
        .build()
        .unwrap();
    assert_eq!(
        reason(&verifier, &token, TokenType::SessionToken).await,
        InvalidReason::UnknownKey
    );
}

fn openssl_modulus(public_pem: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("openssl")
        .args(["rsa", "-pubin", "-noout", "-modulus"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(public_pem.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[tokio::test]
async fn es256_signature_of_all_zeros_is_refused() {
    let ec = Ec::generate("ec-1");
    let keys = KeySet::from_jwks(&jwks(&[ec.jwk()]).to_string()).unwrap();
    let verifier = JwtVerifier::builder()
        .keys(keys)
        .session(SessionRules::new().algorithms(&[Algorithm::ES256]))
        .build()
        .unwrap();
    let good = ec.token(&session_claims());
    assert!(verifier.verify_token(&good, TokenType::SessionToken).await.is_ok());
    let (message, _) = good.rsplit_once('.').unwrap();
    let zeros = format!("{message}.{}", b64([0u8; 64]));
    assert_eq!(
        reason(&verifier, &zeros, TokenType::SessionToken).await,
        InvalidReason::BadSignature
    );
}

#[tokio::test]
async fn a_5_mb_token_is_refused_quickly() {
    let good = RSA.token(&session_claims());
    let huge = format!("{good}{}", "A".repeat(5 * 1024 * 1024));
    let started = Instant::now();
    assert_eq!(session_reason(&huge).await, InvalidReason::Malformed);
    assert!(started.elapsed() < Duration::from_millis(50), "{:?}", started.elapsed());
    // At the gate it never reaches the verifier: the header is over 8 KiB.
    let gate = TokenGate::builder()
        .verifier(TokenType::SessionToken, std::sync::Arc::new(session_verifier()))
        .build()
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {huge}")).unwrap(),
    );
    let err = gate
        .authorize(
            &headers,
            &http::Extensions::new(),
            &Policy::accepting(TokenTypes::DEFAULT),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn a_signature_from_another_key_is_refused() {
    let token = RSA2.token_with_header(&header("RS256"), &session_claims());
    assert_eq!(session_reason(&token).await, InvalidReason::BadSignature);
}
