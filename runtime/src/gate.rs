//! The [`TokenGate`]: verifiers per token type, configured once, and the evaluation of a
//! policy for a request: extract → classify → check the type → verify → check requirements.
//!
//! ```
//! use std::sync::Arc;
//! use tokengate_runtime::{TokenGate, TokenType, verifier::StaticVerifier};
//!
//! let gate = TokenGate::builder()
//!     .verifier(TokenType::ApiKey, Arc::new(StaticVerifier::new()))
//!     .realm("example")
//!     .build()
//!     .unwrap();
//! assert!(gate.has_verifier(TokenType::ApiKey));
//! assert!(!gate.has_verifier(TokenType::SessionToken));
//! ```

use std::fmt;
use std::sync::Arc;

use axum::response::Response;
use http::request::Parts;
use http::{Extensions, HeaderMap, HeaderValue, header};

use crate::auth::Auth;
use crate::binding::{self, BINDABLE, DpopVerifier, Presentation, ProofTarget};
use crate::classify::{Classifier, Prefixes, TokenFormat};
use crate::extract::{Presented, TokenSource, extract};
use crate::net::{ClientKey, ClientKeyFn};
use crate::policy::Policy;
use crate::rate_limit::RateLimits;
use crate::rejection::{DEFAULT_REALM, InvalidReason, Rejection, is_valid_realm};
use crate::telemetry::{self, Authorizing, Stopwatch};
use crate::token::{TokenType, TokenTypes};
use crate::verifier::{Credential, SEAL, Verifier, VerifyError};

type Responder = dyn Fn(&Rejection) -> Option<Response> + Send + Sync;

struct Inner {
    classifier: Classifier,
    verifiers: [Option<Arc<dyn Verifier>>; 4],
    realm: String,
    resource_metadata: Option<String>,
    responder: Option<Arc<Responder>>,
    client_key: Arc<ClientKeyFn>,
    metrics_key_ids: bool,
    rate_limits: RateLimits,
    dpop: Option<Arc<DpopVerifier>>,
}

/// Verifiers per token type and the rules to run them. Cheap to clone; put it in your
/// router state (it must be reachable with `FromRef`) or in a [`PolicyLayer`](crate::PolicyLayer).
#[derive(Clone)]
pub struct TokenGate(Arc<Inner>);

impl fmt::Debug for TokenGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verifiers: Vec<(TokenType, &'static str)> = TokenType::ALL
            .into_iter()
            .filter_map(|t| self.0.verifiers[t.index()].as_ref().map(|v| (t, v.name())))
            .collect();
        f.debug_struct("TokenGate")
            .field("verifiers", &verifiers)
            .field("realm", &self.0.realm)
            .field("resource_metadata", &self.0.resource_metadata)
            .field("prefixes", self.0.classifier.prefixes())
            .finish()
    }
}

/// A configuration the [`TokenGateBuilder`] refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The realm cannot be sent in a header.
    #[error(
        "realm {0:?} contains characters not allowed in WWW-Authenticate (`\"`, `\\` or control characters); use printable ASCII"
    )]
    InvalidRealm(String),
    /// The resource metadata URL is not an absolute URL that can be sent in a header.
    #[error(
        "resource metadata URL {0:?} must be an absolute https or http URL of printable ASCII without quotes or backslashes; use ProtectedResource::metadata_url"
    )]
    InvalidResourceMetadata(String),
    /// Two token types share a prefix, or a prefix is empty.
    #[error(
        "token prefixes must be non-empty and distinct (got api_key={api_key:?}, m2m_token={m2m_token:?}, oauth_token={oauth_token:?})"
    )]
    InvalidPrefixes {
        /// API key prefix.
        api_key: String,
        /// M2M prefix.
        m2m_token: String,
        /// OAuth prefix.
        oauth_token: String,
    },
    /// Routes accept token types that have no verifier.
    #[error("{0}")]
    MissingVerifiers(String),
}

/// Builds a [`TokenGate`].
#[must_use]
pub struct TokenGateBuilder {
    prefixes: Prefixes,
    opaque_oauth: bool,
    verifiers: [Option<Arc<dyn Verifier>>; 4],
    realm: String,
    resource_metadata: Option<String>,
    responder: Option<Arc<Responder>>,
    client_key: Arc<ClientKeyFn>,
    metrics_key_ids: bool,
    rate_limits: RateLimits,
    dpop: Option<Arc<DpopVerifier>>,
}

