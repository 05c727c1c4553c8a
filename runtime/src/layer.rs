//! Route-group policies: a tower layer that applies a policy to every route below it, the
//! analogue of `clerkMiddleware` route protection.
//!
//! It composes with handler attributes: the layer verifies the token once and leaves the
//! [`Auth`] in the request; a handler's own policy is then checked against it
//! without verifying again. Both must pass.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use tokengate_runtime::{Policy, PolicyLayer, TokenGate, TokenType, TokenTypes, verifier::StaticVerifier};
//!
//! let gate = TokenGate::builder()
//!     .verifier(TokenType::ApiKey, Arc::new(StaticVerifier::new()))
//!     .build()
//!     .unwrap();
//! let admin: Router = Router::new()
//!     .route("/stats", get(|| async { "ok" }))
//!     .layer(PolicyLayer::new(gate, Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey))));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::Response;
use http::Request;
use http::request::Parts;
use tower::{Layer, Service};

use crate::auth::Auth;
use crate::gate::{Head, TokenGate, is_anonymous};
use crate::policy::{Policy, Requirement};
use crate::rate_limit;
use crate::rejection::Rejection;
use crate::telemetry::Authorizing;

/// The route label of a group layer that was not named ([`PolicyLayer::named`]).
pub const DEFAULT_LAYER_NAME: &str = "group";

/// The future of a group layer's predicate: `true` lets the request through.
pub type PredicateFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

type Predicate = Arc<dyn for<'a> Fn(&'a Auth, &'a mut Parts) -> PredicateFuture<'a> + Send + Sync>;

/// A group layer's named predicates, checked in order.
#[derive(Clone, Default)]
struct Conditions(Arc<Vec<(&'static str, Predicate)>>);

impl std::fmt::Debug for Conditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

/// Applies a policy to every request that reaches the wrapped service.
#[derive(Clone, Debug)]
pub struct PolicyLayer {
    gate: TokenGate,
    policy: Arc<Policy>,
    conditions: Conditions,
    name: &'static str,
}

impl PolicyLayer {
    /// A layer enforcing `policy` with `gate`'s verifiers.
    pub fn new(gate: TokenGate, policy: Policy) -> PolicyLayer {
        PolicyLayer {
            gate,
            policy: Arc::new(policy),
            conditions: Conditions::default(),
            name: DEFAULT_LAYER_NAME,
        }
    }

    /// The group's name in metrics and traces (the `route` label of its decisions; default
    /// [`DEFAULT_LAYER_NAME`]): a fixed string from the code, such as `"admin"`.
    #[must_use]
    pub fn named(mut self, name: &'static str) -> PolicyLayer {
        self.name = name;
        self
    }

    /// Adds a custom condition, the group's `#[require(name)]`: an async predicate over the
    /// verified caller and the request head, run after the policy passed, in the order
    /// added; `false` refuses the request with `403`, reason `condition-failed`, naming it.
    /// `name` is what the rejection and the report show. On an
    /// [optional](crate::Policy::optional) policy, a layer with a condition admits no
    /// anonymous caller (the condition could not run): requests without credentials get `401`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use tokengate_runtime::{Policy, PolicyLayer, TokenGate, TokenType, TokenTypes, verifier::StaticVerifier};
    /// # let gate = TokenGate::builder().verifier(TokenType::ApiKey, Arc::new(StaticVerifier::new())).build().unwrap();
    /// let layer = PolicyLayer::new(gate, Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey)))
    ///     .with_condition("has_subject", |auth, _parts| Box::pin(async move { auth.subject.is_some() }));
    /// ```
    #[must_use]
    pub fn with_condition<F>(mut self, name: &'static str, predicate: F) -> PolicyLayer
    where
        F: for<'a> Fn(&'a Auth, &'a mut Parts) -> PredicateFuture<'a> + Send + Sync + 'static,
    {
        let policy = (*self.policy).clone().require(Requirement::condition(name));
        self.policy = Arc::new(policy);
        let mut conditions: Vec<(&'static str, Predicate)> = self.conditions.0.iter().cloned().collect();
        conditions.push((name, Arc::new(predicate)));
        self.conditions = Conditions(Arc::new(conditions));
        self
    }

    /// The enforced policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = PolicyService<S>;

    fn layer(&self, inner: S) -> PolicyService<S> {
        PolicyService {
            inner,
            gate: self.gate.clone(),
            policy: Arc::clone(&self.policy),
            conditions: self.conditions.clone(),
            name: self.name,
        }
    }
}

/// The service [`PolicyLayer`] produces.
#[derive(Clone, Debug)]
pub struct PolicyService<S> {
    inner: S,
    gate: TokenGate,
    policy: Arc<Policy>,
    conditions: Conditions,
    name: &'static str,
}

impl<S> PolicyService<S> {
    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The response future of [`PolicyService`].
pub struct ResponseFuture<E> {
    inner: Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>,
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<E> std::fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<S, B> Service<Request<B>> for PolicyService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Take the service that was driven to readiness; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let policy = Arc::clone(&self.policy);
        let conditions = self.conditions.clone();
        let authorizing = Authorizing::start(self.name, &policy);
        let name = self.name;
        ResponseFuture {
            inner: Box::pin(async move {
                let (mut parts, body) = request.into_parts();
                let verdict = gate.authorize_in(&authorizing, Head::of(&parts), &policy).await;
                let token_type = verdict.token_type;
                let auth = match verdict.result {
                    Ok(auth) => auth,
                    // Anonymous only where no condition would be skipped: a condition needs a
                    // caller, so a layer with one refuses requests without credentials.
                    Err(rejection) if conditions.0.is_empty() && is_anonymous(&policy, &parts.headers, &rejection) => {
                        authorizing.finish_anonymous();
                        return inner.call(Request::from_parts(parts, body)).await;
                    }
                    Err(rejection) => {
                        gate.record(&authorizing, token_type, Err(&rejection));
                        return Ok(gate.render_for(rejection, &policy));
                    }
                };
                for (name, predicate) in conditions.0.iter() {
                    if !predicate(&auth, &mut parts).await {
                        tracing::debug!(target: "tokengate", reason = "condition-failed", condition = *name, "request rejected by a condition");
                        let rejection = Rejection::condition_failed(name);
                        gate.record(&authorizing, token_type, Err(&rejection));
                        return Ok(gate.render_for(rejection, &policy));
                    }
                }
                if rate_limit::applies(&policy, &auth) {
                    match rate_limit::enforce(gate.rate_limits(), name, &policy, &auth).await {
                        Ok(status) => rate_limit::leave_status(&mut parts, status),
                        Err(rejection) => {
                            gate.record(&authorizing, token_type, Err(&rejection));
                            return Ok(gate.render_for(rejection, &policy));
                        }
                    }
                }
                gate.record(&authorizing, token_type, Ok(&auth));
                parts.extensions.insert(auth);
                inner.call(Request::from_parts(parts, body)).await
            }),
        }
    }
}
