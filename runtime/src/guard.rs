//! The guard extractor: runs a handler's policy before any other extractor.
//!
//! The attributes put a [`Guard`] first in the handler's arguments; axum runs extractors in
//! order, so a request with a bad token is refused before its body is read. The verified
//! [`Auth`](crate::Auth) is left in the request's extensions for the `Auth` extractor.
//!
//! Without the attributes, name the policy with a type:
//!
//! ```
//! use tokengate_runtime::{Guard, Policy, PolicySource, TokenType, TokenTypes};
//!
//! struct ApiKeysOnly;
//! impl PolicySource for ApiKeysOnly {
//!     fn policy() -> &'static Policy {
//!         static POLICY: Policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey));
//!         &POLICY
//!     }
//! }
//!
//! async fn handler(_guard: Guard<ApiKeysOnly>) -> &'static str { "ok" }
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use axum::extract::{FromRef, FromRequestParts};
use axum::response::Response;
use http::request::Parts;

use crate::auth::Auth;
use crate::gate::TokenGate;
use crate::policy::Policy;
use crate::rejection::Rejection;

/// The future of a handler's custom conditions.
pub type ConditionFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Rejection>> + Send + 'a>>;

/// A type that names a policy; the attributes generate one per handler.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not name a tokengate policy",
    note = "use #[accepts_token(...)] on the handler, or implement `tokengate::PolicySource`"
)]
pub trait PolicySource: Send + Sync + 'static {
    /// The policy, built once.
    fn policy() -> &'static Policy;

    /// Custom conditions (`#[require(predicate)]`), run after the token and its scopes
    /// passed. `None` (the default) when there are none, so nothing is allocated.
    fn conditions<'a>(_auth: &'a Auth, _parts: &'a mut Parts) -> Option<ConditionFuture<'a>> {
        None
    }
}

/// Runs `P`'s policy for the request. Its rejection is the rendered response.
pub struct Guard<P>(PhantomData<fn() -> P>);

impl<P> fmt::Debug for Guard<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Guard")
    }
}

impl<S, P> FromRequestParts<S> for Guard<P>
where
    P: PolicySource,
    TokenGate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let gate = TokenGate::from_ref(state);
        match gate.authorize(&parts.headers, &parts.extensions, P::policy()).await {
            Ok(auth) => {
                parts.extensions.insert(auth.clone());
                if let Some(conditions) = P::conditions(&auth, parts)
                    && let Err(rejection) = conditions.await
                {
                    tracing::debug!(target: "tokengate", reason = rejection.reason(), "request rejected by a condition");
                    return Err(gate.render(rejection));
                }
                Ok(Guard(PhantomData))
            }
            Err(rejection) => Err(gate.render(rejection)),
        }
    }
}

impl<P: PolicySource> Guard<P> {
    /// A guard that checked nothing, for calling a guarded handler directly in a unit test:
    /// `create_user(Guard::for_tests(), Json(body)).await` (the policy type is inferred).
    ///
    /// Requests never get a guard this way: axum makes one only through
    /// [`FromRequestParts`], which runs the policy.
    pub fn for_tests() -> Guard<P> {
        Guard(PhantomData)
    }
}
