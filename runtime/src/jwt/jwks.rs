//! The remote JWKS cache: keys fetched from a JWKS URL, read without locks, refreshed on a
//! schedule and on an unknown `kid`, and kept through outages for a bounded time.
//!
//! - Reads go through an [`ArcSwap`]: no lock on the request path.
//! - Keys older than the refresh interval (default 10 min) are refreshed in the background
//!   by the next request that sees them; the request itself is not delayed.
//! - A token with an unknown `kid` triggers a refresh at most once per cooldown (default
//!   30 s), and concurrent requests share one fetch (single flight), so a flood of random
//!   `kid`s costs the JWKS server at most one request per cooldown.
//! - A failed fetch keeps the last good keys for `stale_if_error` (default 1 h) past their
//!   refresh time, and later attempts back off exponentially. Verification answers `503`
//!   only when no usable key is loaded.
//! - Every fetch has a timeout (default 5 s) and a response-size cap (default 512 KiB); a
//!   malformed, symmetric, weak or `use: enc` key is skipped without breaking the set.
//! - A token's `jku`, `x5u`, `jwk` and `x5c` headers are never used: only the configured
//!   URL is ever fetched.
//!
//! ```
//! use std::time::Duration;
//! use tokengate_runtime::jwt::JwksCache;
//!
//! let jwks = JwksCache::builder("https://clerk.example.com/.well-known/jwks.json")
//!     .refresh_interval(Duration::from_secs(300))
//!     .unknown_kid_cooldown(Duration::from_secs(30))
//!     .build()
//!     .unwrap();
//! assert_eq!(jwks.fetch_count(), 0, "nothing is fetched until a token needs a key");
//!
//! // Clerk's Backend API JWKS needs the secret key; the header never shows in `Debug`.
//! let clerk = JwksCache::builder("https://api.clerk.com/v1/jwks")
//!     .header("authorization", "Bearer sk_test_123")
//!     .build()
//!     .unwrap();
//! assert!(!format!("{clerk:?}").contains("sk_test_123"));
//! assert!(JwksCache::builder("http://example.com/jwks").build().is_err(), "plain HTTP off loopback");
//! ```

mod refresh;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;

use self::refresh::{Freshness, RefreshState, Trigger, lock, wait};
use super::config::JwtConfigError;
use super::keys::{KeySet, Lookup, Snapshot};
use crate::rejection::InvalidReason;
use crate::verifier::VerifyError;

/// Settings of a [`JwksCache`].
#[derive(Clone, Debug)]
struct Settings {
    refresh_interval: Duration,
    cooldown: Duration,
    stale_if_error: Duration,
    fetch_timeout: Duration,
    max_response_bytes: usize,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            refresh_interval: Duration::from_secs(600),
            cooldown: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(5),
            max_response_bytes: 512 * 1024,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

struct Inner {
    url: reqwest::Url,
    headers: HeaderMap,
    client: reqwest::Client,
    settings: Settings,
    snapshot: ArcSwap<Snapshot>,
    state: Mutex<RefreshState>,
    fetches: AtomicU64,
}

/// Keys fetched from a JWKS URL and cached. Cheap to clone (shared).
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.inner.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("JwksCache")
            .field("url", &self.inner.url.as_str())
            .field("headers (values redacted)", &headers)
            .field("keys", &self.inner.snapshot.load().keys.len())
            .field("settings", &self.inner.settings)
            .finish()
    }
}

/// Builds a [`JwksCache`].
#[must_use]
pub struct JwksCacheBuilder {
    url: String,
    headers: Vec<(String, String)>,
    settings: Settings,
    allow_http: bool,
}

impl fmt::Debug for JwksCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("JwksCacheBuilder")
            .field("url", &self.url)
            .field("headers (values redacted)", &headers)
            .field("settings", &self.settings)
            .finish()
    }
}

/// A failed JWKS fetch. Never contains header values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("JWKS fetch from {url} failed: {reason}")]
pub struct JwksError {
    url: String,
    reason: String,
}

