//! The Backend API client: the three machine-token verify calls, with bounded time and size.
//!
//! | token | call | body |
//! |---|---|---|
//! | `ak_…` | `POST {api}/api_keys/verify` | `{"secret": …}` |
//! | `mt_…` | `POST {api}/m2m_tokens/verify` (machine secret key if set) | `{"token": …}` |
//! | `oat_…` | `POST {api}/oauth_applications/access_tokens/verify` | `{"access_token": …}` |
//!
//! Paths have no `/v1`, as Clerk's SDK calls them. Each call sends
//! `Authorization: Bearer <secret key>` and `Clerk-API-Version`. Answers map to:
//! `200` → [`parse_verify_response`]; `404` → unknown token; `401`/`403` →
//! [`VerifyError::Misconfigured`] (the secret key is wrong, not the caller's token);
//! `429`/`5xx`, timeouts, oversized or unexpected bodies → [`VerifyError::Unavailable`].
//! After a `429`, a `5xx` with `Retry-After`, or a `401`/`403`, the endpoint is paused
//! ([`backoff`](super::backoff)): requests are refused without a call until the pause ends.
//!
//! ```no_run
//! use tokengate_runtime::clerk::{ClerkApi, ClerkConfig};
//! use tokengate_runtime::TokenType;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let api = ClerkApi::new(ClerkConfig::from_env()?)?;
//! match api.verify(TokenType::ApiKey, "ak_…").await? {
//!     Ok(info) => println!("subject {:?}", info.subject),
//!     Err(reason) => println!("refused: {}", reason.as_str()),
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, StatusCode, header};

use super::backoff::Backoff;
use super::config::{API_VERSION_HEADER, ClerkConfig, ClerkConfigError};
use super::resources::parse_verify_response;
use crate::auth::AuthInfo;
use crate::rejection::InvalidReason;
use crate::token::TokenType;
use crate::verifier::VerifyError;

/// The longest `Retry-After` passed on to callers.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What one verify call concluded: a verified identity, or why the token is refused.
/// Transport and configuration failures are the outer `Err`.
pub type ApiVerdict = Result<AuthInfo, InvalidReason>;

/// A client of Clerk's Backend API for machine-token verification. Cheap to clone.
#[derive(Clone)]
pub struct ClerkApi {
    http: reqwest::Client,
    config: Arc<ClerkConfig>,
    secret_auth: HeaderValue,
    machine_auth: Option<HeaderValue>,
    /// One pause per endpoint: API keys, M2M tokens, OAuth tokens.
    backoff: Arc<[Backoff; 3]>,
}

impl fmt::Debug for ClerkApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClerkApi")
            .field("api_url", &self.config.api_url())
            .field("machine_secret_key", &self.machine_auth.is_some())
            .finish_non_exhaustive()
    }
}

/// One verify endpoint: its path (no `/v1`), the body field holding the token, the
/// `Authorization` value and the name of the variable it came from, and its pause.
struct Endpoint<'a> {
    path: &'static str,
    field: &'static str,
    auth: &'a HeaderValue,
    key_name: &'static str,
    backoff: &'a Backoff,
}

