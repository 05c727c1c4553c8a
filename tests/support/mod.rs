//! Shared by the organization and condition tests: an RSA key generated for the test binary,
//! Clerk-shaped session tokens (v1 and v2 claims) signed with it (RS256), a `JwtVerifier`
//! trusting its public key, and a helper that sends a request through a router.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tokengate::jwt::{JwtVerifier, KeySet, OAuthRules, SessionRules};
use tower::ServiceExt as _;

pub mod pki;

pub const AZP: &str = "https://app.example.com";

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An RSA key pair generated once per test binary (slow in debug builds).
pub static KEY: LazyLock<aws_lc_rs::rsa::KeyPair> =
    LazyLock::new(|| aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap());

/// Another key: tokens it signs are forgeries to the verifier.
pub static FORGER: LazyLock<aws_lc_rs::rsa::KeyPair> =
    LazyLock::new(|| aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap());

pub fn public_pem(pair: &aws_lc_rs::rsa::KeyPair) -> String {
    let der = pair.public_key().as_der().unwrap();
    let body = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// An RS256 JWT with these claims, signed with `pair`.
pub fn sign(pair: &aws_lc_rs::rsa::KeyPair, claims: &Value) -> String {
    sign_with_kid(pair, "ins_test", claims)
}

/// An RS256 JWT with these claims and key id, signed with `pair` (a forgery of another
/// issuer's token when `pair` is not its key).
pub fn sign_with_kid(pair: &aws_lc_rs::rsa::KeyPair, kid: &str, claims: &Value) -> String {
    let header = json!({"alg":"RS256","typ":"JWT","kid":kid}).to_string();
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; pair.public_modulus_len()];
    pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message.as_bytes(), &mut sig)
        .unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A token signed with the trusted key.
pub fn token(claims: &Value) -> String {
    sign(&KEY, claims)
}

/// An RFC 9068 OAuth access token (`typ: at+jwt`) with these claims, signed with the trusted key.
pub fn oauth_token(claims: &Value) -> String {
    let header = json!({"alg":"RS256","typ":"at+jwt","kid":"ins_test"}).to_string();
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; KEY.public_modulus_len()];
    KEY.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message.as_bytes(), &mut sig)
        .unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))
}

pub const OAUTH_ISSUER: &str = "https://auth.example.com";
pub const OAUTH_AUDIENCE: &str = "https://api.example.com";

/// The claims of an OAuth access token for `user`, with `extra` merged in.
pub fn oauth_claims(user: &str, extra: Value) -> Value {
    let now = now();
    let mut claims = json!({
        "iss": OAUTH_ISSUER, "aud": OAUTH_AUDIENCE, "sub": user, "client_id": "client_1",
        "jti": format!("jti_{user}_{}", extra), "iat": now - 1, "exp": now + 60,
    });
    if let (Value::Object(c), Value::Object(e)) = (&mut claims, extra) {
        c.extend(e);
    }
    claims
}

/// An OAuth (RFC 9068) verifier trusting [`KEY`].
pub fn oauth_verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .keys(KeySet::from_pem(&public_pem(&KEY)).unwrap())
        .oauth(OAuthRules::new(OAUTH_ISSUER, [OAUTH_AUDIENCE]))
        .build()
        .unwrap()
}

/// A session token for `user` with `extra` claims (`fea`, `pla`, `fva`…) merged in.
pub fn session_with(user: &str, extra: Value) -> String {
    let mut claims = v1(user, None);
    if let (Value::Object(c), Value::Object(e)) = (&mut claims, extra) {
        c.extend(e);
    }
    token(&claims)
}

/// The claims every Clerk session token carries.
fn base(user: &str, version: Option<i64>) -> Value {
    let now = now();
    let mut claims = json!({
        "sub": user, "sid": format!("sess_{user}"), "sts": "active", "azp": AZP,
        "iss": "https://clerk.example.com", "exp": now + 60, "iat": now - 1, "nbf": now - 1,
        "jti": format!("jti_{user}"),
    });
    if let Some(v) = version {
        claims["v"] = json!(v);
    }
    claims
}

/// A Clerk v2 session token's claims: the organization in `o` (`rol` without the `org:`
/// prefix, `per` the permission names, `fpm` one bit mask per organization feature of `fea`).
pub fn v2(user: &str, org: Option<V2Org<'_>>) -> Value {
    let mut claims = base(user, Some(2));
    if let Some(org) = org {
        claims["fea"] = json!(org.fea);
        let mut o = json!({"id": "org_1", "rol": org.rol, "slg": "acme"});
        if let Some((per, fpm)) = org.per_fpm {
            o["per"] = json!(per);
            o["fpm"] = json!(fpm);
        }
        claims["o"] = o;
    }
    claims
}

/// The organization part of a v2 token.
pub struct V2Org<'a> {
    pub rol: &'a str,
    pub fea: &'a str,
    pub per_fpm: Option<(&'a str, &'a str)>,
}

/// A Clerk v1 session token's claims: `org_id`, `org_role`, `org_slug`, `org_permissions`.
pub fn v1(user: &str, org: Option<(&str, &[&str])>) -> Value {
    let mut claims = base(user, None);
    if let Some((role, permissions)) = org {
        claims["org_id"] = json!("org_1");
        claims["org_role"] = json!(role);
        claims["org_slug"] = json!("acme");
        claims["org_permissions"] = json!(permissions);
    }
    claims
}

/// A session verifier trusting [`KEY`], with Clerk's authorized-party check.
pub fn session_verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .keys(KeySet::from_pem(&public_pem(&KEY)).unwrap())
        .session(SessionRules::new().authorized_parties([AZP]))
        .build()
        .unwrap()
}

/// A response: status, `WWW-Authenticate`, and the body (JSON when it is JSON).
pub struct Reply {
    pub status: StatusCode,
    pub challenge: Option<String>,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn reason(&self) -> String {
        self.json()["reason"].as_str().unwrap_or_default().to_owned()
    }
}

pub async fn get(router: &Router, uri: &str, token: Option<&str>) -> Reply {
    send(router, http::Method::GET, uri, token).await
}

pub async fn send(router: &Router, method: http::Method, uri: &str, token: Option<&str>) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    if let Some(token) = token {
        assert!(!text.contains(token), "a response body must never echo the token");
    }
    Reply {
        status,
        challenge,
        text,
    }
}
