//! The guard extractor: runs a handler's policy before any other extractor.
//!
//! The attributes put a [`Guard`] first in the handler's arguments; axum runs extractors in
//! order, so a request with a bad token is refused before its body is read. The verified
//! [`Auth`] is left in the request's extensions for the `Auth` extractor (unless the guard is
//! the handler's only parameter: see [`PolicySource::SHARE_AUTH`]).
//!
//! A request whose answer is known at once — a remembered key or token, any refusal before a
//! verifier — is decided when axum calls the guard, and its future is ready: no state
//! machine, no allocation. Only a verifier that must wait gets a boxed future.
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
use std::future::{Future, Ready, ready};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::response::Response;
use http::request::Parts;

use crate::auth::Auth;
use crate::gate::{Head, Resume, Step, TokenGate, Verdict, is_anonymous, log_rejection};
use crate::policy::Policy;
use crate::rate_limit;
use crate::rejection::Rejection;
use crate::telemetry::Authorizing;
use crate::token::TokenType;

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

    /// The route's name in metrics and traces (the `route` label, `code.function.name`): the
    /// attributes give the handler's path, `module::handler`, as the route-policy report shows
    /// it; by default the type's name.
    fn route() -> &'static str {
        std::any::type_name::<Self>()
    }

    /// Whether the guard leaves the verified [`Auth`] in the request's extensions, for the
    /// extractors after it (`Auth`, `Option<Auth>`, your own). `true` by default. The
    /// attributes set it to `false` for a handler whose only parameter is the guard and that
    /// has no conditions: no extractor runs after the guard there, so nothing could read it,
    /// and the request skips an allocation.
    const SHARE_AUTH: bool = true;

    /// Custom conditions (`#[require(predicate)]`), run after the token and its scopes
    /// passed. `None` (the default) when there are none, so nothing is allocated. It may be
    /// called more than once per request: do the work in the returned future, not before.
    fn conditions<'a>(_auth: &'a Auth, _parts: &'a mut Parts) -> Option<ConditionFuture<'a>> {
        None
    }
}

/// Runs `P`'s policy for the request. Its rejection is the rendered response.
///
/// `At` says where it runs: [`OnParts`] (the default) on the request's parts, before the
/// handler's other extractors; [`OnRequest`] on the request itself, for a handler whose only
/// parameter is the guard (the attributes choose it for a handler without parameters: axum
/// then hands the request to the guard as it is, without splitting it and keeping its parts
/// in the handler's future).
pub struct Guard<P, At = OnParts>(PhantomData<fn() -> (P, At)>);

/// Where a [`Guard`] runs: on the request's parts, before the handler's other extractors.
#[derive(Debug)]
pub enum OnParts {}

/// Where a [`Guard`] runs: on the whole request, as a handler's only parameter.
#[derive(Debug)]
pub enum OnRequest {}

impl<P, At> fmt::Debug for Guard<P, At> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Guard")
    }
}

impl<S, P> FromRequestParts<S> for Guard<P, OnParts>
where
    P: PolicySource,
    TokenGate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    /// Decides at once when it can — a remembered key or token, any refusal before a
    /// verifier — and returns a ready future: no state machine and no allocation on a
    /// request's hot path. Only a verifier that must wait, or a route with conditions, gets
    /// a boxed future.
    fn from_request_parts(parts: &mut Parts, state: &S) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        let gate = TokenGate::from_ref(state);
        match decide::<P>(&gate, parts, P::SHARE_AUTH) {
            Decided::Now(result) => GuardFuture::Ready(ready(result.map(|()| Guard(PhantomData)))),
            Decided::Later(later) => GuardFuture::Waiting(Box::pin(finish::<P, OnParts>(gate, later, parts))),
        }
    }
}

impl<S, P> FromRequest<S> for Guard<P, OnRequest>
where
    P: PolicySource,
    TokenGate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    /// What [`FromRequestParts`] does for [`OnParts`], on a request the handler has no other
    /// use for: its parts move into a future only when one must wait.
    fn from_request(req: Request, state: &S) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        let gate = TokenGate::from_ref(state);
        let (mut parts, _body) = req.into_parts();
        // The request goes no further: no extractor could read an `Auth` left in it.
        match decide::<P>(&gate, &mut parts, false) {
            Decided::Now(result) => GuardFuture::Ready(ready(result.map(|()| Guard(PhantomData)))),
            Decided::Later(later) => GuardFuture::Waiting(Box::pin(async move {
                let mut parts = parts;
                finish::<P, OnRequest>(gate, later, &mut parts).await
            })),
        }
    }
}

/// What [`decide`] could settle without waiting, and what is left when it could not.
enum Decided {
    /// Admitted (the `Auth` left in the extensions if the policy shares it) or refused.
    Now(Result<(), Response>),
    /// A verifier or the route's conditions must be awaited.
    Later(Later),
}

/// What a guard that must wait still has to do, and the evaluation it belongs to.
struct Later {
    work: Work,
    authorizing: Authorizing,
}

