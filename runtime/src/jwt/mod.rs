//! JWT verification: Clerk session tokens, OAuth JWT access tokens (RFC 9068) and Clerk M2M
//! JWTs, with static keys or a remote JWKS, on `jsonwebtoken` (aws-lc-rs backend).
//!
//! One [`JwtVerifier`] verifies the kinds of token it has rules for, with one key source:
//!
//! | module | concept |
//! |---|---|
//! | [`keys`] | static key sets from PEM / JWK / JWKS text or files |
//! | [`jwks`] | the remote JWKS cache (lock-free reads, refresh, cooldown, stale-if-error) |
//! | [`discovery`] | OAuth / OIDC discovery of an issuer's `jwks_uri` |
//! | `jws` | the compact JWS: segments, JOSE header checks, signature |
//! | [`claims`] | claim validation and the mapping of each kind's claims |
//! | [`category`] | Clerk's `cat` header: which class of token a category names |
//! | `clerk_claims` | Clerk's organization claims, v1 and v2 |
//! | [`cache`] | the verified-token cache (a reused token costs a hash) |
//! | [`config`] | rules per kind of token, configuration errors |
//!
//! With Clerk: `CLERK_JWT_KEY` (the instance's PEM public key) gives a networkless
//! [`JwtVerifier::session_from_pem`]; without it, the Backend API's JWKS is a
//! [`JwksCache::builder`]`("https://api.clerk.com/v1/jwks").header("Authorization", "Bearer <secret key>")`.
//! Session, OAuth and M2M JWTs of one instance share those keys: give one verifier the three
//! rule sets and register it with `TokenGateBuilder::verifier_for(verifier.token_types(), …)`.
//!
//! The order of checks: size cap → verified-token cache → three base64url segments →
//! header (no `crit`, allowed `alg`, expected `typ`, Clerk's `cat` of the kind) → key by
//! `kid` bound to the `alg` → signature → the type the classifier gives the token
//! (`sub: mch_…` → M2M, `typ: at+jwt` → OAuth, else session; refused when those signals or
//! `cat` disagree) must be the type asked for → claims. A token's `jku`, `x5u`, `jwk` and
//! `x5c` headers are ignored. Because of that type check, what the verified-token cache
//! remembers is what classification would say, and the gate may recall a reused JWT before
//! classifying it ([`JwtVerifier::recall_jwt`]). A remembered token is answered only while
//! the key set it was verified with is still the one in use and still usable (a remote
//! JWKS due for refresh starts one, as a signature check would; one too stale to use
//! answers nothing from memory).
//!
//! ```
//! use std::sync::Arc;
//! use tokengate_runtime::jwt::{JwtVerifier, KeySet, SessionRules};
//! use tokengate_runtime::{TokenGate, TokenType};
//!
//! # fn pem() -> String { String::new() }
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = JwtVerifier::builder()
//!     .keys(KeySet::from_pem(&pem())?)
//!     .session(SessionRules::new().authorized_parties(["https://app.example.com"]))
//!     .build()?;
//! let gate = TokenGate::builder()
//!     .verifier(TokenType::SessionToken, Arc::new(verifier))
//!     .build()?;
//! # let _ = gate; Ok(()) }
//! # assert!(demo().is_err(), "an empty PEM is refused");
//! ```

pub mod cache;
pub mod category;
pub mod claims;
mod clerk_claims;
pub mod config;
#[cfg(feature = "jwks")]
pub mod discovery;
#[cfg(feature = "jwks")]
pub mod jwks;
mod jws;
pub mod keys;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use jsonwebtoken::Algorithm;

