//! RFC 7662 token introspection: verifies opaque OAuth access tokens by asking the
//! authorization server, with a cache and one request per token however many ask at once.
//!
//! - `POST` form `token=…&token_type_hint=access_token`, HTTP Basic client authentication
//!   (RFC 6749 §2.3.1), a timeout, a response-size cap, no redirects;
//! - `active` must be the JSON boolean `true`; an `exp` in the past is refused even when
//!   active; `aud` and `iss` are checked when configured; scopes come from `scope`;
//! - results are cached by the SHA-256 of the token for at most min(TTL, `exp` − now);
//!   inactive tokens for a short negative TTL;
//! - the calls for tokens not in the cache are bounded ([`CallBudget`], default
//!   [`DEFAULT_CALL_BUDGET`]): every random string is one call, so a flood of them would
//!   otherwise be a flood on the authorization server. Over a bound such a token is answered
//!   `503` with `Retry-After` ([`VerifyError::Busy`]); cached tokens never wait for it, and
//!   concurrent requests for one token share one call;
//! - a non-200 answer, a body that is not a JSON object, a timeout or a refused connection is
//!   a `503` ([`VerifyError::Unavailable`]) — never accepted, never a `401`; an answer that
//!   names a member twice (`{"active": false, "active": true}`), at any depth, is refused
//!   (`invalid-claims`), as JWT payloads are: two parsers could read it two ways.
//!
//! ```
//! use std::time::Duration;
//! use tokengate_runtime::{IntrospectionConfig, IntrospectionVerifier};
//!
//! let config = IntrospectionConfig::new("https://auth.example.com/oauth/introspect", "my-api", "s3cr3t")
//!     .audience("https://api.example.com")
//!     .timeout(Duration::from_secs(2));
//! assert!(!format!("{config:?}").contains("s3cr3t"));
//! let verifier = IntrospectionVerifier::new(config).unwrap();
//! # drop(verifier);
//! assert!(IntrospectionVerifier::new(IntrospectionConfig::new("http://auth.example.com/introspect", "a", "b")).is_err());
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use moka::future::Cache;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::auth::{Auth, AuthInfo};
use crate::budget::{CallBudget, Calls, Rate};
use crate::jwt::claims::parse_object;
use crate::keys::now_unix;
use crate::keys::secret::wiped_concat;
use crate::net::{ClientKey, is_loopback_host};
use crate::rejection::InvalidReason;
use crate::telemetry::{self, Backend};
use crate::token::TokenType;
use crate::verifier::{Credential, Verifier, VerifyError, VerifyFuture};

/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on the response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Default longest time an active result is cached (shorter when the token expires sooner).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default time an inactive result is cached.
pub const DEFAULT_NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(5);
/// Clock skew allowed on `nbf`.
pub const LEEWAY_SECS: i64 = 5;
/// The default bounds on introspection calls for tokens not in the cache: 32 in flight,
/// 100 a second (burst 100), and a tenth of that, 10 a second (burst 20), for any one client.
///
/// A legitimate service introspects each token once per cache TTL (60 s), so 100 new tokens
/// a second is some 6 000 distinct active tokens a minute, while a flood of random strings
/// costs the authorization server at most 100 calls a second (and a client at most 10),
/// whatever its rate. 32 in flight is 100 calls a second at a 300 ms response time.
pub const DEFAULT_CALL_BUDGET: CallBudget = CallBudget::new(32, Rate::new(100, 100)).with_per_client(Rate::new(10, 20));

/// Configures an [`IntrospectionVerifier`]. `Debug` redacts the client secret.
#[derive(Clone)]
pub struct IntrospectionConfig {
    endpoint: String,
    client_id: String,
    /// Wiped when dropped.
    client_secret: Zeroizing<String>,
    timeout: Duration,
    max_response_bytes: usize,
    cache_ttl: Duration,
    negative_cache_ttl: Duration,
    cache_capacity: u64,
    audience: Option<String>,
    issuer: Option<String>,
    call_budget: CallBudget,
}

