//! Session-token verification through [`JwtVerifier`] (verified-token cache off and on)
//! against `jsonwebtoken::decode` alone on the same RS256 token and key: the signature check
//! is the floor, the gap is tokengate's own work.
//!
//! Run: `cargo bench -p tokengate-runtime --bench jwt -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, Validation};
use tokengate_runtime::jwt::{JwtVerifier, KeySet, SessionRules, TokenCacheConfig};
use tokengate_runtime::verifier::{Credential, Verifier};
use tokengate_runtime::{TokenType, jwt::Algorithm};

/// Polls a future that completes without waiting (static keys never wait).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("verification with static keys never waits"),
    }
}

/// A Clerk-shaped session token (v2 claims) and the PEM of its key.
fn fixture() -> (String, String) {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = pair.public_key().as_der().unwrap();
    let body = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({
        "azp":"https://app.example.com","exp":now + 3600,"fva":[0,-1],"iat":now,"iss":"https://clerk.example.com",
        "jti":"a1b2c3d4e5f6a7b8c9d0","nbf":now - 10,"sid":"sess_2abcdefghijklmnopqrstuvwxyz","sts":"active",
        "sub":"user_2abcdefghijklmnopqrstuvwxyz","v":2,"fea":"o:invoices,o:reports",
        "o":{"id":"org_2abcdefghijklmnopqrstuvwxyz","rol":"admin","slg":"acme","per":"read,manage","fpm":"3,1"}
    });
    let header = r#"{"alg":"RS256","kid":"ins_2abcdefghijklmnopqrstuvwxyz","typ":"JWT"}"#;
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; pair.public_modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message.as_bytes(),
        &mut sig,
    )
    .unwrap();
    (format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig)), pem)
}

fn verifier(pem: &str, cache: TokenCacheConfig) -> JwtVerifier {
    JwtVerifier::builder()
        .keys(KeySet::from_pem(pem).unwrap())
        .session(SessionRules::new().authorized_parties(["https://app.example.com"]))
        .token_cache(cache)
        .build()
        .unwrap()
}

fn session_tokens(c: &mut Criterion) {
    let (token, pem) = fixture();
    let key = DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 5;
    validation.validate_nbf = true;
    let uncached = verifier(&pem, TokenCacheConfig::disabled());
    let cached = verifier(&pem, TokenCacheConfig::default());
    // Every path must succeed on this token, or the comparison means nothing.
    jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();
    ready(uncached.verify(Credential::new_for_tests(&token, TokenType::SessionToken))).unwrap();
    ready(cached.verify(Credential::new_for_tests(&token, TokenType::SessionToken))).unwrap();

    let mut group = c.benchmark_group("session_token_rs256");
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation).unwrap())
    });
    group.bench_function("jwt_verifier_cache_off", |b| {
        b.iter(|| {
            ready(uncached.verify(Credential::new_for_tests(black_box(&token), TokenType::SessionToken))).unwrap()
        })
    });
    group.bench_function("jwt_verifier_cache_on", |b| {
        b.iter(|| ready(cached.verify(Credential::new_for_tests(black_box(&token), TokenType::SessionToken))).unwrap())
    });
    group.finish();
}

criterion_group!(benches, session_tokens);
criterion_main!(benches);
