//! Rejections: every way a request can fail the guard, rendered as RFC 6750 responses.
//!
//! | rejection | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no credentials | 401 | `Bearer realm="…"` (no error code, RFC 6750 §3.1) |
//! | bad, expired, revoked, unverifiable or not-accepted token | 401 | `error="invalid_token"` |
//! | missing scope, role, permission, feature or plan | 403 | `error="insufficient_scope"`, `scope="…"` |
//! | a session not reverified recently enough | 403, Clerk's `reverification-error` body | `error="insufficient_scope"` |
//! | an OAuth token without the `acr` or recent authentication required (RFC 9470) | 401 | `error="insufficient_user_authentication"`, `acr_values="…"`, `max_age=…` |
//! | a bound token without its proof or certificate, an unbound one where a binding is required | 401 | `error="invalid_token"` (and a `DPoP` challenge: [`crate::TokenGate::render_for`]) |
//! | a refused DPoP proof; a proof without the server nonce | 401 | `DPoP error="invalid_dpop_proof"` / `error="use_dpop_nonce"` with `DPoP-Nonce` |
//! | malformed request | 400 | `error="invalid_request"` |
//! | verifier backend unreachable | 503 + `Retry-After` | — |
//! | server misconfiguration | 500 | — |
//!
//! With a resource metadata URL configured
//! ([`TokenGateBuilder::resource_metadata`](crate::TokenGateBuilder::resource_metadata)), every
//! `401` and `403` challenge carries `resource_metadata="<url>"` after the realm (RFC 9728 §5.1).
//!
//! Bodies are JSON: `{"error": "Unauthorized", "reason": "<stable-reason>", "message": "…"}`,
//! except a reverification refusal, whose body is Clerk's own so that Clerk's front-end
//! (`useReverification()`) recognises it:
//! `{"clerk_error":{"type":"forbidden","reason":"reverification-error","metadata":{"reverification":"strict"}}}`.
//! The token never appears in a body, a header or a log line: every text here is fixed or
//! comes from the route's own policy.
//!
//! ```
//! use axum::response::IntoResponse;
//! use tokengate_runtime::{Rejection, rejection::InvalidReason};
//!
//! let response = Rejection::InvalidToken(InvalidReason::Expired).into_response();
//! assert_eq!(response.status(), 401);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use tokengate_core::reverification::Reverification;

use crate::binding::DpopError;
use crate::policy::{Match, RequirementKind};
use crate::rate_limit::RateStatus;
use crate::token::{TokenType, TokenTypes};

/// Why a request was malformed (`400 invalid_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// More than one `Authorization` header.
    MultipleAuthorizationHeaders,
    /// `Bearer` without a token.
    MissingBearerToken,
    /// Not `Bearer <b64token>`: extra spaces, bytes outside RFC 6750's token alphabet…
    MalformedAuthorization,
    /// The `__session` cookie holds bytes outside RFC 6750's token alphabet.
    MalformedCookie,
    /// The `Authorization` header or the cookie is over 8 KiB.
    HeaderTooLarge,
}

impl InvalidRequest {
    /// The stable machine-readable reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            InvalidRequest::MultipleAuthorizationHeaders => "multiple-authorization-headers",
            InvalidRequest::MissingBearerToken => "missing-bearer-token",
            InvalidRequest::MalformedAuthorization => "malformed-authorization-header",
            InvalidRequest::MalformedCookie => "malformed-session-cookie",
            InvalidRequest::HeaderTooLarge => "authorization-too-large",
        }
    }

    const fn message(self) -> &'static str {
        match self {
            InvalidRequest::MultipleAuthorizationHeaders => "send exactly one Authorization header",
            InvalidRequest::MissingBearerToken => "the Authorization header says Bearer but carries no token",
            InvalidRequest::MalformedAuthorization => {
                "the Authorization header must be `Bearer <token>`, one space, token characters only"
            }
            InvalidRequest::MalformedCookie => "the __session cookie does not hold a token",
            InvalidRequest::HeaderTooLarge => "the credentials are larger than 8 KiB",
        }
    }
}