/// What the gate reads of a request: its headers and extensions, and its method and URI
/// when the caller has them (a DPoP proof is checked against them).
#[derive(Clone, Copy)]
pub(crate) struct Head<'a> {
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a Extensions,
    pub(crate) target: Option<ProofTarget<'a>>,
}

impl<'a> Head<'a> {
    /// Everything of a request's head.
    pub(crate) fn of(parts: &'a Parts) -> Head<'a> {
        Head {
            headers: &parts.headers,
            extensions: &parts.extensions,
            target: Some(ProofTarget {
                method: &parts.method,
                uri: &parts.uri,
            }),
        }
    }

    /// The binding check's view of a request that presented `presented`.
    fn presentation(&self, presented: &Presented<'a>) -> Presentation<'a> {
        Presentation {
            token: presented.token(),
            scheme: presented.scheme(),
            headers: self.headers,
            extensions: self.extensions,
            target: self.target,
        }
    }
}

impl TokenGate {
    /// Starts a configuration with Clerk's prefixes and no verifier.
    pub fn builder() -> TokenGateBuilder {
        TokenGateBuilder {
            prefixes: Prefixes::default(),
            opaque_oauth: false,
            verifiers: [None, None, None, None],
            realm: DEFAULT_REALM.to_owned(),
            resource_metadata: None,
            responder: None,
            client_key: Arc::new(ClientKey::default_for),
            metrics_key_ids: false,
            rate_limits: RateLimits::default(),
            dpop: None,
        }
    }

    /// Where the counts of `#[rate_limit]` routes live.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.0.rate_limits
    }

    /// The DPoP proof checks, when configured ([`TokenGateBuilder::dpop`]).
    pub fn dpop(&self) -> Option<&DpopVerifier> {
        self.0.dpop.as_deref()
    }

    /// Whether a verifier is configured for `token_type`.
    pub fn has_verifier(&self, token_type: TokenType) -> bool {
        self.0.verifiers[token_type.index()].is_some()
    }

    /// The types that have a verifier.
    pub fn verified_types(&self) -> TokenTypes {
        TokenType::ALL.into_iter().filter(|t| self.has_verifier(*t)).collect()
    }

    /// The realm sent in `WWW-Authenticate`.
    pub fn realm(&self) -> &str {
        &self.0.realm
    }

    /// The URL of the resource's RFC 9728 metadata that challenges point at, if configured.
    pub fn resource_metadata(&self) -> Option<&str> {
        self.0.resource_metadata.as_deref()
    }

    /// Checks that every type `policy` names has a verifier. `any` is satisfied by the
    /// types that have one.
    pub fn check_policy(&self, policy: &Policy) -> Result<(), TokenTypes> {
        if policy.accepts().is_any() {
            return Ok(());
        }
        let missing: TokenTypes = policy.accepts().iter().filter(|t| !self.has_verifier(*t)).collect();
        if missing.is_empty() { Ok(()) } else { Err(missing) }
    }

    /// Runs `policy` for a request: the verified caller, or why it is refused.
    ///
    /// When an outer [`PolicyLayer`](crate::PolicyLayer) already verified the token, the
    /// [`Auth`] it left in `extensions` is checked against `policy` without verifying again.
    /// The decision is counted under the route [`telemetry::DIRECT_ROUTE`].
    ///
    /// Without the request's method and URI, a DPoP proof cannot be checked: a DPoP-bound
    /// token is refused here. Use [`TokenGate::authorize_request`] where DPoP may be used.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
        policy: &Policy,
    ) -> Result<Auth, Rejection> {
        let head = Head {
            headers,
            extensions,
            target: None,
        };
        self.authorize_head(head, policy).await
    }

    /// [`TokenGate::authorize`] with the whole request head: DPoP proofs are checked against
    /// its method and URI.
    pub async fn authorize_request(&self, parts: &Parts, policy: &Policy) -> Result<Auth, Rejection> {
        self.authorize_head(Head::of(parts), policy).await
    }

    async fn authorize_head(&self, head: Head<'_>, policy: &Policy) -> Result<Auth, Rejection> {
        let authorizing = Authorizing::start(telemetry::DIRECT_ROUTE, policy);
        let verdict = self.authorize_in(&authorizing, head, policy).await;
        self.record(&authorizing, verdict.token_type, verdict.result.as_ref());
        verdict.result
    }

