//! Test helpers (feature `testing`, for dev-dependencies): a test issuer that signs session,
//! OAuth (RFC 9068) and M2M JWTs with a real RSA key, an in-memory key store that issues API
//! keys and `mt_` tokens, and a [`TokenGate`] wired to both in one call. Real signatures,
//! real verifiers, no network: a guarded handler is tested through its real router.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use tokengate_runtime::testing::TestGate;
//! use tokengate_runtime::{PolicyLayer, Policy, TokenType, TokenTypes};
//! use tower::ServiceExt as _;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let t = TestGate::new()?;
//! let policy = Policy::accepting(TokenTypes::from_slice(&[TokenType::SessionToken, TokenType::ApiKey]));
//! let app: Router = Router::new()
//!     .route("/me", get(|auth: tokengate_runtime::Auth| async move { auth.user_id.as_deref().unwrap_or_default().to_owned() }))
//!     .layer(PolicyLayer::new(t.gate.clone(), policy));
//!
//! let session = t.issuer.session("user_1").org("org_1", "org:admin").sign()?;
//! let key = t.keys.api_key("user_2", ["read:users"]).await?;
//! let expired = t.issuer.session("user_1").expires_in(-60).sign()?;
//!
//! let status = |token: String| {
//!     let app = app.clone();
//!     async move {
//!         let request = Request::get("/me").header("authorization", format!("Bearer {token}"));
//!         app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap().status()
//!     }
//! };
//! assert_eq!(status(session).await, StatusCode::OK);
//! assert_eq!(status(key.secret.clone()).await, StatusCode::OK);
//! assert_eq!(status(expired).await, StatusCode::UNAUTHORIZED);
//! t.keys.revoke(&key.id).await?;
//! assert_eq!(status(key.secret).await, StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! With the attributes, the same gate goes into the router's state:
//! `Router::new().route("/me", get(me)).with_state(t.gate.clone())`.
//!
//! The tokens carry [`TEST_ISSUER`] (and [`TEST_AUDIENCE`] for OAuth tokens), a key id of
//! [`TEST_KID`], and expire in an hour unless told otherwise. The key pair is generated once
//! per process (RSA generation is slow in debug builds) and never leaves it.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value, json};

use crate::gate::{ConfigError, TokenGate};
use crate::jwt::{Algorithm, JwtConfigError, JwtVerifier, KeySet, M2mRules, OAuthRules, SessionRules, jwks_from_pem};
use crate::keys::{KeySpec, KeyVerifier, MemoryKeyStore, StoreError};
use crate::token::{TokenType, TokenTypes};
use crate::verifier::{ByFormat, Verifier};

/// The `iss` of the test tokens.
pub const TEST_ISSUER: &str = "https://issuer.tokengate.test";
/// The `aud` of the test OAuth tokens.
pub const TEST_AUDIENCE: &str = "https://api.tokengate.test";
/// The key id (`kid`) of the test key.
pub const TEST_KID: &str = "tokengate-test";

