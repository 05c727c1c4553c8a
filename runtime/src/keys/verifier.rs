//! The key verifier, for API keys and opaque M2M tokens: checksum → SHA-256 → cache of
//! verified keys → cache of refusals → store.
//!
//! - A secret whose shape or checksum is wrong is refused (`bad-checksum`, `malformed-token`)
//!   before anything is looked up. Its SHA-256, the one hash of the request, then keys
//!   everything else: the caches (`key_cache`), the lookups in flight and
//!   the store.
//! - Verified keys are cached for [`DEFAULT_CACHE_TTL`] (30 s, configurable). **That TTL bounds
//!   how long a revocation made elsewhere (the CLI, another process) takes to be seen** (plus
//!   a tick of the coarse clock the key caches read, a few milliseconds); a revocation through
//!   [`KeyVerifier::revoke`] evicts the key at once, and a lookup that read the store just
//!   before it never caches the key. Unknown, revoked and expired secrets are cached for
//!   [`DEFAULT_NEGATIVE_CACHE_TTL`] (5 s).
//! - Concurrent misses for one secret share one store query
//!   (`single_flight`).
//! - Store lookups for secrets neither cache knows are bounded:
//!   [`DEFAULT_MAX_LOOKUPS_IN_FLIGHT`] at once, [`DEFAULT_MAX_LOOKUPS_IN_FLIGHT_PER_CLIENT`] of
//!   them for one client ([`Credential::client`]). The checksum is public, so a flood of
//!   forged checksum-valid secrets reaches this point; over the bound such a secret is
//!   answered `503` with `Retry-After` at once ([`VerifyError::Busy`]) instead of queueing
//!   the store, while cached keys never wait for it and other clients keep their share.
//! - Over a store that announces revocations ([`KeyStore::revocation_notices`]: the
//!   PostgreSQL store), the verifier listens from the moment it is built and evicts a key
//!   revoked by any process within about a second (`revocations`); the
//!   TTL is then only the fallback while the notification connection is down.
//! - `last_used_at` is written in batches by a background task every
//!   [`DEFAULT_FLUSH_INTERVAL`] (`usage`); call [`KeyVerifier::shutdown`] on
//!   graceful shutdown so the last batch is written.
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

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::auth::Auth;
use crate::budget::{InFlight, RefusalLog};
use crate::cache::CoarseInstant;
use crate::net::ClientKey;
use crate::rejection::InvalidReason;
use crate::telemetry::{self, Backend, Cache};
use crate::verifier::sealed::Seal;
use crate::verifier::{Credential, Verifier, VerifyError, VerifyFuture};

use super::change::{Changed, KeyChange, KeyEvent};
use super::key_cache::{CachedKey, KeyCache, KeyCacheConfig};
use super::revocations::{Eviction, spawn_listener};
use super::secret::{KeyKind, SecretHash, check_secret};
use super::single_flight::SingleFlight;
use super::store::{IssuedKey, KeyRecord, KeySpec, KeyStore, StoreError, issue, now_unix};
use super::usage::UsageRecorder;

/// How long a verified key is trusted without asking the store again; the longest a
/// revocation made in another process takes to be seen.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
/// How long an unknown, revoked or expired secret is remembered.
pub const DEFAULT_NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(5);
/// The longest either cache may keep a key ([`KeyVerifierBuilder::cache_ttl`],
/// [`KeyVerifierBuilder::negative_cache_ttl`]): one day. A revocation made in another process
/// can go unseen that long (on SQLite; on PostgreSQL while its notices are down).
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(86_400);
/// How often `last_used_at` times are written.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// How many verified keys the cache holds.
pub const DEFAULT_CACHE_CAPACITY: u64 = 100_000;
/// How many refused secrets (unknown, revoked, expired) the negative cache holds.
pub const DEFAULT_NEGATIVE_CACHE_CAPACITY: u64 = 10_000;
/// How many store lookups for secrets neither cache knows may be in flight at once: four
/// times the SQLite store's pool (8 connections), three times PostgreSQL's default (10), so
/// the database stays busy while a lookup waits for a connection for at most a few queries.
pub const DEFAULT_MAX_LOOKUPS_IN_FLIGHT: usize = 32;
/// How many of those one client may have: a quarter, so one client's flood leaves the other
/// three quarters to everyone else.
pub const DEFAULT_MAX_LOOKUPS_IN_FLIGHT_PER_CLIENT: usize = 8;
/// The `Retry-After` of a lookup refused by those bounds.
pub const LOOKUP_BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

