//! The DPoP replay cache: the proofs seen within their window, bounded, in memory.
//!
//! One entry is a 128-bit key (SHA-256 of the key thumbprint and the `jti`, truncated) and the
//! second it leaves the window: 32 bytes with alignment, 33 with the hash table's control
//! byte. A shard of `n` entries holds `n / 0.875` buckets rounded up to a power of two, so a
//! full cache of the default 262 144 proofs (16 shards × 16 384) takes 16 × 32 768 × 33 bytes,
//! about 17 MiB; an empty one a few hundred bytes (the tables grow as proofs arrive and never
//! beyond their shard's bound). The cache is split into [`SHARDS`] shards, each a `std::sync::Mutex` over a
//! `HashMap` held only for one lookup-and-insert (never across an `.await`: the gate calls it
//! from synchronous code). A full shard first drops its expired entries; if it is still full,
//! the proof is refused ([`Seen::Full`], a `503` with `Retry-After`) — an entry inside its
//! window is never dropped, so a replay cannot be made to work by filling the cache.

use std::collections::HashMap;
use std::sync::Mutex;

/// How many shards the cache is split into.
pub(crate) const SHARDS: usize = 16;

/// What the cache said about a proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not seen within its window: now remembered.
    New,
    /// Seen within its window: a replay.
    Before,
    /// No room, even after dropping every expired entry.
    Full,
}

/// Remembered proofs: key → the second (since the epoch) until which it is remembered.
pub(crate) struct ReplayCache {
    shards: Box<[Mutex<HashMap<u128, i64>>]>,
    per_shard: usize,
}

impl ReplayCache {
    /// A cache holding at most about `capacity` proofs (rounded up to a multiple of [`SHARDS`]).
    pub(crate) fn new(capacity: usize) -> ReplayCache {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        ReplayCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
        }
    }

    /// The proofs remembered now (expired ones included until they are dropped).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(self.per_shard, |s| s.len()))
            .sum()
    }

    /// The most proofs the cache holds.
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Remembers `key` until `until`, unless it is remembered already (at `now`).
    pub(crate) fn insert(&self, key: u128, until: i64, now: i64) -> Seen {
        let shard = &self.shards[(key as usize) % SHARDS];
        // A poisoned shard (a panic while it was held: none of this code panics) is refused
        // rather than trusted.
        let Ok(mut entries) = shard.lock() else {
            return Seen::Full;
        };
        if let Some(remembered) = entries.get_mut(&key) {
            if *remembered > now {
                return Seen::Before;
            }
            *remembered = until;
            return Seen::New;
        }
        if entries.len() >= self.per_shard {
            entries.retain(|_, remembered| *remembered > now);
            if entries.len() >= self.per_shard {
                return Seen::Full;
            }
        }
        entries.insert(key, until);
        Seen::New
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_seen_until_it_expires() {
        let cache = ReplayCache::new(1024);
        assert_eq!(cache.insert(7, 100, 10), Seen::New);
        assert_eq!(cache.insert(7, 100, 99), Seen::Before);
        assert_eq!(cache.insert(7, 200, 100), Seen::New);
        assert_eq!(cache.insert(8, 100, 10), Seen::New);
    }

    #[test]
    fn a_full_cache_fails_closed_and_drops_only_expired_entries() {
        let cache = ReplayCache::new(SHARDS);
        // One entry per shard fills it.
        for key in 0..SHARDS as u128 {
            assert_eq!(cache.insert(key, 100, 0), Seen::New);
        }
        let next = SHARDS as u128;
        assert_eq!(cache.insert(next, 100, 50), Seen::Full);
        // Every remembered key is still refused as a replay.
        assert_eq!(cache.insert(0, 100, 50), Seen::Before);
        // Once they expire, there is room again.
        assert_eq!(cache.insert(next, 300, 100), Seen::New);
        assert_eq!(cache.capacity(), SHARDS);
    }
}