impl JwksCacheBuilder {
    /// Adds a header to every fetch (e.g. Clerk's `Authorization: Bearer <secret key>`).
    /// Its value is never logged nor shown in `Debug`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How old keys may get before a request triggers a background refresh (default 10 min).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.settings.refresh_interval = interval;
        self
    }

    /// The least time between two fetches caused by unknown `kid`s (default 30 s).
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.settings.cooldown = cooldown;
        self
    }

    /// How long past their refresh time keys stay usable while fetches fail (default 1 h).
    pub fn stale_if_error(mut self, stale: Duration) -> Self {
        self.settings.stale_if_error = stale;
        self
    }

    /// The longest a fetch may take (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.settings.fetch_timeout = timeout;
        self
    }

    /// The largest JWKS accepted, in bytes (default 512 KiB).
    pub fn max_response_bytes(mut self, max: usize) -> Self {
        self.settings.max_response_bytes = max;
        self
    }

    /// The wait after a failed fetch: `min`, doubling per failure up to `max` (default 1 s
    /// to 5 min).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.settings.backoff_min = min;
        self.settings.backoff_max = max;
        self
    }

    /// Allows a plain `http://` URL off loopback. Only for trusted networks: keys fetched
    /// over plain HTTP can be replaced by anyone on the path.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Checks the settings and builds the cache. Nothing is fetched yet.
    pub fn build(self) -> Result<JwksCache, JwtConfigError> {
        let url = check_url(&self.url, self.allow_http)?;
        let s = &self.settings;
        for (name, value) in [
            ("refresh_interval", s.refresh_interval),
            ("fetch_timeout", s.fetch_timeout),
            ("backoff min", s.backoff_min),
        ] {
            if value.is_zero() {
                return Err(JwtConfigError::Invalid(format!(
                    "JWKS {name} must be greater than zero"
                )));
            }
        }
        if s.backoff_max < s.backoff_min {
            return Err(JwtConfigError::Invalid(
                "JWKS backoff max must be at least the backoff min".into(),
            ));
        }
        if s.max_response_bytes < 64 {
            return Err(JwtConfigError::Invalid(
                "JWKS max_response_bytes is too small to hold a key; use at least 16 KiB".into(),
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                JwtConfigError::Invalid(format!("JWKS header name {name:?} is not a valid header name"))
            })?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                JwtConfigError::Invalid(format!(
                    "the value of JWKS header {name} holds characters not allowed in a header (value not shown)"
                ))
            })?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        headers
            .entry(http::header::ACCEPT)
            .or_insert(HeaderValue::from_static("application/jwk-set+json, application/json"));
        let client = http_client(s.fetch_timeout, url.scheme() == "https")?;
        Ok(JwksCache {
            inner: Arc::new(Inner {
                url,
                headers,
                client,
                settings: self.settings,
                snapshot: ArcSwap::from_pointee(Snapshot::fixed(KeySet::new())),
                state: Mutex::new(RefreshState::default()),
                fetches: AtomicU64::new(0),
            }),
        })
    }
}

/// An HTTP client for key and discovery fetches: bounded time, few redirects, and no
/// redirect from `https` down to plain `http`.
pub(crate) fn http_client(timeout: Duration, https_only: bool) -> Result<reqwest::Client, JwtConfigError> {
    reqwest::Client::builder()
        .https_only(https_only)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| JwtConfigError::Invalid(format!("cannot build the HTTP client for JWKS fetches: {e}")))
}

/// Parses a key or discovery URL: `https`, or `http` on loopback (or when allowed).
pub(crate) fn check_url(url: &str, allow_http: bool) -> Result<reqwest::Url, JwtConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| JwtConfigError::InvalidUrl(format!("{url:?} is not an absolute URL ({e})")))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback || allow_http => Ok(parsed),
        "http" => Err(JwtConfigError::InvalidUrl(format!(
            "{url:?} uses plain HTTP; use https (plain HTTP is allowed only on loopback, or with allow_insecure_http)"
        ))),
        other => Err(JwtConfigError::InvalidUrl(format!(
            "{url:?} has scheme {other:?}; use https"
        ))),
    }
}

impl JwksCache {
    /// Starts a builder for the JWKS at `url`.
    pub fn builder(url: impl Into<String>) -> JwksCacheBuilder {
        JwksCacheBuilder {
            url: url.into(),
            headers: Vec::new(),
            settings: Settings::default(),
            allow_http: false,
        }
    }

    /// A cache of the JWKS at `url` with the default settings.
    pub fn new(url: impl Into<String>) -> Result<JwksCache, JwtConfigError> {
        JwksCache::builder(url).build()
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        self.inner.url.as_str()
    }

    /// How many fetches were started (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// How many keys are loaded.
    pub fn key_count(&self) -> usize {
        self.inner.snapshot.load().keys.len()
    }

    /// The current keys' generation: it changes whenever the fetched key material changes.
    pub fn generation(&self) -> u64 {
        self.inner.snapshot.load().generation
    }

