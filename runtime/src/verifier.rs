//! Verification: the [`Verifier`] trait each token type's verifier implements, and a static
//! in-memory verifier for tests and examples.
//!
//! A verifier receives a [`Credential`] whose type was already checked against the route's
//! policy, and answers with the verified [`Auth`] or a [`VerifyError`]. An unreachable
//! backend is [`VerifyError::Unavailable`] (a `503`), never an invalid token.
//!
//! A custom verifier implements [`Verifier::verify`] alone. The verifiers tokengate ships
//! also answer from memory without a future (a cached key or token, a remembered refusal),
//! through a fast path sealed inside this crate: see [`Verifier`].
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

mod by_issuer;

pub use by_issuer::ByIssuer;

use crate::auth::{Auth, AuthInfo};
use crate::classify::TokenFormat;
use crate::extract::TokenSource;
use crate::net::ClientKey;
use crate::rejection::{InvalidReason, Rejection};
use crate::token::TokenType;

/// A token handed to a verifier, already extracted and classified. `Debug` redacts it.
#[derive(Clone, Copy)]
pub struct Credential<'a> {
    token: &'a str,
    token_type: TokenType,
    format: TokenFormat,
    source: TokenSource,
    client: Option<ClientKey>,
}

impl<'a> Credential<'a> {
    pub(crate) fn new(token: &'a str, token_type: TokenType, format: TokenFormat, source: TokenSource) -> Self {
        Credential {
            token,
            token_type,
            format,
            source,
            client: None,
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

    /// Who presented it, as the gate tells clients apart
    /// ([`TokenGateBuilder::client_key`](crate::TokenGateBuilder::client_key)): what the
    /// per-client shares of the bounds on backend calls count. `None` when the gate cannot
    /// tell, or in a memory-only lookup.
    pub fn client(&self) -> Option<ClientKey> {
        self.client
    }

    /// The same credential, presented by `client`.
    #[must_use]
    pub fn with_client(mut self, client: Option<ClientKey>) -> Self {
        self.client = client;
        self
    }
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("token", &format_args!("<redacted>"))
            .field("token_type", &self.token_type)
            .field("format", &self.format)
            .field("source", &self.source)
            .field("client", &self.client)
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
    /// A bound on backend calls for unknown tokens is reached (a flood, see
    /// [`budget`](crate::budget)): `503` with `Retry-After`, at once. Logged at debug level;
    /// the bound itself warns with a count, at most once every few seconds.
    #[error("verifier busy: {detail}")]
    Busy {
        /// When the client may retry (at least a second).
        retry_after: Duration,
        /// Which bound refused the call, for the logs. Never contains the token.
        detail: String,
    },
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
            VerifyError::Busy { retry_after, detail } => {
                tracing::debug!(target: "tokengate", %token_type, %detail, "verifier busy");
                Rejection::Unavailable {
                    retry_after: Some(retry_after),
                }
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
///
/// A verifier implements [`verify`](Self::verify) (and, for logs, [`name`](Self::name)):
/// it receives a token that the gate has already extracted, validated and classified, and
/// whose type the route accepts. There is nothing else to get right. The verifiers tokengate
/// ships also answer from memory (a cached key or token) without a future; that fast path is
/// theirs alone, so a custom verifier never sees a token the gate has not checked.
///
/// That fast path is two hidden methods whose last argument is a `Seal`, a type this crate
/// never exports: code outside it can neither name it (so it cannot override them: their
/// defaults answer `None`) nor make one (so it cannot call them). The gate is their only
/// caller:
///
/// - `verify_cached_sealed`: what `verify` would answer for a credential the verifier
///   remembers (a cached key or token, a remembered refusal), synchronously; `None` to go on
///   to `verify`. Asked first on every request, so it never waits.
/// - `recall_jwt_sealed`: the identity of a JWT the verifier accepted before and still
///   remembers, whatever type it was verified as (the `Auth`'s `token_type` says which);
///   asked before the JWT is classified, so a reused session token skips the base64 and JSON
///   read of classification. The gate checks that type against the route itself.
///
/// A verifier of your own cannot take part in it:
///
/// ```compile_fail
/// use tokengate_runtime::verifier::{Credential, Verifier, VerifyFuture};
/// use tokengate_runtime::Auth;
///
/// struct Mine;
/// impl Verifier for Mine {
///     fn verify<'a>(&'a self, _: Credential<'a>) -> VerifyFuture<'a> {
///         Box::pin(std::future::ready(Err(tokengate_runtime::VerifyError::unavailable("no backend"))))
///     }
///     // error: module `sealed` is private
///     fn recall_jwt_sealed(&self, _: &str, _: tokengate_runtime::verifier::sealed::Seal) -> Option<Auth> {
///         None
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tokengate verifier",
    note = "implement `tokengate::Verifier` for it, or use one of the verifiers tokengate ships"
)]
pub trait Verifier: Send + Sync + 'static {
    /// Verifies `credential`. Must not log the token.
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a>;

    /// A short name for logs and the route report (`"jwt"`, `"api-key-store"`…).
    fn name(&self) -> &'static str {
        "custom"
    }

    /// The built-in verifiers' answer from memory (sealed: see the trait's docs).
    #[doc(hidden)]
    fn verify_cached_sealed(&self, _credential: &Credential<'_>, _: sealed::Seal) -> Option<Result<Auth, VerifyError>> {
        None
    }

    /// The built-in JWT verifier's recall of a JWT it verified before (sealed: see the
    /// trait's docs).
    #[doc(hidden)]
    fn recall_jwt_sealed(&self, _token: &str, _: sealed::Seal) -> Option<Auth> {
        None
    }
}

/// What seals [`Verifier`]'s fast path: `pub` so it can stand in a public trait's signature,
/// in a private module so nothing outside this crate can name it.
pub(crate) mod sealed {
    /// The argument only this crate can make.
    #[derive(Clone, Copy, Debug)]
    pub struct Seal(());

    /// Made only inside this crate.
    pub(crate) const SEAL: Seal = Seal(());
}

pub(crate) use sealed::SEAL;

impl<V: Verifier + ?Sized> Verifier for Arc<V> {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        (**self).verify(credential)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn verify_cached_sealed(
        &self,
        credential: &Credential<'_>,
        seal: sealed::Seal,
    ) -> Option<Result<Auth, VerifyError>> {
        (**self).verify_cached_sealed(credential, seal)
    }

    fn recall_jwt_sealed(&self, token: &str, seal: sealed::Seal) -> Option<Auth> {
        (**self).recall_jwt_sealed(token, seal)
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

    /// What the verifier of the credential's format answers from memory (only tokengate's own
    /// verifiers do; see [`Verifier`]).
    pub fn verify_cached(&self, credential: &Credential<'_>) -> Option<Result<Auth, VerifyError>> {
        self.verify_cached_sealed(credential, SEAL)
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

    fn verify_cached_sealed(
        &self,
        credential: &Credential<'_>,
        seal: sealed::Seal,
    ) -> Option<Result<Auth, VerifyError>> {
        match credential.format() {
            TokenFormat::Jwt => self.jwt.as_ref()?.verify_cached_sealed(credential, seal),
            TokenFormat::Opaque => self.opaque.as_ref()?.verify_cached_sealed(credential, seal),
        }
    }

    fn recall_jwt_sealed(&self, token: &str, seal: sealed::Seal) -> Option<Auth> {
        self.jwt.as_ref()?.recall_jwt_sealed(token, seal)
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
