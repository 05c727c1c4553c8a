//! The key verifier, for API keys and opaque M2M tokens: cache of verified keys → checksum →
//! SHA-256 → cache of refusals → store.
//!
//! - The cache of verified keys is looked at first on the gate's synchronous path
//!   (`verify_cached`), under a keyed SipHash of the secret (see `CacheKey`): a hit is a secret
//!   that passed its checksum already, and costs no SHA-256. In front of that shared cache each
//!   thread remembers the last keys it read from it (`front`), void after any eviction and at
//!   the shared entry's deadline. `verify` and `verify_secret` check the checksum first, then
//!   the same caches.
//! - A secret whose checksum does not match is refused (`bad-checksum`) before the negative
//!   cache or the store is consulted; the SHA-256 the store holds is computed after it.
//! - Verified keys are cached for [`DEFAULT_CACHE_TTL`] (30 s, configurable). **That TTL bounds
//!   how long a revocation made elsewhere (the CLI, another process) takes to be seen** (plus
//!   a tick of the coarse clock the key caches read, a few milliseconds); a revocation through
//!   [`KeyVerifier::revoke`] evicts the key at once: it is counted after the store has it, so
//!   a lookup that read the store just before never caches the key, and counted again after
//!   the eviction, so no thread's front answers for it. Unknown, revoked and
//!   expired secrets are cached for [`DEFAULT_NEGATIVE_CACHE_TTL`] (5 s).
//! - Concurrent misses for one secret (a hot key whose entry just expired, a burst from a new
//!   client) share one store query; the others wait for its answer. A lookup whose requests
//!   are all gone (clients that disconnected) is dropped, and a revocation drops the lookup
//!   of the revoked key, so a request that starts after it never joins an earlier read.
//! - Over a store that announces revocations ([`KeyStore::revocation_notices`]: the
//!   PostgreSQL store), the verifier listens from the moment it is built and evicts a key
//!   revoked by any process within about a second; the TTL is then only the fallback while
//!   the notification connection is down.
//! - `last_used_at` is written in batches by a background task every
//!   [`DEFAULT_FLUSH_INTERVAL`]; call [`KeyVerifier::shutdown`] on graceful shutdown so the
//!   last batch is written.
//! - A failing store is a `503` ([`VerifyError::Unavailable`]), logged, never a `401`.
//!
//! ```
//! use std::sync::Arc;
//! use tokengate_runtime::keys::{KeySpec, KeyVerifier, MemoryKeyStore};
//! use tokengate_runtime::{TokenType, verifier::{Credential, Verifier}};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let verifier = KeyVerifier::new(Arc::new(MemoryKeyStore::new()));
//! let key = verifier.issue(KeySpec::api_key("user_1", "ci").scope("write:users")).await.unwrap();
//! let auth = verifier
//!     .verify(Credential::new_for_tests(key.secret.expose(), TokenType::ApiKey))
//!     .await
//!     .unwrap();
//! assert_eq!(auth.user_id.as_deref(), Some("user_1"));
//! verifier.revoke(&key.record.id, Some("rotated")).await.unwrap();
//! assert!(verifier.verify(Credential::new_for_tests(key.secret.expose(), TokenType::ApiKey)).await.is_err());
//! verifier.shutdown().await.unwrap();
//! # });
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use siphasher::sip128::SipHasher24;
use tokio::sync::Notify;

use crate::auth::{Auth, AuthInfo};
use crate::cache::{CoarseInstant, TtlCache};
use crate::rejection::InvalidReason;
use crate::token::TokenType;
use crate::verifier::{Credential, Verifier, VerifyError, VerifyFuture};

use super::front::{self, Use};
use super::secret::{BODY_LEN, KeyKind, SecretHash, check_secret};
use super::store::{IssuedKey, KeyRecord, KeySpec, KeyStore, LastUsed, RevocationNotice, StoreError, issue, now_unix};

/// How long a verified key is trusted without asking the store again; the longest a
/// revocation made in another process takes to be seen.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
/// How long an unknown, revoked or expired secret is remembered.
pub const DEFAULT_NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(5);
/// How often `last_used_at` times are written.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// How many verified keys the cache holds.
pub const DEFAULT_CACHE_CAPACITY: u64 = 100_000;
/// How many refused secrets (unknown, revoked, expired) the negative cache holds.
pub const DEFAULT_NEGATIVE_CACHE_CAPACITY: u64 = 10_000;

/// The next [`Hot::id`].
static NEXT_VERIFIER_ID: AtomicU64 = AtomicU64::new(0);

/// A verified key in the cache: what a handler sees, and the last use already recorded.
///
/// Cloning it is one reference-count increment (the [`Auth`]): the id, kind and expiry are
/// read from the `Auth` itself, so a cache hit touches no other shared counter. `record_at`
/// changes at most once a second per key, by replacing the entry, so the hot path only reads
/// (a thread's [`front`] updates its own copy in place, so a key used on several threads is
/// recorded at most once a second on each).
#[derive(Clone)]
#[repr(C)] // What a hit reads first, the hash (for an eviction) last: see `front::Entry`.
pub(super) struct CachedKey {
    auth: Auth,
    /// When the next use is recorded for `last_used_at`: the end of the [`Inner::tick`] of the
    /// last use recorded. An instant, so a hit compares it with the request's clock read
    /// without converting either.
    record_at: CoarseInstant,
    /// Whether `auth` belongs to this copy alone: never in the shared cache, once made so in a
    /// thread's [`front`] (see [`CachedKey::unshare`]).
    own_auth: bool,
    /// The secret's SHA-256, as the store holds it: what a revocation names the key by.
    hash: SecretHash,
}

