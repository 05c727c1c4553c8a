//! Verification: the [`Verifier`] trait each token type's verifier implements, and a static
//! in-memory verifier for tests and examples.
//!
//! A verifier receives a [`Credential`] whose type was already checked against the route's
//! policy, and answers with the verified [`Auth`] or a [`VerifyError`]. An unreachable
//! backend is [`VerifyError::Unavailable`] (a `503`), never an invalid token.
//!
//! The gate first calls [`Verifier::verify_cached`], a synchronous answer from what the
//! verifier remembers (a cached key or token, a remembered refusal); only when it has none is
//! the future of [`Verifier::verify`] awaited. A custom verifier without a cache can ignore
//! it: the default remembers nothing.
//!
//! On a route that accepts a JWT type, a JWT-shaped token is offered to
//! [`Verifier::recall_jwt`] of those types' verifiers before it is even classified: a JWT the
//! verifier accepted before comes back with the type it was verified as, and the gate checks
//! that type against the policy itself. Only the JWT verifiers (and [`ByFormat`]) implement
//! it.
//!
//! ```
//! use tokengate_runtime::verifier::{Credential, StaticVerifier, Verifier};
//! use tokengate_runtime::{AuthInfo, TokenType};
//!
//! # tokio_test_block_on(async {
//! let mut info = AuthInfo::new(TokenType::ApiKey);
//! info.subject = Some("user_1".into());
//! let verifier = StaticVerifier::new().with_token("ak_demo", info);
//! let auth = verifier.verify(Credential::new_for_tests("ak_demo", TokenType::ApiKey)).await.unwrap();
//! assert_eq!(auth.subject.as_deref(), Some("user_1"));
//! assert_eq!(verifier.calls(), 1);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::auth::{Auth, AuthInfo};
use crate::classify::TokenFormat;
use crate::extract::TokenSource;
use crate::rejection::{InvalidReason, Rejection};
use crate::token::TokenType;

/// A token handed to a verifier, already extracted and classified. `Debug` redacts it.
#[derive(Clone, Copy)]
pub struct Credential<'a> {
    token: &'a str,
    token_type: TokenType,
    format: TokenFormat,
    source: TokenSource,
}

impl<'a> Credential<'a> {
    pub(crate) fn new(token: &'a str, token_type: TokenType, format: TokenFormat, source: TokenSource) -> Self {
        Credential {
            token,
            token_type,
            format,
            source,
        }
    }

    /// A header credential, for calling a verifier directly in tests and benchmarks.
    pub fn new_for_tests(token: &'a str, token_type: TokenType) -> Self {
        let format = if token.matches('.').count() == 2 {
            TokenFormat::Jwt
        } else {
            TokenFormat::Opaque
        };
        Credential::new(token, token_type, format, TokenSource::Header)
    }

    /// The token. Never log it.
    pub fn token(&self) -> &'a str {
        self.token
    }

    /// Its type, as classified.
    pub fn token_type(&self) -> TokenType {
        self.token_type
    }

    /// JWT or opaque.
    pub fn format(&self) -> TokenFormat {
        self.format
    }

    /// Header or cookie.
    pub fn source(&self) -> TokenSource {
        self.source
    }
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("token", &format_args!("<redacted>"))
            .field("token_type", &self.token_type)
            .field("format", &self.format)
            .field("source", &self.source)
            .finish()
    }
}

/// Why verification failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is not valid (`401 invalid_token`).
    #[error("invalid token: {0}")]
    Invalid(InvalidReason),
    /// The backend cannot answer (`503` with `Retry-After`). `detail` is logged, never sent.
    #[error("verifier backend unavailable: {detail}")]
    Unavailable {
        /// When the client may retry.
        retry_after: Option<Duration>,
        /// What failed, for the logs. Must not contain the token.
        detail: String,
    },
    /// The verifier is misconfigured (a bad secret key…): logged loudly, `503` to the caller.
    #[error("verifier misconfigured: {0}")]
    Misconfigured(String),
}

impl VerifyError {
    /// An unavailable backend with a detail for the logs.
    pub fn unavailable(detail: impl Into<String>) -> VerifyError {
        VerifyError::Unavailable {
            retry_after: None,
            detail: detail.into(),
        }
    }