/// Why a test helper failed (key generation, signing, the store).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestingError {
    /// The key pair could not be generated or encoded.
    #[error("the test key pair: {0}")]
    Key(String),
    /// A token could not be signed.
    #[error("signing a test token: {0}")]
    Sign(String),
    /// The verifier could not be built.
    #[error(transparent)]
    Verifier(#[from] JwtConfigError),
    /// The gate could not be built.
    #[error(transparent)]
    Gate(#[from] ConfigError),
    /// The key store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The process's test key pair: PKCS#8 private key and SPKI public key, PEM.
struct KeyPair {
    private_pem: String,
    public_pem: String,
}

fn generate() -> Result<KeyPair, TestingError> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair as _;
    let failed = |what: &str| TestingError::Key(what.to_owned());
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| failed("RSA key generation failed"))?;
    let private: Pkcs8V1Der<'_> = pair.as_der().map_err(|_| failed("encoding the private key failed"))?;
    let public: PublicKeyX509Der<'_> = pair
        .public_key()
        .as_der()
        .map_err(|_| failed("encoding the public key failed"))?;
    Ok(KeyPair {
        private_pem: pem("PRIVATE KEY", private.as_ref()),
        public_pem: pem("PUBLIC KEY", public.as_ref()),
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn shared_pair() -> Result<Arc<KeyPair>, TestingError> {
    static PAIR: OnceLock<Result<Arc<KeyPair>, String>> = OnceLock::new();
    PAIR.get_or_init(|| generate().map(Arc::new).map_err(|e| e.to_string()))
        .clone()
        .map_err(TestingError::Key)
}

/// Signs test JWTs with the process's RSA key (`RS256`, `kid` [`TEST_KID`]).
#[derive(Clone)]
pub struct TestIssuer {
    pair: Arc<KeyPair>,
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuer")
            .field("kid", &TEST_KID)
            .finish_non_exhaustive()
    }
}

impl TestIssuer {
    /// The issuer, with the process's key pair (generated on first use).
    pub fn new() -> Result<TestIssuer, TestingError> {
        Ok(TestIssuer { pair: shared_pair()? })
    }

    /// The public key as a JWKS document, as an identity provider serves it.
    pub fn jwks(&self) -> Result<Value, TestingError> {
        jwks_from_pem(&self.pair.public_pem, Some(TEST_KID), Algorithm::RS256)
            .map_err(|e| TestingError::Key(e.to_string()))
    }

    /// The public key as a [`KeySet`].
    pub fn key_set(&self) -> Result<KeySet, TestingError> {
        KeySet::from_jwks(&self.jwks()?.to_string()).map_err(|e| TestingError::Key(e.to_string()))
    }

    /// A verifier of this issuer's session, OAuth and M2M tokens.
    pub fn verifier(&self) -> Result<JwtVerifier, TestingError> {
        Ok(JwtVerifier::builder()
            .keys(self.key_set()?)
            .session(SessionRules::new().issuer(TEST_ISSUER))
            .oauth(OAuthRules::new(TEST_ISSUER, [TEST_AUDIENCE]))
            .m2m(M2mRules::new().issuer(TEST_ISSUER))
            .build()?)
    }

    /// A session token of `user_id` (`sub`), with a session id and `sts: active`.
    pub fn session(&self, user_id: &str) -> TokenBuilder<'_> {
        self.builder(
            TokenType::SessionToken,
            json!({"sub": user_id, "sid": format!("sess_{user_id}"), "sts": "active"}),
        )
    }

    /// An RFC 9068 OAuth access token (`typ: at+jwt`) of `subject`, for [`TEST_AUDIENCE`].
    pub fn oauth(&self, subject: &str) -> TokenBuilder<'_> {
        let claims = json!({"sub": subject, "aud": TEST_AUDIENCE, "client_id": "client_test", "jti": unique_id("oat")});
        self.builder(TokenType::OAuthToken, claims)
    }

    /// An M2M JWT of the machine `machine_id` (`mch_…`).
    pub fn m2m(&self, machine_id: &str) -> TokenBuilder<'_> {
        self.builder(TokenType::M2mToken, json!({"sub": machine_id, "jti": unique_id("mt")}))
    }

    fn builder(&self, token_type: TokenType, claims: Value) -> TokenBuilder<'_> {
        let now = now();
        let mut map = match claims {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        map.insert("iss".into(), json!(TEST_ISSUER));
        map.insert("iat".into(), json!(now));
        map.insert("nbf".into(), json!(now));
        map.insert("exp".into(), json!(now + 3600));
        TokenBuilder {
            issuer: self,
            token_type,
            claims: map,
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An id unique within the process (`jti`), so tokens minted in the same second differ.
fn unique_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}_test_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The claims of one test token, then [`TokenBuilder::sign`].
#[derive(Debug)]
pub struct TokenBuilder<'a> {
    issuer: &'a TestIssuer,
    token_type: TokenType,
    claims: Map<String, Value>,
}

impl TokenBuilder<'_> {
    /// Sets (or replaces) any claim.
    #[must_use]
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim (to test a token without it).
    #[must_use]
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Expires `seconds` from now (negative: already expired).
    #[must_use]
    pub fn expires_in(self, seconds: i64) -> Self {
        self.claim("exp", now() + seconds)
    }

    /// A session's active organization and role (`org_id`, `org_role`).
    #[must_use]
    pub fn org(self, org_id: &str, role: &str) -> Self {
        self.claim("org_id", org_id).claim("org_role", role)
    }

    /// A session's organization permissions (`org_permissions`).
    #[must_use]
    pub fn permissions<I: IntoIterator<Item = S>, S: Into<String>>(self, permissions: I) -> Self {
        let list: Vec<String> = permissions.into_iter().map(Into::into).collect();
        self.claim("org_permissions", list)
    }

    /// A session's Clerk Billing features (`fea`), e.g. `"o:exports,u:profile"`.
    #[must_use]
    pub fn features(self, fea: &str) -> Self {
        self.claim("fea", fea)
    }

    /// A session's Clerk Billing plans (`pla`), e.g. `"o:pro"`.
    #[must_use]
    pub fn plans(self, pla: &str) -> Self {
        self.claim("pla", pla)
    }

    /// Minutes since a session's first and second factor were verified (`fva`; `-1`: never).
    #[must_use]
    pub fn factors_verified(self, first_minutes: i64, second_minutes: i64) -> Self {
        self.claim("fva", json!([first_minutes, second_minutes]))
    }

    /// Scopes: `scope` (space-separated) on OAuth tokens, `scopes` on M2M JWTs.
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(self, scopes: I) -> Self {
        let joined = scopes.into_iter().map(Into::into).collect::<Vec<String>>().join(" ");
        let name = if self.token_type == TokenType::M2mToken {
            "scopes"
        } else {
            "scope"
        };
        self.claim(name, joined)
    }

    /// An OAuth token's authentication (RFC 9470): `acr`, and `auth_time` `seconds_ago`.
    #[must_use]
    pub fn acr(self, acr: &str, seconds_ago: i64) -> Self {
        self.claim("acr", acr).claim("auth_time", now() - seconds_ago)
    }

    /// The token, signed.
    pub fn sign(self) -> Result<String, TestingError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(TEST_KID.to_owned());
        header.typ = Some(
            if self.token_type == TokenType::OAuthToken {
                "at+jwt"
            } else {
                "JWT"
            }
            .to_owned(),
        );
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.issuer.pair.private_pem.as_bytes())
            .map_err(|e| TestingError::Sign(e.to_string()))?;
        jsonwebtoken::encode(&header, &Value::Object(self.claims), &key).map_err(|e| TestingError::Sign(e.to_string()))
    }
}