impl CachedKey {
    /// Gives this copy an `Auth` of its own, equal to the one it shared, unless it has one: its
    /// reference count is then written by one thread only, not by every thread answering for
    /// the key (on a server under load, a cache line the cores would pass back and forth on
    /// each request). A copy of the identity once per key and thread, on its second use there.
    pub(super) fn unshare(&mut self) {
        if !self.own_auth {
            self.auth = Auth::new(AuthInfo::clone(&self.auth));
            self.own_auth = true;
        }
    }
}

/// The bytes of a [`CachedKey`] a hit reads: all but the SHA-256 at its end.
pub(super) const CACHED_KEY_READ_ON_HIT: usize = std::mem::offset_of!(CachedKey, hash);

/// What the cache of verified keys is keyed by: the secret's SipHash-2-4, with a 128-bit
/// output, under a key drawn from the operating system for each verifier.
///
/// Not the SHA-256 the store holds: a cache hit is every request that reuses a key, and on
/// the benchmark machine SipHash is half the time of the SHA-256 (with the CPU's SHA
/// instructions) and a fraction of its code and constants, which a server under load fetches
/// again on each request. It is as safe a key for this map: to be answered from another
/// client's entry, a secret would have to collide with that client's secret on 128 bits of a
/// pseudo-random function whose key the attacker never sees. A miss still computes the
/// SHA-256 for the store, the negative cache and the lookups in flight.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct CacheKey {
    h1: u64,
    pub(super) h2: u64,
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed pseudo-random value: half of it is as good a bucket hash as any.
        state.write_u64(self.h1);
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

/// What every request that reuses a key reads of its verifier, in one cache line (a server
/// under load fetches each line the guard touches again on most requests).
#[repr(C, align(32))]
struct Hot {
    /// The key of the [`CacheKey`]s' SipHash. Kept out of every `Debug` output.
    sip_key: [u64; 2],
    /// This verifier's number, which no other verifier in the process has: what its entries
    /// in the per-thread front ([`front`]) are filed under.
    id: u64,
    /// Counts every eviction that can concern a revoked key (twice, see
    /// [`Inner::count_revocation`]), so a lookup racing with a revocation does not cache a stale
    /// key and no thread's front answers for one.
    revocations: AtomicU64,
}

struct Inner {
    hot: Hot,
    store: Arc<dyn KeyStore>,
    /// Verified keys (`None`: the cache is off).
    positive: Option<TtlCache<CacheKey, CachedKey, CoarseInstant>>,
    /// Refused secrets (`None`: the cache is off).
    negative: Option<TtlCache<SecretHash, InvalidReason, CoarseInstant>>,
    /// Keys used since the last flush: id → the tick of the latest use.
    pending: Mutex<HashMap<String, u64>>,
    flusher_started: AtomicBool,
    /// Whether the revocation-notice task runs (or the store has no notices).
    listener_started: AtomicBool,
    stopped: AtomicBool,
    stop: Arc<Notify>,
    flush_interval: Duration,
    cache_ttl: Duration,
    negative_cache_ttl: Duration,
    /// The origin of [`Inner::tick`].
    epoch: CoarseInstant,
    /// Store lookups in flight, by secret hash, with how many requests wait for each.
    in_flight: Mutex<HashMap<SecretHash, Lookup>>,
}

/// The shared answer of one store lookup.
type LookupCell = tokio::sync::OnceCell<Result<Auth, VerifyError>>;

/// A store lookup in flight and the number of requests waiting for it.
struct Lookup {
    cell: Arc<LookupCell>,
    waiters: usize,
}

/// A request's place in a store lookup: joins the lookup in flight for its secret, or starts
/// one. When the last waiter is dropped (answered or cancelled) the lookup is removed, so a
/// client that disconnects mid-query leaves nothing behind; a cancelled lookup is taken over
/// by the next waiter (`OnceCell::get_or_init`).
struct InFlight<'a> {
    inner: &'a Inner,
    hash: SecretHash,
    cell: Arc<LookupCell>,
}

impl<'a> InFlight<'a> {
    fn join(inner: &'a Inner, hash: SecretHash) -> InFlight<'a> {
        let mut in_flight = inner.lock_in_flight();
        let lookup = in_flight.entry(hash).or_insert_with(|| Lookup {
            cell: Arc::new(LookupCell::new()),
            waiters: 0,
        });
        lookup.waiters += 1;
        InFlight {
            inner,
            hash,
            cell: Arc::clone(&lookup.cell),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.inner.lock_in_flight();
        // The entry may be another lookup's: an eviction drops a lookup and a later request
        // starts a new one for the same secret.
        if let Some(lookup) = in_flight.get_mut(&self.hash)
            && Arc::ptr_eq(&lookup.cell, &self.cell)
        {
            lookup.waiters = lookup.waiters.saturating_sub(1);
            if lookup.waiters == 0 {
                in_flight.remove(&self.hash);
            }
        }
    }
}

/// Verifies API keys (`ak_…`) and opaque M2M tokens (`mt_…`) against a [`KeyStore`].
/// Cheap to clone; clones share the cache.
///
/// Configure it for [`TokenType::ApiKey`](crate::TokenType) and/or `M2mToken` with
/// [`TokenGateBuilder::verifier_for`](crate::TokenGateBuilder::verifier_for). It verifies the
/// secrets tokengate issues, with their `ak_`/`mt_` prefixes: a gate configured with other
/// prefixes sends it tokens it refuses as malformed.
#[derive(Clone)]
pub struct KeyVerifier {
    inner: Arc<Inner>,
}

/// Configures a [`KeyVerifier`].
#[must_use]
pub struct KeyVerifierBuilder {
    store: Arc<dyn KeyStore>,
    cache_ttl: Duration,
    negative_cache_ttl: Duration,
    cache_capacity: u64,
    negative_cache_capacity: u64,
    flush_interval: Duration,
}

impl fmt::Debug for KeyVerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVerifierBuilder")
            .field("store", &self.store.name())
            .field("cache_ttl", &self.cache_ttl)
            .field("negative_cache_ttl", &self.negative_cache_ttl)
            .field("cache_capacity", &self.cache_capacity)
            .field("negative_cache_capacity", &self.negative_cache_capacity)
            .field("flush_interval", &self.flush_interval)
            .finish()
    }
}

