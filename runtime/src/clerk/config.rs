//! Configuration of Clerk-hosted verification: secret keys, API URL, timeouts, cache and budget.
//!
//! Every secret is held in a [`SecretKey`], whose `Debug` is `<redacted>`; the whole
//! [`ClerkConfig`] can be logged.
//!
//! ```
//! use std::time::Duration;
//! use tokengate_runtime::clerk::ClerkConfig;
//!
//! let config = ClerkConfig::new("sk_test_abc123")
//!     .unwrap()
//!     .with_api_url("http://127.0.0.1:9999")
//!     .unwrap()
//!     .with_cache_ttl(Duration::from_secs(10));
//! assert_eq!(config.api_url(), "http://127.0.0.1:9999");
//! assert!(!format!("{config:?}").contains("sk_test_abc123"));
//! assert!(ClerkConfig::new("pk_test_abc").unwrap_err().to_string().contains("sk_"));
//! ```

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::budget::{CallBudget, Rate};
use crate::keys::secret::{WipedString, wiped_concat};
use crate::net::is_loopback_host;

pub use super::shape::TokenShape;

/// Clerk's Backend API, without the `/v1` suffix (`CLERK_API_URL`'s default).
pub const DEFAULT_API_URL: &str = "https://api.clerk.com";

/// The `Clerk-API-Version` this client is built to (the excerpted OpenAPI specification's).
pub const API_VERSION: &str = "2026-05-12";

/// The header that carries [`API_VERSION`].
pub const API_VERSION_HEADER: &str = "Clerk-API-Version";

/// How long a verified result is reused by default: the delay before a revocation in Clerk's
/// dashboard takes effect here.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// How long an unknown (404), revoked or expired token is remembered by default.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// The default call budget with a production secret key (`sk_live_…`): 64 calls in flight,
/// 50 a second (burst 100), and 5 a second (burst 10) for any one client.
///
/// Clerk allows a production instance 1 000 Backend API requests per 10 s, counted per
/// instance (the secret key), not per process: this spends at most 600 of them, leaving the
/// rest to the application's own Backend API calls and to a second instance of the service.
/// A flood of random `ak_…` strings then costs Clerk's quota at most 50 calls a second, and
/// one client at most 5, so Clerk never starts answering `429` to everyone.
pub const DEFAULT_LIVE_CALL_BUDGET: CallBudget =
    CallBudget::new(64, Rate::new(50, 100)).with_per_client(Rate::new(5, 10));

/// The default call budget with a development secret key (`sk_test_…` or any other): 64 in
/// flight, 5 a second (burst 10), and 1 a second (burst 5) for any one client — Clerk allows
/// a development instance 100 requests per 10 s.
pub const DEFAULT_TEST_CALL_BUDGET: CallBudget = CallBudget::new(64, Rate::new(5, 10)).with_per_client(Rate::new(1, 5));

/// A secret (Clerk secret key or machine secret key). `Debug` and `Display` never show it.
/// Its bytes are overwritten with zeros when it is dropped; two keys compare in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(WipedString);

impl ZeroizeOnDrop for SecretKey {}