/// Why a token was refused (`401 invalid_token`). Stable, never echoes the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidReason {
    /// Not a well-formed token of any kind.
    Malformed,
    /// `exp` passed.
    Expired,
    /// `nbf` in the future.
    NotYetValid,
    /// `iat` in the future.
    IssuedInFuture,
    /// The signature does not verify.
    BadSignature,
    /// No key with the token's `kid`.
    UnknownKey,
    /// The algorithm is not allowed for this verifier or key.
    DisallowedAlgorithm,
    /// Wrong `typ`, or a token of one kind presented as another.
    WrongType,
    /// A JWT whose `typ`, `sub` and Clerk `cat` header name two types; refused before any verifier.
    TypeAmbiguous,
    /// Clerk's `cat` header names another class of token (a JWT template sent as a session…).
    CategoryMismatch,
    /// A session token without `sid` (an ID token or access token is not a session).
    MissingSessionId,
    /// `iss` missing or not the configured issuer.
    WrongIssuer,
    /// `aud` missing or not the configured audience.
    WrongAudience,
    /// `azp` missing or not an authorized party.
    WrongAuthorizedParty,
    /// A required claim is missing or of the wrong type.
    InvalidClaims,
    /// A critical header extension (`crit`) that is not understood.
    UnsupportedCritical,
    /// The token is revoked.
    Revoked,
    /// The token is not known to the issuer.
    UnknownToken,
    /// The checksum of an API key or M2M token does not match: a typo or a forgery.
    BadChecksum,
    /// Introspection answered `active: false`.
    Inactive,
    /// A machine token was sent in the `__session` cookie.
    MachineTokenInCookie,
    /// The secret of a key that was rerolled, after its grace period.
    Rotated,
    /// The key is disabled (it may be enabled again).
    Disabled,
    /// A DPoP-bound token (`cnf.jkt`) sent as a bearer token, without its proof.
    DpopBoundAsBearer,
    /// A token sent with the `DPoP` scheme that is not DPoP-bound.
    NotDpopBound,
    /// The route requires a DPoP-bound token (`#[require_dpop]`).
    DpopRequired,
    /// A certificate-bound token (`cnf."x5t#S256"`) without a client certificate.
    CertificateRequired,
    /// A certificate-bound token with another client certificate.
    CertificateMismatch,
    /// The route requires a certificate-bound token (`#[require_mtls]`).
    CertificateBindingRequired,
    /// A `cnf` that binds the token in a way that cannot be checked here.
    UnsupportedConfirmation,
}

impl InvalidReason {
    /// The stable machine-readable reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            InvalidReason::Malformed => "malformed-token",
            InvalidReason::Expired => "token-expired",
            InvalidReason::NotYetValid => "token-not-yet-valid",
            InvalidReason::IssuedInFuture => "token-issued-in-future",
            InvalidReason::BadSignature => "bad-signature",
            InvalidReason::UnknownKey => "unknown-key",
            InvalidReason::DisallowedAlgorithm => "disallowed-algorithm",
            InvalidReason::WrongType => "wrong-token-type",
            InvalidReason::TypeAmbiguous => "token-type-ambiguous",
            InvalidReason::CategoryMismatch => "token-category-mismatch",
            InvalidReason::MissingSessionId => "missing-session-id",
            InvalidReason::WrongIssuer => "wrong-issuer",
            InvalidReason::WrongAudience => "wrong-audience",
            InvalidReason::WrongAuthorizedParty => "wrong-authorized-party",
            InvalidReason::InvalidClaims => "invalid-claims",
            InvalidReason::UnsupportedCritical => "unsupported-critical-header",
            InvalidReason::Revoked => "token-revoked",
            InvalidReason::UnknownToken => "unknown-token",
            InvalidReason::BadChecksum => "bad-checksum",
            InvalidReason::Inactive => "token-inactive",
            InvalidReason::MachineTokenInCookie => "machine-token-in-cookie",
            InvalidReason::Rotated => "token-rotated",
            InvalidReason::Disabled => "token-disabled",
            InvalidReason::DpopBoundAsBearer => "dpop-bound-token-as-bearer",
            InvalidReason::NotDpopBound => "token-not-dpop-bound",
            InvalidReason::DpopRequired => "dpop-required",
            InvalidReason::CertificateRequired => "client-certificate-required",
            InvalidReason::CertificateMismatch => "client-certificate-mismatch",
            InvalidReason::CertificateBindingRequired => "certificate-binding-required",
            InvalidReason::UnsupportedConfirmation => "unsupported-confirmation",
        }
    }

    /// What the reason means, in words (the `message` of a refusal's body).
    pub const fn message(self) -> &'static str {
        match self {
            InvalidReason::Malformed => "the token is not well formed",
            InvalidReason::Expired => "the token has expired",
            InvalidReason::NotYetValid => "the token is not valid yet",
            InvalidReason::IssuedInFuture => "the token was issued in the future",
            InvalidReason::BadSignature => "the token signature is invalid",
            InvalidReason::UnknownKey => "the token was signed with an unknown key",
            InvalidReason::DisallowedAlgorithm => "the token algorithm is not allowed",
            InvalidReason::WrongType => "the token is not of the expected type",
            InvalidReason::TypeAmbiguous => "the token claims to be of two different types",
            InvalidReason::CategoryMismatch => "the token's category (`cat` header) is not this token type's",
            InvalidReason::MissingSessionId => "the token has no session id (`sid`), so it is not a session token",
            InvalidReason::WrongIssuer => "the token issuer is not accepted",
            InvalidReason::WrongAudience => "the token audience is not accepted",
            InvalidReason::WrongAuthorizedParty => "the token authorized party is not accepted",
            InvalidReason::InvalidClaims => "the token claims are invalid",
            InvalidReason::UnsupportedCritical => "the token has unsupported critical headers",
            InvalidReason::Revoked => "the token has been revoked",
            InvalidReason::UnknownToken => "the token is not known",
            InvalidReason::BadChecksum => "the token checksum is invalid",
            InvalidReason::Inactive => "the token is not active",
            InvalidReason::MachineTokenInCookie => "machine tokens must be sent in the Authorization header",
            InvalidReason::Rotated => "the token was replaced by a new secret and its grace period has ended",
            InvalidReason::Disabled => "the token is disabled",
            InvalidReason::DpopBoundAsBearer => {
                "the token is bound to a DPoP key: send it as `Authorization: DPoP <token>` with a `DPoP` proof header"
            }
            InvalidReason::NotDpopBound => {
                "the DPoP scheme is for DPoP-bound tokens and this token is not bound to a key; send it as `Authorization: Bearer <token>`, or get a DPoP-bound token"
            }
            InvalidReason::DpopRequired => {
                "this route requires a DPoP-bound token: request one from the authorization server with a DPoP proof and send it as `Authorization: DPoP <token>` with a proof"
            }
            InvalidReason::CertificateRequired => {
                "the token is bound to a client certificate: connect with that certificate (mutual TLS)"
            }
            InvalidReason::CertificateMismatch => {
                "the token is bound to another client certificate than the one this connection presented"
            }
            InvalidReason::CertificateBindingRequired => {
                "this route requires a certificate-bound token (RFC 8705): request one over mutual TLS and call with the same certificate"
            }
            InvalidReason::UnsupportedConfirmation => {
                "the token's confirmation (`cnf`) binds it in a way this server cannot check"
            }
        }
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a verified token was refused (`403 insufficient_scope`). Stable, on the wire as the
/// body's `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForbiddenReason {
    /// A scope is missing (`insufficient-scope`).
    InsufficientScope,
    /// The organization role is not one required (`missing-role`).
    MissingRole,
    /// An organization permission is missing (`missing-permission`).
    MissingPermission,
    /// A role or permission is required but the session has no active organization
    /// (`no-active-organization`).
    NoActiveOrganization,
    /// A `#[require]` predicate refused (`condition-failed`).
    ConditionFailed,
    /// A Clerk Billing feature is missing (`missing-feature`).
    MissingFeature,
    /// A Clerk Billing plan is missing (`missing-plan`).
    MissingPlan,
    /// The session's factors were not verified recently enough (`reverification-error`,
    /// Clerk's reason; the body is Clerk's).
    ReverificationRequired,
}