    /// [`TokenGate::authorize`] inside `authorizing`'s span, without recording the decision
    /// (the caller may still have conditions to run).
    pub(crate) async fn authorize_in(&self, authorizing: &Authorizing, head: Head<'_>, policy: &Policy) -> Verdict {
        use tracing::Instrument;
        let step = authorizing.span().in_scope(|| self.authorize_now(head, policy));
        let verdict = match step {
            Step::Done(verdict) => verdict,
            Step::Verify(pending) => {
                let client = (self.0.client_key)(head.headers, head.extensions);
                self.verify_pending(pending.with_client(client), policy)
                    .instrument(authorizing.span().clone())
                    .await
            }
        };
        if let Err(rejection) = &verdict.result {
            log_rejection(rejection);
        }
        verdict
    }

    /// Records a decision: its metrics and the fields of its span.
    pub(crate) fn record(
        &self,
        authorizing: &Authorizing,
        token_type: Option<TokenType>,
        result: Result<&Auth, &Rejection>,
    ) {
        authorizing.finish(token_type, result, self.0.metrics_key_ids);
    }

    /// Everything that needs no waiting, as a plain function: extract, classify, check the
    /// type, ask the verifier's memory, check the policy. Most requests (a reused key or
    /// token, any rejection before verification) end here; kept out of the `async fn` so the
    /// handler's future stays small and the hot path is one call.
    pub(crate) fn authorize_now<'a>(&'a self, head: Head<'a>, policy: &Policy) -> Step<'a> {
        if let Some(auth) = head.extensions.get::<Auth>() {
            let checked = policy
                .check(auth)
                .and_then(|()| binding::check_admitted(auth, policy.binding()));
            return Step::Done(Verdict::of(checked.map(|()| auth.clone()), Some(auth.token_type)));
        }
        let accepts = policy.accepts();
        let presented = match extract(head.headers, accepts.contains(TokenType::SessionToken)) {
            Ok(Some(presented)) => presented,
            Ok(None) => return Step::Done(Verdict::untyped(Rejection::MissingCredentials)),
            Err(rejection) => return Step::Done(Verdict::untyped(rejection)),
        };
        if let Some(recalled) = self.recall(&presented, head, policy) {
            return recalled;
        }
        let classified = match self.0.classifier.classify(presented.token()) {
            Ok(classified) => classified,
            Err(rejection) => return Step::Done(Verdict::untyped(rejection)),
        };
        let token_type = classified.token_type();
        let refused = |rejection| Step::Done(Verdict::of(Err(rejection), Some(token_type)));
        if let Err(rejection) = check_type(presented.source(), token_type, accepts) {
            return refused(rejection);
        }
        let Some(verifier) = &self.0.verifiers[token_type.index()] else {
            if accepts.is_any() {
                return refused(not_accepted(token_type, accepts));
            }
            return refused(no_verifier(token_type));
        };
        let credential = Credential::new(presented.token(), token_type, classified.format(), presented.source());
        let presentation = head.presentation(&presented);
        // A remembered key or token is answered without a future; anything else is verified.
        match verifier.verify_cached_sealed(&credential, SEAL) {
            Some(answer) => Step::Done(Verdict::of(
                self.accept(answer, token_type, &**verifier, policy, &presentation),
                Some(token_type),
            )),
            None => Step::Verify(Pending {
                verifier,
                credential,
                presentation,
            }),
        }
    }

