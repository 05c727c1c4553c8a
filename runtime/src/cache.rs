//! The in-memory caches on the request path: bounded, concurrent, each entry with its own time
//! to live.
//!
//! A thin layer over [`quick_cache`]'s sharded cache, which does the concurrency and the
//! eviction (S3-FIFO-like: recently and frequently used entries stay). Its `sharded-lock`
//! feature gives each shard a reader lock split per thread, so two cores reading the same hot
//! entry do not bounce one lock word between them; writes (a new entry, a refresh at most once
//! a second per key) take every part of the lock and are rare. This module adds what the
//! verifiers need on top: an expiry instant per entry, checked on every read, so an entry is
//! never returned after its deadline, and a capacity that is a hard bound.
//!
//! Why not `moka`, used elsewhere in this crate: its `get` records every read for its
//! eviction policy and reads the clock itself; measured on this crate's benchmark machine it
//! cost 140–170 ns per hit on one thread and 230–360 ns with two threads reading one hot key,
//! against 20 ns and 70–130 ns here (round 2 of BENCHMARKS.md, in that file's git history). A
//! cached API key or session token is looked up on every request, so that difference is most
//! of what the guard costs. `moka` stays where its single-flight loading matters and the
//! lookup is not on every request (introspection, Clerk's API).
//!
//! Each cache reads one of two clocks ([`Moment`]): `std::time::Instant` for the
//! verified-token cache, whose entries must never outlive a token's `exp`; and
//! [`CoarseInstant`], the kernel's coarse monotonic clock, for the API-key caches, whose
//! deadlines are staleness bounds (how long a revocation made elsewhere takes to be seen),
//! where a few milliseconds late does not matter and a clock read on every request does.

use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, UnitWeighter};

/// An instant of the clock a cache's deadlines are read on: `std::time::Instant` (exact to the
/// nanosecond, about 28 ns to read on the benchmark machine, the time-stamp counter in a
/// virtual machine) or [`CoarseInstant`].
pub(crate) trait Moment: Copy + Ord + Send + Sync + 'static {
    /// Now.
    fn now() -> Self;

    /// `self + duration`; `None` past the clock's range.
    fn checked_add(self, duration: Duration) -> Option<Self>;
}

impl Moment for Instant {
    fn now() -> Instant {
        Instant::now()
    }

    fn checked_add(self, duration: Duration) -> Option<Instant> {
        Instant::checked_add(&self, duration)
    }
}

impl Moment for CoarseInstant {
    fn now() -> CoarseInstant {
        CoarseInstant::now()
    }

    fn checked_add(self, duration: Duration) -> Option<CoarseInstant> {
        CoarseInstant::checked_add(self, duration)
    }
}

/// An instant of the kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE` on Linux,
/// through `coarsetime`): the time of the last timer tick, a few milliseconds behind the exact
/// clock at most, read in a few nanoseconds without the time-stamp counter. On systems where
/// `coarsetime` would read the wall clock (which can step back), it is the exact clock.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CoarseInstant(coarse::Raw);

impl fmt::Debug for CoarseInstant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CoarseInstant").field(&self.0).finish()
    }
}

/// Where `coarsetime` reads a monotonic clock: `CLOCK_MONOTONIC_COARSE` (Linux, Android),
/// `CLOCK_MONOTONIC_RAW_APPROX` (macOS), `CLOCK_MONOTONIC_FAST` (FreeBSD), `GetTickCount64`
/// (Windows).
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd",
    windows
))]
mod coarse {
    use std::time::Duration;

    use super::CoarseInstant;

    pub(super) type Raw = coarsetime::Instant;

    impl CoarseInstant {
        /// Now, on the coarse clock.
        pub(crate) fn now() -> CoarseInstant {
            // Not `Instant::now`, which also stores the reading in a global every thread writes.
            CoarseInstant(coarsetime::Instant::now_without_cache_update())
        }

        /// `self + duration`; `None` past the clock's range (about 136 years).
        pub(crate) fn checked_add(self, duration: Duration) -> Option<CoarseInstant> {
            let secs = u32::try_from(duration.as_secs()).ok()?;
            let duration = coarsetime::Duration::new(u64::from(secs), duration.subsec_nanos());
            self.0.checked_add(duration).map(CoarseInstant)
        }

