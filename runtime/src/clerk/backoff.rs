//! Backing off from the Backend API after it said "not now" or "wrong key", without a call.
//!
//! After a `429` (or a `5xx` with `Retry-After`), calls for that endpoint are refused with
//! `503` until `Retry-After` has passed (1 s when Clerk sends none to a `429`), instead of
//! adding to the load that caused it. After a `401`/`403` (a wrong secret key), calls are
//! refused as a configuration error for the negative TTL, so a misconfigured server does not
//! spend the instance's quota on every request. Reads are one atomic load.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::verifier::VerifyError;

const UNAVAILABLE: u8 = 0;
const MISCONFIGURED: u8 = 1;

/// The pause after a `429` that carries no `Retry-After`.
const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(1);

/// One endpoint's pause.
#[derive(Debug)]
pub(crate) struct Backoff {
    base: Instant,
    /// Milliseconds after `base` until which calls are refused; 0 when none.
    until_ms: AtomicU64,
    kind: AtomicU8,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            base: Instant::now(),
            until_ms: AtomicU64::new(0),
            kind: AtomicU8::new(UNAVAILABLE),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `Err` while paused: the error to answer instead of calling.
    pub(crate) fn check(&self) -> Result<(), VerifyError> {
        let until = self.until_ms.load(Ordering::Acquire);
        let now = self.now_ms();
        if until <= now {
            return Ok(());
        }
        let left = Duration::from_millis(until - now);
        if self.kind.load(Ordering::Relaxed) == MISCONFIGURED {
            return Err(VerifyError::Misconfigured(
                "Clerk's Backend API refused the secret key moments ago; not calling it again until the pause \
                 ends (fix the key; see the earlier error)"
                    .into(),
            ));
        }
        Err(VerifyError::Unavailable {
            retry_after: Some(left.max(Duration::from_secs(1))),
            detail: "pausing Clerk Backend API calls after a rate limit or outage answer".into(),
        })
    }

    /// Starts a pause if `status` asks for one.
    pub(crate) fn record(&self, status: u16, retry_after: Option<Duration>, misconfigured_pause: Duration) {
        let (kind, pause) = match status {
            401 | 403 => (MISCONFIGURED, misconfigured_pause),
            429 => (UNAVAILABLE, retry_after.unwrap_or(DEFAULT_RATE_LIMIT_PAUSE)),
            500..=599 => match retry_after {
                Some(pause) => (UNAVAILABLE, pause),
                None => return,
            },
            _ => return,
        };
        if pause.is_zero() {
            return;
        }
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX));
        self.kind.store(kind, Ordering::Relaxed);
        self.until_ms.fetch_max(until, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    #[test]
    fn pauses() {
        let b = Backoff::new();
        assert!(b.check().is_ok());
        b.record(404, None, Duration::from_secs(5));
        b.record(500, None, Duration::from_secs(5));
        assert!(b.check().is_ok());
        b.record(429, Some(Duration::from_secs(7)), Duration::from_secs(5));
        match b.check() {
            Err(VerifyError::Unavailable { retry_after, .. }) => {
                assert!(retry_after.is_some_and(|r| r > Duration::from_secs(6) && r <= Duration::from_secs(7)));
            }
            other => panic!("{other:?}"),
        }
        let b = Backoff::new();
        b.record(401, None, Duration::from_secs(5));
        assert!(matches!(b.check(), Err(VerifyError::Misconfigured(_))));
        let b = Backoff::new();
        b.record(401, None, Duration::ZERO);
        assert!(b.check().is_ok());
    }
}