impl SecretKey {
    /// The secret itself, to put in an `Authorization` header. Never log it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// `Bearer <secret>` as a header value marked sensitive.
    pub fn bearer(&self) -> Result<HeaderValue, ClerkConfigError> {
        let header = wiped_concat(&["Bearer ", self.expose()]);
        let mut value = HeaderValue::try_from(header.as_str())
            .map_err(|_| ClerkConfigError::InvalidSecretKey("the key contains characters not allowed in a header"))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Characters a Clerk secret may hold: printable ASCII without spaces, so it fits in a header.
fn is_header_safe(secret: &str) -> bool {
    !secret.is_empty() && secret.bytes().all(|b| b.is_ascii_graphic())
}

/// A configuration mistake, with what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClerkConfigError {
    /// `CLERK_SECRET_KEY` is missing.
    #[error(
        "CLERK_SECRET_KEY is not set; copy the secret key (`sk_live_…` or `sk_test_…`) from the API Keys page of the Clerk Dashboard"
    )]
    MissingSecretKey,
    /// The secret key does not look like a Clerk secret key.
    #[error(
        "the Clerk secret key is invalid: {0}; expected the `sk_live_…` or `sk_test_…` key from the API Keys page of the Clerk Dashboard (not the `pk_…` publishable key)"
    )]
    InvalidSecretKey(&'static str),
    /// The machine secret key is empty or cannot be sent in a header.
    #[error(
        "the Clerk machine secret key is invalid: {0}; copy it from the machine's page in the Clerk Dashboard, or unset CLERK_MACHINE_SECRET_KEY to verify M2M tokens with the secret key"
    )]
    InvalidMachineSecretKey(&'static str),
    /// The API URL is not an `http(s)` URL.
    #[error(
        "CLERK_API_URL {0:?} is not a valid http(s) URL; use `https://api.clerk.com` (the default) or your proxy's base URL, without `/v1`"
    )]
    InvalidApiUrl(String),
    /// The API URL is plain `http` to a host that is not loopback.
    #[error(
        "CLERK_API_URL {0:?} uses plain http to a host that is not loopback, which would send the Clerk secret key across the network in cleartext; use https:// (plain http is allowed only for localhost, 127.0.0.0/8 or [::1], e.g. a local test double)"
    )]
    InsecureApiUrl(String),
    /// The call budget is out of range.
    #[error("invalid Clerk call budget: {0}")]
    InvalidCallBudget(String),
    /// A setting is out of range.
    #[error("invalid Clerk setting: {0}")]
    InvalidSetting(&'static str),
    /// The HTTP client could not be built (TLS roots…).
    #[error("the HTTP client for Clerk's Backend API could not be built: {0}")]
    HttpClient(String),
}

/// Everything Clerk-hosted verification needs. Build with [`ClerkConfig::new`] or
/// [`ClerkConfig::from_env`], adjust with the `with_*` methods.
#[derive(Clone, Debug)]
pub struct ClerkConfig {
    secret_key: SecretKey,
    machine_secret_key: Option<SecretKey>,
    api_url: String,
    api_version: String,
    jwt_key: Option<String>,
    authorized_parties: Vec<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    cache_ttl: Duration,
    negative_ttl: Duration,
    cache_capacity: u64,
    call_budget: CallBudget,
    max_response_bytes: usize,
    token_shape: TokenShape,
}