pub use self::cache::TokenCacheConfig;
use self::cache::{TokenCache, token_hash};
use self::claims::{ClaimRules, Clock};
pub use self::config::{JwtConfigError, M2mRules, OAuthRules, SessionRules};
#[cfg(feature = "jwks")]
pub use self::jwks::{JwksCache, JwksCacheBuilder, JwksError};
use self::jws::{Header, Segments};
use self::keys::Snapshot;
pub use self::keys::{AlgorithmSet, KeyError, KeySet, jwks_from_pem};
use crate::auth::{Auth, AuthInfo};
use crate::classify::{TokenFormat, jwt_type};
use crate::rejection::InvalidReason;
use crate::telemetry::{self, Cache};
use crate::token::{TokenType, TokenTypes};
use crate::verifier::sealed::Seal;
use crate::verifier::{Credential, Verifier, VerifyError, VerifyFuture};

/// The default clock skew allowed on `exp`, `nbf` and `iat`, as Clerk's.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// The default largest token accepted, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Where the verifier's keys come from.
#[derive(Clone, Debug)]
enum KeySource {
    Static(Arc<Snapshot>),
    #[cfg(feature = "jwks")]
    Remote(JwksCache),
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.keys.fmt(f)
    }
}

/// One kind's resolved rules.
#[derive(Debug)]
struct KindRules {
    algorithms: AlgorithmSet,
    /// Whether Clerk's `cat` header must suit the kind.
    check_category: bool,
    claims: ClaimRules,
}

impl KindRules {
    /// One kind's rules, once its builder's own check has passed.
    fn checked(
        check: Result<(), JwtConfigError>,
        claims: ClaimRules,
        check_category: bool,
        algorithms: AlgorithmSet,
    ) -> Result<KindRules, JwtConfigError> {
        check?;
        Ok(KindRules {
            algorithms,
            check_category,
            claims,
        })
    }
}

/// Verifies JWTs (session, OAuth access, M2M) with one key source. Cheap to clone.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: KeySource,
    session: Option<KindRules>,
    oauth: Option<KindRules>,
    m2m: Option<KindRules>,
    leeway: i64,
    max_token_bytes: usize,
    cache: Option<TokenCache>,
    cache_generation: AtomicU64,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("JwtVerifier")
            .field("keys", &i.keys)
            .field("session", &i.session)
            .field("oauth", &i.oauth)
            .field("m2m", &i.m2m)
            .field("leeway", &i.leeway)
            .field("max_token_bytes", &i.max_token_bytes)
            .field("cache", &i.cache)
            .finish()
    }
}

/// Builds a [`JwtVerifier`].
#[derive(Debug, Default)]
#[must_use]
pub struct JwtVerifierBuilder {
    keys: Option<KeySource>,
    session: Option<SessionRules>,
    oauth: Option<OAuthRules>,
    m2m: Option<M2mRules>,
    leeway: Option<Duration>,
    max_token_bytes: Option<usize>,
    cache: Option<TokenCacheConfig>,
}