impl KeyVerifierBuilder {
    /// How long a verified key is cached (default 30 s). Bounds how long a revocation made in
    /// another process takes to be seen. Zero disables the cache.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How long an unknown, revoked or expired secret is remembered (default 5 s). Zero
    /// disables it.
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.negative_cache_ttl = ttl;
        self
    }

    /// How many verified keys are cached (default 100 000).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// How many refused secrets are remembered (default 10 000). Bounds the memory a flood
    /// of distinct random secrets can take.
    pub fn negative_cache_capacity(mut self, capacity: u64) -> Self {
        self.negative_cache_capacity = capacity;
        self
    }

    /// How often `last_used_at` is written (default 5 s).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Builds the verifier. Fails on a zero flush interval.
    pub fn build(self) -> Result<KeyVerifier, StoreError> {
        if self.flush_interval.is_zero() {
            return Err(StoreError::InvalidConfig(
                "the key verifier's flush interval must be more than zero (e.g. 5 s)".into(),
            ));
        }
        Ok(self.build_unchecked())
    }

    fn build_unchecked(self) -> KeyVerifier {
        // The cache key's key, drawn once. Should the operating system refuse it (it never
        // does on a working machine), the cache of verified keys stays off: every request then
        // asks the store, which is slow but right.
        let mut seed = [0u8; 16];
        let seed = match getrandom::fill(&mut seed) {
            Ok(()) => Some(seed),
            Err(e) => {
                tracing::error!(target: "tokengate::keys", error = %e, "no randomness for the key cache; it is off");
                None
            }
        };
        let verifier = self.build_cache(seed);
        verifier.start_listener();
        verifier
    }

    /// The verifier; `seed` keys its [`CacheKey`]s, and without one its cache of verified keys
    /// is off.
    fn build_cache(self, seed: Option<[u8; 16]>) -> KeyVerifier {
        let positive_capacity = if self.cache_ttl.is_zero() || seed.is_none() {
            0
        } else {
            self.cache_capacity
        };
        let seed = seed.unwrap_or_default();
        let (k0, k1) = seed.split_at(8);
        let word = |half: &[u8]| u64::from_le_bytes(half.try_into().unwrap_or_default());
        let negative_capacity = if self.negative_cache_ttl.is_zero() {
            0
        } else {
            self.negative_cache_capacity
        };
        KeyVerifier {
            inner: Arc::new(Inner {
                hot: Hot {
                    sip_key: [word(k0), word(k1)],
                    id: NEXT_VERIFIER_ID.fetch_add(1, Ordering::Relaxed),
                    revocations: AtomicU64::new(0),
                },
                store: self.store,
                positive: TtlCache::new(positive_capacity),
                negative: TtlCache::new(negative_capacity),
                pending: Mutex::new(HashMap::new()),
                flusher_started: AtomicBool::new(false),
                listener_started: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                stop: Arc::new(Notify::new()),
                flush_interval: self.flush_interval,
                cache_ttl: self.cache_ttl,
                negative_cache_ttl: self.negative_cache_ttl,
                epoch: CoarseInstant::now(),
                in_flight: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl KeyVerifier {
    /// A verifier with the default settings.
    pub fn new(store: Arc<dyn KeyStore>) -> KeyVerifier {
        KeyVerifier::builder(store).build_unchecked()
    }

    /// A builder to change the cache TTLs, capacity and flush interval.
    pub fn builder(store: Arc<dyn KeyStore>) -> KeyVerifierBuilder {
        KeyVerifierBuilder {
            store,
            cache_ttl: DEFAULT_CACHE_TTL,
            negative_cache_ttl: DEFAULT_NEGATIVE_CACHE_TTL,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            negative_cache_capacity: DEFAULT_NEGATIVE_CACHE_CAPACITY,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.inner.store
    }

    /// The positive cache's TTL: the longest a revocation from elsewhere takes to be seen.
    pub fn cache_ttl(&self) -> Duration {
        self.inner.cache_ttl
    }

    /// How many verified keys are cached now (after pending cache maintenance runs); never
    /// more than the configured capacity.
    pub fn cached_keys(&self) -> u64 {
        self.inner.positive.as_ref().map_or(0, TtlCache::len)
    }

    /// How many refused secrets are remembered now (after pending cache maintenance runs);
    /// never more than the configured negative capacity.
    pub fn cached_rejections(&self) -> u64 {
        self.inner.negative.as_ref().map_or(0, TtlCache::len)
    }

    /// Issues a key in the store; returns its secret once.
    pub async fn issue(&self, spec: KeySpec) -> Result<IssuedKey, StoreError> {
        let issued = issue(&*self.inner.store, spec).await?;
        if let Some(negative) = &self.inner.negative {
            negative.remove(&issued.record.secret_hash);
        }
        Ok(issued)
    }

    /// Revokes a key and evicts it from this verifier's cache at once. `None` for an unknown id.
    pub async fn revoke(&self, id: &str, reason: Option<&str>) -> Result<Option<KeyRecord>, StoreError> {
        // Evicted after the store's change, not before (`Inner::evict` counts the revocation):
        // a lookup that read the store before the change then sees the count move.
        let record = self.inner.store.revoke(id, reason, now_unix()).await;
        match &record {
            Ok(Some(record)) => {
                self.inner.evict(&record.secret_hash);
                self.inner.remember_refusal(record.secret_hash, InvalidReason::Revoked);
            }
            // The store may have made the change before failing: no lookup caches across it.
            Err(_) => self.inner.count_revocation(),
            Ok(None) => {}
        }
        record
    }

    /// Verifies a secret of either kind (what [`Verifier::verify`] does once the type is known).
    pub async fn verify_secret(&self, secret: &str) -> Result<Auth, VerifyError> {
        let kind = check_secret(secret)?;
        self.verify_kind(secret, kind).await
    }

    async fn verify_kind(&self, secret: &str, kind: KeyKind) -> Result<Auth, VerifyError> {
        if !self.inner.listener_started.load(Ordering::Relaxed) {
            self.start_listener();
        }
        let key = self.inner.cache_key(secret.as_bytes());
        let now = CoarseInstant::now();
        if let Some(answer) = self.cached_key(key, kind, now) {
            return answer;
        }
        let hash = SecretHash::of(secret);
        if let Some(refused) = self.remembered_refusal(&hash, now) {
            return refused;
        }
        // Concurrent misses for one secret (a hot key whose entry just expired, a burst from a
        // new client) share one store query.
        let flight = InFlight::join(&self.inner, hash);
        flight.cell.get_or_init(|| self.look_up(key, hash, kind)).await.clone()
    }

    /// How many store lookups are in flight now (one per secret, however many requests wait
    /// for it). For diagnostics and tests.
    pub fn lookups_in_flight(&self) -> usize {
        self.inner.lock_in_flight().len()
    }

    /// The store lookup of a secret that neither cache knows, and what the caches learn from it.
    async fn look_up(&self, key: CacheKey, hash: SecretHash, kind: KeyKind) -> Result<Auth, VerifyError> {
        let generation = self.inner.hot.revocations.load(Ordering::SeqCst);
        let record = self.inner.store.find_by_hash(&hash).await.map_err(|e| {
            tracing::warn!(target: "tokengate::keys", store = self.inner.store.name(), error = %e, "key store lookup failed");
            VerifyError::unavailable(e.to_string())
        })?;
        let Some(record) = record.filter(|r| r.secret_hash.ct_eq(&hash)) else {
            self.inner.remember_refusal(hash, InvalidReason::UnknownToken);
            return Err(InvalidReason::UnknownToken.into());
        };
        if let Err(reason) = record.check_usable_at(now_unix()) {
            self.inner.remember_refusal(hash, reason);
            return Err(reason.into());
        }
        if record.kind != kind {
            // The secret's prefix and the stored kind disagree: never accept it as either.
            return Err(InvalidReason::WrongType.into());
        }
        let auth = Auth::new(record.to_auth_info());
        let now = CoarseInstant::now();
        let record_at = self.record_use(&auth, now);
        // Cached only if no revocation was counted since the store was read. A revocation
        // counts after its change is in the store, then evicts: one counted before the check
        // below keeps the key out; one counted after the insert finds and evicts it; one
        // counted in between is caught by the second check, which removes the entry and counts
        // once more: a request on another thread may have copied the entry into its front in
        // the meantime, under the revocation's count, and this count voids that copy.
        if self.inner.hot.revocations.load(Ordering::SeqCst) == generation
            && let Some(positive) = &self.inner.positive
        {
            #[cfg(test)]
            tests::hook(tests::Point::LookUpBeforeInsert);
            positive.insert(
                key,
                CachedKey {
                    auth: auth.clone(),
                    hash,
                    record_at,
                    own_auth: false,
                },
                self.inner.cache_ttl,
            );
            #[cfg(test)]
            tests::hook(tests::Point::LookUpAfterInsert);
            if self.inner.hot.revocations.load(Ordering::SeqCst) != generation {
                positive.remove(&key);
                self.inner.count_revocation();
            }
        }
        Ok(auth)
    }

    /// The cached key for a secret, if there is one: the hot path of every request that
    /// reuses a key, with no store call and no future. `now` is the one clock read of the
    /// request: the cache's deadline and `last_used_at` both use it.
    ///
    /// This thread's [`front`] first, then the shared cache, whose answer the front then
    /// remembers. The revocation count is read before either: an entry the front keeps under
    /// it was read from the shared cache before any revocation counted later.
    fn cached_key(&self, key: CacheKey, kind: KeyKind, now: CoarseInstant) -> Option<Result<Auth, VerifyError>> {
        let generation = self.inner.hot.revocations.load(Ordering::SeqCst);
        let owner = self.inner.hot.id;
        let remembered = front::answer(owner, key, generation, now, |cached| {
            match self.check_cached(cached, key, kind) {
                Ok(()) => {
                    cached.unshare();
                    self.note_use(cached, now);
                    Use::Keep(Ok(cached.auth.clone()))
                }
                Err(refused) => Use::Drop(Err(refused)),
            }
        });
        if remembered.is_some() {
            return remembered;
        }
        // The front holds nothing when the shared cache is off.
        let positive = self.inner.positive.as_ref()?;
        let (mut cached, until) = positive.get_entry_at(&key, now)?;
        if let Err(refused) = self.check_cached(&cached, key, kind) {
            return Some(Err(refused));
        }
        // The entry keeps its deadline, and is only replaced if still there (never brought
        // back after an eviction: a revocation wins).
        if self.note_use(&mut cached, now) {
            positive.replace(key, cached.clone(), until);
        }
        let auth = cached.auth.clone();
        front::fill(owner, key, generation, until, cached);
        Some(Ok(auth))
    }

    /// A refusal remembered for a secret's hash (unknown, revoked, expired).
    fn remembered_refusal(&self, hash: &SecretHash, now: CoarseInstant) -> Option<Result<Auth, VerifyError>> {
        let reason = self.inner.negative.as_ref()?.get_at(hash, now)?;
        Some(Err(VerifyError::Invalid(reason)))
    }

    /// The kind a credential's type calls for: only API keys and M2M tokens are verified here.
    fn expected_kind(credential: &Credential<'_>) -> Result<KeyKind, VerifyError> {
        KeyKind::from_token_type(credential.token_type()).ok_or_else(|| {
            VerifyError::Misconfigured(format!(
                "the key verifier was configured for {} tokens; it verifies only api_key and m2m_token",
                credential.token_type()
            ))
        })
    }

    /// Checks a credential's kind and checksum: what both the cached and the full path do first.
    fn check_credential(credential: &Credential<'_>) -> Result<KeyKind, VerifyError> {
        let expected = KeyVerifier::expected_kind(credential)?;
        KeyVerifier::check_secret_of(credential.token(), expected)
    }

    /// The secret's shape and checksum, and a prefix of the kind expected.
    fn check_secret_of(secret: &str, expected: KeyKind) -> Result<KeyKind, VerifyError> {
        match check_secret(secret)? {
            kind if kind == expected => Ok(kind),
            _ => Err(InvalidReason::WrongType.into()),
        }
    }

    /// What a cached key must still pass: the kind the route's type calls for, and its own
    /// expiry (an expired key is evicted).
    fn check_cached(&self, cached: &CachedKey, key: CacheKey, kind: KeyKind) -> Result<(), VerifyError> {
        if cached.auth.token_type != kind.token_type() {
            return Err(InvalidReason::WrongType.into());
        }
        // The wall clock is read only for keys that expire.
        if let Some(exp) = cached.auth.expiration
            && exp <= now_unix()
        {
            self.inner.evict_entry(key, &cached.hash);
            return Err(InvalidReason::Expired.into());
        }
        Ok(())
    }

    /// Notes a use of a cached key if its time has come (a hot key is recorded at most once a
    /// second, not on every request); whether it did, so the caller can keep the new time.
    fn note_use(&self, cached: &mut CachedKey, now: CoarseInstant) -> bool {
        if now < cached.record_at {
            return false;
        }
        cached.record_at = self.record_use(&cached.auth, now);
        true
    }

    /// Notes a use of `auth`'s key for the next `last_used_at` write; returns when the next
    /// use is worth recording (the end of this use's tick).
    fn record_use(&self, auth: &Auth, now: CoarseInstant) -> CoarseInstant {
        let tick = self.inner.tick(now);
        if let Some(id) = &auth.id {
            let mut pending = self.inner.lock_pending();
            let latest = pending.entry(id.clone()).or_insert(tick);
            *latest = (*latest).max(tick);
        }
        self.start_flusher();
        self.inner.tick_end(tick)
    }

    /// Writes pending `last_used_at` times now; returns how many keys were written. On a
    /// store failure they stay pending for the next flush.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        self.inner.flush().await
    }

    /// Stops the background flusher and writes what is pending. Call it on graceful shutdown.
    /// Verification keeps working afterwards, but `last_used_at` is then only written by
    /// explicit [`flush`](Self::flush) calls.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        if !self.inner.stopped.swap(true, Ordering::SeqCst) {
            self.inner.stop.notify_one();
        }
        self.inner.flush().await.map(drop)
    }

    /// Evicts one secret's cached result, e.g. on a revocation notice from another instance.
    ///
    /// The cache of verified keys is keyed by a SipHash of the secret, not by this SHA-256, so
    /// this visits every cached key (up to the cache's capacity, 100 000 by default): a cost
    /// for rare events such as revocations, not for each request. Notices that arrive together
    /// are evicted in one visit.
    pub fn evict(&self, hash: &SecretHash) {
        self.inner.evict(hash);
    }

    /// Evicts every cached result (positive and negative).
    pub fn clear_cache(&self) {
        self.inner.evict_all();
    }

    /// Subscribes to the store's revocation notices (if it has any) and evicts what they name.
    /// Needs a Tokio runtime: without one (a verifier built outside it), the first
    /// verification starts it.
    fn start_listener(&self) {
        if self.inner.listener_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.listener_started.store(false, Ordering::SeqCst);
            return;
        };
        let Some(mut notices) = self.inner.store.revocation_notices() else {
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            use tokio::sync::broadcast::error::{RecvError, TryRecvError};
            loop {
                let notice = notices.recv().await;
                // No strong reference while waiting: a dropped verifier ends the task.
                let Some(inner) = weak.upgrade() else { return };
                let mut revoked = match notice {
                    Ok(RevocationNotice::Revoked(hash)) => HashSet::from([hash]),
                    Ok(RevocationNotice::Resync) | Err(RecvError::Lagged(_)) => {
                        inner.evict_all();
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                // The notices already waiting (a bulk revocation elsewhere) are evicted in one
                // pass over the cache.
                let mut resync = false;
                loop {
                    match notices.try_recv() {
                        Ok(RevocationNotice::Revoked(hash)) => {
                            revoked.insert(hash);
                        }
                        Ok(RevocationNotice::Resync) | Err(TryRecvError::Lagged(_)) => resync = true,
                        Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                    }
                }
                if resync {
                    inner.evict_all();
                } else {
                    inner.evict_many(&revoked);
                    tracing::debug!(target: "tokengate::keys", keys = revoked.len(), "evicted keys revoked by another instance");
                }
            }
        });
    }

    fn start_flusher(&self) {
        if self.inner.stopped.load(Ordering::Relaxed) || self.inner.flusher_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.flusher_started.store(false, Ordering::SeqCst);
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let stop = Arc::clone(&self.inner.stop);
        let interval = self.inner.flush_interval;
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                // No strong reference while waiting: a dropped verifier ends the task.
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = stop.notified() => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = inner.flush().await {
                    tracing::warn!(target: "tokengate::keys", error = %e, "could not write last_used_at; will retry");
                }
            }
        });
    }
}

