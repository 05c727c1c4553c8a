//! Counts in this process: one GCRA bucket (`governor`) per counter key, in a bounded cache
//! (`quick_cache`) that forgets the least recently used keys past its capacity.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use quick_cache::sync::Cache;

use super::{Rate, RateStatus};

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

pub(super) struct Local {
    buckets: Cache<String, Arc<Bucket>>,
    clock: DefaultClock,
}

impl Local {
    pub(super) fn new(keys: usize) -> Local {
        Local {
            buckets: Cache::new(keys),
            clock: DefaultClock::default(),
        }
    }

    pub(super) fn check(&self, key: &str, rate: Rate) -> RateStatus {
        let quota = quota(rate);
        let bucket = self
            .buckets
            .get_or_insert_with(key, || {
                Ok::<_, std::convert::Infallible>(Arc::new(RateLimiter::direct(quota).with_middleware()))
            })
            .unwrap_or_else(|never| match never {});
        let interval = quota.replenish_interval();
        match bucket.check() {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                RateStatus {
                    rate,
                    allowed: true,
                    remaining,
                    reset: interval * (rate.count() - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.clock.now());
                RateStatus {
                    rate,
                    allowed: false,
                    remaining: 0,
                    reset: retry_after + interval * (rate.count() - 1),
                    retry_after,
                }
            }
        }
    }
}

/// `count` per `period`: a burst of `count`, one more every `period / count`.
fn quota(rate: Rate) -> Quota {
    let count = NonZeroU32::new(rate.count()).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_secs(u64::from(rate.period_secs()));
    let interval = (period / count.get()).max(Duration::from_nanos(1));
    Quota::with_period(interval)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_with_a_retry_time() {
        let local = Local::new(10);
        let rate: Rate = "3/min".parse().unwrap();
        let remaining: Vec<u32> = (0..3).map(|_| local.check("a", rate).remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = local.check("a", rate);
        assert!(!refused.allowed);
        assert!(refused.retry_after > Duration::from_secs(15) && refused.retry_after <= Duration::from_secs(20));
        // Another key has its own bucket.
        assert!(local.check("b", rate).allowed);
    }
}