/// An issued test key: its id (to revoke it) and its secret (the bearer token).
#[derive(Clone)]
#[non_exhaustive]
pub struct TestKey {
    /// The key's id.
    pub id: String,
    /// The secret, `ak_…` or `mt_…`.
    pub secret: String,
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// An in-memory key store and its verifier, issuing API keys and `mt_` M2M tokens.
#[derive(Clone, Debug)]
pub struct TestKeys {
    verifier: Arc<KeyVerifier>,
}

impl TestKeys {
    /// An empty store.
    pub fn new() -> TestKeys {
        TestKeys {
            verifier: Arc::new(KeyVerifier::new(Arc::new(MemoryKeyStore::new()))),
        }
    }

    /// The verifier, for a gate of your own.
    pub fn verifier(&self) -> &Arc<KeyVerifier> {
        &self.verifier
    }

    /// Issues an API key of `subject` with `scopes`.
    pub async fn api_key<I: IntoIterator<Item = S>, S: Into<String>>(
        &self,
        subject: &str,
        scopes: I,
    ) -> Result<TestKey, TestingError> {
        self.issue(KeySpec::api_key(subject, "test").scopes(scopes)).await
    }

    /// Issues an `mt_` M2M token of `subject` (a machine, `mch_…`) with `scopes`.
    pub async fn m2m_token<I: IntoIterator<Item = S>, S: Into<String>>(
        &self,
        subject: &str,
        scopes: I,
    ) -> Result<TestKey, TestingError> {
        self.issue(KeySpec::m2m_token(subject, "test").scopes(scopes)).await
    }

    /// Issues a key of any [`KeySpec`] (expiry, claims, a name…).
    pub async fn issue(&self, spec: KeySpec) -> Result<TestKey, TestingError> {
        let issued = self.verifier.issue(spec).await?;
        Ok(TestKey {
            id: issued.record.id.clone(),
            secret: issued.secret.expose().to_owned(),
        })
    }

    /// Revokes the key `id`; the verifier refuses it from now on.
    pub async fn revoke(&self, id: &str) -> Result<(), TestingError> {
        self.verifier.revoke(id, Some("revoked by a test")).await?;
        Ok(())
    }
}

impl Default for TestKeys {
    fn default() -> Self {
        TestKeys::new()
    }
}

/// A [`TokenGate`] that verifies the [`TestIssuer`]'s JWTs and the [`TestKeys`]' keys: every
/// token type, in one call.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TestGate {
    /// The gate: put it in the router's state, or in a `PolicyLayer`.
    pub gate: TokenGate,
    /// Mints session, OAuth and M2M JWTs.
    pub issuer: TestIssuer,
    /// Issues and revokes API keys and `mt_` tokens.
    pub keys: TestKeys,
}

impl TestGate {
    /// The issuer, an empty key store, and a gate with a verifier for every token type.
    pub fn new() -> Result<TestGate, TestingError> {
        let issuer = TestIssuer::new()?;
        let keys = TestKeys::new();
        let jwt: Arc<dyn Verifier> = Arc::new(issuer.verifier()?);
        let key_verifier: Arc<dyn Verifier> = keys.verifier().clone();
        let m2m = ByFormat::new().jwt(Arc::clone(&jwt)).opaque(Arc::clone(&key_verifier));
        let gate = TokenGate::builder()
            .verifier_for(TokenTypes::DEFAULT.with(TokenType::OAuthToken), jwt)
            .verifier(TokenType::ApiKey, key_verifier)
            .verifier(TokenType::M2mToken, Arc::new(m2m))
            .build()?;
        Ok(TestGate { gate, issuer, keys })
    }
}