        /// The time from `earlier` to `self`; zero if `earlier` is later.
        pub(crate) fn saturating_duration_since(self, earlier: CoarseInstant) -> Duration {
            (self.0 - earlier.0).into()
        }
    }
}

/// Elsewhere `coarsetime` reads the wall clock: the exact monotonic clock instead.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd",
    windows
)))]
mod coarse {
    use std::time::{Duration, Instant};

    use super::CoarseInstant;

    pub(super) type Raw = Instant;

    impl CoarseInstant {
        /// Now.
        pub(crate) fn now() -> CoarseInstant {
            CoarseInstant(Instant::now())
        }

        /// `self + duration`; `None` past the clock's range.
        pub(crate) fn checked_add(self, duration: Duration) -> Option<CoarseInstant> {
            self.0.checked_add(duration).map(CoarseInstant)
        }

        /// The time from `earlier` to `self`; zero if `earlier` is later.
        pub(crate) fn saturating_duration_since(self, earlier: CoarseInstant) -> Duration {
            self.0.saturating_duration_since(earlier.0)
        }
    }
}

/// An entry and the instant it stops being valid.
#[derive(Clone)]
struct Slot<V, T> {
    value: V,
    until: T,
}

/// A bounded concurrent cache whose entries expire, at instants of type `T`.
pub(crate) struct TtlCache<K, V, T: Moment = Instant> {
    entries: Cache<K, Slot<V, T>>,
}

impl<K: Eq + Hash + Clone, V: Clone, T: Moment> TtlCache<K, V, T> {
    /// A cache of at most `capacity` entries; `None` for zero (no cache).
    pub(crate) fn new(capacity: u64) -> Option<TtlCache<K, V, T>> {
        if capacity == 0 {
            return None;
        }
        // quick_cache splits the capacity over shards and rounds each shard's share up; choose
        // the shard count here and round down instead, so `capacity` is a hard bound. Shards
        // of fewer than 32 entries are not worth their lock (quick_cache's own rule).
        let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
        let mut shards = u64::try_from(parallelism.saturating_mul(4))
            .unwrap_or(u64::MAX)
            .next_power_of_two();
        while shards > 1 && capacity / shards < 32 {
            shards /= 2;
        }
        let bounded = capacity / shards * shards;
        let options = OptionsBuilder::new()
            .shards(usize::try_from(shards).unwrap_or(1))
            .estimated_items_capacity(usize::try_from(bounded).unwrap_or(usize::MAX))
            .weight_capacity(bounded)
            .build()
            .ok()?;
        Some(TtlCache {
            entries: Cache::with_options(options, UnitWeighter, Default::default(), Default::default()),
        })
    }