struct Inner {
    store: Arc<dyn KeyStore>,
    cache: KeyCache,
    lookups: SingleFlight,
    /// The bound on the store lookups in flight.
    in_flight: InFlight,
    refusals: RefusalLog,
    usage: Arc<UsageRecorder>,
    /// Whether the revocation-notice task runs (or the store has no notices).
    listening: AtomicBool,
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
    cache: KeyCacheConfig,
    flush_interval: Duration,
    max_lookups: usize,
    max_lookups_per_client: Option<usize>,
}

impl fmt::Debug for KeyVerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVerifierBuilder")
            .field("store", &self.store.name())
            .field("cache", &self.cache)
            .field("flush_interval", &self.flush_interval)
            .field("max_lookups", &self.max_lookups)
            .field("max_lookups_per_client", &self.max_lookups_per_client)
            .finish()
    }
}

impl KeyVerifierBuilder {
    /// How long a verified key is cached (default 30 s, at most [`MAX_CACHE_TTL`]: [`build`]
    /// refuses more). Bounds how long a revocation made in another process takes to be seen. Zero
    /// disables the cache.
    ///
    /// [`build`]: KeyVerifierBuilder::build
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache.verified_ttl = ttl;
        self
    }

    /// How long an unknown, revoked or expired secret is remembered (default 5 s, at most
    /// [`MAX_CACHE_TTL`]). Zero disables it.
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache.refused_ttl = ttl;
        self
    }

    /// How many verified keys are cached (default 100 000). Each costs about 0.55 KB: its
    /// `Auth` and the cache's entry (BENCHMARKS.md, section 8).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache.verified_capacity = capacity;
        self
    }

    /// How many refused secrets are remembered (default 10 000). Bounds the memory a flood
    /// of distinct random secrets can take.
    pub fn negative_cache_capacity(mut self, capacity: u64) -> Self {
        self.cache.refused_capacity = capacity;
        self
    }

    /// How often `last_used_at` is written (default 5 s).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// How many store lookups for secrets neither cache knows may be in flight at once
    /// (default [`DEFAULT_MAX_LOOKUPS_IN_FLIGHT`]); more are answered `503` with
    /// `Retry-After`. Cached keys never count.
    pub fn max_lookups_in_flight(mut self, max: usize) -> Self {
        self.max_lookups = max;
        self
    }

    /// How many of those one client ([`Credential::client`]) may have (default
    /// [`DEFAULT_MAX_LOOKUPS_IN_FLIGHT_PER_CLIENT`]); `None` holds every client to the total
    /// alone.
    pub fn max_lookups_in_flight_per_client(mut self, max: Option<usize>) -> Self {
        self.max_lookups_per_client = max;
        self
    }

    /// Builds the verifier. Fails on a zero flush interval or lookup bound, or a cache TTL over
    /// [`MAX_CACHE_TTL`].
    pub fn build(self) -> Result<KeyVerifier, StoreError> {
        for (ttl, what, default) in [
            (self.cache.verified_ttl, "cache_ttl", DEFAULT_CACHE_TTL),
            (self.cache.refused_ttl, "negative_cache_ttl", DEFAULT_NEGATIVE_CACHE_TTL),
        ] {
            if ttl > MAX_CACHE_TTL {
                return Err(StoreError::InvalidConfig(format!(
                    "the key verifier's {what} of {ttl:?} is over the limit of {MAX_CACHE_TTL:?} (one day): a key \
                     cached that long would not be read again, so a revocation made elsewhere could go unseen as \
                     long; the default is {default:?}"
                )));
            }
        }
        if self.flush_interval.is_zero() {
            return Err(StoreError::InvalidConfig(
                "the key verifier's flush interval must be more than zero (e.g. 5 s)".into(),
            ));
        }
        if self.max_lookups == 0 {
            return Err(StoreError::InvalidConfig(format!(
                "max_lookups_in_flight must be at least 1 (the default is {DEFAULT_MAX_LOOKUPS_IN_FLIGHT}): \
                 with 0 no uncached key could ever be verified"
            )));
        }
        if let Some(share) = self.max_lookups_per_client
            && (share == 0 || share > self.max_lookups)
        {
            return Err(StoreError::InvalidConfig(format!(
                "max_lookups_in_flight_per_client must be between 1 and max_lookups_in_flight ({}), got {share}; \
                 use None to hold every client to the total alone",
                self.max_lookups
            )));
        }
        Ok(self.build_unchecked())
    }

    fn build_unchecked(self) -> KeyVerifier {
        let verifier = KeyVerifier {
            inner: Arc::new(Inner {
                usage: UsageRecorder::new(Arc::clone(&self.store), self.flush_interval),
                store: self.store,
                cache: KeyCache::new(self.cache),
                lookups: SingleFlight::default(),
                in_flight: InFlight::new(self.max_lookups, self.max_lookups_per_client),
                refusals: RefusalLog::new("key store", Backend::KeyStore),
                listening: AtomicBool::new(false),
            }),
        };
        verifier.listen();
        verifier
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
            cache: KeyCacheConfig {
                verified_ttl: DEFAULT_CACHE_TTL,
                verified_capacity: DEFAULT_CACHE_CAPACITY,
                refused_ttl: DEFAULT_NEGATIVE_CACHE_TTL,
                refused_capacity: DEFAULT_NEGATIVE_CACHE_CAPACITY,
            },
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            max_lookups: DEFAULT_MAX_LOOKUPS_IN_FLIGHT,
            max_lookups_per_client: Some(DEFAULT_MAX_LOOKUPS_IN_FLIGHT_PER_CLIENT),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.inner.store
    }

    /// The positive cache's TTL: the longest a revocation from elsewhere takes to be seen.
    pub fn cache_ttl(&self) -> Duration {
        self.inner.cache.verified_ttl()
    }

    /// How many verified keys are cached now (after pending cache maintenance runs); never
    /// more than the configured capacity.
    pub fn cached_keys(&self) -> u64 {
        self.inner.cache.verified_len()
    }

    /// How many refused secrets are remembered now (after pending cache maintenance runs);
    /// never more than the configured negative capacity.
    pub fn cached_rejections(&self) -> u64 {
        self.inner.cache.refused_len()
    }

    /// How many store lookups are in flight now (one per secret, however many requests wait
    /// for it). For diagnostics and tests.
    pub fn lookups_in_flight(&self) -> usize {
        self.inner.lookups.len()
    }

    /// Issues a key in the store; returns its secret once.
    pub async fn issue(&self, spec: KeySpec) -> Result<IssuedKey, StoreError> {
        let issued = issue(&*self.inner.store, spec).await?;
        self.inner.cache.remove_refusal(&issued.record.secret_hash);
        Ok(issued)
    }

    /// Revokes a key and evicts it from this verifier's cache at once. `None` for an unknown id.
    pub async fn revoke(&self, id: &str, reason: Option<&str>) -> Result<Option<KeyRecord>, StoreError> {
        // Evicted after the store's change, not before: a lookup that read the store before
        // the change then finds the eviction counted and does not cache the key.
        let record = self.inner.store.revoke(id, reason, now_unix()).await;
        match &record {
            Ok(Some(record)) => {
                self.inner.evict([&record.secret_hash]);
                self.inner
                    .cache
                    .insert_refusal(record.secret_hash, InvalidReason::Revoked);
            }
            // The store may have made the change before failing: no lookup caches across it.
            Err(_) => self.inner.evict([]),
            Ok(None) => {}
        }
        record
    }

    /// Applies `change` to the key `id` (see [`change`](super::change)) and forgets at once
    /// whatever this verifier cached of it; other instances on PostgreSQL hear of it within
    /// about a second, others within the cache TTL. `None` for an unknown id.
    pub async fn change(&self, id: &str, change: &KeyChange, actor: &str) -> Result<Option<Changed>, StoreError> {
        // As in `revoke`: evicted after the store's change.
        let changed = self.inner.store.change(id, change, actor, now_unix()).await;
        match &changed {
            Ok(Some(changed)) => {
                let before = &changed.before;
                let hashes: Vec<SecretHash> = [Some(before.secret_hash), before.previous_secret_hash]
                    .into_iter()
                    .flatten()
                    .collect();
                self.inner.evict(&hashes);
                if let Some(after) = &changed.after {
                    self.inner.cache.remove_refusal(&after.secret_hash);
                }
            }
            Err(_) => self.inner.evict([]),
            Ok(None) => {}
        }
        changed
    }

    /// Gives the key `id` a new secret, returned once; the current one keeps working for
    /// `grace` (zero: refused at once, `token-rotated`). `None` for an unknown id.
    pub async fn reroll(&self, id: &str, grace: Duration, actor: &str) -> Result<Option<IssuedKey>, StoreError> {
        let Some(current) = self.inner.store.get(id).await? else {
            return Ok(None);
        };
        let (change, secret) = super::change::reroll_of(current.kind, grace, now_unix())?;
        let changed = self.change(id, &change, actor).await?;
        Ok(changed.and_then(|c| c.after).map(|record| IssuedKey { record, secret }))
    }

    /// The audit trail of the key `id`, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<KeyEvent>, StoreError> {
        self.inner.store.history(id).await
    }

    /// How many more store lookups for unknown secrets may start now (of
    /// [`max_lookups_in_flight`](KeyVerifierBuilder::max_lookups_in_flight)). For diagnostics
    /// and tests.
    pub fn lookup_places_free(&self) -> usize {
        self.inner.in_flight.available()
    }

    /// Verifies a secret of either kind (what [`Verifier::verify`] does once the type is known).
    pub async fn verify_secret(&self, secret: &str) -> Result<Auth, VerifyError> {
        let kind = check_secret(secret)?;
        self.verify_kind(secret, kind, None).await
    }

    /// What [`Verifier::verify`] would answer for a credential, from memory alone: a cached
    /// key, a remembered refusal, or a secret refused for its shape or checksum. `None` when
    /// only the store can tell. Never waits: the gate asks it first on every request.
    pub fn verify_cached(&self, credential: &Credential<'_>) -> Option<Result<Auth, VerifyError>> {
        let kind = match KeyVerifier::check_credential(credential) {
            Ok(kind) => kind,
            Err(refused) => return Some(Err(refused)),
        };
        self.remembered(&SecretHash::of(credential.token()), kind, CoarseInstant::now())
    }

    async fn verify_kind(&self, secret: &str, kind: KeyKind, client: Option<ClientKey>) -> Result<Auth, VerifyError> {
        if !self.inner.listening.load(Ordering::Relaxed) {
            self.listen();
        }
        let hash = SecretHash::of(secret);
        if let Some(answer) = self.remembered(&hash, kind, CoarseInstant::now()) {
            return answer;
        }
        // Counted here, once per request that goes on to the store (the gate asked the caches
        // before, without counting a miss).
        telemetry::cache_lookup(Cache::VerifiedKeys, false);
        telemetry::cache_lookup(Cache::RefusedKeys, false);
        self.inner.lookups.run(hash, || self.look_up(hash, kind, client)).await
    }

    /// The answer the caches hold for a secret of `kind`: a verified key (still of that kind,
    /// unexpired), or a refusal.
    fn remembered(&self, hash: &SecretHash, kind: KeyKind, now: CoarseInstant) -> Option<Result<Auth, VerifyError>> {
        if let Some((mut cached, until)) = self.inner.cache.verified(hash, now) {
            telemetry::cache_lookup(Cache::VerifiedKeys, true);
            if let Err(refused) = self.check_cached(&cached, hash, kind) {
                return Some(Err(refused));
            }
            if now >= cached.record_at {
                cached.record_at = self.inner.usage.record(&cached.auth, now);
                self.inner.cache.replace(*hash, cached.clone(), until);
            }
            return Some(Ok(cached.auth));
        }
        let reason = self.inner.cache.refusal(hash, now)?;
        telemetry::cache_lookup(Cache::RefusedKeys, true);
        Some(Err(reason.into()))
    }

    /// The store lookup of a secret that neither cache knows, and what the caches learn from it.
    async fn look_up(&self, hash: SecretHash, kind: KeyKind, client: Option<ClientKey>) -> Result<Auth, VerifyError> {
        let _place = self.inner.in_flight.try_start(client).map_err(|over| {
            self.inner
                .refusals
                .refuse(over.describe("key-store lookups"), LOOKUP_BUSY_RETRY_AFTER)
        })?;
        let evictions = self.inner.cache.evictions();
        let store = &self.inner.store;
        let span = telemetry::store_span(store.name());
        let found = telemetry::backend_call(Backend::KeyStore, span, store.find_to_verify(&hash)).await;
        let record = found.map_err(|e| {
            tracing::warn!(target: "tokengate::keys", store = self.inner.store.name(), error = %e, "key store lookup failed");
            VerifyError::unavailable(e.to_string())
        })?;
        let Some(record) = record else {
            return Err(self.refuse(hash, InvalidReason::UnknownToken));
        };
        let now = now_unix();
        // `Some(deadline)` for the secret a reroll replaced, still in its grace period.
        let deadline = record
            .check_secret_at(&hash, now)
            .map_err(|reason| self.refuse(hash, reason))?;
        if record.kind != kind {
            // The secret's prefix and the stored kind disagree: never accept it as either.
            return Err(InvalidReason::WrongType.into());
        }
        let auth = Auth::new(record.into_auth_info());
        let record_at = self.inner.usage.record(&auth, CoarseInstant::now());
        let cached = CachedKey {
            auth: auth.clone(),
            record_at,
        };
        let ttl = deadline.map(|until| Duration::from_secs(u64::try_from(until - now).unwrap_or(0)));
        self.inner.cache.insert_verified(evictions, hash, cached, ttl);
        Ok(auth)
    }

    fn refuse(&self, hash: SecretHash, reason: InvalidReason) -> VerifyError {
        self.inner.cache.insert_refusal(hash, reason);
        reason.into()
    }

    /// Checks a credential's type and its secret's shape and checksum: what every path does
    /// first.
    fn check_credential(credential: &Credential<'_>) -> Result<KeyKind, VerifyError> {
        let expected = KeyKind::from_token_type(credential.token_type()).ok_or_else(|| {
            VerifyError::Misconfigured(format!(
                "the key verifier was configured for {} tokens; it verifies only api_key and m2m_token",
                credential.token_type()
            ))
        })?;
        match check_secret(credential.token())? {
            kind if kind == expected => Ok(kind),
            _ => Err(InvalidReason::WrongType.into()),
        }
    }

    /// What a cached key must still pass: the kind the route's type calls for, and its own
    /// expiry (an expired key is evicted).
    fn check_cached(&self, cached: &CachedKey, hash: &SecretHash, kind: KeyKind) -> Result<(), VerifyError> {
        if cached.auth.token_type != kind.token_type() {
            return Err(InvalidReason::WrongType.into());
        }
        // The wall clock is read only for keys that expire.
        if let Some(exp) = cached.auth.expiration
            && exp <= now_unix()
        {
            self.inner.evict([hash]);
            return Err(InvalidReason::Expired.into());
        }
        Ok(())
    }

    /// Writes pending `last_used_at` times now; returns how many keys were written. On a
    /// store failure they stay pending for the next flush.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        self.inner.usage.flush().await
    }

    /// Stops the background flusher and writes what is pending. Call it on graceful shutdown.
    /// Verification keeps working afterwards, but `last_used_at` is then only written by
    /// explicit [`flush`](Self::flush) calls.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        self.inner.usage.shutdown().await
    }

    /// Evicts one secret's cached result, e.g. on a revocation notice from another instance.
    pub fn evict(&self, hash: &SecretHash) {
        self.inner.evict([hash]);
    }

    /// Evicts every cached result (positive and negative).
    pub fn clear_cache(&self) {
        self.inner.evict_all();
    }

    /// Subscribes to the store's revocation notices (if it has any). Needs a Tokio runtime:
    /// without one (a verifier built outside it), the first verification starts it.
    fn listen(&self) {
        if self.inner.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.listening.store(false, Ordering::SeqCst);
            return;
        };
        if let Some(notices) = self.inner.store.revocation_notices() {
            spawn_listener(&runtime, notices, Arc::downgrade(&self.inner), Inner::on_notices);
        }
    }
}