    pub(crate) fn into_rejection(self, token_type: TokenType) -> Rejection {
        match self {
            VerifyError::Invalid(reason) => Rejection::InvalidToken(reason),
            VerifyError::Unavailable { retry_after, detail } => {
                tracing::warn!(target: "tokengate", %token_type, %detail, "verifier backend unavailable");
                Rejection::Unavailable { retry_after }
            }
            VerifyError::Misconfigured(detail) => {
                tracing::error!(target: "tokengate", %token_type, %detail, "verifier misconfigured; fix the configuration");
                Rejection::Unavailable { retry_after: None }
            }
        }
    }
}

impl From<InvalidReason> for VerifyError {
    fn from(reason: InvalidReason) -> Self {
        VerifyError::Invalid(reason)
    }
}

/// The future a verifier returns.
pub type VerifyFuture<'a> = Pin<Box<dyn Future<Output = Result<Auth, VerifyError>> + Send + 'a>>;

/// Verifies tokens of one or more types. Configured once in a [`TokenGate`](crate::TokenGate).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tokengate verifier",
    note = "implement `tokengate::Verifier` for it, or use one of the verifiers tokengate ships"
)]
pub trait Verifier: Send + Sync + 'static {
    /// Verifies `credential`. Must not log the token.
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a>;

    /// Answers from memory when it can, without a future: `Some` with the answer
    /// [`verify`](Self::verify) would give for a token this verifier still remembers (a cached
    /// key or token), `None` to go on to `verify`. The gate asks this first on every request,
    /// so it must be cheap and must never wait. The default remembers nothing.
    fn verify_cached(&self, _credential: &Credential<'_>) -> Option<Result<Auth, VerifyError>> {
        None
    }

    /// The identity of a JWT this verifier accepted before and still remembers, whatever type
    /// it was classified as (the `Auth`'s `token_type` says which), or `None`. The gate asks
    /// it before classifying a JWT, so a reused session token skips the base64 and JSON read
    /// of classification. Answer only under the rules [`verify_cached`](Self::verify_cached)
    /// follows (unexpired, same key set), and only for a token [`verify`](Self::verify)
    /// accepted. The default remembers nothing.
    fn recall_jwt(&self, _token: &str) -> Option<Auth> {
        None
    }

    /// What [`verify_cached`](Self::verify_cached) would answer for an opaque token (one that
    /// starts with a configured prefix: `ak_`, `mt_`, `oat_`) that this verifier accepted
    /// before and still remembers, asked for as `token_type`; `None` for any other. The gate
    /// asks it before it checks the token's characters or classifies it, so a reused API key
    /// costs a lookup and not those checks as well.
    ///
    /// `token` is the raw bytes after `Bearer `, not yet validated: anything a client sent.
    /// Answer only for bytes identical to a token [`verify`](Self::verify) accepted (compare
    /// them, or a keyed hash of them, and nothing else): with its identity, or with the
    /// refusal `verify_cached` gives that token now (it expired, it is asked for as another
    /// type). For any other bytes, `None`: the gate then validates and classifies them, which
    /// gives their rejection. The default remembers nothing.
    fn recall_opaque(&self, _token: &[u8], _token_type: TokenType) -> Option<Result<Auth, VerifyError>> {
        None
    }

    /// A short name for logs and the route report (`"jwt"`, `"api-key-store"`…).
    fn name(&self) -> &'static str {
        "custom"
    }
}

impl<V: Verifier + ?Sized> Verifier for Arc<V> {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        (**self).verify(credential)
    }

    fn verify_cached(&self, credential: &Credential<'_>) -> Option<Result<Auth, VerifyError>> {
        (**self).verify_cached(credential)
    }

    fn recall_jwt(&self, token: &str) -> Option<Auth> {
        (**self).recall_jwt(token)
    }

    fn recall_opaque(&self, token: &[u8], token_type: TokenType) -> Option<Result<Auth, VerifyError>> {
        (**self).recall_opaque(token, token_type)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }
}

/// A verifier with a fixed table of tokens, for tests and examples. Counts its calls, so a
/// test can prove a request never reached it. Not for production: tokens live in memory.
#[derive(Default)]
pub struct StaticVerifier {
    tokens: HashMap<String, Auth>,
    calls: AtomicUsize,
}

impl StaticVerifier {
    /// An empty table.
    pub fn new() -> StaticVerifier {
        StaticVerifier::default()
    }

