//! The key verifier's memory: verified keys and refused secrets, both filed under the secret's
//! SHA-256, each with its own time to live and capacity.
//!
//! A store lookup that read the store before a key was revoked must not cache the key after
//! the revocation evicted it. Every eviction counts itself under one lock, and a lookup inserts
//! what it read under the same lock only if the count is still the one it read before asking
//! the store: an eviction then either comes before the insert (and the count keeps the key
//! out) or after it (and removes it). Reads take no lock: a hit is one lookup in a
//! [`TtlCache`].

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::auth::Auth;
use crate::cache::{CoarseInstant, TtlCache};
use crate::rejection::InvalidReason;

use super::secret::SecretHash;

/// A verified key in the cache: what a handler sees, and when its next use is worth recording
/// for `last_used_at` (see [`UsageRecorder`](super::usage::UsageRecorder)).
#[derive(Clone)]
pub(super) struct CachedKey {
    pub(super) auth: Auth,
    pub(super) record_at: CoarseInstant,
}

/// What the caches of a [`KeyCache`] hold and for how long; a zero TTL or capacity turns that
/// cache off.
#[derive(Clone, Copy, Debug)]
pub(super) struct KeyCacheConfig {
    pub(super) verified_ttl: Duration,
    pub(super) verified_capacity: u64,
    pub(super) refused_ttl: Duration,
    pub(super) refused_capacity: u64,
}

/// Verified keys and refused secrets by SHA-256.
pub(super) struct KeyCache {
    /// `None`: off.
    verified: Option<TtlCache<SecretHash, CachedKey, CoarseInstant>>,
    /// `None`: off.
    refused: Option<TtlCache<SecretHash, InvalidReason, CoarseInstant>>,
    config: KeyCacheConfig,
    /// How many evictions there were; held while evicting and while a lookup inserts.
    evictions: Mutex<u64>,
}

impl KeyCache {
    pub(super) fn new(config: KeyCacheConfig) -> KeyCache {
        let capacity = |ttl: Duration, capacity: u64| if ttl.is_zero() { 0 } else { capacity };
        KeyCache {
            verified: TtlCache::new(capacity(config.verified_ttl, config.verified_capacity)),
            refused: TtlCache::new(capacity(config.refused_ttl, config.refused_capacity)),
            config,
            evictions: Mutex::new(0),
        }
    }

    pub(super) fn verified_ttl(&self) -> Duration {
        self.config.verified_ttl
    }

    /// The verified key filed under `hash` and its deadline.
    pub(super) fn verified(&self, hash: &SecretHash, now: CoarseInstant) -> Option<(CachedKey, CoarseInstant)> {
        self.verified.as_ref()?.get_entry_at(hash, now)
    }

    /// Replaces a verified key's entry, keeping its deadline; never brings back an evicted one.
    pub(super) fn replace(&self, hash: SecretHash, cached: CachedKey, until: CoarseInstant) {
        if let Some(verified) = &self.verified {
            verified.replace(hash, cached, until);
        }
    }

    /// The refusal remembered for `hash`.
    pub(super) fn refusal(&self, hash: &SecretHash, now: CoarseInstant) -> Option<InvalidReason> {
        self.refused.as_ref()?.get_at(hash, now)
    }

    /// The eviction count, read before a store lookup: [`insert_verified`](Self::insert_verified)
    /// takes it back.
    pub(super) fn evictions(&self) -> u64 {
        *self.lock_evictions()
    }

    /// Caches a key a store lookup verified, unless a key was evicted since `evictions` was read
    /// before that lookup; for the cache's TTL, or less when `ttl` is shorter (a rerolled
    /// secret is cached no longer than its grace period lasts).
    pub(super) fn insert_verified(&self, evictions: u64, hash: SecretHash, cached: CachedKey, ttl: Option<Duration>) {
        let Some(verified) = &self.verified else { return };
        let ttl = ttl.map_or(self.config.verified_ttl, |t| t.min(self.config.verified_ttl));
        if ttl.is_zero() {
            return;
        }
        let count = self.lock_evictions();
        if *count == evictions {
            verified.insert(hash, cached, ttl);
        }
    }

    /// Remembers a refusal.
    pub(super) fn insert_refusal(&self, hash: SecretHash, reason: InvalidReason) {
        if let Some(refused) = &self.refused {
            refused.insert(hash, reason, self.config.refused_ttl);
        }
    }

    /// Forgets a refusal (a key was just issued with this hash).
    pub(super) fn remove_refusal(&self, hash: &SecretHash) {
        if let Some(refused) = &self.refused {
            refused.remove(hash);
        }
    }

    /// Forgets everything about these secrets, and keeps a lookup in flight from caching them.
    pub(super) fn evict<'h>(&self, hashes: impl IntoIterator<Item = &'h SecretHash>) {
        let mut count = self.lock_evictions();
        *count = count.wrapping_add(1);
        for hash in hashes {
            if let Some(verified) = &self.verified {
                verified.remove(hash);
            }
            self.remove_refusal(hash);
        }
    }

    /// Forgets everything.
    pub(super) fn clear(&self) {
        let mut count = self.lock_evictions();
        *count = count.wrapping_add(1);
        if let Some(verified) = &self.verified {
            verified.clear();
        }
        if let Some(refused) = &self.refused {
            refused.clear();
        }
    }

    /// How many verified keys are cached (after expired ones are dropped).
    pub(super) fn verified_len(&self) -> u64 {
        self.verified.as_ref().map_or(0, TtlCache::len)
    }

    /// How many refusals are remembered (after expired ones are dropped).
    pub(super) fn refused_len(&self) -> u64 {
        self.refused.as_ref().map_or(0, TtlCache::len)
    }

    /// How many verified keys the cache holds, expired ones included: cheap, for `Debug`.
    pub(super) fn verified_raw_len(&self) -> usize {
        self.verified.as_ref().map_or(0, TtlCache::raw_len)
    }

    fn lock_evictions(&self) -> MutexGuard<'_, u64> {
        self.evictions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