/// The work left to a guard that waits.
enum Work {
    /// Await the verifier the gate chose.
    Verify(Resume),
    /// Run the route's conditions on an identity that passed the policy.
    Conditions(Auth),
}

/// The guard's work up to the first wait: the whole of it for a remembered key or token and
/// for any refusal before a verifier. An admitted identity is left in the extensions when
/// `share_auth` says an extractor after the guard may read it.
fn decide<P: PolicySource>(gate: &TokenGate, parts: &mut Parts, share_auth: bool) -> Decided {
    let authorizing = Authorizing::start(P::route(), P::policy());
    let step = authorizing
        .span()
        .in_scope(|| gate.authorize_now(Head::of(parts), P::policy()));
    let Verdict { result, token_type } = match step {
        Step::Done(verdict) => verdict,
        Step::Verify(pending) => {
            let work = Work::Verify(pending.resume());
            return Decided::Later(Later { work, authorizing });
        }
    };
    let auth = match result {
        Ok(auth) => auth,
        Err(rejection) if is_anonymous(P::policy(), &parts.headers, &rejection) => {
            // An optional route's caller without credentials: admitted, with no `Auth`.
            authorizing.finish_anonymous();
            return Decided::Now(Ok(()));
        }
        Err(rejection) => {
            return Decided::Now(Err(refuse(gate, &authorizing, token_type, rejection, P::policy())));
        }
    };
    // Whether the route has conditions (building their future runs none of them) or a rate
    // limit: both are awaited.
    if rate_limit::applies(P::policy(), &auth) || P::conditions(&auth, parts).is_some() {
        return Decided::Later(Later {
            work: Work::Conditions(auth),
            authorizing,
        });
    }
    gate.record(&authorizing, token_type, Ok(&auth));
    if share_auth {
        parts.extensions.insert(auth);
    }
    Decided::Now(Ok(()))
}

/// A refusal: logged, recorded, rendered with the challenges of the route's `policy`.
fn refuse(
    gate: &TokenGate,
    authorizing: &Authorizing,
    token_type: Option<TokenType>,
    rejection: Rejection,
    policy: &Policy,
) -> Response {
    log_rejection(&rejection);
    gate.record(authorizing, token_type, Err(&rejection));
    gate.render_for(rejection, policy)
}

/// The end of a guard that waited: the verifier's answer, then the route's conditions.
async fn finish<P: PolicySource, At>(
    gate: TokenGate,
    later: Later,
    parts: &mut Parts,
) -> Result<Guard<P, At>, Response> {
    use tracing::Instrument;
    let Later { work, authorizing } = later;
    let span = authorizing.span().clone();
    let Verdict { result, token_type } = match work {
        Work::Verify(resume) => {
            gate.verify_resumed(Head::of(parts), resume, P::policy())
                .instrument(span.clone())
                .await
        }
        Work::Conditions(auth) => {
            let token_type = Some(auth.token_type);
            Verdict::of(Ok(auth), token_type)
        }
    };
    let auth = result.map_err(|rejection| refuse(&gate, &authorizing, token_type, rejection, P::policy()))?;
    if P::SHARE_AUTH {
        parts.extensions.insert(auth.clone());
    }
    if let Some(conditions) = P::conditions(&auth, parts)
        && let Err(rejection) = conditions.instrument(span.clone()).await
    {
        return Err(refuse(&gate, &authorizing, token_type, rejection, P::policy()));
    }
    // Last, so that a request refused for anything else spends no quota.
    if rate_limit::applies(P::policy(), &auth) {
        let counted = rate_limit::enforce(gate.rate_limits(), P::route(), P::policy(), &auth)
            .instrument(span)
            .await;
        match counted {
            Ok(status) => rate_limit::leave_status(parts, status),
            Err(rejection) => return Err(refuse(&gate, &authorizing, token_type, rejection, P::policy())),
        }
    }
    gate.record(&authorizing, token_type, Ok(&auth));
    Ok(Guard(PhantomData))
}

/// The guard's future: ready at once on the hot path, boxed when a verifier must wait.
enum GuardFuture<'a, T> {
    Ready(Ready<Result<T, Response>>),
    Waiting(Pin<Box<dyn Future<Output = Result<T, Response>> + Send + 'a>>),
}

impl<T> Future for GuardFuture<'_, T> {
    type Output = Result<T, Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            GuardFuture::Ready(ready) => Pin::new(ready).poll(cx),
            GuardFuture::Waiting(waiting) => waiting.as_mut().poll(cx),
        }
    }
}

impl<P: PolicySource, At> Guard<P, At> {
    /// A guard that checked nothing, for calling a guarded handler directly in a unit test:
    /// `create_user(Guard::for_tests(), Json(body)).await` (the policy and where the guard
    /// runs are inferred).
    ///
    /// Requests never get a guard this way: axum makes one only through
    /// [`FromRequestParts`] or [`FromRequest`], which run the policy.
    pub fn for_tests() -> Guard<P, At> {
        Guard(PhantomData)
    }
}
