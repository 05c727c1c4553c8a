//! What tokengate tells an operator: metrics through the [`metrics`](https://docs.rs/metrics)
//! facade (the `metrics` feature; the application installs the exporter) and `tracing` spans.
//!
//! Metrics follow Prometheus's conventions: counters end in `_total`, durations are
//! histograms in seconds. No label ever holds a token or a part of one; the values come from
//! closed sets (token types, reasons, cache and backend names) or from the code (the route is
//! the handler's path, `api_server::get_example`, or a group layer's name). A key's id is a
//! label of one metric only, [`KEY_DECISIONS`], and only when the application opts in with
//! `TokenGateBuilder::metrics_key_ids` (one series per key: mind the cardinality).
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `tokengate_decisions_total` | counter | `route`, `token_type`, `outcome`, `reason` | one per policy evaluated: `outcome` `allowed` (`reason` `ok`), `refused` (4xx) or `error` (5xx); `reason` is the body's stable reason; `token_type` `none` before a token was classified |
//! | `tokengate_key_decisions_total` | counter | `route`, `token_type`, `key_id` | opt-in: allowed requests per API key or `mt_` token id |
//! | `tokengate_cache_lookups_total` | counter | `cache`, `result` | `cache`: `verified_keys`, `refused_keys`, `verified_jwts`, `introspection`, `clerk`; `result`: `hit`, or `miss` when the request had to verify (a miss is counted once per request, not per look) |
//! | `tokengate_verification_duration_seconds` | histogram | `verifier`, `token_type` | verifications that were awaited (a signature check, a store or API call); answers from memory are not timed |
//! | `tokengate_backend_calls_total` | counter | `backend`, `outcome` | `backend`: `jwks`, `key_store`, `introspection`, `clerk`; `outcome`: `ok` (it answered, whatever it said), `error` (unreachable, timed out, an error status, an unreadable body) or `busy` (not made: over a call bound, `503`) |
//! | `tokengate_backend_call_duration_seconds` | histogram | `backend` | calls made, answered or not |
//! | `tokengate_backend_calls_in_flight` | gauge | `backend` | calls being made now |
//! | `tokengate_revocation_notices_total` | counter | `kind` | notices a key store's listener received: `revoked`, `resync` (after each (re)connection), `unreadable` |
//!
//! Spans (target `tokengate`, level `DEBUG`, like tower-http's request spans): one
//! `tokengate.authorize` per policy evaluated, with `code.function.name` (the route),
//! `tokengate.policy`, `tokengate.token_type`, `tokengate.decision`, `tokengate.reason`,
//! `http.response.status_code`, `error.type` and `otel.status_code` (OpenTelemetry's names
//! where one exists); and one per backend call, inside it: `tokengate.jwks.fetch`,
//! `tokengate.key_store.lookup`, `tokengate.introspection.call`, `tokengate.clerk.call`, with
//! `server.address` or `db.system.name`, `tokengate.outcome` and `error.type`. No field holds a
//! token, a secret or a URL's query.
//!
//! With the feature off every recording function is an empty inline function: nothing is
//! compiled into the request path. With it on, a request builds no label list (keys are made
//! once and kept, `telemetry/labels.rs`) and tokengate allocates nothing for its metrics
//! (`tests/telemetry_alloc.rs`; the Prometheus exporter's recorder allocates one `Arc` per
//! update of its own).
//!
//! ```
//! use metrics_exporter_prometheus::PrometheusBuilder;
//! use tokengate_runtime::{Policy, TokenGate, TokenType, TokenTypes, verifier::StaticVerifier};
//! use std::sync::Arc;
//!
//! let gate = TokenGate::builder()
//!     .verifier(TokenType::ApiKey, Arc::new(StaticVerifier::new()))
//!     .build()
//!     .unwrap();
//! let policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey));
//! let recorder = PrometheusBuilder::new().build_recorder();
//! let prometheus = recorder.handle();
//! metrics::with_local_recorder(&recorder, || {
//!     let request = http::Request::new(());
//!     let refused = block_on(gate.authorize(request.headers(), request.extensions(), &policy));
//!     assert!(refused.is_err());
//! });
//! if cfg!(feature = "metrics") {
//!     assert!(prometheus.render().contains(
//!         r#"tokengate_decisions_total{route="TokenGate::authorize",token_type="none",outcome="refused",reason="missing-credentials"} 1"#
//!     ));
//! }
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::future::Future;

use tracing::Span;
use tracing::field::Empty;

use crate::auth::Auth;
use crate::policy::Policy;
use crate::rejection::Rejection;
use crate::token::TokenType;

#[cfg(feature = "metrics")]
mod labels;
#[cfg(not(feature = "metrics"))]
#[path = "telemetry/off.rs"]
mod sink;
#[cfg(feature = "metrics")]
#[path = "telemetry/recorded.rs"]
mod sink;

