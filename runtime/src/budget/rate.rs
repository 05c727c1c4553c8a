//! The call budget of a remote verifier (RFC 7662 introspection, Clerk's Backend API): calls in
//! flight, calls per second in all, and each client's share of those.
//!
//! The per-second bounds are token buckets (GCRA, the `governor` crate): `per_second` calls
//! a second on average, up to `burst` at once after a quiet spell. A client's share is a
//! bucket of its own, checked before the common one, so calls a client is refused never
//! spend the others' budget: one client's flood costs the backend at most its share, and
//! every other client keeps the rest. Many clients flooding together still share the total:
//! the bound on the backend holds, a never-seen token may then wait for its `Retry-After`.
//!
//! ```
//! use std::time::Duration;
//! use tokengate_runtime::budget::{CallBudget, Rate};
//!
//! let budget = CallBudget::new(16, Rate::new(50, 100))
//!     .with_per_client(Rate::new(5, 10))
//!     .with_busy_retry_after(Duration::from_secs(2));
//! assert_eq!(budget.max_in_flight(), 16);
//! assert_eq!(budget.per_client(), Some(Rate::new(5, 10)));
//! ```

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, NotUntil, Quota, RateLimiter};

use super::{CallPermit, InFlight, RefusalLog};
use crate::net::ClientKey;
use crate::telemetry::Backend;
use crate::verifier::VerifyError;

/// How many clients' shares are remembered at once. Past it, the least used are forgotten
/// (a forgotten client starts again with a full share); the total bounds still hold.
pub const CLIENTS_TRACKED: u64 = 10_000;

/// A sustained rate, `per_second` calls a second, with up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Calls a second, on average.
    pub per_second: u32,
    /// Calls that may start at once after a quiet spell.
    pub burst: u32,
}

impl Rate {
    /// `per_second` calls a second, `burst` at once.
    pub const fn new(per_second: u32, burst: u32) -> Rate {
        Rate { per_second, burst }
    }

    fn quota(self) -> Option<Quota> {
        let per_second = NonZeroU32::new(self.per_second)?;
        Some(Quota::per_second(per_second).allow_burst(NonZeroU32::new(self.burst)?))
    }
}

/// Bounds on the calls a remote verifier makes for tokens it does not remember (cached
/// tokens never count): in flight, per second, and per client. Over a bound, a request is
/// answered `503` with `Retry-After` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallBudget {
    max_in_flight: usize,
    rate: Rate,
    per_client: Option<Rate>,
    busy_retry_after: Duration,
}

impl CallBudget {
    /// At most `max_in_flight` calls at once and `rate` calls a second, with no per-client
    /// share; `Retry-After: 1` when every call is in flight.
    pub const fn new(max_in_flight: usize, rate: Rate) -> CallBudget {
        CallBudget {
            max_in_flight,
            rate,
            per_client: None,
            busy_retry_after: Duration::from_secs(1),
        }
    }

    /// Each client ([`ClientKey`]) may spend at most `share` of the rate. Requests whose
    /// client the gate cannot tell are held to the total only.
    #[must_use]
    pub const fn with_per_client(mut self, share: Rate) -> CallBudget {
        self.per_client = Some(share);
        self
    }

    /// No per-client share: every client draws on the total alone.
    #[must_use]
    pub const fn without_per_client(mut self) -> CallBudget {
        self.per_client = None;
        self
    }

    /// The most calls at once.
    #[must_use]
    pub const fn with_max_in_flight(mut self, max: usize) -> CallBudget {
        self.max_in_flight = max;
        self
    }

    /// The total rate.
    #[must_use]
    pub const fn with_rate(mut self, rate: Rate) -> CallBudget {
        self.rate = rate;
        self
    }

    /// The `Retry-After` sent when every call is in flight (at least 1 s; a refusal by rate
    /// says when the next call may start).
    #[must_use]
    pub const fn with_busy_retry_after(mut self, retry_after: Duration) -> CallBudget {
        self.busy_retry_after = retry_after;
        self
    }

    /// The most calls at once.
    pub const fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// The total rate.
    pub const fn rate(&self) -> Rate {
        self.rate
    }

    /// Each client's share of the rate, if any.
    pub const fn per_client(&self) -> Option<Rate> {
        self.per_client
    }

    /// The `Retry-After` when every call is in flight.
    pub const fn busy_retry_after(&self) -> Duration {
        self.busy_retry_after
    }

    /// What is wrong with the budget, and how to fix it.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.max_in_flight == 0 {
            return Err("the call budget allows no call in flight; set max_in_flight to at least 1 (e.g. 32)".into());
        }
        if self.rate.quota().is_none() {
            return Err(format!(
                "the call budget's rate must allow at least 1 call a second and a burst of at least 1 (got {}/s, burst {})",
                self.rate.per_second, self.rate.burst
            ));
        }
        if let Some(share) = self.per_client {
            if share.quota().is_none() {
                return Err(format!(
                    "the per-client share must allow at least 1 call a second and a burst of at least 1 (got {}/s, burst {}); \
                     to turn per-client shares off use without_per_client()",
                    share.per_second, share.burst
                ));
            }
            if share.per_second > self.rate.per_second || share.burst > self.rate.burst {
                return Err(format!(
                    "the per-client share ({}/s, burst {}) is larger than the total ({}/s, burst {}); make it a fraction of the total",
                    share.per_second, share.burst, self.rate.per_second, self.rate.burst
                ));
            }
        }
        Ok(())
    }
}

