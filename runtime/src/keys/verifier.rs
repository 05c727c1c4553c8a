//! The key verifier: checksum → hash → cache → store, for API keys and opaque M2M tokens.
//!
//! - A secret whose checksum does not match is refused (`bad-checksum`) without a lookup.
//! - Verified keys are cached for [`DEFAULT_CACHE_TTL`] (30 s, configurable). **That TTL bounds
//!   how long a revocation made elsewhere (the CLI, another process) takes to be seen**; a
//!   revocation through [`KeyVerifier::revoke`] evicts the key at once. Unknown, revoked and
//!   expired secrets are cached for [`DEFAULT_NEGATIVE_CACHE_TTL`] (5 s).
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

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use moka::sync::Cache;
use tokio::sync::Notify;

use crate::auth::Auth;
use crate::rejection::InvalidReason;
use crate::verifier::{Credential, Verifier, VerifyError, VerifyFuture};

use super::secret::{KeyKind, SecretHash, check_secret};
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

/// A verified key in the cache, with its pending `last_used_at`.
struct CachedKey {
    auth: Auth,
    id: String,
    kind: KeyKind,
    hash: SecretHash,
    expires_at: Option<i64>,
    last_used: AtomicI64,
    dirty: AtomicBool,
}

struct Inner {
    store: Arc<dyn KeyStore>,
    positive: Cache<SecretHash, Arc<CachedKey>>,
    negative: Cache<SecretHash, InvalidReason>,
    /// Keys used since the last flush (each at most once while dirty).
    pending: Mutex<Vec<Arc<CachedKey>>>,
    /// Bumped by every revocation, so a lookup racing with one does not cache a stale key.
    revocations: AtomicU64,
    flusher_started: AtomicBool,
    /// Whether the revocation-notice task runs (or the store has no notices).
    listener_started: AtomicBool,
    stopped: AtomicBool,
    stop: Arc<Notify>,
    flush_interval: Duration,
    cache_ttl: Duration,
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
        let verifier = self.build_cache();
        verifier.start_listener();
        verifier
    }

    fn build_cache(self) -> KeyVerifier {
        let positive_capacity = if self.cache_ttl.is_zero() {
            0
        } else {
            self.cache_capacity
        };
        let negative_capacity = if self.negative_cache_ttl.is_zero() {
            0
        } else {
            self.negative_cache_capacity
        };
        KeyVerifier {
            inner: Arc::new(Inner {
                store: self.store,
                positive: Cache::builder()
                    .max_capacity(positive_capacity)
                    .time_to_live(self.cache_ttl.max(Duration::from_millis(1)))
                    .build(),
                negative: Cache::builder()
                    .max_capacity(negative_capacity)
                    .time_to_live(self.negative_cache_ttl.max(Duration::from_millis(1)))
                    .build(),
                pending: Mutex::new(Vec::new()),
                revocations: AtomicU64::new(0),
                flusher_started: AtomicBool::new(false),
                listener_started: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                stop: Arc::new(Notify::new()),
                flush_interval: self.flush_interval,
                cache_ttl: self.cache_ttl,
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
        self.inner.positive.run_pending_tasks();
        self.inner.positive.entry_count()
    }

    /// How many refused secrets are remembered now (after pending cache maintenance runs);
    /// never more than the configured negative capacity.
    pub fn cached_rejections(&self) -> u64 {
        self.inner.negative.run_pending_tasks();
        self.inner.negative.entry_count()
    }

    /// Issues a key in the store; returns its secret once.
    pub async fn issue(&self, spec: KeySpec) -> Result<IssuedKey, StoreError> {
        let issued = issue(&*self.inner.store, spec).await?;
        self.inner.negative.invalidate(&issued.record.secret_hash);
        Ok(issued)
    }

    /// Revokes a key and evicts it from this verifier's cache at once. `None` for an unknown id.
    pub async fn revoke(&self, id: &str, reason: Option<&str>) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.revocations.fetch_add(1, Ordering::SeqCst);
        let record = self.inner.store.revoke(id, reason, now_unix()).await?;
        if let Some(record) = &record {
            self.inner.positive.invalidate(&record.secret_hash);
            self.inner.negative.insert(record.secret_hash, InvalidReason::Revoked);
        }
        Ok(record)
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
        let hash = SecretHash::of(secret);
        let now = now_unix();
        if let Some(cached) = self.inner.positive.get(&hash) {
            return self.use_cached(&cached, kind, now);
        }
        if let Some(reason) = self.inner.negative.get(&hash) {
            return Err(VerifyError::Invalid(reason));
        }
        let generation = self.inner.revocations.load(Ordering::SeqCst);
        let record = self.inner.store.find_by_hash(&hash).await.map_err(|e| {
            tracing::warn!(target: "tokengate::keys", store = self.inner.store.name(), error = %e, "key store lookup failed");
            VerifyError::unavailable(e.to_string())
        })?;
        let Some(record) = record.filter(|r| r.secret_hash.ct_eq(&hash)) else {
            self.inner.negative.insert(hash, InvalidReason::UnknownToken);
            return Err(InvalidReason::UnknownToken.into());
        };
        if let Err(reason) = record.check_usable_at(now) {
            self.inner.negative.insert(hash, reason);
            return Err(reason.into());
        }
        let cached = Arc::new(CachedKey {
            auth: Auth::new(record.to_auth_info()),
            id: record.id,
            kind: record.kind,
            hash,
            expires_at: record.expires_at,
            last_used: AtomicI64::new(0),
            dirty: AtomicBool::new(false),
        });
        if self.inner.revocations.load(Ordering::SeqCst) == generation {
            self.inner.positive.insert(hash, Arc::clone(&cached));
        }
        self.use_cached(&cached, kind, now)
    }

    fn use_cached(&self, cached: &Arc<CachedKey>, kind: KeyKind, now: i64) -> Result<Auth, VerifyError> {
        if cached.kind != kind {
            return Err(InvalidReason::WrongType.into());
        }
        if cached.expires_at.is_some_and(|exp| exp <= now) {
            self.inner.positive.invalidate(&cached.hash);
            return Err(InvalidReason::Expired.into());
        }
        // Plain loads first: a hot key is written at most once a second, not on every request.
        if cached.last_used.load(Ordering::SeqCst) < now {
            cached.last_used.fetch_max(now, Ordering::SeqCst);
        }
        if !cached.dirty.load(Ordering::SeqCst) && !cached.dirty.swap(true, Ordering::SeqCst) {
            self.inner.lock_pending().push(Arc::clone(cached));
            self.start_flusher();
        }
        Ok(cached.auth.clone())
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
    pub fn evict(&self, hash: &SecretHash) {
        self.inner.positive.invalidate(hash);
        self.inner.negative.invalidate(hash);
    }

    /// Evicts every cached result (positive and negative).
    pub fn clear_cache(&self) {
        self.inner.positive.invalidate_all();
        self.inner.negative.invalidate_all();
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
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let notice = notices.recv().await;
                // No strong reference while waiting: a dropped verifier ends the task.
                let Some(inner) = weak.upgrade() else { return };
                match notice {
                    Ok(RevocationNotice::Revoked(hash)) => {
                        inner.revocations.fetch_add(1, Ordering::SeqCst);
                        inner.positive.invalidate(&hash);
                        inner.negative.invalidate(&hash);
                        tracing::debug!(target: "tokengate::keys", "evicted a key revoked by another instance");
                    }
                    Ok(RevocationNotice::Resync) | Err(RecvError::Lagged(_)) => {
                        inner.revocations.fetch_add(1, Ordering::SeqCst);
                        inner.positive.invalidate_all();
                        inner.negative.invalidate_all();
                    }
                    Err(RecvError::Closed) => return,
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
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<Arc<CachedKey>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn flush(&self) -> Result<usize, StoreError> {
        let pending = std::mem::take(&mut *self.lock_pending());
        if pending.is_empty() {
            return Ok(0);
        }
        let uses: Vec<LastUsed> = pending
            .iter()
            .map(|k| {
                k.dirty.store(false, Ordering::SeqCst);
                LastUsed {
                    id: k.id.clone(),
                    at: k.last_used.load(Ordering::SeqCst),
                }
            })
            .collect();
        match self.store.record_last_used(&uses).await {
            Ok(()) => Ok(uses.len()),
            Err(e) => {
                let mut requeue = self.lock_pending();
                for k in pending {
                    if !k.dirty.swap(true, Ordering::SeqCst) {
                        requeue.push(k);
                    }
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
            .field("cached", &self.inner.positive.entry_count())
            .finish_non_exhaustive()
    }
}

impl Verifier for KeyVerifier {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        Box::pin(async move {
            let Some(expected) = KeyKind::from_token_type(credential.token_type()) else {
                return Err(VerifyError::Misconfigured(format!(
                    "the key verifier was configured for {} tokens; it verifies only api_key and m2m_token",
                    credential.token_type()
                )));
            };
            let kind = check_secret(credential.token())?;
            if kind != expected {
                return Err(InvalidReason::WrongType.into());
            }
            self.verify_kind(credential.token(), kind).await
        })
    }

    fn name(&self) -> &'static str {
        "api-key-store"
    }
}