pub(crate) use sink::Stopwatch;
#[cfg(feature = "metrics")]
pub use sink::describe_metrics;

/// `tokengate_decisions_total`.
pub const DECISIONS: &str = "tokengate_decisions_total";
/// `tokengate_key_decisions_total` (opt-in).
pub const KEY_DECISIONS: &str = "tokengate_key_decisions_total";
/// `tokengate_cache_lookups_total`.
pub const CACHE_LOOKUPS: &str = "tokengate_cache_lookups_total";
/// `tokengate_verification_duration_seconds`.
pub const VERIFICATION_DURATION: &str = "tokengate_verification_duration_seconds";
/// `tokengate_backend_calls_total`.
pub const BACKEND_CALLS: &str = "tokengate_backend_calls_total";
/// `tokengate_backend_call_duration_seconds`.
pub const BACKEND_CALL_DURATION: &str = "tokengate_backend_call_duration_seconds";
/// `tokengate_backend_calls_in_flight`.
pub const BACKEND_CALLS_IN_FLIGHT: &str = "tokengate_backend_calls_in_flight";
/// `tokengate_revocation_notices_total`.
pub const REVOCATION_NOTICES: &str = "tokengate_revocation_notices_total";

/// Bucket bounds for the `_seconds` histograms, from 50 µs (a signature check) to 10 s (a
/// backend's timeout), for an exporter that takes them
/// (`PrometheusBuilder::set_buckets(&SECONDS_BUCKETS)`).
pub const SECONDS_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The route label of a policy evaluated through [`TokenGate::authorize`](crate::TokenGate::authorize)
/// directly, outside a guard or a named layer.
pub const DIRECT_ROUTE: &str = "TokenGate::authorize";

/// What a policy decided, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Let through.
    Allowed,
    /// Refused with a 4xx.
    Refused,
    /// Refused with a 5xx: a backend that cannot answer, or a misconfiguration.
    Error,
}

impl Outcome {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }

    fn of(rejection: &Rejection) -> Outcome {
        if rejection.status().is_server_error() {
            Outcome::Error
        } else {
            Outcome::Refused
        }
    }
}

/// The caches whose hits and misses are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cache {
    /// The key verifier's verified keys.
    VerifiedKeys,
    /// The key verifier's remembered refusals.
    RefusedKeys,
    /// The JWT verifier's verified tokens.
    VerifiedJwts,
    /// Introspection results.
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))]
    Introspection,
    /// Clerk's verdicts.
    #[cfg_attr(not(feature = "clerk"), allow(dead_code))]
    Clerk,
}

impl Cache {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Cache::VerifiedKeys => "verified_keys",
            Cache::RefusedKeys => "refused_keys",
            Cache::VerifiedJwts => "verified_jwts",
            Cache::Introspection => "introspection",
            Cache::Clerk => "clerk",
        }
    }
}

/// The backends whose calls are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// A remote JWKS.
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    Jwks,
    /// A key store's lookup of an unknown secret.
    KeyStore,
    /// An RFC 7662 introspection endpoint.
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))]
    Introspection,
    /// Clerk's Backend API.
    #[cfg_attr(not(feature = "clerk"), allow(dead_code))]
    Clerk,
}

impl Backend {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Backend::Jwks => "jwks",
            Backend::KeyStore => "key_store",
            Backend::Introspection => "introspection",
            Backend::Clerk => "clerk",
        }
    }
}

/// How a backend call went, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    /// The backend answered.
    Ok,
    /// It did not (unreachable, timed out, an error status, an unreadable body).
    Error,
    /// Not made: over a bound on calls.
    Busy,
}

impl CallOutcome {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Error => "error",
            CallOutcome::Busy => "busy",
        }
    }
}

/// A revocation notice, as the `kind` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) enum Notice {
    /// A key was revoked.
    Revoked,
    /// The listener (re)connected: every verifier forgets its keys.
    Resync,
    /// A payload that is not a key's hash.
    Unreadable,
}

impl Notice {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Notice::Revoked => "revoked",
            Notice::Resync => "resync",
            Notice::Unreadable => "unreadable",
        }
    }
}

/// A cache answered (`hit`) or the request went on to verify (`miss`).
#[inline]
pub(crate) fn cache_lookup(cache: Cache, hit: bool) {
    sink::cache_lookup(cache, hit);
}

/// A backend call that was not made: over a bound.
#[inline]
pub(crate) fn call_refused(backend: Backend) {
    sink::backend_call(backend, CallOutcome::Busy, None);
}

/// A revocation notice a store's listener received.
#[inline]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn revocation_notice(notice: Notice) {
    sink::revocation_notice(notice);
}

/// An awaited verification: how long `verifier` took.
#[inline]
pub(crate) fn verified(verifier: &'static str, token_type: TokenType, watch: Stopwatch) {
    sink::verification(verifier, token_type, watch);
}

