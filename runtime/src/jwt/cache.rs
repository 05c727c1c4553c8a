//! The verified-token cache: a client that reuses its token pays a SHA-256 hash instead of a
//! signature check.
//!
//! Entries are keyed by the SHA-256 of the token (the token itself is never stored), live
//! at most until the token's `exp` (and at most [`TokenCacheConfig::max_ttl`]), and belong
//! to one generation of the key set: when the keys change, every entry is dropped. A hit is
//! re-checked against the clock, so a cached token is never accepted at or after its `exp`
//! (the verification leeway does not apply to cached tokens). The verifier asks it only
//! with the generation of keys that would still verify the token: a remote JWKS due for
//! refresh starts one on a hit, and keys too stale to use give no generation at all, so a
//! remembered token never outlives what the JWKS cache would accept.
//!
//! ```
//! use std::time::Duration;
//! use tokengate_runtime::jwt::TokenCacheConfig;
//!
//! let config = TokenCacheConfig::default().max_entries(50_000).max_ttl(Duration::from_secs(60));
//! assert!(config.is_enabled());
//! assert!(!TokenCacheConfig::disabled().is_enabled());
//! ```

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::auth::Auth;
use crate::cache::TtlCache;
use crate::token::TokenType;

/// How the verified-token cache behaves. On by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenCacheConfig {
    enabled: bool,
    max_entries: u64,
    max_ttl: Duration,
}

impl Default for TokenCacheConfig {
    /// Enabled, 10 000 entries, at most 5 minutes per entry (and never past `exp`).
    fn default() -> Self {
        TokenCacheConfig {
            enabled: true,
            max_entries: 10_000,
            max_ttl: Duration::from_secs(300),
        }
    }
}

impl TokenCacheConfig {
    /// No cache: every request verifies the signature.
    pub fn disabled() -> TokenCacheConfig {
        TokenCacheConfig {
            enabled: false,
            ..TokenCacheConfig::default()
        }
    }

    /// The most tokens kept at once (least recently used are evicted first).
    #[must_use]
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// The longest an entry lives, even for a token that expires later.
    #[must_use]
    pub fn max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = max_ttl;
        self
    }

    /// Whether the cache is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled && self.max_entries > 0 && !self.max_ttl.is_zero()
    }
}

#[derive(Clone)]
struct Entry {
    auth: Auth,
    exp: i64,
    generation: u64,
}

/// The cache itself.
pub(crate) struct TokenCache {
    entries: TtlCache<[u8; 32], Entry>,
    max_ttl: Duration,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.entries.raw_len())
            .field("max_ttl", &self.max_ttl)
            .finish()
    }
}

/// The cache key of a token.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    pub(crate) fn new(config: &TokenCacheConfig) -> Option<TokenCache> {
        if !config.is_enabled() {
            return None;
        }
        Some(TokenCache {
            entries: TtlCache::new(config.max_entries)?,
            max_ttl: config.max_ttl,
        })
    }

    /// A cached identity for the token, if it was verified under the current key set, is of
    /// the same type and has not expired at `now` (seconds since the epoch).
    pub(crate) fn get(&self, hash: &[u8; 32], token_type: TokenType, generation: u64, now: i64) -> Option<Auth> {
        self.get_any_type(hash, generation, now)
            .filter(|auth| auth.token_type == token_type)
    }

    /// A cached identity for the token, if it was verified under the current key set and has
    /// not expired at `now`, whatever its type (the `Auth` carries it).
    pub(crate) fn get_any_type(&self, hash: &[u8; 32], generation: u64, now: i64) -> Option<Auth> {
        let entry = self.entries.get(hash)?;
        if entry.generation != generation || now >= entry.exp {
            self.entries.remove(hash);
            return None;
        }
        Some(entry.auth)
    }

    /// Remembers a verified token until its `exp` (bounded by the configured TTL).
    pub(crate) fn insert(&self, hash: [u8; 32], auth: &Auth, exp: i64, generation: u64, now: i64) {
        let remaining = exp.saturating_sub(now);
        if remaining <= 0 {
            return;
        }
        let ttl = Duration::from_secs(remaining.unsigned_abs()).min(self.max_ttl);
        self.entries.insert(
            hash,
            Entry {
                auth: auth.clone(),
                exp,
                generation,
            },
            ttl,
        );
    }

    /// Drops every entry (the key set changed).
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    /// How many unexpired entries the cache holds.
    pub(crate) fn len(&self) -> u64 {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthInfo;

    fn auth() -> Auth {
        Auth::new(AuthInfo::new(TokenType::SessionToken))
    }

    #[test]
    fn never_past_exp_nor_across_generations_or_types() {
        let cache = TokenCache::new(&TokenCacheConfig::default()).unwrap();
        let h = token_hash("t");
        cache.insert(h, &auth(), 1_000, 7, 990);
        assert!(cache.get(&h, TokenType::SessionToken, 7, 999).is_some());
        assert!(cache.get(&h, TokenType::OAuthToken, 7, 999).is_none());
        cache.insert(h, &auth(), 1_000, 7, 990);
        assert!(cache.get(&h, TokenType::SessionToken, 8, 999).is_none());
        cache.insert(h, &auth(), 1_000, 7, 990);
        assert!(cache.get(&h, TokenType::SessionToken, 7, 1_000).is_none(), "at exp");
        cache.insert(h, &auth(), 1_000, 7, 1_000);
        assert!(
            cache.get(&h, TokenType::SessionToken, 7, 999).is_none(),
            "expired tokens are not stored"
        );
        assert_ne!(token_hash("t"), token_hash("u"));
    }

    #[test]
    fn disabled_builds_nothing() {
        assert!(TokenCache::new(&TokenCacheConfig::disabled()).is_none());
        assert!(TokenCache::new(&TokenCacheConfig::default().max_entries(0)).is_none());
    }
}