    /// The generation a verified token remembered from these keys must carry to be answered
    /// from memory: the current one, as long as the keys would still verify a token (keys
    /// due for refresh start a background refresh, as a signature check does, so a key
    /// removed from the JWKS stops counting once it is fetched); `None` when the keys are
    /// too stale to use (past `stale_if_error`) or were never loaded.
    pub(crate) fn usable_generation(&self) -> Option<u64> {
        let inner = &self.inner;
        let snapshot = inner.snapshot.load();
        match inner.freshness(&snapshot, Instant::now()) {
            Freshness::Fresh => Some(snapshot.generation),
            Freshness::Due => {
                let _ = Inner::start_refresh(inner, Trigger::Scheduled);
                Some(snapshot.generation)
            }
            Freshness::Unusable => None,
        }
    }

    /// Fetches the JWKS now (joining a fetch already running), ignoring the cooldown and the
    /// backoff; returns how many keys are loaded. Call it at startup to fail fast on a wrong
    /// URL or secret.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let Ok(rx) = Inner::start_refresh(&self.inner, Trigger::Manual) else {
            return Err(self.error("no tokio runtime to run the fetch"));
        };
        wait(rx, self.inner.settings.fetch_timeout).await;
        let state = lock(&self.inner.state);
        match (&state.last_error, state.failures) {
            (Some(reason), failures) if failures > 0 => Err(self.error(reason)),
            _ => Ok(self.key_count()),
        }
    }

    fn error(&self, reason: &str) -> JwksError {
        JwksError {
            url: self.inner.url.to_string(),
            reason: reason.to_owned(),
        }
    }

    /// The snapshot holding a key for `kid` and `alg`, fetching when needed.
    pub(crate) async fn resolve(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<Snapshot>, VerifyError> {
        let inner = &self.inner;
        let mut snapshot = inner.snapshot.load_full();
        let now = Instant::now();
        match inner.freshness(&snapshot, now) {
            Freshness::Fresh => {}
            Freshness::Due => {
                // Refresh in the background; this request uses the keys it has.
                let _ = Inner::start_refresh(inner, Trigger::Scheduled);
            }
            Freshness::Unusable => {
                let retry_after = match Inner::start_refresh(inner, Trigger::NoKeys) {
                    Ok(rx) => {
                        wait(rx, inner.settings.fetch_timeout).await;
                        None
                    }
                    Err(retry_after) => retry_after,
                };
                snapshot = inner.snapshot.load_full();
                if inner.freshness(&snapshot, Instant::now()) == Freshness::Unusable {
                    let retry_after = retry_after.or_else(|| inner.retry_after(Instant::now()));
                    return Err(VerifyError::Unavailable {
                        retry_after,
                        detail: format!("no usable key from the JWKS at {}", inner.url),
                    });
                }
            }
        }
        match snapshot.keys.find(kid, alg) {
            Lookup::Found(_) => return Ok(snapshot),
            Lookup::AlgorithmNotAllowed => return Err(InvalidReason::DisallowedAlgorithm.into()),
            Lookup::NotFound => {}
        }
        // An unknown `kid`: maybe the keys rotated. At most one fetch per cooldown.
        let Ok(rx) = Inner::start_refresh(inner, Trigger::UnknownKid) else {
            return Err(InvalidReason::UnknownKey.into());
        };
        wait(rx, inner.settings.fetch_timeout).await;
        let snapshot = inner.snapshot.load_full();
        if inner.freshness(&snapshot, Instant::now()) == Freshness::Unusable {
            return Err(InvalidReason::UnknownKey.into());
        }
        match snapshot.keys.find(kid, alg) {
            Lookup::Found(_) => Ok(snapshot),
            Lookup::AlgorithmNotAllowed => Err(InvalidReason::DisallowedAlgorithm.into()),
            Lookup::NotFound => Err(InvalidReason::UnknownKey.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_off_loopback() {
        assert!(check_url("https://example.com/jwks", false).is_ok());
        for loopback in [
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9/jwks",
        ] {
            assert!(check_url(loopback, false).is_ok(), "{loopback}");
        }
        assert!(check_url("http://10.0.0.1/jwks", false).is_err());
        assert!(check_url("http://10.0.0.1/jwks", true).is_ok());
        assert!(check_url("file:///etc/passwd", true).is_err());
        assert!(check_url("/relative", false).is_err());
    }

    #[test]
    fn builder_debug_redacts_header_values_and_checks_settings() {
        let builder = JwksCache::builder("https://api.clerk.com/v1/jwks").header("Authorization", "Bearer sk_live_x");
        let shown = format!("{builder:?}");
        assert!(
            shown.contains("Authorization") && !shown.contains("sk_live_x"),
            "{shown}"
        );
        let zero = JwksCache::builder("https://example.com/jwks")
            .fetch_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(zero.to_string().contains("fetch_timeout"), "{zero}");
        let backoff = JwksCache::builder("https://example.com/jwks")
            .backoff(Duration::from_secs(10), Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(backoff.to_string().contains("backoff"), "{backoff}");
    }
}