impl ForbiddenReason {
    /// The stable machine-readable reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            ForbiddenReason::InsufficientScope => "insufficient-scope",
            ForbiddenReason::MissingRole => "missing-role",
            ForbiddenReason::MissingPermission => "missing-permission",
            ForbiddenReason::NoActiveOrganization => "no-active-organization",
            ForbiddenReason::ConditionFailed => "condition-failed",
            ForbiddenReason::MissingFeature => "missing-feature",
            ForbiddenReason::MissingPlan => "missing-plan",
            ForbiddenReason::ReverificationRequired => "reverification-error",
        }
    }

    /// The reason a requirement of this kind gives when the token lacks its values. (An `acr`
    /// or `max_age` requirement is refused with a `401`,
    /// [`Rejection::InsufficientUserAuthentication`], not a `403`; it is listed with scopes.)
    pub const fn lacking(kind: RequirementKind) -> ForbiddenReason {
        match kind {
            RequirementKind::Feature => ForbiddenReason::MissingFeature,
            RequirementKind::Plan => ForbiddenReason::MissingPlan,
            RequirementKind::Reverification => ForbiddenReason::ReverificationRequired,
            RequirementKind::Scope | RequirementKind::Acr | RequirementKind::MaxAge => {
                ForbiddenReason::InsufficientScope
            }
            RequirementKind::Role => ForbiddenReason::MissingRole,
            RequirementKind::Permission => ForbiddenReason::MissingPermission,
            // A rate limit refuses with a `429`, never a `Forbidden`.
            RequirementKind::Condition | RequirementKind::RateLimit => ForbiddenReason::ConditionFailed,
        }
    }
}