    /// The value for `key` if it has not expired.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.get_at(key, T::now())
    }

    /// The value for `key` if it has not expired at `now` (for a caller that read the clock).
    pub(crate) fn get_at(&self, key: &K, now: T) -> Option<V> {
        self.get_entry_at(key, now).map(|(value, _)| value)
    }

    /// The value for `key` and its deadline, if it has not expired at `now`.
    pub(crate) fn get_entry_at(&self, key: &K, now: T) -> Option<(V, T)> {
        let slot = self.entries.get(key)?;
        if now >= slot.until {
            // Only the expired entry: a fresh one inserted meanwhile stays.
            self.entries.remove_if(key, |s| s.until <= now);
            return None;
        }
        Some((slot.value, slot.until))
    }

    /// Replaces `key`'s value, keeping the given deadline, only if `key` is still cached (an
    /// entry removed meanwhile stays removed). Does not count as a use for eviction.
    pub(crate) fn replace(&self, key: K, value: V, until: T) {
        let _ = self.entries.replace(key, Slot { value, until }, true);
    }

    /// Keeps `value` for `ttl` (evicting another entry if the cache is full).
    pub(crate) fn insert(&self, key: K, value: V, ttl: Duration) {
        let Some(until) = T::now().checked_add(ttl) else {
            return;
        };
        self.entries.insert(key, Slot { value, until });
    }

    /// Drops `key`'s entry.
    pub(crate) fn remove(&self, key: &K) {
        self.entries.remove(key);
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    /// How many unexpired entries the cache holds (expired ones are dropped first).
    pub(crate) fn len(&self) -> u64 {
        let now = T::now();
        self.entries.retain(|_, slot| slot.until > now);
        self.entries.len() as u64
    }

    /// How many entries it holds, expired or not, without sweeping (for `Debug`).
    pub(crate) fn raw_len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_deadline() {
        let cache = TtlCache::<u32, &str>::new(100).unwrap();
        cache.insert(1, "short", Duration::from_millis(30));
        cache.insert(2, "long", Duration::from_secs(3600));
        assert_eq!(cache.get(&1), Some("short"));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&1), None, "expired");
        assert_eq!(cache.get(&2), Some("long"));
        assert_eq!(cache.len(), 1);
        cache.remove(&2);
        assert_eq!(cache.get(&2), None);
    }

    #[test]
    fn coarse_entries_expire_at_their_deadline() {
        let cache = TtlCache::<u32, &str, CoarseInstant>::new(100).unwrap();
        cache.insert(1, "short", Duration::from_millis(300));
        cache.insert(2, "long", Duration::from_secs(3600));
        assert_eq!(cache.get(&1), Some("short"));
        // Past the deadline by more than a tick of the coarse clock (4 ms at 250 Hz).
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(cache.get(&1), None, "expired");
        assert_eq!(cache.get(&2), Some("long"));
        cache.insert(3, "zero", Duration::ZERO);
        assert_eq!(cache.get(&3), None);
    }

    #[test]
    fn coarse_clock_moves_with_the_exact_one() {
        let now = CoarseInstant::now();
        let later = now.checked_add(Duration::from_millis(1500)).unwrap();
        assert!(later > now);
        let step = later.saturating_duration_since(now);
        assert!(
            step.abs_diff(Duration::from_millis(1500)) < Duration::from_micros(1),
            "{step:?}"
        );
        assert_eq!(now.saturating_duration_since(later), Duration::ZERO);
        assert!(now.checked_add(Duration::from_secs(u64::from(u32::MAX) + 1)).is_none());

        let (coarse, exact) = (CoarseInstant::now(), Instant::now());
        std::thread::sleep(Duration::from_millis(50));
        let (coarse, exact) = (CoarseInstant::now().saturating_duration_since(coarse), exact.elapsed());
        // Each reading is at most a tick (10 ms even at 100 Hz) behind the exact clock.
        assert!(coarse >= Duration::from_millis(30), "{coarse:?}");
        assert!(
            coarse <= exact + Duration::from_millis(20),
            "{coarse:?} against {exact:?}"
        );
    }

    #[test]
    fn zero_ttl_entries_are_never_returned() {
        let cache = TtlCache::<u32, u32>::new(10).unwrap();
        cache.insert(1, 1, Duration::ZERO);
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn capacity_is_a_hard_bound() {
        for capacity in [1u64, 7, 31, 32, 100, 1000, 4097] {
            let cache = TtlCache::<u64, u64>::new(capacity).unwrap();
            for i in 0..capacity * 3 {
                cache.insert(i, i, Duration::from_secs(60));
                assert!(
                    cache.raw_len() as u64 <= capacity,
                    "capacity {capacity}: {}",
                    cache.raw_len()
                );
            }
            assert!(cache.len() > 0);
        }
        assert!(TtlCache::<u64, u64>::new(0).is_none());
    }

    #[test]
    fn replace_keeps_the_deadline_and_never_brings_an_entry_back() {
        let cache = TtlCache::<u32, u32>::new(100).unwrap();
        cache.insert(1, 10, Duration::from_millis(40));
        let (value, until) = cache.get_entry_at(&1, Instant::now()).unwrap();
        cache.replace(1, value + 1, until);
        assert_eq!(cache.get(&1), Some(11));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(cache.get(&1), None, "the replaced entry kept the original deadline");
        cache.insert(2, 20, Duration::from_secs(60));
        let (_, until) = cache.get_entry_at(&2, Instant::now()).unwrap();
        cache.remove(&2);
        cache.replace(2, 21, until);
        assert_eq!(cache.get(&2), None, "a removed entry (a revocation) stays removed");
    }

    #[test]
    fn clear_drops_everything() {
        let cache = TtlCache::<u32, u32>::new(100).unwrap();
        for i in 0..50 {
            cache.insert(i, i, Duration::from_secs(60));
        }
        cache.clear();
        assert_eq!(cache.len(), 0);
        assert!((0..50).all(|i| cache.get(&i).is_none()));
    }
}