impl Inner {
    /// Forgets what the caches and the lookups in flight hold for `hashes`, so that neither a
    /// later request nor a lookup that read the store before answers from it.
    fn evict<'h>(&self, hashes: impl IntoIterator<Item = &'h SecretHash> + Copy) {
        self.lookups.forget(hashes);
        self.cache.evict(hashes);
    }

    fn evict_all(&self) {
        self.lookups.clear();
        self.cache.clear();
    }

    fn on_notices(&self, eviction: Eviction) {
        match eviction {
            Eviction::Keys(hashes) => {
                self.evict(&hashes);
                tracing::debug!(target: "tokengate::keys", keys = hashes.len(), "evicted keys revoked by another instance");
            }
            Eviction::All => self.evict_all(),
        }
    }
}

impl fmt::Debug for KeyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVerifier")
            .field("store", &self.inner.store.name())
            .field("cache_ttl", &self.inner.cache.verified_ttl())
            .field("cached", &self.inner.cache.verified_raw_len())
            .finish_non_exhaustive()
    }
}

impl Verifier for KeyVerifier {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        Box::pin(async move {
            let kind = KeyVerifier::check_credential(&credential)?;
            self.verify_kind(credential.token(), kind, credential.client()).await
        })
    }

    fn name(&self) -> &'static str {
        "api-key-store"
    }

    fn verify_cached_sealed(&self, credential: &Credential<'_>, _: Seal) -> Option<Result<Auth, VerifyError>> {
        self.verify_cached(credential)
    }
}