impl fmt::Display for ForbiddenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified token lacks what the route requires (`403 insufficient_scope`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forbidden {
    /// Scope, role or permission.
    pub kind: RequirementKind,
    /// All-of or any-of.
    pub matching: Match,
    /// What the requirement asks for.
    pub required: Vec<Cow<'static, str>>,
    /// What the token lacks (for any-of: all of them).
    pub missing: Vec<Cow<'static, str>>,
    /// Why.
    pub reason: ForbiddenReason,
}

/// An OAuth access token's authentication does not meet the route's (RFC 9470): the `acr`
/// values the route accepts and the maximum age it allows, sent back in the challenge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepUp {
    /// The acceptable `acr` values (empty: any).
    pub acr_values: Vec<Cow<'static, str>>,
    /// The maximum age of the authentication, in seconds.
    pub max_age: Option<u32>,
    /// Whether the authentication was too old (rather than of another class).
    pub stale: bool,
}

impl StepUp {
    fn description(&self) -> &'static str {
        if self.stale {
            "more recent authentication is required"
        } else {
            "a different authentication level is required"
        }
    }
}

/// Every way the guard can refuse a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No bearer token at all.
    #[error("no credentials")]
    MissingCredentials,
    /// The request is malformed.
    #[error("invalid request: {}", .0.as_str())]
    InvalidRequest(InvalidRequest),
    /// The token is not valid.
    #[error("invalid token: {0}")]
    InvalidToken(InvalidReason),
    /// The token is of a type the route does not accept (checked before any verification).
    #[error("token type {presented} is not accepted (accepted: {accepted})")]
    TokenTypeNotAccepted {
        /// The presented token's type.
        presented: TokenType,
        /// The types the route accepts.
        accepted: TokenTypes,
    },
    /// The token lacks a scope, role or permission.
    #[error("forbidden: {}", .0.reason)]
    Forbidden(Forbidden),
    /// An OAuth access token's authentication is of another class or too old (RFC 9470).
    #[error("insufficient user authentication")]
    InsufficientUserAuthentication(StepUp),
    /// The verifier's backend (database, JWKS, introspection, Clerk) cannot answer.
    #[error("verifier unavailable")]
    Unavailable {
        /// When to retry, sent as `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The server is misconfigured (logged with details; the client sees a 500).
    #[error("misconfigured: {0}")]
    Misconfigured(&'static str),
    /// Over a route's rate limit (`429`, with `Retry-After` and the rate-limit headers).
    #[error("rate limited: {}", .0.rate)]
    RateLimited(RateStatus),
    /// A rate limit cannot be counted: Redis does not answer (`503` with `Retry-After`; see
    /// [`OnRedisError`](crate::rate_limit::OnRedisError)).
    #[error("rate limiter unavailable")]
    RateLimiterUnavailable,
    /// A DPoP proof was refused (RFC 9449: `401`, `DPoP error="invalid_dpop_proof"`).
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(DpopError),
    /// The DPoP proof needs a server nonce (RFC 9449 §8: `401`, `DPoP error="use_dpop_nonce"`,
    /// the nonce in `DPoP-Nonce`).
    #[error("DPoP nonce required")]
    UseDpopNonce {
        /// The nonce to put in the next proof.
        nonce: String,
    },
}

/// The realm used when none is configured.
pub const DEFAULT_REALM: &str = "api";

/// What a rejection is on the wire, besides its message: one row per kind of rejection.
struct Wire {
    status: StatusCode,
    /// RFC 6750's `error` in `WWW-Authenticate`.
    error_code: Option<&'static str>,
    /// The body's `reason` (and the challenge's `error_description`).
    reason: &'static str,
}

impl Rejection {
    /// The one table of what each rejection is on the wire.
    fn wire(&self) -> Wire {
        let (status, error_code, reason) = match self {
            Rejection::MissingCredentials => (StatusCode::UNAUTHORIZED, None, "missing-credentials"),
            Rejection::InvalidRequest(r) => (StatusCode::BAD_REQUEST, Some("invalid_request"), r.as_str()),
            Rejection::InvalidToken(r) => (StatusCode::UNAUTHORIZED, Some("invalid_token"), r.as_str()),
            Rejection::TokenTypeNotAccepted { .. } => {
                (StatusCode::UNAUTHORIZED, Some("invalid_token"), "token-type-mismatch")
            }
            Rejection::Forbidden(f) => (StatusCode::FORBIDDEN, Some("insufficient_scope"), f.reason.as_str()),
            Rejection::InsufficientUserAuthentication(_) => (
                StatusCode::UNAUTHORIZED,
                Some("insufficient_user_authentication"),
                "insufficient-user-authentication",
            ),
            Rejection::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, None, "verifier-unavailable"),
            Rejection::Misconfigured(_) => (StatusCode::INTERNAL_SERVER_ERROR, None, "server-misconfigured"),
            Rejection::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, None, "rate-limited"),
            Rejection::RateLimiterUnavailable => (StatusCode::SERVICE_UNAVAILABLE, None, "rate-limiter-unavailable"),
            Rejection::InvalidDpopProof(e) => (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof"), e.as_str()),
            Rejection::UseDpopNonce { .. } => (StatusCode::UNAUTHORIZED, Some("use_dpop_nonce"), "use-dpop-nonce"),
        };
        Wire {
            status,
            error_code,
            reason,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.wire().status
    }

    /// The stable machine-readable reason carried in the body's `reason` field.
    pub fn reason(&self) -> &'static str {
        self.wire().reason
    }

    /// The RFC 6750 error code, if the rejection has one.
    pub fn error_code(&self) -> Option<&'static str> {
        self.wire().error_code
    }

    fn message(&self) -> Cow<'static, str> {
        match self {
            Rejection::MissingCredentials => {
                "send a token in the Authorization header: `Bearer <token>` (another scheme, or a token \
                 without one, is not read)"
                    .into()
            }
            Rejection::InvalidRequest(r) => r.message().into(),
            Rejection::InvalidToken(r) => r.message().into(),
            Rejection::TokenTypeNotAccepted { presented, accepted } => {
                format!("this route does not accept {presented}; it accepts {accepted}").into()
            }
            Rejection::Forbidden(f) => f.message().into(),
            Rejection::InsufficientUserAuthentication(s) => step_up_message(s).into(),
            Rejection::Unavailable { .. } => "the token could not be verified right now; retry later".into(),
            Rejection::RateLimiterUnavailable => {
                "this route's rate limit cannot be counted right now; retry later".into()
            }
            Rejection::Misconfigured(_) => "the server is misconfigured; see its logs".into(),
            Rejection::RateLimited(status) => format!(
                "too many requests: this route allows {} per {} s; retry after the time in Retry-After",
                status.rate.count(),
                status.rate.period_secs()
            )
            .into(),
            Rejection::InvalidDpopProof(e) => e.message().into(),
            Rejection::UseDpopNonce { .. } => {
                "this server requires a DPoP nonce: make a new proof whose `nonce` is the `DPoP-Nonce` response header's value".into()
            }
        }
    }

    /// Renders the rejection with `realm` in `WWW-Authenticate`. `realm` must hold only
    /// RFC 6750 quoted-string characters (the [`TokenGate`](crate::TokenGate) builder checks).
    pub fn into_response_with_realm(self, realm: &str) -> Response {
        self.into_response_with_metadata(realm, None)
    }

    /// Renders the rejection with `realm` and, in a `401` or a `403 insufficient_scope`,
    /// `resource_metadata="<url>"` (RFC 9728 §5.1): where a client finds the authorization
    /// servers and scopes of this resource. Both must hold only RFC 6750 quoted-string
    /// characters (the [`TokenGate`](crate::TokenGate) builder checks).
    pub fn into_response_with_metadata(self, realm: &str, resource_metadata: Option<&str>) -> Response {
        let wire = self.wire();
        let mut response = match &self {
            Rejection::Forbidden(f) if f.reason == ForbiddenReason::ReverificationRequired => {
                (wire.status, Json(clerk_reverification_body(f))).into_response()
            }
            _ => (wire.status, Json(self.body(&wire))).into_response(),
        };
        let headers = response.headers_mut();
        if let Some(challenge) = self.challenge(&wire, realm, resource_metadata) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Rejection::RateLimited(status) = &self {
            crate::rate_limit::render_headers(headers, status);
        }
        if let Rejection::Unavailable { retry_after } = &self {
            let secs = retry_after.map_or(5, |d| d.as_secs().max(1));
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Rejection::RateLimiterUnavailable = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        if let Rejection::UseDpopNonce { nonce } = &self
            && let Ok(value) = HeaderValue::from_str(nonce)
        {
            headers.insert(DPOP_NONCE, value);
        }
        response.extensions_mut().insert(self);
        response
    }

    /// The JSON body of every rejection but a reverification.
    fn body(&self, wire: &Wire) -> Body<'_> {
        Body {
            error: wire.status.canonical_reason().unwrap_or("Error"),
            reason: wire.reason,
            message: self.message(),
            accepted: match &self {
                Rejection::TokenTypeNotAccepted { accepted, .. } => Some(*accepted),
                _ => None,
            },
            lacking: match self {
                Rejection::Forbidden(f) => Some(Lacking::of(f)),
                _ => None,
            },
            step_up: match self {
                Rejection::InsufficientUserAuthentication(s) => Some(StepUpBody {
                    acr_values: &s.acr_values,
                    max_age: s.max_age,
                }),
                _ => None,
            },
        }
    }

    /// The `WWW-Authenticate` value of a `400`, `401` or `403`.
    fn challenge(&self, wire: &Wire, realm: &str, resource_metadata: Option<&str>) -> Option<HeaderValue> {
        if !matches!(
            wire.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST
        ) {
            return None;
        }
        let mut challenge = format!("{} realm=\"{realm}\"", self.scheme());
        // Next to the realm, so the parameters of each kind of refusal keep ending the value.
        if let Some(url) = resource_metadata
            && matches!(wire.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        {
            challenge.push_str(&format!(", resource_metadata=\"{url}\""));
        }
        if let Some(code) = wire.error_code {
            let description = match self {
                Rejection::InsufficientUserAuthentication(s) => s.description(),
                _ => wire.reason,
            };
            challenge.push_str(&format!(", error=\"{code}\", error_description=\"{description}\""));
        }
        if let Rejection::InsufficientUserAuthentication(s) = self {
            if !s.acr_values.is_empty() {
                challenge.push_str(&format!(", acr_values=\"{}\"", s.acr_values.join(" ")));
            }
            if let Some(max_age) = s.max_age {
                challenge.push_str(&format!(", max_age={max_age}"));
            }
        }
        if let Rejection::Forbidden(f) = self
            && f.kind == RequirementKind::Scope
        {
            challenge.push_str(&format!(", scope=\"{}\"", f.required.join(" ")));
        }
        // Every part is a fixed string, a configured realm or a validated scope; the
        // fallback only guards against a future mistake.
        Some(HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer")))
    }
}

impl Rejection {
    /// The scheme of the challenge: `DPoP` for a refused DPoP proof, else `Bearer`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Rejection::InvalidDpopProof(_) | Rejection::UseDpopNonce { .. } => "DPoP",
            _ => "Bearer",
        }
    }
}