impl JwtVerifierBuilder {
    /// Verifies with a static key set (PEM, JWK or JWKS; see [`KeySet`]).
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(KeySource::Static(Arc::new(Snapshot::fixed(keys))));
        self
    }

    /// Verifies with the keys of a remote JWKS.
    #[cfg(feature = "jwks")]
    pub fn jwks(mut self, jwks: JwksCache) -> Self {
        self.keys = Some(KeySource::Remote(jwks));
        self
    }

    /// Accepts session tokens under `rules`.
    pub fn session(mut self, rules: SessionRules) -> Self {
        self.session = Some(rules);
        self
    }

    /// Accepts OAuth JWT access tokens under `rules`.
    pub fn oauth(mut self, rules: OAuthRules) -> Self {
        self.oauth = Some(rules);
        self
    }

    /// Accepts M2M JWTs under `rules`.
    pub fn m2m(mut self, rules: M2mRules) -> Self {
        self.m2m = Some(rules);
        self
    }

    /// The clock skew allowed on `exp`, `nbf` and `iat` (default 5 s, at most 5 min).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// The largest token accepted (default 16 KiB).
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = Some(max);
        self
    }

    /// The verified-token cache (on by default; [`TokenCacheConfig::disabled`] turns it off).
    pub fn token_cache(mut self, config: TokenCacheConfig) -> Self {
        self.cache = Some(config);
        self
    }

    /// Checks the configuration and builds the verifier.
    pub fn build(self) -> Result<JwtVerifier, JwtConfigError> {
        let keys = self.keys.ok_or(JwtConfigError::NoKeys)?;
        if let KeySource::Static(snapshot) = &keys
            && snapshot.keys.is_empty()
        {
            return Err(JwtConfigError::NoKeys);
        }
        if self.session.is_none() && self.oauth.is_none() && self.m2m.is_none() {
            return Err(JwtConfigError::NoTokenKind);
        }
        let session = self
            .session
            .map(|r| KindRules::checked(r.check(), r.claim_rules(), r.check_category, r.algorithms))
            .transpose()?;
        // Clerk's OAuth JWT verification does not read `cat` (jwt/category.rs).
        let oauth = self
            .oauth
            .map(|r| KindRules::checked(r.check(), r.claim_rules(), false, r.algorithms))
            .transpose()?;
        let m2m = self
            .m2m
            .map(|r| KindRules::checked(r.check(), r.claim_rules(), r.check_category, r.algorithms))
            .transpose()?;
        let leeway = self.leeway.unwrap_or(DEFAULT_LEEWAY).as_secs();
        if leeway > 300 {
            return Err(JwtConfigError::LeewayTooLarge(leeway));
        }
        let max_token_bytes = self.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
        if max_token_bytes < 64 {
            return Err(JwtConfigError::Invalid(format!(
                "max_token_bytes of {max_token_bytes} cannot hold a JWT; use at least 4096"
            )));
        }
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                keys,
                session,
                oauth,
                m2m,
                leeway: leeway as i64,
                max_token_bytes,
                cache: TokenCache::new(&self.cache.unwrap_or_default()),
                cache_generation: AtomicU64::new(0),
            }),
        })
    }
}

fn now_secs() -> i64 {
    // A clock before 1970 makes every token expired: fail closed.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(i64::MAX, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn malformed() -> VerifyError {
    VerifyError::Invalid(InvalidReason::Malformed)
}

impl JwtVerifier {
    /// Starts a configuration.
    pub fn builder() -> JwtVerifierBuilder {
        JwtVerifierBuilder::default()
    }

    /// A session-token verifier with Clerk's defaults and a PEM public key (Clerk's
    /// `CLERK_JWT_KEY`), networkless.
    pub fn session_from_pem(pem: &str) -> Result<JwtVerifier, JwtConfigError> {
        JwtVerifier::builder()
            .keys(KeySet::from_pem(pem)?)
            .session(SessionRules::new())
            .build()
    }

    /// A session-token verifier with Clerk's defaults and a key file (PEM, JWK or JWKS).
    pub fn session_from_key_file(path: impl AsRef<Path>) -> Result<JwtVerifier, JwtConfigError> {
        JwtVerifier::builder()
            .keys(KeySet::from_file(path)?)
            .session(SessionRules::new())
            .build()
    }

    #[cfg(feature = "jwks")]
    /// A session-token verifier with Clerk's defaults and the JWKS at `url`.
    pub fn session_from_jwks_url(url: &str) -> Result<JwtVerifier, JwtConfigError> {
        JwtVerifier::builder()
            .jwks(JwksCache::new(url)?)
            .session(SessionRules::new())
            .build()
    }