    /// A JWT a verifier of this gate accepted before and still remembers, decided without
    /// classifying it again: a reused session token costs its hash and one lookup, not a
    /// base64 and JSON read as well. `None` (classify as usual) for anything else.
    ///
    /// The answer is the one classification would lead to: a JWT's type is a function of its
    /// own bytes (the classifier reads only its header and payload once no opaque prefix
    /// matches), so the type the remembered identity was verified as is the type the token
    /// classifies as now. It is trusted only when this gate sends that type to the verifier
    /// that answered, and the usual cookie, type and policy checks follow.
    fn recall<'a>(&'a self, presented: &Presented<'a>, head: Head<'a>, policy: &Policy) -> Option<Step<'a>> {
        let accepts = policy.accepts();
        if !JWT_TYPES.into_iter().any(|t| accepts.contains(t)) {
            return None;
        }
        let token = presented.token();
        if !self.0.classifier.may_be_jwt(token) {
            return None;
        }
        let mut asked: [Option<&Arc<dyn Verifier>>; 3] = [None; 3];
        for (i, jwt_type) in JWT_TYPES.into_iter().enumerate() {
            let Some(verifier) = self.0.verifiers[jwt_type.index()]
                .as_ref()
                .filter(|_| accepts.contains(jwt_type))
            else {
                continue;
            };
            // One verifier often serves several types; ask it once.
            if asked.iter().flatten().any(|seen| Arc::ptr_eq(seen, verifier)) {
                continue;
            }
            asked[i] = Some(verifier);
            let Some(auth) = verifier.recall_jwt_sealed(token, SEAL) else {
                continue;
            };
            let token_type = auth.token_type;
            if !self.0.verifiers[token_type.index()]
                .as_ref()
                .is_some_and(|v| Arc::ptr_eq(v, verifier))
            {
                return None;
            }
            let checked = check_type(presented.source(), token_type, accepts);
            let presentation = head.presentation(presented);
            return Some(Step::Done(Verdict::of(
                checked.and_then(|()| self.accept(Ok(auth), token_type, &**verifier, policy, &presentation)),
                Some(token_type),
            )));
        }
        None
    }

    /// The part that waits: a verifier that must check a signature or ask a store or a server.
    async fn verify_pending(&self, pending: Pending<'_>, policy: &Policy) -> Verdict {
        let token_type = pending.credential.token_type();
        let answer = verify_timed(&**pending.verifier, pending.credential).await;
        Verdict::of(
            self.accept(answer, token_type, &**pending.verifier, policy, &pending.presentation),
            Some(token_type),
        )
    }

    /// The part that waits, for a caller that could not keep the [`Pending`] borrow (the
    /// guard, whose future owns the gate): finds the token in the same `headers` again (a
    /// header lookup, not a second classification) and awaits its verifier.
    pub(crate) async fn verify_resumed(&self, head: Head<'_>, resume: Resume, policy: &Policy) -> Verdict {
        let typed = |result| Verdict::of(result, Some(resume.token_type));
        let presented = match extract(head.headers, policy.accepts().contains(TokenType::SessionToken)) {
            Ok(Some(presented)) if presented.source() == resume.source => presented,
            // The headers are the ones `authorize_now` read; a different answer is a bug.
            _ => {
                return typed(Err(Rejection::Misconfigured(
                    "the request's headers changed during authorization",
                )));
            }
        };
        let Some(verifier) = &self.0.verifiers[resume.token_type.index()] else {
            return typed(Err(Rejection::Misconfigured("no verifier for an accepted token type")));
        };
        let credential = Credential::new(presented.token(), resume.token_type, resume.format, presented.source())
            .with_client((self.0.client_key)(head.headers, head.extensions));
        let presentation = head.presentation(&presented);
        let answer = verify_timed(&**verifier, credential).await;
        typed(self.accept(answer, resume.token_type, &**verifier, policy, &presentation))
    }

    /// Renders a rejection: the configured responder's response, or the RFC 6750 default
    /// (with a `DPoP` challenge too when the gate checks DPoP proofs).
    pub fn render(&self, rejection: Rejection) -> Response {
        self.render_with(rejection, None)
    }

    /// Renders a rejection on a route with `policy`: the challenges name the schemes the
    /// route accepts — `Bearer`, `DPoP` (with `algs`), or both (RFC 9449 §7.1).
    pub fn render_for(&self, rejection: Rejection, policy: &Policy) -> Response {
        self.render_with(rejection, Some(policy))
    }

    fn render_with(&self, rejection: Rejection, policy: Option<&Policy>) -> Response {
        if let Some(responder) = &self.0.responder
            && let Some(response) = responder(&rejection)
        {
            return response;
        }
        let dpop_only = rejection.scheme() == "DPoP";
        let metadata = self.0.resource_metadata.as_deref();
        let mut response = rejection.into_response_with_metadata(&self.0.realm, metadata);
        if let Some(dpop) = &self.0.dpop {
            let accepts = policy.map_or(TokenTypes::ANY, Policy::accepts);
            let offers_dpop = accepts.is_any() || !accepts.intersection(BINDABLE).is_empty();
            let dpop_required = policy.is_some_and(|p| p.binding().requires_dpop());
            let offers_bearer = !dpop_required || !(accepts.is_any() || accepts.intersection(BINDABLE) == accepts);
            if offers_dpop {
                let companion = bearer_companion(&self.0.realm, metadata);
                dpop_challenges(&mut response, dpop, &companion, offers_bearer, dpop_only);
            }
        }
        response
    }

    /// A verifier's answer, checked: an identity of the classified type, bound as its `cnf`
    /// says and the route requires, that meets the policy.
    fn accept(
        &self,
        answer: Result<Auth, VerifyError>,
        token_type: TokenType,
        verifier: &dyn Verifier,
        policy: &Policy,
        presentation: &Presentation<'_>,
    ) -> Result<Auth, Rejection> {
        let auth = answer.map_err(|e| e.into_rejection(token_type))?;
        if auth.token_type != token_type {
            return Err(wrong_type_returned(token_type, &auth, verifier));
        }
        binding::check(self.0.dpop.as_deref(), &auth, presentation, policy.binding())?;
        policy.check(&auth)?;
        Ok(auth)
    }
}

