//! The verdict cache: Backend API answers keyed by the SHA-256 of the token, each entry living
//! until the earliest of its TTL and the token's own expiration.
//!
//! Verified tokens live [`cache_ttl`](super::ClerkConfig::cache_ttl) (default 30 s): a token
//! revoked in Clerk is still accepted here for at most that long — the price of not calling
//! the API on every request. Unknown, revoked and expired tokens live
//! [`negative_ttl`](super::ClerkConfig::negative_ttl) (default 5 s), so a client retrying a
//! bad token does not spend the API quota. Failures (`503`s) are never cached.
//!
//! Concurrent misses for one token share a single computation (moka's `try_get_with`): a
//! hundred requests with a new key make one API call. The cache is lock-free for readers and
//! no lock is held across an `.await`.

use std::future::Future;
use std::time::{Duration, Instant};

use moka::Expiry;
use sha2::{Digest, Sha256};

use crate::auth::Auth;
use crate::rejection::InvalidReason;
use crate::token::TokenType;
use crate::verifier::VerifyError;

/// The cache key: SHA-256 of the token type and the token. The token itself is not kept.
pub(crate) type Key = [u8; 32];

/// Hashes `token` of `token_type` into a cache key.
pub(crate) fn key(token_type: TokenType, token: &str) -> Key {
    let mut hasher = Sha256::new();
    hasher.update([token_type.index() as u8]);
    hasher.update(token.as_bytes());
    hasher.finalize().into()
}

/// A cached answer and when it stops being usable.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) verdict: Result<Auth, InvalidReason>,
    /// When the API answered.
    pub(crate) loaded_at: Instant,
    pub(crate) valid_until: Instant,
}

impl Entry {
    /// An entry for `verdict`, valid for `ttl` (positive) or `negative_ttl`, and never past
    /// the token's expiration (`now_ms` is the wall clock in milliseconds).
    pub(crate) fn new(
        verdict: Result<Auth, InvalidReason>,
        ttl: Duration,
        negative_ttl: Duration,
        now_ms: i64,
    ) -> Entry {
        let lifetime = match &verdict {
            Ok(auth) => match auth.expiration {
                Some(exp) => {
                    let left_ms = exp.saturating_mul(1000).saturating_sub(now_ms).max(0);
                    ttl.min(Duration::from_millis(left_ms.unsigned_abs()))
                }
                None => ttl,
            },
            Err(_) => negative_ttl,
        };
        let now = Instant::now();
        Entry {
            verdict,
            loaded_at: now,
            valid_until: now.checked_add(lifetime).unwrap_or(now),
        }
    }

    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        now < self.valid_until
    }
}

struct EntryExpiry;

impl Expiry<Key, Entry> for EntryExpiry {
    fn expire_after_create(&self, _key: &Key, value: &Entry, created_at: Instant) -> Option<Duration> {
        Some(value.valid_until.saturating_duration_since(created_at))
    }
}

/// Bounded, per-entry-expiring cache of verdicts with single-flight loading.
#[derive(Clone)]
pub(crate) struct VerdictCache {
    inner: moka::future::Cache<Key, Entry>,
}

impl VerdictCache {
    pub(crate) fn new(capacity: u64) -> VerdictCache {
        VerdictCache {
            inner: moka::future::Cache::builder()
                .max_capacity(capacity)
                .expire_after(EntryExpiry)
                .build(),
        }
    }

    /// The fresh entry for `key`, loading it with `load` on a miss. Concurrent callers for
    /// one key share one `load`. An entry the API answered after this call began is used
    /// even when its TTL is zero (it is as fresh as a call of our own); an older stale entry
    /// (moka's expiry is coarse) is dropped and loaded again.
    pub(crate) async fn get_or_load<F, Fut>(&self, key: Key, load: F) -> Result<Entry, VerifyError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Entry, VerifyError>>,
    {
        let started = Instant::now();
        for _ in 0..2 {
            let entry = self
                .inner
                .try_get_with(key, load())
                .await
                .map_err(|e| VerifyError::clone(&e))?;
            if entry.loaded_at >= started || entry.is_fresh(Instant::now()) {
                return Ok(entry);
            }
            self.inner.invalidate(&key).await;
        }
        load().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthInfo;

    fn auth(expiration: Option<i64>) -> Auth {
        let mut info = AuthInfo::new(TokenType::ApiKey);
        info.expiration = expiration;
        Auth::new(info)
    }

    #[test]
    fn lifetimes() {
        let (ttl, negative) = (Duration::from_secs(30), Duration::from_secs(5));
        let now_ms = 1_000_000_000_000;
        let start = Instant::now();
        // Entries are created just after `start`: allow for the time that passes meanwhile.
        let slack = Duration::from_millis(100);
        let left = |e: &Entry| e.valid_until.saturating_duration_since(start);
        let forever = Entry::new(Ok(auth(None)), ttl, negative, now_ms);
        assert!(left(&forever) > Duration::from_secs(29) && left(&forever) <= ttl + slack);
        let soon = Entry::new(Ok(auth(Some(now_ms / 1000 + 2))), ttl, negative, now_ms);
        assert!(left(&soon) <= Duration::from_secs(2) + slack);
        let past = Entry::new(Ok(auth(Some(now_ms / 1000 - 10))), ttl, negative, now_ms);
        assert!(!past.is_fresh(Instant::now()));
        let unknown = Entry::new(Err(InvalidReason::UnknownToken), ttl, negative, now_ms);
        assert!(left(&unknown) <= negative + slack && left(&unknown) > Duration::from_secs(4));
    }

    #[test]
    fn keys_separate_types_and_tokens() {
        assert_ne!(key(TokenType::ApiKey, "ak_1"), key(TokenType::ApiKey, "ak_2"));
        assert_ne!(key(TokenType::ApiKey, "x"), key(TokenType::M2mToken, "x"));
        assert_eq!(key(TokenType::ApiKey, "ak_1"), key(TokenType::ApiKey, "ak_1"));
    }
}