impl ClerkConfig {
    /// A configuration with `secret_key` (`sk_…`) and the defaults: Clerk's API URL, a 2 s
    /// connect and 5 s request timeout, a 30 s cache TTL, a 5 s negative TTL, 10 000 cached
    /// tokens, and the call budget of the instance's kind ([`DEFAULT_LIVE_CALL_BUDGET`] for
    /// `sk_live_…`, [`DEFAULT_TEST_CALL_BUDGET`] otherwise).
    pub fn new(secret_key: impl Into<String>) -> Result<ClerkConfig, ClerkConfigError> {
        // Wiped when dropped, on the error paths too.
        let secret_key = Zeroizing::new(secret_key.into());
        if secret_key.is_empty() {
            return Err(ClerkConfigError::MissingSecretKey);
        }
        if !secret_key.starts_with("sk_") {
            return Err(ClerkConfigError::InvalidSecretKey("it does not start with `sk_`"));
        }
        if secret_key.len() <= 3 {
            return Err(ClerkConfigError::InvalidSecretKey("nothing follows `sk_`"));
        }
        if !is_header_safe(&secret_key) {
            return Err(ClerkConfigError::InvalidSecretKey(
                "it contains spaces or non-ASCII characters (a stray newline or quote?)",
            ));
        }
        let call_budget = if secret_key.starts_with("sk_live_") {
            DEFAULT_LIVE_CALL_BUDGET
        } else {
            DEFAULT_TEST_CALL_BUDGET
        };
        Ok(ClerkConfig {
            secret_key: SecretKey(WipedString(secret_key)),
            machine_secret_key: None,
            api_url: DEFAULT_API_URL.to_owned(),
            api_version: API_VERSION.to_owned(),
            jwt_key: None,
            authorized_parties: Vec::new(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            cache_ttl: DEFAULT_CACHE_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            cache_capacity: 10_000,
            call_budget,
            max_response_bytes: 64 * 1024,
            token_shape: TokenShape::default(),
        })
    }

    /// Reads `CLERK_SECRET_KEY` (required), `CLERK_MACHINE_SECRET_KEY`, `CLERK_API_URL`,
    /// `CLERK_JWT_KEY` and `CLERK_AUTHORIZED_PARTIES` (comma-separated origins).
    pub fn from_env() -> Result<ClerkConfig, ClerkConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with another source of variables (tests, config files).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ClerkConfig, ClerkConfigError> {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let secret = set("CLERK_SECRET_KEY").ok_or(ClerkConfigError::MissingSecretKey)?;
        let mut config = ClerkConfig::new(secret.trim())?;
        if let Some(key) = set("CLERK_MACHINE_SECRET_KEY") {
            config = config.with_machine_secret_key(key.trim())?;
        }
        if let Some(url) = set("CLERK_API_URL") {
            config = config.with_api_url(url.trim())?;
        }
        if let Some(pem) = set("CLERK_JWT_KEY") {
            config = config.with_jwt_key(pem);
        }
        if let Some(parties) = set("CLERK_AUTHORIZED_PARTIES") {
            config = config.with_authorized_parties(
                parties
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            );
        }
        Ok(config)
    }

    /// Verifies `mt_` tokens with a machine secret key instead of the secret key: only tokens
    /// granted access to that machine then verify.
    pub fn with_machine_secret_key(mut self, key: impl Into<String>) -> Result<ClerkConfig, ClerkConfigError> {
        let key = Zeroizing::new(key.into());
        if key.is_empty() {
            return Err(ClerkConfigError::InvalidMachineSecretKey("it is empty"));
        }
        if !is_header_safe(&key) {
            return Err(ClerkConfigError::InvalidMachineSecretKey(
                "it contains spaces or non-ASCII characters (a stray newline or quote?)",
            ));
        }
        self.machine_secret_key = Some(SecretKey(WipedString(key)));
        Ok(self)
    }

    /// The Backend API's base URL, without `/v1` (default [`DEFAULT_API_URL`]). A trailing
    /// `/` is removed. It must be `https`, unless its host is loopback (a local test double):
    /// every call carries the secret key.
    pub fn with_api_url(mut self, url: impl Into<String>) -> Result<ClerkConfig, ClerkConfigError> {
        let url = url.into();
        let trimmed = url.trim_end_matches('/');
        let parsed = reqwest::Url::parse(trimmed).map_err(|_| ClerkConfigError::InvalidApiUrl(url.clone()))?;
        let ok = matches!(parsed.scheme(), "http" | "https")
            && parsed.host().is_some()
            && parsed.query().is_none()
            && parsed.fragment().is_none()
            && parsed.username().is_empty()
            && parsed.password().is_none();
        if !ok {
            return Err(ClerkConfigError::InvalidApiUrl(url));
        }
        if parsed.scheme() == "http" && !parsed.host_str().is_some_and(is_loopback_host) {
            return Err(ClerkConfigError::InsecureApiUrl(url));
        }
        self.api_url = trimmed.to_owned();
        Ok(self)
    }

    /// The instance's PEM public key (`CLERK_JWT_KEY`), for networkless session verification.
    #[must_use]
    pub fn with_jwt_key(mut self, pem: impl Into<String>) -> ClerkConfig {
        self.jwt_key = Some(pem.into());
        self
    }

    /// The origins allowed in a session token's `azp` claim.
    #[must_use]
    pub fn with_authorized_parties(mut self, parties: impl IntoIterator<Item = String>) -> ClerkConfig {
        self.authorized_parties = parties.into_iter().collect();
        self
    }

    /// Timeouts: to connect, and for the whole request including the body. Both must be
    /// non-zero; keep them short, a caller waits for them.
    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> Result<ClerkConfig, ClerkConfigError> {
        if connect.is_zero() || request.is_zero() {
            return Err(ClerkConfigError::InvalidSetting("timeouts must be greater than zero"));
        }
        self.connect_timeout = connect;
        self.request_timeout = request;
        Ok(self)
    }

    /// How long a verified token is reused without asking Clerk again (default 30 s), and so
    /// how long a revoked token may still be accepted. Never longer than the token's own
    /// expiration. `Duration::ZERO` disables the cache of verified results.
    #[must_use]
    pub fn with_cache_ttl(mut self, ttl: Duration) -> ClerkConfig {
        self.cache_ttl = ttl;
        self
    }

    /// How long an unknown, revoked or expired token is remembered (default 5 s).
    #[must_use]
    pub fn with_negative_ttl(mut self, ttl: Duration) -> ClerkConfig {
        self.negative_ttl = ttl;
        self
    }

    /// How many tokens the cache holds (default 10 000).
    #[must_use]
    pub fn with_cache_capacity(mut self, capacity: u64) -> ClerkConfig {
        self.cache_capacity = capacity;
        self
    }

    /// How many Backend API calls may be in flight at once (default 64). Beyond it requests
    /// are answered `503` with `Retry-After: retry_after` instead of queueing. The rest of the
    /// call budget is kept ([`with_call_budget`](Self::with_call_budget)).
    pub fn with_max_outstanding_calls(
        mut self,
        max: usize,
        retry_after: Duration,
    ) -> Result<ClerkConfig, ClerkConfigError> {
        if max == 0 {
            return Err(ClerkConfigError::InvalidSetting(
                "the outstanding-call budget must be at least 1",
            ));
        }
        self.call_budget = self
            .call_budget
            .with_max_in_flight(max)
            .with_busy_retry_after(retry_after);
        Ok(self)
    }

    /// The bounds on Backend API calls for tokens not in the cache: in flight, per second,
    /// and each client's share (defaults: [`DEFAULT_LIVE_CALL_BUDGET`],
    /// [`DEFAULT_TEST_CALL_BUDGET`]). Several instances of a service share the Clerk
    /// instance's quota: divide the rate among them.
    pub fn with_call_budget(mut self, budget: CallBudget) -> Result<ClerkConfig, ClerkConfigError> {
        budget.check().map_err(ClerkConfigError::InvalidCallBudget)?;
        self.call_budget = budget;
        Ok(self)
    }

    /// The largest response body read from the API (default 64 KiB); larger ones are a `503`.
    #[must_use]
    pub fn with_max_response_bytes(mut self, max: usize) -> ClerkConfig {
        self.max_response_bytes = max;
        self
    }

    /// Bounds on a machine token's opaque part, checked before any call.
    pub fn with_token_shape(mut self, shape: TokenShape) -> Result<ClerkConfig, ClerkConfigError> {
        if shape.min_len == 0 || shape.min_len > shape.max_len {
            return Err(ClerkConfigError::InvalidSetting(
                "token shape needs 0 < min_len <= max_len",
            ));
        }
        self.token_shape = shape;
        Ok(self)
    }

    /// The secret key.
    pub fn secret_key(&self) -> &SecretKey {
        &self.secret_key
    }

    /// The machine secret key, if set.
    pub fn machine_secret_key(&self) -> Option<&SecretKey> {
        self.machine_secret_key.as_ref()
    }

    /// The Backend API's base URL, without `/v1` and without a trailing `/`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The `Clerk-API-Version` sent.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The PEM public key, if set.
    pub fn jwt_key(&self) -> Option<&str> {
        self.jwt_key.as_deref()
    }

    /// The authorized parties (`azp`) for session tokens; empty means not checked.
    pub fn authorized_parties(&self) -> &[String] {
        &self.authorized_parties
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The whole-request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The TTL of verified results.
    pub fn cache_ttl(&self) -> Duration {
        self.cache_ttl
    }

    /// The TTL of negative results.
    pub fn negative_ttl(&self) -> Duration {
        self.negative_ttl
    }

    /// The cache's capacity, in tokens.
    pub fn cache_capacity(&self) -> u64 {
        self.cache_capacity
    }

    /// The outstanding-call budget.
    pub fn max_outstanding_calls(&self) -> usize {
        self.call_budget.max_in_flight()
    }

    /// The `Retry-After` sent when the budget is exhausted.
    pub fn busy_retry_after(&self) -> Duration {
        self.call_budget.busy_retry_after()
    }

    /// The call budget.
    pub fn call_budget(&self) -> CallBudget {
        self.call_budget
    }

    /// The response size cap.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// The token shape checked before calls.
    pub fn token_shape(&self) -> TokenShape {
        self.token_shape
    }

    /// `{api}/v1/jwks`: the instance's JSON Web Key Set, fetched with
    /// [`jwks_headers`](Self::jwks_headers).
    pub fn jwks_url(&self) -> String {
        format!("{}/v1/jwks", self.api_url)
    }

    /// The headers for `GET {api}/v1/jwks`: `Authorization: Bearer <secret key>` (marked
    /// sensitive) and `Clerk-API-Version`.
    pub fn jwks_headers(&self) -> Result<HeaderMap, ClerkConfigError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, self.secret_key.bearer()?);
        headers.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
        Ok(headers)
    }