/// Rewrites a rendered refusal's `WWW-Authenticate` for a route that accepts DPoP: a `DPoP`
/// challenge with the same parameters and `algs`, beside the `Bearer` one when the route
/// accepts bearer tokens too. A refused proof's own challenge is `DPoP`; its `Bearer`
/// companion (`companion`) then carries only the realm and the resource metadata.
fn dpop_challenges(
    response: &mut Response,
    dpop: &DpopVerifier,
    companion: &str,
    offers_bearer: bool,
    dpop_only: bool,
) {
    let headers = response.headers_mut();
    let Some(base) = headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let params = base.split_once(' ').map_or("", |(_, params)| params).to_owned();
    let bearer = if dpop_only {
        companion.to_owned()
    } else {
        base.to_owned()
    };
    let dpop_challenge = format!("DPoP {params}, algs=\"{}\"", dpop.algorithms_header());
    headers.remove(header::WWW_AUTHENTICATE);
    for value in [offers_bearer.then_some(bearer), Some(dpop_challenge)]
        .into_iter()
        .flatten()
    {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(header::WWW_AUTHENTICATE, value);
        }
    }
}

/// A realm-only `Bearer` challenge (with the RFC 9728 `resource_metadata` when configured).
fn bearer_companion(realm: &str, metadata: Option<&str>) -> String {
    match metadata {
        Some(url) => format!("Bearer realm=\"{realm}\", resource_metadata=\"{url}\""),
        None => format!("Bearer realm=\"{realm}\""),
    }
}

/// The types a JWT can be, in the order [`TokenGate::recall`] asks their verifiers.
const JWT_TYPES: [TokenType; 3] = [TokenType::SessionToken, TokenType::M2mToken, TokenType::OAuthToken];

/// The checks on a token's type, whether classified or recalled: a machine token never comes
/// from the session cookie, and the route must accept the type.
fn check_type(source: TokenSource, token_type: TokenType, accepts: TokenTypes) -> Result<(), Rejection> {
    if source == TokenSource::Cookie && token_type != TokenType::SessionToken {
        return Err(Rejection::InvalidToken(InvalidReason::MachineTokenInCookie));
    }
    if !accepts.contains(token_type) {
        return Err(not_accepted(token_type, accepts));
    }
    Ok(())
}

fn not_accepted(presented: TokenType, accepted: TokenTypes) -> Rejection {
    Rejection::TokenTypeNotAccepted { presented, accepted }
}

/// A route accepts a type the gate has no verifier for: a configuration mistake, logged.
#[cold]
fn no_verifier(token_type: TokenType) -> Rejection {
    tracing::error!(
        target: "tokengate",
        %token_type,
        "a route accepts {token_type} but the TokenGate has no verifier for it; \
         configure one with TokenGateBuilder::verifier"
    );
    Rejection::Misconfigured("no verifier for an accepted token type")
}

/// Whether a refusal is an optional route's anonymous caller, to be admitted without an
/// [`Auth`]: the policy is [`optional`](Policy::optional), nothing was found to verify, and
/// the request has no `Authorization` header at all (a header of another scheme, `Basic …`,
/// is a credential this route cannot verify: refused, not anonymous). Every other refusal —
/// a malformed, forged, expired, revoked or wrongly typed token — stands.
pub(crate) fn is_anonymous(policy: &Policy, headers: &HeaderMap, rejection: &Rejection) -> bool {
    policy.is_optional()
        && matches!(rejection, Rejection::MissingCredentials)
        && !headers.contains_key(http::header::AUTHORIZATION)
}