impl ClerkApi {
    /// A client for `config`'s API URL and keys.
    pub fn new(config: ClerkConfig) -> Result<ClerkApi, ClerkConfigError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout())
            .timeout(config.request_timeout())
            // A redirect would carry the secret key elsewhere: refuse them.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokengate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClerkConfigError::HttpClient(e.to_string()))?;
        let secret_auth = config.secret_key().bearer()?;
        let machine_auth = match config.machine_secret_key() {
            Some(key) => Some(
                key.bearer()
                    .map_err(|_| ClerkConfigError::InvalidMachineSecretKey("it cannot be sent in a header"))?,
            ),
            None => None,
        };
        Ok(ClerkApi {
            http,
            config: Arc::new(config),
            secret_auth,
            machine_auth,
            backoff: Arc::new([Backoff::new(), Backoff::new(), Backoff::new()]),
        })
    }

    /// The API's host, for the spans of its calls.
    pub(crate) fn host(&self) -> Option<&str> {
        Some(crate::telemetry::host_of(self.config.api_url()))
    }

    /// The configuration.
    pub fn config(&self) -> &ClerkConfig {
        &self.config
    }

    /// The verify endpoint for `token_type`, the key it is called with, and its pause.
    fn endpoint(&self, token_type: TokenType) -> Option<Endpoint<'_>> {
        let secret = (&self.secret_auth, "CLERK_SECRET_KEY");
        let (path, field, (auth, key_name), backoff) = match token_type {
            TokenType::ApiKey => ("/api_keys/verify", "secret", secret, &self.backoff[0]),
            TokenType::M2mToken => {
                let key = match &self.machine_auth {
                    Some(machine) => (machine, "CLERK_MACHINE_SECRET_KEY"),
                    None => secret,
                };
                ("/m2m_tokens/verify", "token", key, &self.backoff[1])
            }
            TokenType::OAuthToken => (
                "/oauth_applications/access_tokens/verify",
                "access_token",
                secret,
                &self.backoff[2],
            ),
            TokenType::SessionToken => return None,
        };
        Some(Endpoint {
            path,
            field,
            auth,
            key_name,
            backoff,
        })
    }

    /// Verifies an opaque machine token of `token_type` with one API call.
    pub async fn verify(&self, token_type: TokenType, token: &str) -> Result<ApiVerdict, VerifyError> {
        let Some(endpoint) = self.endpoint(token_type) else {
            return Err(VerifyError::Misconfigured(
                "Clerk's Backend API client verifies machine tokens only; verify session tokens with the JWT verifier"
                    .into(),
            ));
        };
        endpoint.backoff.check()?;
        let response = self.send(&endpoint, token).await?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        endpoint
            .backoff
            .record(status.as_u16(), retry_after, self.config.negative_ttl());
        self.verdict(token_type, &endpoint, response, retry_after).await
    }

    /// POSTs `token` to `endpoint` and logs the answer's status; a transport failure is an
    /// error.
    async fn send(&self, endpoint: &Endpoint<'_>, token: &str) -> Result<reqwest::Response, VerifyError> {
        let path = endpoint.path;
        let url = format!("{}{path}", self.config.api_url());
        let mut body = serde_json::Map::new();
        body.insert(endpoint.field.to_owned(), serde_json::Value::String(token.to_owned()));
        let started = std::time::Instant::now();
        let sent = self
            .http
            .post(&url)
            .header(header::AUTHORIZATION, endpoint.auth.clone())
            .header(API_VERSION_HEADER, self.config.api_version())
            .header(header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return Err(self.transport_error(path, &e)),
        };
        tracing::debug!(
            target: "tokengate::clerk",
            path,
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Backend API verify call"
        );
        Ok(response)
    }

    /// What Clerk's answer to a verify call says: the identity, why the token is refused, or
    /// why there is no answer (a wrong secret key, a limit, an outage).
    async fn verdict(
        &self,
        token_type: TokenType,
        endpoint: &Endpoint<'_>,
        response: reqwest::Response,
        retry_after: Option<Duration>,
    ) -> Result<ApiVerdict, VerifyError> {
        let (path, key_name) = (endpoint.path, endpoint.key_name);
        match response.status() {
            StatusCode::OK => {
                let body = self.read_body(path, response).await?;
                parse_verify_response(token_type, &body, now_ms()).map_err(|e| VerifyError::Unavailable {
                    retry_after: None,
                    detail: e.to_string(),
                })
            }
            StatusCode::NOT_FOUND => Ok(Err(InvalidReason::UnknownToken)),
            StatusCode::BAD_REQUEST => {
                // The request follows the schema, so Clerk refused the token's value itself.
                tracing::debug!(target: "tokengate::clerk", path, "Clerk answered 400 to a verify call");
                Ok(Err(InvalidReason::Malformed))
            }
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(VerifyError::Misconfigured(format!(
                "Clerk's Backend API answered {} to POST {path}: the {key_name} configuration is wrong \
                 (revoked, mistyped, or from another instance); fix it — callers get 503 until then",
                status.as_u16()
            ))),
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => Err(VerifyError::Unavailable {
                retry_after,
                detail: format!("Clerk's Backend API answered {} to POST {path}", s.as_u16()),
            }),
            s => Err(VerifyError::Unavailable {
                retry_after,
                detail: format!(
                    "unexpected status {} from Clerk's Backend API for POST {path}",
                    s.as_u16()
                ),
            }),
        }
    }

    fn transport_error(&self, path: &str, e: &reqwest::Error) -> VerifyError {
        let what = if e.is_timeout() {
            format!(
                "timed out (connect {:?}, request {:?})",
                self.config.connect_timeout(),
                self.config.request_timeout()
            )
        } else if e.is_connect() {
            "could not connect".to_owned()
        } else {
            "request failed".to_owned()
        };
        VerifyError::Unavailable {
            retry_after: None,
            detail: format!("Clerk's Backend API POST {path}: {what}"),
        }
    }

    /// Reads at most `max_response_bytes`; a larger body is an error, not a truncation.
    async fn read_body(&self, path: &str, mut response: reqwest::Response) -> Result<Vec<u8>, VerifyError> {
        let max = self.config.max_response_bytes();
        let too_large = || VerifyError::Unavailable {
            retry_after: None,
            detail: format!("Clerk's Backend API response to POST {path} is larger than {max} bytes"),
        };
        if response.content_length().is_some_and(|len| len > max as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > max {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => return Err(self.transport_error(path, &e)),
            }
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is ignored), capped at five minutes.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_only_and_capped() {
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("99999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }
}