    /// Where session tokens' keys come from: the PEM key when set (networkless), otherwise
    /// the Backend API's JWKS.
    pub fn session_keys(&self) -> Result<SessionKeys<'_>, ClerkConfigError> {
        match &self.jwt_key {
            Some(pem) => Ok(SessionKeys::Pem(pem)),
            None => Ok(SessionKeys::Jwks {
                url: self.jwks_url(),
                headers: self.jwks_headers()?,
            }),
        }
    }
}

/// The key source for Clerk session tokens, for the JWT verifier.
pub enum SessionKeys<'a> {
    /// `CLERK_JWT_KEY`: verify without any network call.
    Pem(&'a str),
    /// `GET url` with `headers` (the secret key): the instance's JWKS.
    Jwks {
        /// `{api}/v1/jwks`.
        url: String,
        /// `Authorization` (sensitive) and `Clerk-API-Version`.
        headers: HeaderMap,
    },
}

impl fmt::Debug for SessionKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionKeys::Pem(_) => f.write_str("Pem(..)"),
            SessionKeys::Jwks { url, .. } => f.debug_struct("Jwks").field("url", url).finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Fails to compile if `SecretKey` stops wiping its bytes on drop.
    fn wiped_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn secret_keys_are_wiped_on_drop_and_compare_by_content() {
        wiped_on_drop::<SecretKey>();
        let a = ClerkConfig::new("sk_test_abc").unwrap();
        let b = ClerkConfig::new("sk_test_abc").unwrap();
        let c = ClerkConfig::new("sk_test_abd").unwrap();
        assert!(a.secret_key() == b.secret_key());
        assert!(a.secret_key() != c.secret_key());
        assert!(a.secret_key() != ClerkConfig::new("sk_test_ab").unwrap().secret_key());
        assert_eq!(a.secret_key().bearer().unwrap(), "Bearer sk_test_abc");
        assert!(a.secret_key().bearer().unwrap().is_sensitive());
    }

    #[test]
    fn secret_key_checks_say_what_is_expected() {
        assert_eq!(ClerkConfig::new("").unwrap_err(), ClerkConfigError::MissingSecretKey);
        let err = ClerkConfig::new("pk_test_x").unwrap_err().to_string();
        assert!(
            err.contains("does not start with `sk_`") && err.contains("publishable"),
            "{err}"
        );
        assert!(ClerkConfig::new("sk_").is_err());
        assert!(ClerkConfig::new("sk_test_a\n").is_err());
        assert!(ClerkConfig::new("sk_test_abc").is_ok());
    }

    #[test]
    fn api_url_is_normalised_and_checked() {
        let c = ClerkConfig::new("sk_test_abc").unwrap();
        assert_eq!(c.api_url(), DEFAULT_API_URL);
        assert_eq!(c.jwks_url(), "https://api.clerk.com/v1/jwks");
        let c = c.with_api_url("http://127.0.0.1:8080/").unwrap();
        assert_eq!(c.api_url(), "http://127.0.0.1:8080");
        for loopback in [
            "http://localhost:9",
            "http://[::1]:9",
            "http://127.3.4.5",
            "https://clerk.internal.example",
        ] {
            assert!(c.clone().with_api_url(loopback).is_ok(), "{loopback}");
        }
        for cleartext in [
            "http://api.clerk.com",
            "http://10.0.0.7:8080",
            "http://localhost.example.com",
        ] {
            let err = c.clone().with_api_url(cleartext).unwrap_err();
            assert_eq!(err, ClerkConfigError::InsecureApiUrl(cleartext.to_owned()));
            let text = err.to_string();
            assert!(text.contains("https://") && text.contains("cleartext"), "{text}");
        }
        for bad in [
            "ftp://x",
            "not a url",
            "https://u:p@api.clerk.com",
            "https://api.clerk.com?x=1",
        ] {
            let c = ClerkConfig::new("sk_test_abc").unwrap();
            assert!(
                matches!(c.with_api_url(bad), Err(ClerkConfigError::InvalidApiUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn env_lookup_and_redaction() {
        let vars = |name: &str| match name {
            "CLERK_SECRET_KEY" => Some("sk_live_topsecret".to_owned()),
            "CLERK_MACHINE_SECRET_KEY" => Some("ak_machinesecret".to_owned()),
            "CLERK_AUTHORIZED_PARTIES" => Some("https://a.example, https://b.example,".to_owned()),
            _ => None,
        };
        let c = ClerkConfig::from_lookup(vars).unwrap();
        assert_eq!(c.authorized_parties(), ["https://a.example", "https://b.example"]);
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("topsecret") && !debug.contains("machinesecret"),
            "{debug}"
        );
        let headers = c.jwks_headers().unwrap();
        assert!(headers[header::AUTHORIZATION].is_sensitive());
        assert!(!format!("{headers:?}").contains("topsecret"));
        assert!(!format!("{:?}", c.session_keys().unwrap()).contains("topsecret"));
        assert_eq!(
            ClerkConfig::from_lookup(|_| None).unwrap_err(),
            ClerkConfigError::MissingSecretKey
        );
    }

    #[test]
    fn the_call_budget_follows_the_instance_kind_and_is_checked() {
        let live = ClerkConfig::new("sk_live_abc").unwrap();
        assert_eq!(live.call_budget(), DEFAULT_LIVE_CALL_BUDGET);
        let test = ClerkConfig::new("sk_test_abc").unwrap();
        assert_eq!(test.call_budget(), DEFAULT_TEST_CALL_BUDGET);
        for budget in [DEFAULT_LIVE_CALL_BUDGET, DEFAULT_TEST_CALL_BUDGET] {
            assert_eq!(budget.check(), Ok(()));
            // Within Clerk's limits per 10 s (1 000 live, 100 development), with room left.
            let ten_seconds = budget.rate().per_second * 10 + budget.rate().burst;
            assert!(ten_seconds <= 1_000 && (budget != DEFAULT_TEST_CALL_BUDGET || ten_seconds <= 100));
        }
        let c = test.with_max_outstanding_calls(3, Duration::from_secs(2)).unwrap();
        assert_eq!(
            (c.max_outstanding_calls(), c.busy_retry_after()),
            (3, Duration::from_secs(2))
        );
        assert_eq!(c.call_budget().rate(), DEFAULT_TEST_CALL_BUDGET.rate());
        let err = c.with_call_budget(CallBudget::new(0, Rate::new(1, 1))).unwrap_err();
        assert!(matches!(err, ClerkConfigError::InvalidCallBudget(_)), "{err}");
    }
}