/// One call to a backend: in flight while `call` runs, inside `span`, counted `ok` or
/// `error` by its result, and timed.
pub(crate) async fn backend_call<T, E>(
    backend: Backend,
    span: Span,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    use tracing::Instrument;
    let _in_flight = sink::InFlight::start(backend);
    let watch = Stopwatch::start();
    let result = call.instrument(span.clone()).await;
    let outcome = if result.is_ok() {
        CallOutcome::Ok
    } else {
        CallOutcome::Error
    };
    span.record("tokengate.outcome", outcome.as_str());
    sink::backend_call(backend, outcome, Some(watch));
    result
}

/// The span of a call to a backend on `host` (`server.address`).
#[cfg_attr(
    not(any(feature = "jwks", feature = "introspection", feature = "clerk")),
    allow(dead_code)
)]
pub(crate) fn http_call_span(backend: Backend, host: Option<&str>) -> Span {
    let host = host.unwrap_or("");
    match backend {
        Backend::Jwks => {
            tracing::debug_span!(target: "tokengate", "tokengate.jwks.fetch", server.address = host, tokengate.outcome = Empty)
        }
        Backend::Introspection => {
            tracing::debug_span!(target: "tokengate", "tokengate.introspection.call", server.address = host, tokengate.outcome = Empty)
        }
        Backend::Clerk => {
            tracing::debug_span!(target: "tokengate", "tokengate.clerk.call", server.address = host, tokengate.outcome = Empty)
        }
        Backend::KeyStore => store_span(""),
    }
}

/// The host of `url` (`https://user:pw@host:443/p` → `host`), without user info or port: a
/// span's `server.address`.
#[cfg_attr(not(feature = "clerk"), allow(dead_code))]
pub(crate) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    }
}

/// The span of a key store's lookup; `store` is the store's name (`sqlite`, `postgres`, …).
pub(crate) fn store_span(store: &'static str) -> Span {
    tracing::debug_span!(target: "tokengate", "tokengate.key_store.lookup", db.system.name = store, db.operation.name = "find_by_hash", tokengate.outcome = Empty)
}

/// One policy evaluation, from its start to its decision: the `tokengate.authorize` span
/// and, at the end, the decision's metrics.
#[derive(Debug)]
pub(crate) struct Authorizing {
    route: &'static str,
    span: Span,
}

impl Authorizing {
    /// Starts evaluating `policy` for `route` (a handler's path or a layer's name).
    #[inline]
    pub(crate) fn start(route: &'static str, policy: &Policy) -> Authorizing {
        let span = tracing::debug_span!(
            target: "tokengate",
            "tokengate.authorize",
            code.function.name = route,
            tokengate.policy = %policy,
            tokengate.token_type = Empty,
            tokengate.decision = Empty,
            tokengate.reason = Empty,
            http.response.status_code = Empty,
            error.type = Empty,
            otel.status_code = Empty,
        );
        Authorizing { route, span }
    }

    /// The `tokengate.authorize` span, for what runs inside it.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// The decision: `auth` let through, or refused. `key_ids` adds the opt-in count per key.
    #[inline]
    pub(crate) fn finish(&self, token_type: Option<TokenType>, result: Result<&Auth, &Rejection>, key_ids: bool) {
        let (outcome, reason) = match result {
            Ok(_) => (Outcome::Allowed, "ok"),
            Err(rejection) => (Outcome::of(rejection), rejection.reason()),
        };
        sink::decision(self.route, token_type, outcome, reason);
        if key_ids
            && let Ok(auth) = result
            && matches!(auth.token_type, TokenType::ApiKey | TokenType::M2mToken)
            && let Some(id) = &auth.id
        {
            sink::key_decision(self.route, auth.token_type, id);
        }
        if !self.span.is_disabled() {
            self.record(token_type, outcome, reason, result.err());
        }
    }

    /// Records an optional route's anonymous caller: allowed, token type `none`, reason
    /// `anonymous`.
    pub(crate) fn finish_anonymous(&self) {
        sink::decision(self.route, None, Outcome::Allowed, "anonymous");
        if !self.span.is_disabled() {
            self.record(None, Outcome::Allowed, "anonymous", None);
        }
    }

    #[cold]
    fn record(
        &self,
        token_type: Option<TokenType>,
        outcome: Outcome,
        reason: &'static str,
        rejection: Option<&Rejection>,
    ) {
        let span = &self.span;
        span.record("tokengate.token_type", token_type.map_or("none", TokenType::as_str));
        span.record("tokengate.decision", outcome.as_str());
        span.record("tokengate.reason", reason);
        if let Some(rejection) = rejection {
            span.record("http.response.status_code", rejection.status().as_u16());
            if outcome == Outcome::Error {
                span.record("error.type", reason);
                span.record("otel.status_code", "ERROR");
            }
        }
    }
}