impl Inner {
    /// Whole seconds since the verifier was built, plus one (zero means never).
    fn tick(&self, now: CoarseInstant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs().saturating_add(1)
    }

    /// The first instant of the tick after `tick`: `tick(i) > tick` exactly when
    /// `i >= tick_end(tick)`.
    fn tick_end(&self, tick: u64) -> CoarseInstant {
        // Past the clock's range (a century away), every later use is recorded: harmless.
        self.epoch.checked_add(Duration::from_secs(tick)).unwrap_or(self.epoch)
    }

    /// The key the cache of verified keys files `secret` under: a function of its bytes
    /// alone, so bytes not yet validated can be looked up too ([`Verifier::recall_opaque`]).
    fn cache_key(&self, secret: &[u8]) -> CacheKey {
        let [k0, k1] = self.hot.sip_key;
        let hash = SipHasher24::new_with_keys(k0, k1).hash(secret);
        CacheKey {
            h1: hash.h1,
            h2: hash.h2,
        }
    }

    /// Forgets everything cached about the secret with this SHA-256. The cache of verified
    /// keys is keyed by another hash ([`CacheKey`]), so this looks at each of its entries: a
    /// revocation's cost, not a request's.
    fn evict(&self, hash: &SecretHash) {
        self.evict_many(&HashSet::from([*hash]));
    }