/// Logs a refusal at debug level (its reason and status; never the token).
pub(crate) fn log_rejection(rejection: &Rejection) {
    tracing::debug!(target: "tokengate", reason = rejection.reason(), status = rejection.status().as_u16(), "request rejected");
}

/// A verifier's awaited answer, timed per verifier.
async fn verify_timed(verifier: &dyn Verifier, credential: Credential<'_>) -> Result<Auth, VerifyError> {
    let token_type = credential.token_type();
    let watch = Stopwatch::start();
    let answer = verifier.verify(credential).await;
    telemetry::verified(verifier.name(), token_type, watch);
    answer
}

/// A decision and the type of the token it was about (`None` before one was classified).
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) result: Result<Auth, Rejection>,
    pub(crate) token_type: Option<TokenType>,
}

impl Verdict {
    pub(crate) fn of(result: Result<Auth, Rejection>, token_type: Option<TokenType>) -> Verdict {
        Verdict { result, token_type }
    }

    fn untyped(rejection: Rejection) -> Verdict {
        Verdict::of(Err(rejection), None)
    }
}

/// Where [`TokenGate::authorize_now`] stopped.
pub(crate) enum Step<'a> {
    /// Decided without waiting.
    Done(Verdict),
    /// The verifier must be awaited.
    Verify(Pending<'a>),
}

/// A credential for a verifier that had no answer in memory.
pub(crate) struct Pending<'a> {
    verifier: &'a Arc<dyn Verifier>,
    credential: Credential<'a>,
    presentation: Presentation<'a>,
}

impl Pending<'_> {
    /// The same verification, for a credential presented by `client`.
    fn with_client(mut self, client: Option<ClientKey>) -> Self {
        self.credential = self.credential.with_client(client);
        self
    }

    /// What [`TokenGate::verify_resumed`] needs to pick the verification up again.
    pub(crate) fn resume(&self) -> Resume {
        Resume {
            token_type: self.credential.token_type(),
            format: self.credential.format(),
            source: self.credential.source(),
        }
    }
}

/// A [`Pending`] verification without its borrows: the classification, kept so the token
/// is not classified twice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resume {
    token_type: TokenType,
    format: TokenFormat,
    source: TokenSource,
}

/// A verifier answered with an identity of another type: a bug in that verifier, logged.
#[cold]
fn wrong_type_returned(token_type: TokenType, auth: &Auth, verifier: &dyn Verifier) -> Rejection {
    tracing::error!(
        target: "tokengate",
        expected = %token_type,
        returned = %auth.token_type,
        verifier = verifier.name(),
        "a verifier returned an identity of another token type; refusing it"
    );
    Rejection::Misconfigured("verifier returned the wrong token type")
}

impl TokenGateBuilder {
    /// Also counts allowed requests per API key and `mt_` token id, in
    /// `tokengate_key_decisions_total` (the `metrics` feature; off by default). The id is the
    /// key's id in its store, never its secret; each key becomes one series, so turn it on only
    /// where the number of keys is small.
    pub fn metrics_key_ids(mut self, enabled: bool) -> Self {
        self.metrics_key_ids = enabled;
        self
    }

    /// Where the counts of `#[rate_limit]` routes live: in this process (the default) or in
    /// Redis, shared by every instance ([`RateLimits::redis`]).
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// Checks DPoP proofs (RFC 9449) with `dpop`, so DPoP-bound tokens are accepted with
    /// their proofs. Without it every DPoP-bound token is refused.
    pub fn dpop(mut self, dpop: DpopVerifier) -> Self {
        self.dpop = Some(Arc::new(dpop));
        self
    }

    /// Sets the verifier for `token_type`, replacing any earlier one.
    pub fn verifier(mut self, token_type: TokenType, verifier: Arc<dyn Verifier>) -> Self {
        self.verifiers[token_type.index()] = Some(verifier);
        self
    }

    /// Sets one verifier for several token types (e.g. one JWT verifier for sessions and
    /// M2M JWTs).
    pub fn verifier_for(mut self, types: TokenTypes, verifier: Arc<dyn Verifier>) -> Self {
        for t in types.iter() {
            self.verifiers[t.index()] = Some(Arc::clone(&verifier));
        }
        self
    }

