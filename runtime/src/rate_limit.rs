//! Rate limits per key or per subject, declared on a route (`#[rate_limit("100/min")]`) and
//! enforced by its guard after the token passed every other check, so a refused request
//! spends no quota.
//!
//! The algorithm is GCRA (a token bucket without a timer: `100/min` allows a burst of 100,
//! then one more every 0.6 s). Counts live in this process ([`RateLimits::in_process`], the
//! default: the `governor` crate, one bucket per key in a bounded cache) or in Redis, shared
//! by every instance ([`RateLimits::redis`], the `redis` feature: one atomic script, one
//! round-trip per check).
//!
//! Over the limit the answer is `429` with `Retry-After`, and every answer of a limited route
//! carries the IETF headers (draft-ietf-httpapi-ratelimit-headers):
//! `RateLimit-Policy: "10/min";q=10;w=60` and `RateLimit: "10/min";r=7;t=18`. The headers of
//! an admitted request are added by the layer [`tokengate::routing::Router`](crate::routing)
//! puts around routers that have a limited route ([`headers_layer`] for a plain axum router).

mod headers;
mod local;
#[cfg(feature = "redis")]
mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use tokengate_core::rate::{Per, Rate};

use self::headers::Slot;
pub(crate) use self::headers::render_headers;
pub use self::headers::{RateLimitHeadersLayer, headers_layer};

use crate::auth::AuthInfo;
use crate::policy::Policy;
use crate::rejection::Rejection;

/// How many keys (or subjects) the in-process counts remember at once, per route. Past it,
/// the least recently used are forgotten (a forgotten key starts again with a full quota);
/// only callers whose token passed every check reach a limit, so this bounds what keys that
/// exist can cost, not what garbage can.
pub const DEFAULT_TRACKED_KEYS: usize = 100_000;

/// What a limit check found, for the answer's headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateStatus {
    /// The limit.
    pub rate: Rate,
    /// Whether the request is admitted.
    pub allowed: bool,
    /// How many more requests would be admitted now.
    pub remaining: u32,
    /// How long until the full quota is back.
    pub reset: Duration,
    /// When refused, how long until one request would be admitted.
    pub retry_after: Duration,
}

/// What a limited route does when Redis cannot answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnRedisError {
    /// Answer `503` with `Retry-After` (the default: tokengate fails closed, and a limit that
    /// silently stops counting is a limit an attacker can wait for).
    #[default]
    Refuse,
    /// Admit the request and log a warning (for limits that protect capacity, not money).
    Allow,
}

/// Where the counts of a [`TokenGate`](crate::TokenGate)'s rate limits live. Cheap to clone.
#[derive(Clone)]
pub struct RateLimits(Arc<Backend>);

enum Backend {
    Local(local::Local),
    #[cfg(feature = "redis")]
    Redis(redis::RedisLimits),
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &*self.0 {
            Backend::Local(_) => "in-process",
            #[cfg(feature = "redis")]
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("RateLimits").field("backend", &backend).finish()
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::in_process()
    }
}

impl RateLimits {
    /// Counts in this process, remembering up to [`DEFAULT_TRACKED_KEYS`] keys per route.
    pub fn in_process() -> RateLimits {
        RateLimits::in_process_tracking(DEFAULT_TRACKED_KEYS)
    }

    /// Counts in this process, remembering up to `keys` keys (at least 1) per route.
    pub fn in_process_tracking(keys: usize) -> RateLimits {
        RateLimits(Arc::new(Backend::Local(local::Local::new(keys.max(1)))))
    }

    /// Counts in Redis at `url` (`redis://host:6379/0`, `rediss://…` for TLS), shared by every
    /// instance using it. Connects now (an unreachable server is an error here), reconnects
    /// by itself later; while Redis cannot answer, limited routes do what `on_error` says.
    #[cfg(feature = "redis")]
    pub async fn redis(url: &str, on_error: OnRedisError) -> Result<RateLimits, String> {
        let limits = redis::RedisLimits::connect(url, on_error).await?;
        Ok(RateLimits(Arc::new(Backend::Redis(limits))))
    }

    /// Counts one request of `key` against `rate`.
    pub async fn check(&self, key: &str, rate: Rate) -> Result<RateStatus, Rejection> {
        match &*self.0 {
            Backend::Local(local) => Ok(local.check(key, rate)),
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.check(key, rate).await,
        }
    }
}

/// The key a limit counts for: the route, the rate, and the token's id or its subject.
/// `None` for a token that has neither (nothing to count it by: refused as misconfigured).
fn counter_key(route: &str, rate: Rate, per: Per, auth: &AuthInfo) -> Option<String> {
    let who = match per {
        Per::Key => auth
            .id
            .as_deref()
            .map(|id| format!("k:{id}"))
            .or_else(|| auth.subject.as_deref().map(|s| format!("s:{s}")))?,
        Per::Subject => format!("s:{}", auth.subject.as_deref()?),
    };
    Some(format!("{route}|{rate}|{who}"))
}

/// Whether a request of `auth` on a route of `policy` is counted: the route has a limit, or
/// the key has one of its own.
pub(crate) fn applies(policy: &Policy, auth: &AuthInfo) -> bool {
    auth.rate_limit.is_some() || policy.has_rate_limits()
}

/// Enforces `policy`'s rate limits, and the key's own, for `auth` on `route`: the status of
/// the tightest one (for the headers), or the refusal of the first one over its limit.
pub(crate) async fn enforce(
    limits: &RateLimits,
    route: &str,
    policy: &Policy,
    auth: &AuthInfo,
) -> Result<Option<RateStatus>, Rejection> {
    let mut tightest: Option<RateStatus> = None;
    // The key's own limit counts on every route: one counter for the key, whatever the route.
    let own = auth.rate_limit.map(|rate| (rate, Per::Key, "key"));
    let routes = policy
        .rate_limits(auth.token_type)
        .map(|(rate, per)| (rate, per, route));
    for (rate, per, counted_on) in own.into_iter().chain(routes) {
        let Some(key) = counter_key(counted_on, rate, per, auth) else {
            return Err(Rejection::Misconfigured(
                "a rate limit counts per key or subject, and this token has neither",
            ));
        };
        let status = limits.check(&key, rate).await?;
        if !status.allowed {
            return Err(Rejection::RateLimited(status));
        }
        if tightest.is_none_or(|t| status.remaining < t.remaining) {
            tightest = Some(status);
        }
    }
    Ok(tightest)
}

/// Leaves the status of a request's check where the [`headers_layer`] finds it, if it is there.
pub(crate) fn leave_status(parts: &mut http::request::Parts, status: Option<RateStatus>) {
    if let (Some(status), Some(slot)) = (status, parts.extensions.get::<Slot>()) {
        slot.set(status);
    }
}