    /// [`evict`](Self::evict) for several secrets, in one pass over the cache.
    fn evict_many(&self, hashes: &HashSet<SecretHash>) {
        self.count_revocation();
        #[cfg(test)]
        tests::hook(tests::Point::EvictionBetweenCounts);
        self.forget(hashes, |positive| {
            positive.remove_where(|cached| hashes.contains(&cached.hash))
        });
        self.count_revocation();
    }

    /// [`evict`](Self::evict) for an expired key whose entry is at hand: no scan, and nothing
    /// to count (the store holds no change a lookup could race with).
    fn evict_entry(&self, key: CacheKey, hash: &SecretHash) {
        self.forget([hash], |positive| positive.remove(&key));
    }

    /// Drops what the caches and the lookups in flight hold for `hashes`; `positive` removes
    /// their entries from the cache of verified keys.
    fn forget<'h>(
        &self,
        hashes: impl IntoIterator<Item = &'h SecretHash> + Copy,
        positive: impl FnOnce(&TtlCache<CacheKey, CachedKey, CoarseInstant>),
    ) {
        // A request that starts after this must not join a lookup that read the store before.
        let mut in_flight = self.lock_in_flight();
        for hash in hashes {
            in_flight.remove(hash);
        }
        drop(in_flight);
        if let Some(cache) = &self.positive {
            positive(cache);
        }
        if let Some(negative) = &self.negative {
            for hash in hashes {
                negative.remove(hash);
            }
        }
    }

    fn evict_all(&self) {
        self.count_revocation();
        #[cfg(test)]
        tests::hook(tests::Point::EvictionBetweenCounts);
        self.lock_in_flight().clear();
        if let Some(positive) = &self.positive {
            positive.clear();
        }
        if let Some(negative) = &self.negative {
            negative.clear();
        }
        self.count_revocation();
    }

    /// Notes that the store changed under the caches. An eviction counts twice:
    /// - before it removes anything, so a store lookup that read the store earlier does not
    ///   cache its answer (see `look_up`);
    /// - after, so no thread's [`front`] answers from an entry it copied out of the shared
    ///   cache before the removal: every such entry holds an older count, and one filled with
    ///   this count was read after the removal.
    ///
    /// Also counted: a failed `revoke` (the store may have changed), and a `look_up` that
    /// removes what it inserted because a revocation raced with it. Not counted: the eviction
    /// of an expired key, which every hit checks for itself.
    fn count_revocation(&self) {
        self.hot.revocations.fetch_add(1, Ordering::SeqCst);
    }

    fn remember_refusal(&self, hash: SecretHash, reason: InvalidReason) {
        if let Some(negative) = &self.negative {
            negative.insert(hash, reason, self.negative_cache_ttl);
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<SecretHash, Lookup>> {
        self.in_flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn flush(&self) -> Result<usize, StoreError> {
        let pending = std::mem::take(&mut *self.lock_pending());
        if pending.is_empty() {
            return Ok(0);
        }
        // Ticks to Unix times: a use `n` seconds of monotonic time ago happened `n` seconds
        // before the wall clock's now.
        let (tick_now, unix_now) = (self.tick(CoarseInstant::now()), now_unix());
        let uses: Vec<LastUsed> = pending
            .iter()
            .map(|(id, tick)| {
                let ago = tick_now.saturating_sub(*tick);
                LastUsed {
                    id: id.clone(),
                    at: unix_now.saturating_sub(i64::try_from(ago).unwrap_or(i64::MAX)),
                }
            })
            .collect();
        match self.store.record_last_used(&uses).await {
            Ok(()) => Ok(uses.len()),
            Err(e) => {
                let mut requeue = self.lock_pending();
                for (id, tick) in pending {
                    let latest = requeue.entry(id).or_insert(tick);
                    *latest = (*latest).max(tick);
                }
                Err(e)
            }
        }
    }
}

impl fmt::Debug for KeyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVerifier")
            .field("store", &self.inner.store.name())
            .field("cache_ttl", &self.inner.cache_ttl)
            .field("cached", &self.inner.positive.as_ref().map_or(0, TtlCache::raw_len))
            .finish_non_exhaustive()
    }
}