impl IntrospectionConfig {
    /// Introspects at `endpoint` (https, or http on a loopback address) as client `client_id`.
    pub fn new(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> IntrospectionConfig {
        IntrospectionConfig {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret: Zeroizing::new(client_secret.into()),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            cache_ttl: DEFAULT_CACHE_TTL,
            negative_cache_ttl: DEFAULT_NEGATIVE_CACHE_TTL,
            cache_capacity: 100_000,
            audience: None,
            issuer: None,
            call_budget: DEFAULT_CALL_BUDGET,
        }
    }

    /// The whole-request timeout (default 5 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest response body accepted (default 64 KiB).
    #[must_use]
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// The longest an active result is cached (default 60 s; bounds how long a revoked token
    /// is still accepted). Zero disables caching.
    #[must_use]
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How long an inactive or invalid result is cached (default 5 s).
    #[must_use]
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.negative_cache_ttl = ttl;
        self
    }

    /// How many results are cached (default 100 000).
    #[must_use]
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Requires `aud` (a string or an array) to contain `audience`.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Requires `iss` to be `issuer`.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The bounds on calls for tokens not in the cache (default [`DEFAULT_CALL_BUDGET`]).
    #[must_use]
    pub fn call_budget(mut self, budget: CallBudget) -> Self {
        self.call_budget = budget;
        self
    }
}

impl fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &format_args!("<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("cache_ttl", &self.cache_ttl)
            .field("negative_cache_ttl", &self.negative_cache_ttl)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("call_budget", &self.call_budget)
            .finish()
    }
}

/// A misconfigured introspection verifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("introspection: {0}")]
pub struct IntrospectionConfigError(String);

/// A cached answer: the identity, or why the token is refused, and how long to keep it.
#[derive(Clone)]
struct Outcome {
    result: Result<Auth, InvalidReason>,
    ttl: Duration,
}

struct OutcomeExpiry;

impl moka::Expiry<[u8; 32], Outcome> for OutcomeExpiry {
    fn expire_after_create(&self, _key: &[u8; 32], value: &Outcome, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Verifies opaque OAuth access tokens with an RFC 7662 introspection endpoint. Configure it
/// for [`TokenType::OAuthToken`], and enable
/// [`opaque_oauth_tokens`](crate::TokenGateBuilder::opaque_oauth_tokens) when the
/// authorization server's tokens carry no `oat_` prefix.
pub struct IntrospectionVerifier {
    config: IntrospectionConfig,
    endpoint: reqwest::Url,
    authorization: http::HeaderValue,
    client: reqwest::Client,
    cache: Cache<[u8; 32], Outcome>,
    calls: Calls,
}

impl fmt::Debug for IntrospectionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionVerifier")
            .field("config", &self.config)
            .field("cached", &self.cache.entry_count())
            .field("call_places_free", &self.calls.available())
            .finish_non_exhaustive()
    }
}

