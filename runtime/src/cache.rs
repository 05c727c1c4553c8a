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
//! against 20 ns and 70–130 ns here (BENCHMARKS.md, "The cached API key under load"). A
//! cached API key or session token is looked up on every request, so that difference is most
//! of what the guard costs. `moka` stays where its single-flight loading matters and the
//! lookup is not on every request (introspection, Clerk's API).

use std::hash::Hash;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, UnitWeighter};

/// An entry and the instant it stops being valid.
#[derive(Clone)]
struct Slot<V> {
    value: V,
    until: Instant,
}

/// A bounded concurrent cache whose entries expire.
pub(crate) struct TtlCache<K, V> {
    entries: Cache<K, Slot<V>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// A cache of at most `capacity` entries; `None` for zero (no cache).
    pub(crate) fn new(capacity: u64) -> Option<TtlCache<K, V>> {
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
        self.get_at(key, Instant::now())
    }

    /// The value for `key` if it has not expired at `now` (for a caller that read the clock).
    pub(crate) fn get_at(&self, key: &K, now: Instant) -> Option<V> {
        self.get_entry_at(key, now).map(|(value, _)| value)
    }

    /// The value for `key` and its deadline, if it has not expired at `now`.
    pub(crate) fn get_entry_at(&self, key: &K, now: Instant) -> Option<(V, Instant)> {
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
    pub(crate) fn replace(&self, key: K, value: V, until: Instant) {
        let _ = self.entries.replace(key, Slot { value, until }, true);
    }

    /// Keeps `value` for `ttl` (evicting another entry if the cache is full).
    pub(crate) fn insert(&self, key: K, value: V, ttl: Duration) {
        let Some(until) = Instant::now().checked_add(ttl) else {
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
        let now = Instant::now();
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