/// The header that carries a DPoP server nonce (RFC 9449 §8).
pub const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

impl Forbidden {
    fn message(&self) -> String {
        let list = |joiner: &str| {
            let quoted: Vec<String> = self.missing.iter().map(|m| format!("`{m}`")).collect();
            quoted.join(joiner)
        };
        match self.reason {
            ForbiddenReason::NoActiveOrganization => format!(
                "this route needs an organization {}, but the session has no active organization; select an organization (Clerk: `setActive({{ organization }})`) and retry",
                self.kind.as_str()
            ),
            ForbiddenReason::ConditionFailed => {
                format!(
                    "the request does not meet the condition {} of this route",
                    list(" and ")
                )
            }
            ForbiddenReason::ReverificationRequired => format!(
                "this route needs a recent verification ({}); verify again and retry",
                list(" and ")
            ),
            _ => {
                let joiner = match self.matching {
                    Match::All => " and ",
                    Match::Any => " or ",
                };
                format!("this route needs the {} {}", self.kind.as_str(), list(joiner))
            }
        }
    }
}

/// A rejection's JSON body.
#[derive(serde::Serialize)]
struct Body<'a> {
    error: &'static str,
    reason: &'static str,
    message: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted: Option<TokenTypes>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    lacking: Option<Lacking<'a>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    step_up: Option<StepUpBody<'a>>,
}