    #[cfg(feature = "jwks")]
    /// An OAuth access-token verifier for tokens from `issuer` to one of `audiences`, with
    /// keys from the JWKS at `jwks_url`.
    pub fn oauth_from_jwks_url<I, S>(jwks_url: &str, issuer: &str, audiences: I) -> Result<JwtVerifier, JwtConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        JwtVerifier::builder()
            .jwks(JwksCache::new(jwks_url)?)
            .oauth(OAuthRules::new(issuer, audiences))
            .build()
    }

    #[cfg(feature = "jwks")]
    /// An OAuth access-token verifier for `issuer`, its JWKS found by discovery.
    pub async fn oauth_from_issuer<I, S>(issuer: &str, audiences: I) -> Result<JwtVerifier, JwtConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let metadata = discovery::discover(issuer).await?;
        JwtVerifier::oauth_from_jwks_url(&metadata.jwks_uri, &metadata.issuer, audiences)
    }

    /// The token types this verifier has rules for (for `TokenGateBuilder::verifier_for`).
    pub fn token_types(&self) -> TokenTypes {
        let i = &self.inner;
        [
            (TokenType::SessionToken, i.session.is_some()),
            (TokenType::OAuthToken, i.oauth.is_some()),
            (TokenType::M2mToken, i.m2m.is_some()),
        ]
        .into_iter()
        .filter_map(|(t, on)| on.then_some(t))
        .collect()
    }

    #[cfg(feature = "jwks")]
    /// The remote JWKS, when the keys come from one.
    pub fn jwks(&self) -> Option<&JwksCache> {
        match &self.inner.keys {
            KeySource::Remote(jwks) => Some(jwks),
            KeySource::Static(_) => None,
        }
    }

    /// How many verified tokens are cached (0 when the cache is off).
    pub fn cached_tokens(&self) -> u64 {
        self.inner.cache.as_ref().map_or(0, TokenCache::len)
    }

    fn rules(&self, token_type: TokenType) -> Option<&KindRules> {
        let i = &self.inner;
        match token_type {
            TokenType::SessionToken => i.session.as_ref(),
            TokenType::OAuthToken => i.oauth.as_ref(),
            TokenType::M2mToken => i.m2m.as_ref(),
            TokenType::ApiKey => None,
        }
    }

    /// The generation of the keys a remembered token must have been verified with to be
    /// answered from memory: the static set's, or the JWKS's while it would still verify a
    /// token itself (a set due for refresh starts one; one too stale to use gives `None`).
    fn usable_generation(&self) -> Option<u64> {
        match &self.inner.keys {
            KeySource::Static(s) => Some(s.generation),
            #[cfg(feature = "jwks")]
            KeySource::Remote(jwks) => jwks.usable_generation(),
        }
    }

    /// The cached identity of a token verified before, if the cache still holds it: what a
    /// reused token costs (a SHA-256 and a lookup, no signature check, no future).
    pub fn cached_token(&self, token: &str, token_type: TokenType) -> Option<Auth> {
        self.recall_jwt(token).filter(|auth| auth.token_type == token_type)
    }

    /// What [`Verifier::verify`] would answer for a credential, from memory alone: a token
    /// verified before as this type, or an opaque credential refused as malformed. `None`
    /// when only a signature check can tell. The gate asks it first on every request.
    pub fn verify_cached(&self, credential: &Credential<'_>) -> Option<Result<Auth, VerifyError>> {
        if credential.format() != TokenFormat::Jwt {
            return Some(Err(malformed()));
        }
        self.cached_token(credential.token(), credential.token_type()).map(Ok)
    }

    /// The identity of a JWT this verifier accepted before and still remembers (unexpired,
    /// same key set), whatever type it was verified as: the `Auth`'s `token_type` says which.
    pub fn recall_jwt(&self, token: &str) -> Option<Auth> {
        let cache = self.inner.cache.as_ref()?;
        if token.len() > self.inner.max_token_bytes {
            return None;
        }
        let generation = self.usable_generation()?;
        cache.get_any_type(&token_hash(token), generation, now_secs())
    }

    /// Verifies a token of `token_type` (as classified).
    pub async fn verify_token(&self, token: &str, token_type: TokenType) -> Result<Auth, VerifyError> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_bytes {
            return Err(malformed());
        }
        let rules = self.rules(token_type).ok_or(InvalidReason::WrongType)?;
        let now = now_secs();
        let hash = inner.cache.as_ref().map(|_| token_hash(token));
        if let (Some(cache), Some(hash)) = (&inner.cache, &hash) {
            let cached = self
                .usable_generation()
                .and_then(|generation| cache.get(hash, token_type, generation, now));
            // The gate asked the cache before without counting a miss: this is the request's one.
            telemetry::cache_lookup(Cache::VerifiedJwts, cached.is_some());
            if let Some(auth) = cached {
                return Ok(auth);
            }
        }

        let segments = Segments::split(token)?;
        let header_json = URL_SAFE_NO_PAD.decode(segments.header).map_err(|_| malformed())?;
        let header = Header::parse(&header_json)?;
        let alg = header.check(&rules.algorithms, token_type, rules.check_category)?;
        let kid = header.kid.as_deref();
        let snapshot = self.snapshot_for(kid, alg).await?;
        segments.check_signature(&snapshot.keys, kid, alg)?;
        let info = self.check_claims(segments.payload, &header, rules, token_type, now)?;
        let exp = info.expiration;
        let auth = Auth::new(info);
        self.remember(hash, &auth, exp, snapshot.generation, now);
        Ok(auth)
    }

    /// The keys to verify with: the static set, or the JWKS's once it has a key for `kid`
    /// and `alg` (fetching when needed).
    #[cfg_attr(
        not(feature = "jwks"),
        expect(unused_variables, reason = "static keys need no kid or alg")
    )]
    async fn snapshot_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<Snapshot>, VerifyError> {
        match &self.inner.keys {
            KeySource::Static(snapshot) => Ok(Arc::clone(snapshot)),
            #[cfg(feature = "jwks")]
            KeySource::Remote(jwks) => jwks.resolve(kid, alg).await,
        }
    }

    /// Decodes a signed payload and validates its claims as `token_type`, which must also be
    /// the type the classifier gives the token.
    fn check_claims(
        &self,
        payload_b64: &str,
        header: &Header<'_>,
        rules: &KindRules,
        token_type: TokenType,
        now: i64,
    ) -> Result<AuthInfo, VerifyError> {
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| malformed())?;
        let claims = claims::parse_object(&payload)?;
        // Only as the type the classifier gives this token (an `at+jwt` with an `mch_` subject
        // has none, whatever a caller asks): the gate recalls a remembered JWT before
        // classifying it, so what the cache holds must be what classification would say.
        if jwt_type(header.typ.as_deref(), header.cat.as_deref(), claims.get("sub"))? != token_type {
            return Err(InvalidReason::WrongType.into());
        }
        let clock = Clock {
            now,
            leeway: self.inner.leeway,
        };
        let info = match token_type {
            TokenType::SessionToken => claims::session(claims, &rules.claims, clock)?,
            TokenType::OAuthToken => claims::oauth(claims, &rules.claims, clock)?,
            _ => claims::m2m(claims, &rules.claims, clock)?,
        };
        Ok(info)
    }

    /// Caches a verified token until its `exp` (when the cache is on and the token has one),
    /// first clearing the cache if the keys changed since the last token was cached.
    fn remember(&self, hash: Option<[u8; 32]>, auth: &Auth, exp: Option<i64>, generation: u64, now: i64) {
        let inner = &*self.inner;
        if let (Some(cache), Some(hash), Some(exp)) = (&inner.cache, hash, exp) {
            let previous = inner.cache_generation.swap(generation, Ordering::Relaxed);
            if previous != generation {
                cache.clear();
            }
            cache.insert(hash, auth, exp, generation, now);
        }
    }
}

impl Verifier for JwtVerifier {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        if credential.format() != TokenFormat::Jwt {
            return Box::pin(std::future::ready(Err(malformed())));
        }
        Box::pin(self.verify_token(credential.token(), credential.token_type()))
    }

    fn name(&self) -> &'static str {
        "jwt"
    }

    fn verify_cached_sealed(&self, credential: &Credential<'_>, _: Seal) -> Option<Result<Auth, VerifyError>> {
        let answer = self.verify_cached(credential);
        if let Some(Ok(_)) = answer {
            telemetry::cache_lookup(Cache::VerifiedJwts, true);
        }
        answer
    }

    fn recall_jwt_sealed(&self, token: &str, _: Seal) -> Option<Auth> {
        let auth = self.recall_jwt(token);
        if auth.is_some() {
            telemetry::cache_lookup(Cache::VerifiedJwts, true);
        }
        auth
    }
}
