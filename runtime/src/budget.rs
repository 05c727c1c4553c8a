//! Bounds on what a flood of tokens nobody knows can cost a backend: how many calls are in
//! flight at once (here), and for the remote verifiers how many may start each
//! second (`CallBudget`, in `budget/rate.rs`), both in total and per client
//! ([`ClientKey`]).
//!
//! Only calls for tokens the verifier does not remember are counted: a cached key or token
//! never waits for a bound, and concurrent requests for one token share one call (and one
//! place in the bound). A call over a bound is not queued: the request is answered `503`
//! with `Retry-After` ([`VerifyError::Busy`]) at once — never a `200`, never a `401`. Each
//! refusal is logged at debug level; a warning says how many were refused, at most once
//! every [`WARN_INTERVAL`] per bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::net::ClientKey;
use crate::telemetry::{self, Backend};
use crate::verifier::VerifyError;

#[cfg(any(feature = "introspection", feature = "clerk"))]
mod rate;
#[cfg(any(feature = "introspection", feature = "clerk"))]
pub(crate) use rate::Calls;
#[cfg(any(feature = "introspection", feature = "clerk"))]
pub use rate::{CLIENTS_TRACKED, CallBudget, Rate};

/// The longest a bound stays silent while it refuses calls.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// A bound on the calls in flight: `max` in all, and `per_client` for any one client.
pub(crate) struct InFlight {
    permits: Semaphore,
    max: usize,
    per_client: Option<usize>,
    /// Calls in flight per client; a client leaves the map with its last call, so it never
    /// holds more than `max` entries.
    clients: Mutex<HashMap<ClientKey, usize>>,
}

/// One call in flight, given back when dropped.
pub(crate) struct CallPermit<'a> {
    _permit: SemaphorePermit<'a>,
    client: Option<(&'a InFlight, ClientKey)>,
}

impl Drop for CallPermit<'_> {
    fn drop(&mut self) {
        if let Some((bound, client)) = self.client {
            let mut clients = bound.lock();
            if let Some(count) = clients.get_mut(&client) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    clients.remove(&client);
                }
            }
        }
    }
}

/// Which bound refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Over {
    /// Every call in flight.
    InFlight(usize),
    /// One client's calls in flight.
    ClientInFlight(usize),
}

impl InFlight {
    /// At most `max` calls at once (`max` ≥ 1), and at most `per_client` of them for one client.
    pub(crate) fn new(max: usize, per_client: Option<usize>) -> InFlight {
        InFlight {
            permits: Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS)),
            max,
            per_client,
            clients: Mutex::default(),
        }
    }

    /// A place for one call of `client` (`None`: a client the gate cannot tell apart, held to
    /// the total only), or which bound is full.
    pub(crate) fn try_start(&self, client: Option<ClientKey>) -> Result<CallPermit<'_>, Over> {
        let permit = self.permits.try_acquire().map_err(|_| Over::InFlight(self.max))?;
        let (Some(client), Some(share)) = (client, self.per_client) else {
            return Ok(CallPermit {
                _permit: permit,
                client: None,
            });
        };
        let mut clients = self.lock();
        let count = clients.entry(client).or_insert(0);
        if *count >= share {
            return Err(Over::ClientInFlight(share));
        }
        *count += 1;
        Ok(CallPermit {
            _permit: permit,
            client: Some((self, client)),
        })
    }

    /// How many more calls may start now.
    pub(crate) fn available(&self) -> usize {
        self.permits.available_permits()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ClientKey, usize>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The refusals of one bound, logged at debug level each and as a warning with their count
/// at most once every [`WARN_INTERVAL`].
pub(crate) struct RefusalLog {
    /// Which backend's calls the bound counts, for the log lines.
    backend: &'static str,
    /// The same backend, as the metrics name it.
    metric: Backend,
    started: Instant,
    /// Milliseconds after `started` of the last warning, plus one (zero: never warned).
    warned_at: AtomicU64,
    refused: AtomicU64,
}

impl RefusalLog {
    pub(crate) fn new(backend: &'static str, metric: Backend) -> RefusalLog {
        RefusalLog {
            backend,
            metric,
            started: Instant::now(),
            warned_at: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Counts a refusal by `bound` and turns it into the `503` for the caller.
    pub(crate) fn refuse(&self, bound: String, retry_after: Duration) -> VerifyError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        telemetry::call_refused(self.metric);
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.warned_at.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_INTERVAL.as_millis() as u64;
        if due
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let total = self.refused.swap(0, Ordering::Relaxed).max(1);
            tracing::warn!(
                target: "tokengate",
                backend = self.backend,
                refused = total,
                %bound,
                "calls for unknown tokens over a bound were refused with 503 (a flood, or a bound set too low)"
            );
        }
        VerifyError::Busy {
            retry_after: retry_after.max(Duration::from_secs(1)),
            detail: format!("{} call refused: {bound}", self.backend),
        }
    }
}

impl Over {
    /// What the bound is, for the logs.
    pub(crate) fn describe(self, what: &str) -> String {
        match self {
            Over::InFlight(max) => format!("{max} {what} already in flight"),
            Over::ClientInFlight(max) => format!("{max} {what} of this client already in flight"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u8) -> Option<ClientKey> {
        Some(ClientKey::from_ip(std::net::IpAddr::from([192, 0, 2, n])))
    }

    #[test]
    fn in_flight_bounds_the_total_and_each_client() {
        let bound = InFlight::new(3, Some(2));
        let a1 = bound.try_start(client(1));
        let a2 = bound.try_start(client(1));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(bound.try_start(client(1)).err(), Some(Over::ClientInFlight(2)));
        let b = bound.try_start(client(2));
        assert!(b.is_ok());
        assert_eq!(bound.try_start(None).err(), Some(Over::InFlight(3)));
        drop(a1);
        assert!(bound.try_start(client(1)).is_ok(), "a finished call is given back");
        drop((a2, b));
        assert_eq!(bound.available(), 3);
        assert!(bound.lock().is_empty(), "clients leave with their last call");
    }

    #[test]
    fn refusals_are_503s_with_retry_after() {
        let log = RefusalLog::new("test backend", Backend::KeyStore);
        for _ in 0..3 {
            match log.refuse("2 calls already in flight".into(), Duration::ZERO) {
                VerifyError::Busy { retry_after, detail } => {
                    assert_eq!(retry_after, Duration::from_secs(1));
                    assert!(detail.contains("2 calls already in flight"), "{detail}");
                }
                other => unreachable!("{other:?}"),
            }
        }
    }
}