/// What a `401 insufficient_user_authentication` names.
#[derive(serde::Serialize)]
struct StepUpBody<'a> {
    acr_values: &'a [Cow<'static, str>],
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<u32>,
}

fn step_up_message(s: &StepUp) -> String {
    let mut message = format!("{}: authenticate again", s.description());
    if !s.acr_values.is_empty() {
        message.push_str(&format!(" with one of `{}`", s.acr_values.join("`, `")));
    }
    if let Some(max_age) = s.max_age {
        message.push_str(&format!(" (at most {max_age} s before the request)"));
    }
    message
}

/// Clerk's reverification refusal (`@clerk/shared`, `reverificationError`), whose metadata
/// is the requirement as Clerk's SDK takes it: the preset's name, or `{level, afterMinutes}`.
fn clerk_reverification_body(f: &Forbidden) -> serde_json::Value {
    let required = f.required.first().map_or("", |r| &**r);
    let metadata = match required.parse::<Reverification>() {
        Ok(Reverification::Custom { level, after_minutes }) => {
            serde_json::json!({ "level": level.as_str(), "afterMinutes": after_minutes })
        }
        _ => serde_json::Value::String(required.to_owned()),
    };
    serde_json::json!({
        "clerk_error": {
            "type": "forbidden",
            "reason": "reverification-error",
            "metadata": { "reverification": metadata },
        }
    })
}