impl IntrospectionVerifier {
    /// Checks the configuration and builds the HTTP client.
    pub fn new(config: IntrospectionConfig) -> Result<IntrospectionVerifier, IntrospectionConfigError> {
        let err = |m: String| Err(IntrospectionConfigError(m));
        let endpoint = match reqwest::Url::parse(&config.endpoint) {
            Ok(url) => url,
            Err(e) => return err(format!("the endpoint `{}` is not a valid URL: {e}", config.endpoint)),
        };
        let loopback = endpoint.host_str().is_some_and(is_loopback_host);
        if !(endpoint.scheme() == "https" || (endpoint.scheme() == "http" && loopback)) {
            return err(format!(
                "the endpoint `{endpoint}` must use https (plain http is allowed only on a loopback address)"
            ));
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return err("put the client credentials in client_id/client_secret, not in the endpoint URL".into());
        }
        if config.client_id.is_empty() || config.client_secret.is_empty() {
            return err("the client id and secret must not be empty".into());
        }
        if config.timeout.is_zero() || config.max_response_bytes == 0 {
            return err("the timeout and the response-size cap must be more than zero".into());
        }
        config.call_budget.check().map_err(IntrospectionConfigError)?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| IntrospectionConfigError(format!("cannot build the HTTP client: {e}")))?;
        // RFC 6749 §2.3.1: both parts form-urlencoded, then Basic.
        // The copies of the secret made on the way to the header are wiped when dropped.
        let encoded_secret = Zeroizing::new(form_urlencode(&config.client_secret));
        let credentials = wiped_concat(&[&form_urlencode(&config.client_id), ":", &encoded_secret]);
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes()));
        let authorization = wiped_concat(&["Basic ", &encoded]);
        let mut authorization = http::HeaderValue::from_str(&authorization)
            .map_err(|_| IntrospectionConfigError("the client credentials cannot be sent in a header".into()))?;
        authorization.set_sensitive(true);
        let capacity = if config.cache_ttl.is_zero() {
            0
        } else {
            config.cache_capacity
        };
        let cache = Cache::builder()
            .max_capacity(capacity)
            .expire_after(OutcomeExpiry)
            .build();
        let calls = Calls::new(
            &config.call_budget,
            "introspection endpoint",
            Backend::Introspection,
            "introspection calls",
        );
        Ok(IntrospectionVerifier {
            config,
            endpoint,
            authorization,
            client,
            cache,
            calls,
        })
    }

    /// Introspects `token` (through the cache), held to the total bounds of the call budget.
    pub async fn introspect(&self, token: &str) -> Result<Auth, VerifyError> {
        self.introspect_for(token, None).await
    }

    /// Introspects `token` presented by `client` (through the cache): a call, if one is needed,
    /// counts against that client's share of the call budget.
    pub async fn introspect_for(&self, token: &str, client: Option<ClientKey>) -> Result<Auth, VerifyError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Set only by the request whose call fills the cache: the others were answered by it.
        let called = AtomicBool::new(false);
        let fetch = async {
            called.store(true, Ordering::Relaxed);
            self.fetch(token, client).await
        };
        let outcome = self.cache.try_get_with(key, fetch).await;
        telemetry::cache_lookup(telemetry::Cache::Introspection, !called.load(Ordering::Relaxed));
        let outcome = outcome.map_err(|e: Arc<VerifyError>| (*e).clone())?;
        let auth = outcome.result?;
        if auth.is_expired_at(now_unix()) {
            return Err(InvalidReason::Expired.into());
        }
        Ok(auth)
    }

    async fn fetch(&self, token: &str, client: Option<ClientKey>) -> Result<Outcome, VerifyError> {
        let _place = self.calls.try_start(client)?;
        let span = telemetry::http_call_span(Backend::Introspection, self.endpoint.host_str());
        telemetry::backend_call(Backend::Introspection, span, self.call(token)).await
    }

    /// One introspection request: its answer, or a `503` when there is none to read.
    async fn call(&self, token: &str) -> Result<Outcome, VerifyError> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .header(http::header::ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| self.unavailable(&e))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(VerifyError::unavailable(format!(
                "introspection endpoint answered HTTP {status}"
            )));
        }
        let cap = self.config.max_response_bytes;
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_large(cap));
        }
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unavailable(&e))? {
            if body.len() + chunk.len() > cap {
                return Err(too_large(cap));
            }
            body.extend_from_slice(&chunk);
        }
        match parse_object(&body) {
            Ok(fields) => Ok(self.evaluate(fields, now_unix())),
            Err(_) => self.unreadable(&body),
        }
    }

    /// The answer to a body the strict parser refused: a JSON object that names a member
    /// twice is refused (and remembered for the negative TTL); anything else is a `503`.
    fn unreadable(&self, body: &[u8]) -> Result<Outcome, VerifyError> {
        if let Ok(serde_json::Value::Object(_)) = serde_json::from_slice::<serde_json::Value>(body) {
            tracing::warn!(
                target: "tokengate",
                "the introspection endpoint answered with a JSON object that names a member twice; refusing the token"
            );
            return Ok(self.refused(InvalidReason::InvalidClaims));
        }
        Err(VerifyError::unavailable(
            "introspection endpoint answered with a body that is not a JSON object",
        ))
    }

    fn unavailable(&self, e: &reqwest::Error) -> VerifyError {
        let what = if e.is_timeout() {
            format!("timed out after {:?}", self.config.timeout)
        } else if e.is_connect() {
            "connection failed".to_string()
        } else {
            "request failed".to_string()
        };
        // Without the URL: the endpoint is configuration, but keep log lines uniform.
        let detail = format!("introspection endpoint {what}: {}", clone_without_url(e));
        VerifyError::unavailable(detail)
    }

    /// The cached answer to an introspection response's members at `now`.
    fn evaluate(&self, fields: serde_json::Map<String, serde_json::Value>, now: i64) -> Outcome {
        if fields.get("active") != Some(&serde_json::Value::Bool(true)) {
            return self.refused(InvalidReason::Inactive);
        }
        match self.check(&fields, now) {
            Err(reason) => self.refused(reason),
            Ok((mut info, exp)) => {
                info.claims = serde_json::Value::Object(fields);
                let mut ttl = self.config.cache_ttl;
                if let Some(exp) = exp {
                    let left = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
                    ttl = ttl.min(Duration::from_secs(left));
                }
                Outcome {
                    result: Ok(Auth::new(info.with_derived_ids())),
                    ttl,
                }
            }
        }
    }

    /// A refusal, cached for the negative TTL.
    fn refused(&self, reason: InvalidReason) -> Outcome {
        Outcome {
            result: Err(reason),
            ttl: self.config.negative_cache_ttl,
        }
    }

    /// The identity an active token's members describe, and its `exp`; or why they refuse it
    /// (`token_type`, `exp`, `nbf`, and `iss` / `aud` when configured).
    fn check(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
        now: i64,
    ) -> Result<(AuthInfo, Option<i64>), InvalidReason> {
        let number = |name: &str| match fields.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(Some)
                .ok_or(InvalidReason::InvalidClaims),
            Some(_) => Err(InvalidReason::InvalidClaims),
        };
        let string = |name: &str| match fields.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(InvalidReason::InvalidClaims),
        };
        // RFC 7662 `token_type`: a refresh token is not an access token.
        if string("token_type")?.is_some_and(|t| t.eq_ignore_ascii_case("refresh_token")) {
            return Err(InvalidReason::WrongType);
        }
        let exp = number("exp")?;
        if exp.is_some_and(|exp| exp <= now) {
            return Err(InvalidReason::Expired);
        }
        if number("nbf")?.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
            return Err(InvalidReason::NotYetValid);
        }
        // RFC 9470: kept in `claims` for `#[require_acr]`, so of the types it reads.
        number("auth_time")?;
        string("acr")?;
        if let Some(issuer) = &self.config.issuer
            && string("iss")?.as_deref() != Some(issuer.as_str())
        {
            return Err(InvalidReason::WrongIssuer);
        }
        if let Some(audience) = &self.config.audience {
            let ok = match fields.get("aud") {
                Some(serde_json::Value::String(aud)) => aud == audience,
                Some(serde_json::Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !ok {
                return Err(InvalidReason::WrongAudience);
            }
        }
        let scopes = string("scope")?
            .map(|s| crate::jwt::claims::split_scopes(&s))
            .unwrap_or_default();
        let mut info = AuthInfo::new(TokenType::OAuthToken);
        info.id = string("jti")?.map(Into::into);
        info.subject = string("sub")?.map(Into::into);
        info.client_id = string("client_id")?.map(Into::into);
        info.scopes = scopes;
        info.expiration = exp;
        Ok((info, exp))
    }
}

fn too_large(cap: usize) -> VerifyError {
    VerifyError::unavailable(format!("introspection response is larger than {cap} bytes"))
}

/// The error's message without the request URL.
fn clone_without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<endpoint>");
    }
    text
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_urlencode(value: &str) -> String {
    // Room for every byte escaped: the string never moves, so no partial copy of a secret is
    // left behind in freed memory.
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Verifier for IntrospectionVerifier {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        Box::pin(async move {
            if credential.token_type() != TokenType::OAuthToken {
                return Err(VerifyError::Misconfigured(format!(
                    "the introspection verifier was configured for {} tokens; it verifies only oauth_token",
                    credential.token_type()
                )));
            }
            self.introspect_for(credential.token(), credential.client()).await
        })
    }

    fn name(&self) -> &'static str {
        "oauth-introspection"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn form_urlencoding_follows_rfc_6749() {
        assert_eq!(form_urlencode("a b:c%d"), "a+b%3Ac%25d");
        assert_eq!(form_urlencode("client-1_x.y"), "client-1_x.y");
    }
}
