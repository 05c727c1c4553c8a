//! [`ClerkMachineVerifier`]: API keys, M2M and OAuth tokens that Clerk issues, verified through
//! its Backend API — cached, coalesced and budgeted.
//!
//! For each opaque token, cheapest first:
//!
//! 1. its shape: Clerk's prefix (`ak_`, `mt_`, `oat_`) and [`TokenShape`](super::TokenShape)
//!    — a random string is refused without any call;
//! 2. the [verdict cache](super::cache), keyed by the token's SHA-256;
//! 3. one Backend API call shared by every concurrent request with that token, if the
//!    call budget ([`ClerkConfig::call_budget`]: in flight, per second, and the presenting
//!    client's share) allows it; otherwise `503` with `Retry-After`, at once.
//!
//! JWT-format M2M and OAuth tokens are handed to the JWT verifier set with
//! [`ClerkMachineVerifier::with_jwt_verifier`].
//!
//! ```
//! use std::sync::Arc;
//! use tokengate_runtime::clerk::{ClerkConfig, ClerkMachineVerifier};
//! use tokengate_runtime::TokenGate;
//!
//! let clerk = ClerkMachineVerifier::new(ClerkConfig::new("sk_test_example").unwrap()).unwrap();
//! let gate = TokenGate::builder()
//!     .verifier_for(ClerkMachineVerifier::token_types(), Arc::new(clerk))
//!     .build()
//!     .unwrap();
//! assert_eq!(gate.verified_types(), ClerkMachineVerifier::token_types());
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::api::{ClerkApi, now_ms};
use super::cache::{self, Entry, VerdictCache};
use super::config::{ClerkConfig, ClerkConfigError};
use crate::auth::Auth;
use crate::budget::Calls;
use crate::classify::TokenFormat;
use crate::net::ClientKey;
use crate::rejection::InvalidReason;
use crate::telemetry::{self, Backend, Cache};
use crate::token::{TokenType, TokenTypes};
use crate::verifier::{Credential, Verifier, VerifyError, VerifyFuture};

/// Verifies Clerk's opaque machine tokens (`ak_`, `mt_`, `oat_`) with the Backend API.
pub struct ClerkMachineVerifier {
    api: ClerkApi,
    cache: VerdictCache,
    calls: Calls,
    jwt: Option<Arc<dyn Verifier>>,
}

impl fmt::Debug for ClerkMachineVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClerkMachineVerifier")
            .field("api", &self.api)
            .field("available_calls", &self.calls.available())
            .field("jwt", &self.jwt.as_ref().map(|v| v.name()))
            .finish()
    }
}

impl ClerkMachineVerifier {
    /// A verifier for `config`.
    pub fn new(config: ClerkConfig) -> Result<ClerkMachineVerifier, ClerkConfigError> {
        Ok(Self::from_api(ClerkApi::new(config)?))
    }

    /// A verifier around an existing client.
    pub fn from_api(api: ClerkApi) -> ClerkMachineVerifier {
        let config = api.config();
        ClerkMachineVerifier {
            cache: VerdictCache::new(config.cache_capacity()),
            calls: Calls::new(
                &config.call_budget(),
                "Clerk Backend API",
                Backend::Clerk,
                "Backend API calls",
            ),
            api,
            jwt: None,
        }
    }

    /// Hands JWT-format M2M and OAuth tokens (verified locally with the instance's keys) to
    /// `verifier`. Without it they are refused as a configuration error.
    #[must_use]
    pub fn with_jwt_verifier(mut self, verifier: Arc<dyn Verifier>) -> ClerkMachineVerifier {
        self.jwt = Some(verifier);
        self
    }

    /// The types this verifier handles: `api_key`, `m2m_token`, `oauth_token`.
    pub fn token_types() -> TokenTypes {
        [TokenType::ApiKey, TokenType::M2mToken, TokenType::OAuthToken]
            .into_iter()
            .collect()
    }

    /// The Backend API client.
    pub fn api(&self) -> &ClerkApi {
        &self.api
    }

    /// Refuses tokens Clerk cannot have issued, without any call.
    fn check_shape(&self, token_type: TokenType, token: &str) -> Result<(), VerifyError> {
        let prefix = match token_type {
            TokenType::ApiKey => "ak_",
            TokenType::M2mToken => "mt_",
            TokenType::OAuthToken => "oat_",
            TokenType::SessionToken => {
                return Err(VerifyError::Misconfigured(
                    "the Clerk machine-token verifier was configured for session tokens; use the JWT verifier for them"
                        .into(),
                ));
            }
        };
        match token.strip_prefix(prefix) {
            Some(rest) if self.api.config().token_shape().accepts(rest) => Ok(()),
            _ => Err(VerifyError::Invalid(InvalidReason::Malformed)),
        }
    }

    /// One API call under the budget, turned into a cache entry.
    async fn load(&self, token_type: TokenType, token: &str, client: Option<ClientKey>) -> Result<Entry, VerifyError> {
        let config = self.api.config();
        let _place = self.calls.try_start(client)?;
        let span = telemetry::http_call_span(Backend::Clerk, self.api.host());
        let verdict = telemetry::backend_call(Backend::Clerk, span, self.api.verify(token_type, token)).await?;
        Ok(Entry::new(
            verdict.map(Auth::new),
            config.cache_ttl(),
            config.negative_ttl(),
            now_ms(),
        ))
    }

    async fn verify_opaque(
        &self,
        token_type: TokenType,
        token: &str,
        client: Option<ClientKey>,
    ) -> Result<Auth, VerifyError> {
        self.check_shape(token_type, token)?;
        let key = cache::key(token_type, token);
        // Set only by a request that made the call: the others were answered by the cache.
        let called = AtomicBool::new(false);
        let load = || async {
            called.store(true, Ordering::Relaxed);
            self.load(token_type, token, client).await
        };
        let entry = self.cache.get_or_load(key, load).await;
        telemetry::cache_lookup(Cache::Clerk, !called.load(Ordering::Relaxed));
        let entry = entry?;
        let auth = entry.verdict.map_err(VerifyError::Invalid)?;
        if auth.is_expired_at(now_ms() / 1000) {
            return Err(VerifyError::Invalid(InvalidReason::Expired));
        }
        Ok(auth)
    }
}

impl Verifier for ClerkMachineVerifier {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        Box::pin(async move {
            match credential.format() {
                TokenFormat::Opaque => {
                    self.verify_opaque(credential.token_type(), credential.token(), credential.client())
                        .await
                }
                TokenFormat::Jwt => match &self.jwt {
                    Some(jwt) => jwt.verify(credential).await,
                    None => Err(VerifyError::Misconfigured(format!(
                        "a JWT-format {} reached the Clerk machine-token verifier, which has no JWT verifier; \
                         add one with ClerkMachineVerifier::with_jwt_verifier",
                        credential.token_type()
                    ))),
                },
            }
        })
    }

    fn name(&self) -> &'static str {
        "clerk-backend-api"
    }
}