    /// Treats unprefixed opaque tokens as OAuth access tokens (for an introspection
    /// verifier; authorization servers other than Clerk issue them without `oat_`).
    pub fn opaque_oauth_tokens(mut self, enabled: bool) -> Self {
        self.opaque_oauth = enabled;
        self
    }

    /// Replaces Clerk's token prefixes.
    pub fn prefixes(mut self, prefixes: Prefixes) -> Self {
        self.prefixes = prefixes;
        self
    }

    /// The realm in `WWW-Authenticate` (default `api`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Points every `401` and `403` challenge at the resource's RFC 9728 metadata
    /// (`resource_metadata="<url>"`, §5.1), as the MCP authorization spec requires: give
    /// [`ProtectedResource::metadata_url`](crate::metadata::ProtectedResource::metadata_url).
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// Replaces the response for some rejections: return `Some` to replace, `None` to
    /// keep the default.
    pub fn on_rejection<F>(mut self, responder: F) -> Self
    where
        F: Fn(&Rejection) -> Option<Response> + Send + Sync + 'static,
    {
        self.responder = Some(Arc::new(responder));
        self
    }

    /// How the gate tells clients apart, for the per-client shares of the bounds on backend
    /// calls (the key store's lookups, introspection, Clerk's Backend API): a
    /// [`ClientKey`] from the request's headers and extensions, or `None` (held to the total
    /// bounds only). Asked only when a verifier must call its backend, never for a cached
    /// token.
    ///
    /// The default, [`ClientKey::from_peer`], is the connection's peer address (serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`). Behind a reverse proxy or a
    /// load balancer every request comes from the proxy, so all clients would share one
    /// share: read the client's address from the header your proxy sets (and only from
    /// a proxy you trust to set it), or turn the shares off with `|_, _| None`.
    ///
    /// ```
    /// use tokengate_runtime::TokenGate;
    /// use tokengate_runtime::net::ClientKey;
    ///
    /// // Behind a proxy that overwrites `X-Real-IP` with the client's address.
    /// let gate = TokenGate::builder()
    ///     .client_key(|headers, _extensions| {
    ///         let ip = headers.get("x-real-ip")?.to_str().ok()?.parse().ok()?;
    ///         Some(ClientKey::from_ip(ip))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(gate);
    /// ```
    pub fn client_key<F>(mut self, client_key: F) -> Self
    where
        F: Fn(&HeaderMap, &Extensions) -> Option<ClientKey> + Send + Sync + 'static,
    {
        self.client_key = Arc::new(client_key);
        self
    }

    /// Checks the configuration and builds the gate.
    pub fn build(self) -> Result<TokenGate, ConfigError> {
        if !is_valid_realm(&self.realm) {
            return Err(ConfigError::InvalidRealm(self.realm));
        }
        if let Some(url) = &self.resource_metadata
            && !(is_valid_realm(url)
                && !url.contains(' ')
                && url::Url::parse(url).is_ok_and(|u| u.has_host() && matches!(u.scheme(), "https" | "http")))
        {
            return Err(ConfigError::InvalidResourceMetadata(url.clone()));
        }
        let p = &self.prefixes;
        let all = [&*p.api_key, &*p.m2m_token, &*p.oauth_token];
        let overlapping = all
            .iter()
            .enumerate()
            .any(|(i, a)| all.iter().skip(i + 1).any(|b| a.starts_with(b) || b.starts_with(a)));
        if all.iter().any(|s| s.is_empty()) || overlapping {
            return Err(ConfigError::InvalidPrefixes {
                api_key: p.api_key.to_string(),
                m2m_token: p.m2m_token.to_string(),
                oauth_token: p.oauth_token.to_string(),
            });
        }
        Ok(TokenGate(Arc::new(Inner {
            classifier: Classifier::new(self.prefixes).with_opaque_oauth(self.opaque_oauth),
            verifiers: self.verifiers,
            realm: self.realm,
            resource_metadata: self.resource_metadata,
            responder: self.responder,
            client_key: self.client_key,
            metrics_key_ids: self.metrics_key_ids,
            rate_limits: self.rate_limits,
            dpop: self.dpop,
        })))
    }
}