/// What a `403` names, under field names of its requirement's kind.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Lacking<'a> {
    Scopes {
        missing_scopes: &'a [Cow<'static, str>],
        required_scopes: &'a [Cow<'static, str>],
    },
    Roles {
        missing_roles: &'a [Cow<'static, str>],
        required_roles: &'a [Cow<'static, str>],
    },
    Permissions {
        missing_permissions: &'a [Cow<'static, str>],
        required_permissions: &'a [Cow<'static, str>],
    },
    Conditions {
        missing_conditions: &'a [Cow<'static, str>],
        required_conditions: &'a [Cow<'static, str>],
    },
    Features {
        missing_features: &'a [Cow<'static, str>],
        required_features: &'a [Cow<'static, str>],
    },
    Plans {
        missing_plans: &'a [Cow<'static, str>],
        required_plans: &'a [Cow<'static, str>],
    },
    Other {
        missing: &'a [Cow<'static, str>],
        required: &'a [Cow<'static, str>],
    },
}

impl<'a> Lacking<'a> {
    fn of(f: &'a Forbidden) -> Lacking<'a> {
        let (missing, required) = (&f.missing[..], &f.required[..]);
        match f.kind {
            RequirementKind::Scope => Lacking::Scopes {
                missing_scopes: missing,
                required_scopes: required,
            },
            RequirementKind::Role => Lacking::Roles {
                missing_roles: missing,
                required_roles: required,
            },
            RequirementKind::Permission => Lacking::Permissions {
                missing_permissions: missing,
                required_permissions: required,
            },
            RequirementKind::Condition => Lacking::Conditions {
                missing_conditions: missing,
                required_conditions: required,
            },
            RequirementKind::Feature => Lacking::Features {
                missing_features: missing,
                required_features: required,
            },
            RequirementKind::Plan => Lacking::Plans {
                missing_plans: missing,
                required_plans: required,
            },
            // A reverification's body is Clerk's; step-up refusals are not `Forbidden`.
            RequirementKind::Reverification
            | RequirementKind::Acr
            | RequirementKind::MaxAge
            | RequirementKind::RateLimit => Lacking::Other { missing, required },
        }
    }
}

impl Rejection {
    /// The rejection for a failed custom condition (`#[require(predicate)]`): a `403`.
    pub fn condition_failed(name: &'static str) -> Rejection {
        Rejection::Forbidden(Forbidden {
            kind: RequirementKind::Condition,
            matching: Match::All,
            required: vec![Cow::Borrowed(name)],
            missing: vec![Cow::Borrowed(name)],
            reason: ForbiddenReason::ConditionFailed,
        })
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.into_response_with_realm(DEFAULT_REALM)
    }
}

/// Whether `realm` can go in a quoted string of `WWW-Authenticate` (RFC 6750 §3).
pub fn is_valid_realm(realm: &str) -> bool {
    realm
        .bytes()
        .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(r: Rejection) -> String {
        r.into_response()
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn missing_credentials_has_no_error_code() {
        assert_eq!(challenge(Rejection::MissingCredentials), "Bearer realm=\"api\"");
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let r = Rejection::Forbidden(Forbidden {
            kind: RequirementKind::Scope,
            matching: Match::All,
            required: vec!["write:users".into(), "read:users".into()],
            missing: vec!["write:users".into()],
            reason: ForbiddenReason::InsufficientScope,
        });
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            challenge(r),
            "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"insufficient-scope\", scope=\"write:users read:users\""
        );
    }

    fn body(r: Rejection) -> serde_json::Value {
        let response = r.into_response();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bytes = rt
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn bodies_name_what_is_lacking_under_their_kind() {
        for (kind, missing, required) in [
            (RequirementKind::Scope, "missing_scopes", "required_scopes"),
            (RequirementKind::Role, "missing_roles", "required_roles"),
            (
                RequirementKind::Permission,
                "missing_permissions",
                "required_permissions",
            ),
            (RequirementKind::Condition, "missing_conditions", "required_conditions"),
            (RequirementKind::Feature, "missing_features", "required_features"),
            (RequirementKind::Plan, "missing_plans", "required_plans"),
        ] {
            let b = body(Rejection::Forbidden(Forbidden {
                kind,
                matching: Match::Any,
                required: vec!["a".into(), "b".into()],
                missing: vec!["a".into(), "b".into()],
                reason: ForbiddenReason::lacking(kind),
            }));
            assert_eq!(b["error"], "Forbidden");
            assert_eq!(b["reason"], ForbiddenReason::lacking(kind).as_str());
            assert_eq!(b[missing], serde_json::json!(["a", "b"]), "{kind:?}");
            assert_eq!(b[required], serde_json::json!(["a", "b"]), "{kind:?}");
            assert_eq!(b.as_object().unwrap().len(), 5, "{b}");
        }
        let b = body(Rejection::TokenTypeNotAccepted {
            presented: TokenType::ApiKey,
            accepted: TokenTypes::EMPTY.with(TokenType::SessionToken),
        });
        assert_eq!(
            (b["error"].as_str(), b["reason"].as_str()),
            (Some("Unauthorized"), Some("token-type-mismatch"))
        );
        assert_eq!(b["accepted"], serde_json::json!(["session_token"]));
        let b = body(Rejection::Unavailable { retry_after: None });
        assert_eq!(b["error"], "Service Unavailable");
        assert_eq!(b.as_object().unwrap().len(), 3, "{b}");
        assert_eq!(body(Rejection::Misconfigured("x"))["error"], "Internal Server Error");
        assert_eq!(
            body(Rejection::InvalidRequest(InvalidRequest::HeaderTooLarge))["error"],
            "Bad Request"
        );
    }

    #[test]
    fn reverification_is_clerks_body_and_nothing_else() {
        let refusal = |required: &'static str| {
            Rejection::Forbidden(Forbidden {
                kind: RequirementKind::Reverification,
                matching: Match::All,
                required: vec![required.into()],
                missing: vec![required.into()],
                reason: ForbiddenReason::ReverificationRequired,
            })
        };
        let clerk = |metadata: serde_json::Value| serde_json::json!({"clerk_error":{"type":"forbidden","reason":"reverification-error","metadata":{"reverification":metadata}}});
        assert_eq!(body(refusal("strict_mfa")), clerk(serde_json::json!("strict_mfa")));
        assert_eq!(
            body(refusal("second_factor:30")),
            clerk(serde_json::json!({"level": "second_factor", "afterMinutes": 30}))
        );
        assert_eq!(refusal("lax").status(), StatusCode::FORBIDDEN);
        assert_eq!(
            challenge(refusal("lax")),
            "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"reverification-error\""
        );
    }

    #[test]
    fn step_up_is_an_rfc_9470_challenge() {
        let step_up = |acr: &[&'static str], max_age, stale| {
            Rejection::InsufficientUserAuthentication(StepUp {
                acr_values: acr.iter().map(|a| Cow::Borrowed(*a)).collect(),
                max_age,
                stale,
            })
        };
        assert_eq!(
            challenge(step_up(&["mfa", "phr"], Some(600), false)),
            "Bearer realm=\"api\", error=\"insufficient_user_authentication\", error_description=\"a different authentication level is required\", acr_values=\"mfa phr\", max_age=600"
        );
        assert_eq!(
            challenge(step_up(&[], Some(60), true)),
            "Bearer realm=\"api\", error=\"insufficient_user_authentication\", error_description=\"more recent authentication is required\", max_age=60"
        );
        let b = body(step_up(&["mfa"], None, false));
        assert_eq!(
            (b["error"].as_str(), b["reason"].as_str()),
            (Some("Unauthorized"), Some("insufficient-user-authentication"))
        );
        assert_eq!(b["acr_values"], serde_json::json!(["mfa"]));
        assert!(b.get("max_age").is_none(), "{b}");
        assert_eq!(step_up(&["mfa"], None, false).status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn resource_metadata_ends_every_401_and_403_challenge() {
        let url = "https://api.example/.well-known/oauth-protected-resource/mcp";
        let challenge = |r: Rejection| {
            r.into_response_with_metadata("api", Some(url))
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            challenge(Rejection::MissingCredentials).unwrap(),
            format!("Bearer realm=\"api\", resource_metadata=\"{url}\"")
        );
        let scope = Rejection::Forbidden(Forbidden {
            kind: RequirementKind::Scope,
            matching: Match::All,
            required: vec!["users:write".into()],
            missing: vec!["users:write".into()],
            reason: ForbiddenReason::InsufficientScope,
        });
        assert_eq!(
            challenge(scope).unwrap(),
            format!(
                "Bearer realm=\"api\", resource_metadata=\"{url}\", error=\"insufficient_scope\", error_description=\"insufficient-scope\", scope=\"users:write\""
            )
        );
        let audience = challenge(Rejection::InvalidToken(InvalidReason::WrongAudience)).unwrap();
        assert_eq!(
            audience,
            format!(
                "Bearer realm=\"api\", resource_metadata=\"{url}\", error=\"invalid_token\", error_description=\"wrong-audience\""
            )
        );
        // A malformed request is not a challenge to authenticate; a 503 has none at all.
        let bad = challenge(Rejection::InvalidRequest(InvalidRequest::HeaderTooLarge)).unwrap();
        assert!(!bad.contains("resource_metadata"), "{bad}");
        assert_eq!(challenge(Rejection::Unavailable { retry_after: None }), None);
    }

    #[test]
    fn unavailable_has_retry_after() {
        let r = Rejection::Unavailable {
            retry_after: Some(Duration::from_secs(30)),
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "30");
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn realm_validation() {
        assert!(is_valid_realm("my api"));
        assert!(!is_valid_realm("a\"b"));
        assert!(!is_valid_realm("a\r\nX-Injected: 1"));
    }
}