    /// Adds a token and what it verifies to. The info's `token_type` must match the type
    /// the token classifies as.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>, info: AuthInfo) -> StaticVerifier {
        self.tokens.insert(token.into(), Auth::new(info.with_derived_ids()));
        self
    }

    /// How many times `verify` was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for StaticVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticVerifier")
            .field("tokens", &self.tokens.len())
            .field("calls", &self.calls())
            .finish()
    }
}

impl Verifier for StaticVerifier {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let result = self
            .tokens
            .get(credential.token())
            .cloned()
            .ok_or(VerifyError::Invalid(InvalidReason::UnknownToken));
        Box::pin(std::future::ready(result))
    }

    fn name(&self) -> &'static str {
        "static"
    }
}

/// Sends JWTs to one verifier and opaque tokens to another, for a token type that comes in
/// both formats (OAuth: RFC 9068 JWTs and introspected opaque tokens; M2M: JWTs and `mt_`).
///
/// ```
/// use std::sync::Arc;
/// use tokengate_runtime::verifier::{ByFormat, StaticVerifier};
///
/// let m2m = ByFormat::new()
///     .jwt(Arc::new(StaticVerifier::new()))
///     .opaque(Arc::new(StaticVerifier::new()));
/// ```
#[derive(Default)]
pub struct ByFormat {
    jwt: Option<Arc<dyn Verifier>>,
    opaque: Option<Arc<dyn Verifier>>,
}

impl ByFormat {
    /// Neither format is accepted yet.
    pub fn new() -> ByFormat {
        ByFormat::default()
    }

    /// The verifier for JWTs.
    #[must_use]
    pub fn jwt(mut self, verifier: Arc<dyn Verifier>) -> ByFormat {
        self.jwt = Some(verifier);
        self
    }

    /// The verifier for opaque tokens.
    #[must_use]
    pub fn opaque(mut self, verifier: Arc<dyn Verifier>) -> ByFormat {
        self.opaque = Some(verifier);
        self
    }
}

impl fmt::Debug for ByFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByFormat")
            .field("jwt", &self.jwt.as_ref().map(|v| v.name()))
            .field("opaque", &self.opaque.as_ref().map(|v| v.name()))
            .finish()
    }
}

impl Verifier for ByFormat {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        let verifier = match credential.format() {
            TokenFormat::Jwt => &self.jwt,
            TokenFormat::Opaque => &self.opaque,
        };
        match verifier {
            Some(v) => v.verify(credential),
            // A format nobody verifies here is a token this service does not accept.
            None => Box::pin(std::future::ready(Err(VerifyError::Invalid(InvalidReason::WrongType)))),
        }
    }

    fn verify_cached(&self, credential: &Credential<'_>) -> Option<Result<Auth, VerifyError>> {
        match credential.format() {
            TokenFormat::Jwt => self.jwt.as_ref()?.verify_cached(credential),
            TokenFormat::Opaque => self.opaque.as_ref()?.verify_cached(credential),
        }
    }

    fn recall_jwt(&self, token: &str) -> Option<Auth> {
        self.jwt.as_ref()?.recall_jwt(token)
    }

    fn recall_opaque(&self, token: &[u8], token_type: TokenType) -> Option<Result<Auth, VerifyError>> {
        self.opaque.as_ref()?.recall_opaque(token, token_type)
    }

    fn name(&self) -> &'static str {
        "by-format"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn by_format_routes_each_format_to_its_verifier() {
        let jwt = Arc::new(StaticVerifier::new().with_token("a.b.c", AuthInfo::new(TokenType::M2mToken)));
        let opaque = Arc::new(StaticVerifier::new().with_token("mt_x", AuthInfo::new(TokenType::M2mToken)));
        let v = ByFormat::new().jwt(jwt.clone()).opaque(opaque.clone());
        assert!(block_on(v.verify(Credential::new_for_tests("a.b.c", TokenType::M2mToken))).is_ok());
        assert!(block_on(v.verify(Credential::new_for_tests("mt_x", TokenType::M2mToken))).is_ok());
        assert_eq!((jwt.calls(), opaque.calls()), (1, 1));
        let only_jwt = ByFormat::new().jwt(jwt.clone());
        assert_eq!(
            block_on(only_jwt.verify(Credential::new_for_tests("mt_x", TokenType::M2mToken))).unwrap_err(),
            VerifyError::Invalid(InvalidReason::WrongType)
        );
        assert_eq!(opaque.calls(), 1);
    }
}