/// Each client's bucket.
struct ClientRates {
    share: Rate,
    quota: Quota,
    buckets: moka::sync::Cache<ClientKey, Arc<DefaultDirectRateLimiter>>,
}

/// A [`CallBudget`] at work: the places in flight and the buckets.
pub(crate) struct Calls {
    in_flight: InFlight,
    rate: Rate,
    all: DefaultDirectRateLimiter,
    clients: Option<ClientRates>,
    clock: DefaultClock,
    busy_retry_after: Duration,
    log: RefusalLog,
    /// What a call is, for the log lines (`"introspection calls"`).
    what: &'static str,
}

impl Calls {
    /// The bounds of `budget`, which [`CallBudget::check`] accepted (a rate it would refuse
    /// is taken as 1 a second).
    pub(crate) fn new(budget: &CallBudget, backend: &'static str, metric: Backend, what: &'static str) -> Calls {
        let minimal = || Quota::per_second(NonZeroU32::MIN);
        let clients = budget.per_client.map(|share| {
            let quota = share.quota().unwrap_or_else(minimal);
            // A bucket left alone this long is full again: forgetting it loses nothing.
            let idle = quota.burst_size_replenished_in() + Duration::from_secs(1);
            ClientRates {
                share,
                quota,
                buckets: moka::sync::Cache::builder()
                    .max_capacity(CLIENTS_TRACKED)
                    .time_to_idle(idle)
                    .build(),
            }
        });
        Calls {
            in_flight: InFlight::new(budget.max_in_flight, None),
            rate: budget.rate,
            all: RateLimiter::direct(budget.rate.quota().unwrap_or_else(minimal)),
            clients,
            clock: DefaultClock::default(),
            busy_retry_after: budget.busy_retry_after,
            log: RefusalLog::new(backend, metric),
            what,
        }
    }

    /// A place for one call of `client`, or the `503` that refuses it.
    pub(crate) fn try_start(&self, client: Option<ClientKey>) -> Result<CallPermit<'_>, VerifyError> {
        let permit = self
            .in_flight
            .try_start(client)
            .map_err(|over| self.log.refuse(over.describe(self.what), self.busy_retry_after))?;
        if let (Some(client), Some(rates)) = (client, &self.clients) {
            let bucket = rates
                .buckets
                .get_with(client, || Arc::new(RateLimiter::direct(rates.quota)));
            if let Err(not_until) = bucket.check() {
                let bound = format!(
                    "this client's share of {} ({}/s, burst {}) is spent",
                    self.what, rates.share.per_second, rates.share.burst
                );
                return Err(self.log.refuse(bound, self.wait(&not_until)));
            }
        }
        if let Err(not_until) = self.all.check() {
            let bound = format!(
                "{}/s {} (burst {}) are spent",
                self.rate.per_second, self.what, self.rate.burst
            );
            return Err(self.log.refuse(bound, self.wait(&not_until)));
        }
        Ok(permit)
    }

    /// How many more calls may be in flight now.
    pub(crate) fn available(&self) -> usize {
        self.in_flight.available()
    }

    /// How long until a refused bucket lets a call through, in whole seconds (rounded up).
    fn wait(&self, not_until: &NotUntil<<DefaultClock as governor::clock::Clock>::Instant>) -> Duration {
        let wait = not_until.wait_time_from(self.clock.now());
        Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn client(n: u8) -> Option<ClientKey> {
        Some(ClientKey::from_ip(std::net::IpAddr::from([192, 0, 2, n])))
    }

    fn retry_after(result: Result<CallPermit<'_>, VerifyError>) -> Option<Duration> {
        match result {
            Err(VerifyError::Busy { retry_after, .. }) => Some(retry_after),
            _ => None,
        }
    }

    #[test]
    fn a_clients_share_spares_the_others() {
        let budget = CallBudget::new(100, Rate::new(1, 6)).with_per_client(Rate::new(1, 2));
        assert_eq!(budget.check(), Ok(()));
        let calls = Calls::new(&budget, "test", Backend::Clerk, "test calls");
        assert!(calls.try_start(client(1)).is_ok());
        assert!(calls.try_start(client(1)).is_ok());
        // The third call of client 1 is refused by its share, before the total is touched…
        for _ in 0..10 {
            assert_eq!(retry_after(calls.try_start(client(1))), Some(Duration::from_secs(1)));
        }
        // …so the others still have theirs, and the total bounds them all.
        assert!(calls.try_start(client(2)).is_ok());
        assert!(calls.try_start(client(2)).is_ok());
        assert!(calls.try_start(None).is_ok());
        assert!(calls.try_start(client(3)).is_ok());
        assert!(
            retry_after(calls.try_start(client(3))).is_some(),
            "the total burst of 6 is spent"
        );
        assert!(retry_after(calls.try_start(None)).is_some());
    }

    #[test]
    fn mistakes_in_a_budget_are_explained() {
        let err = |b: CallBudget| b.check().unwrap_err();
        assert!(err(CallBudget::new(0, Rate::new(1, 1))).contains("max_in_flight"));
        assert!(err(CallBudget::new(1, Rate::new(0, 1))).contains("at least 1 call a second"));
        assert!(
            err(CallBudget::new(1, Rate::new(5, 5)).with_per_client(Rate::new(0, 1))).contains("without_per_client")
        );
        assert!(
            err(CallBudget::new(1, Rate::new(5, 5)).with_per_client(Rate::new(6, 1))).contains("larger than the total")
        );
        assert_eq!(
            CallBudget::new(1, Rate::new(5, 5))
                .with_per_client(Rate::new(5, 5))
                .check(),
            Ok(())
        );
    }
}