impl Verifier for KeyVerifier {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        Box::pin(async move {
            let kind = KeyVerifier::check_credential(&credential)?;
            self.verify_kind(credential.token(), kind).await
        })
    }

    /// A cached key first: a hit means this exact secret (same keyed SipHash) passed its
    /// checksum when it was first verified, so a reused key pays a hash and a lookup, no
    /// checksum and no SHA-256. On a miss the checksum runs before anything else is consulted,
    /// so a forged or mistyped secret never reaches the negative cache or the store.
    fn verify_cached(&self, credential: &Credential<'_>) -> Option<Result<Auth, VerifyError>> {
        let expected = match KeyVerifier::expected_kind(credential) {
            Ok(kind) => kind,
            Err(misconfigured) => return Some(Err(misconfigured)),
        };
        let now = CoarseInstant::now();
        if let Some(answer) = self.cached_key(self.inner.cache_key(credential.token().as_bytes()), expected, now) {
            return Some(answer);
        }
        if let Err(refused) = KeyVerifier::check_secret_of(credential.token(), expected) {
            return Some(Err(refused));
        }
        self.remembered_refusal(&SecretHash::of(credential.token()), now)
    }

    /// A cached key looked up by the raw bytes of the header: an entry means these bytes are a
    /// secret this verifier accepted (128 bits of a keyed SipHash match), so they passed
    /// every check then, and the answer is the one [`verify_cached`](Verifier::verify_cached)
    /// gives them (the identity, `token-expired`, or `token-type-mismatch` for the other
    /// kind). A miss, bytes of another length than a key's, or a type this verifier does not
    /// verify is `None`: the gate then validates the token and asks `verify_cached`.
    fn recall_opaque(&self, token: &[u8], token_type: TokenType) -> Option<Result<Auth, VerifyError>> {
        let kind = KeyKind::from_token_type(token_type)?;
        // The length every secret of the kind has: anything else is no key, and costs no hash.
        if token.len() != kind.prefix().len() + BODY_LEN {
            return None;
        }
        let now = CoarseInstant::now();
        self.cached_key(self.inner.cache_key(token), kind, now)
    }

    fn name(&self) -> &'static str {
        "api-key-store"
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::mpsc;

    use super::*;
    use crate::TokenType;
    use crate::keys::SqliteKeyStore;

    /// Where the code under test lets a test run something in the middle of it.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub(super) enum Point {
        /// An eviction, between its first count and the removal from the shared cache.
        EvictionBetweenCounts,
        /// A store lookup, after its first check of the count, before its insert.
        LookUpBeforeInsert,
        /// A store lookup, after its insert, before its second check of the count.
        LookUpAfterInsert,
    }

    /// What a test runs at a point.
    type Hook = Box<dyn FnOnce()>;

    thread_local! {
        /// What this thread runs the next time it reaches each point.
        static HOOKS: RefCell<Vec<(Point, Hook)>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn hook(point: Point) {
        let run = HOOKS.with(|hooks| {
            let mut hooks = hooks.borrow_mut();
            let at = hooks.iter().position(|(p, _)| *p == point)?;
            Some(hooks.remove(at).1)
        });
        if let Some(run) = run {
            run();
        }
    }

    fn at(point: Point, run: impl FnOnce() + 'static) {
        HOOKS.with(|hooks| hooks.borrow_mut().push((point, Box::new(run))));
    }

    async fn verifier_with_key(dir: &tempfile::TempDir) -> (KeyVerifier, IssuedKey) {
        let store = Arc::new(SqliteKeyStore::open(dir.path().join("keys.db")).await.unwrap());
        let verifier = KeyVerifier::new(store);
        let key = verifier.issue(KeySpec::api_key("user_1", "ci")).await.unwrap();
        (verifier, key)
    }

    fn answer(verifier: &KeyVerifier, secret: &str) -> Option<Result<Auth, VerifyError>> {
        verifier.verify_cached(&Credential::new_for_tests(secret, TokenType::ApiKey))
    }

    /// The front is per thread: it answers for a key this thread read from the shared cache,
    /// even once the shared cache lost it (to its capacity, say); another thread asks the
    /// shared cache.
    #[tokio::test]
    async fn a_thread_answers_from_its_own_front() {
        let dir = tempfile::tempdir().unwrap();
        let (verifier, key) = verifier_with_key(&dir).await;
        let secret = key.secret.expose();
        verifier
            .verify(Credential::new_for_tests(secret, TokenType::ApiKey))
            .await
            .unwrap();
        assert!(matches!(answer(&verifier, secret), Some(Ok(_))), "a shared hit");

        let shared = verifier.inner.positive.as_ref().unwrap();
        shared.remove(&verifier.inner.cache_key(secret.as_bytes()));
        let auth = answer(&verifier, secret).unwrap().unwrap();
        assert_eq!(auth.id.as_deref(), Some(key.record.id.as_str()));
        std::thread::scope(|threads| {
            threads.spawn(|| assert!(answer(&verifier, secret).is_none(), "another thread's front"));
        });
    }

    /// A key used again on a thread gets an identity of that thread's own: equal to the
    /// shared cache's, another allocation (whose reference count no other thread writes),
    /// made once and used by every later request there.
    #[tokio::test]
    async fn a_thread_answers_with_its_own_copy_of_a_reused_keys_identity() {
        let dir = tempfile::tempdir().unwrap();
        let (verifier, key) = verifier_with_key(&dir).await;
        let secret = key.secret.expose();
        let looked_up = verifier
            .verify(Credential::new_for_tests(secret, TokenType::ApiKey))
            .await
            .unwrap();
        let same = |a: &Auth, b: &Auth| Arc::ptr_eq(a.info(), b.info());
        let first = answer(&verifier, secret).unwrap().unwrap();
        assert!(same(&first, &looked_up), "the shared cache's identity");
        let second = answer(&verifier, secret).unwrap().unwrap();
        assert!(!same(&second, &looked_up), "still the shared identity");
        assert_eq!(second, looked_up);
        for _ in 0..3 {
            assert!(
                same(&answer(&verifier, secret).unwrap().unwrap(), &second),
                "copied again"
            );
        }
        std::thread::scope(|threads| {
            threads.spawn(|| {
                let elsewhere = answer(&verifier, secret).unwrap().unwrap();
                assert!(same(&elsewhere, &looked_up), "another thread's first use");
            });
        });
    }

    /// A request that reads the shared cache after an eviction counted but before it removed
    /// the key copies the key into its front; the count that follows the removal keeps that
    /// copy from answering. For one key (`evict`, a revocation or a notice) and for all
    /// (`clear_cache`, a resync).
    #[tokio::test]
    async fn a_key_read_while_it_is_evicted_is_not_answered_from_the_front() {
        let dir = tempfile::tempdir().unwrap();
        let (verifier, key) = verifier_with_key(&dir).await;
        let secret = key.secret.expose().to_owned();
        for eviction in ["evict", "clear_cache"] {
            verifier
                .verify(Credential::new_for_tests(&secret, TokenType::ApiKey))
                .await
                .unwrap();
            let (sender, answered) = mpsc::channel();
            let reader = (verifier.clone(), secret.clone());
            at(Point::EvictionBetweenCounts, move || {
                let _ = sender.send(answer(&reader.0, &reader.1));
            });
            if eviction == "evict" {
                verifier.evict(&key.record.secret_hash);
            } else {
                verifier.clear_cache();
            }
            let during = answered.try_recv().expect("the reader ran inside the eviction");
            assert!(
                matches!(during, Some(Ok(_))),
                "{eviction}: the key was still in the shared cache"
            );
            assert!(
                answer(&verifier, &secret).is_none(),
                "{eviction}: answered from a copy read during the eviction"
            );
        }
    }

    /// A store lookup that read the key before its revocation and inserts it after the
    /// eviction finds the count moved and removes its entry. A request that copied the entry
    /// into its front in between, under the revocation's count, must not be answered from it.
    #[tokio::test]
    async fn a_key_a_racing_lookup_cached_for_a_moment_is_not_answered_from_the_front() {
        let dir = tempfile::tempdir().unwrap();
        let (verifier, key) = verifier_with_key(&dir).await;
        let secret = key.secret.expose().to_owned();
        let hash = key.record.secret_hash;
        let evicting = verifier.clone();
        at(Point::LookUpBeforeInsert, move || evicting.evict(&hash));
        let (sender, answered) = mpsc::channel();
        let reader = (verifier.clone(), secret.clone());
        at(Point::LookUpAfterInsert, move || {
            let _ = sender.send(answer(&reader.0, &reader.1));
        });

        // Read from the store before the eviction: either answer is fair for this request.
        let _ = verifier
            .verify(Credential::new_for_tests(&secret, TokenType::ApiKey))
            .await;
        let during = answered.try_recv().expect("the reader ran inside the lookup");
        assert!(
            matches!(during, Some(Ok(_))),
            "the lookup's entry was in the shared cache"
        );
        assert_eq!(verifier.cached_keys(), 0, "the lookup removed its entry");
        assert!(
            answer(&verifier, &secret).is_none(),
            "answered from a copy of an entry the lookup removed"
        );
    }

    /// Two verifiers whose cache keys are alike (the same SipHash key) never answer from each
    /// other's entries in a thread's front: each entry belongs to one verifier.
    #[tokio::test]
    async fn entries_belong_to_their_verifier() {
        let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let open = |dir: &tempfile::TempDir| SqliteKeyStore::open(dir.path().join("keys.db"));
        let seed = Some([7u8; 16]);
        let verifier = KeyVerifier::builder(Arc::new(open(&dir).await.unwrap())).build_cache(seed);
        let other = KeyVerifier::builder(Arc::new(open(&other_dir).await.unwrap())).build_cache(seed);
        let key = verifier.issue(KeySpec::api_key("user_1", "ci")).await.unwrap();
        let secret = key.secret.expose();
        assert_eq!(
            verifier.inner.cache_key(secret.as_bytes()),
            other.inner.cache_key(secret.as_bytes())
        );
        verifier
            .verify(Credential::new_for_tests(secret, TokenType::ApiKey))
            .await
            .unwrap();
        for _ in 0..2 {
            assert!(answer(&verifier, secret).unwrap().is_ok());
        }

        assert!(
            answer(&other, secret).is_none(),
            "answered from another verifier's entry"
        );
        assert_eq!(
            other.verify(Credential::new_for_tests(secret, TokenType::ApiKey)).await,
            Err(VerifyError::Invalid(InvalidReason::UnknownToken))
        );
        assert!(answer(&verifier, secret).unwrap().is_ok());
    }

    #[tokio::test]
    async fn without_randomness_the_key_cache_is_off_and_every_request_asks_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteKeyStore::open(dir.path().join("keys.db")).await.unwrap());
        let verifier = KeyVerifier::builder(store).build_cache(None);
        let key = verifier.issue(KeySpec::api_key("user_1", "ci")).await.unwrap();
        let credential = || Credential::new_for_tests(key.secret.expose(), TokenType::ApiKey);
        for _ in 0..3 {
            assert_eq!(
                verifier.verify(credential()).await.unwrap().subject.as_deref(),
                Some("user_1")
            );
            assert!(
                verifier.verify_cached(&credential()).is_none(),
                "answered from a cache that is off"
            );
        }
        assert_eq!(verifier.cached_keys(), 0);
        verifier.revoke(&key.record.id, None).await.unwrap();
        assert_eq!(
            verifier.verify(credential()).await,
            Err(VerifyError::Invalid(InvalidReason::Revoked))
        );
    }
}
