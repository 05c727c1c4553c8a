//! `last_used_at`, written in batches: each use of a key is noted in memory (a key used on
//! every request is noted at most once a second), and a background task writes what was noted
//! every flush interval. [`UsageRecorder::shutdown`] writes the last batch.
//!
//! What a noted key costs: one entry of a map filed under the key's `Auth` (a shared pointer,
//! no copy of its id) until the next write; the `Auth` is usually the cached one, but one
//! evicted meanwhile stays alive until its write (at most [`MAX_PENDING`] of them, about 0.6 KB
//! each, should the store be down during a flood of distinct keys). A write sorts the batch by key id and hands it to
//! the store in chunks of [`CHUNK`]: in id order a store's index on the id is walked once, not
//! probed at random (on SQLite, half the cost per key; about 2–3 µs a key on 300 000 keys,
//! criterion `key_usage_write`), and the ids copied for the store are one chunk's at a time,
//! whatever the batch's size.
//!
//! The map is bounded: at [`EARLY_WRITE`] noted keys the writer runs at once instead of at its
//! next tick, and at [`MAX_PENDING`] (a store that cannot keep up, or is down) a key not
//! already noted is not noted until a write makes room: its `last_used_at` then lags, and
//! memory stays bounded however many distinct keys arrive.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::auth::Auth;
use crate::cache::CoarseInstant;

use super::store::{KeyStore, LastUsed, StoreError, now_unix};

/// How many `last_used_at` times one store call writes.
pub(super) const CHUNK: usize = 4096;

/// How many noted keys make the writer run before its next tick.
pub(super) const EARLY_WRITE: usize = 4 * CHUNK;

/// How many keys may be noted and not yet written; beyond, new keys are not noted.
pub(super) const MAX_PENDING: usize = 16 * CHUNK;

/// A noted key: its `Auth`, compared and hashed by the key's id (an `Auth` is noted only when
/// it has one).
#[derive(Clone)]
struct Noted(Auth);

impl Noted {
    fn id(&self) -> &str {
        self.0.id.as_deref().unwrap_or_default()
    }
}

impl PartialEq for Noted {
    fn eq(&self, other: &Noted) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Noted {}

impl Hash for Noted {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

/// Notes uses of keys and writes them to the store in batches.
pub(super) struct UsageRecorder {
    store: Arc<dyn KeyStore>,
    /// Keys used since the last write → the second of the latest use.
    pending: Mutex<HashMap<Noted, u64>>,
    /// Second zero of the uses noted.
    epoch: CoarseInstant,
    interval: Duration,
    started: AtomicBool,
    stopped: AtomicBool,
    stop: Arc<Notify>,
    /// Wakes the writer before its tick ([`EARLY_WRITE`]).
    write_now: Arc<Notify>,
}

impl UsageRecorder {
    pub(super) fn new(store: Arc<dyn KeyStore>, interval: Duration) -> Arc<UsageRecorder> {
        Arc::new(UsageRecorder {
            store,
            pending: Mutex::new(HashMap::new()),
            epoch: CoarseInstant::now(),
            interval,
            started: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            stop: Arc::new(Notify::new()),
            write_now: Arc::new(Notify::new()),
        })
    }

    /// Notes a use of `auth`'s key at `now`; returns when the next use is worth noting (the
    /// start of the next second).
    pub(super) fn record(self: &Arc<Self>, auth: &Auth, now: CoarseInstant) -> CoarseInstant {
        let second = self.second(now);
        if auth.id.is_some() {
            let mut pending = self.lock();
            note(&mut pending, Noted(auth.clone()), second);
            if pending.len() == EARLY_WRITE {
                self.write_now.notify_one();
            }
        }
        self.start();
        // Past the clock's range (a century away), every later use is noted: harmless.
        self.epoch
            .checked_add(Duration::from_secs(second))
            .unwrap_or(self.epoch)
    }

    /// Writes what is pending now, in id order and in chunks; how many keys were written. On a
    /// store failure what was not written stays pending for the next write.
    pub(super) async fn flush(&self) -> Result<usize, StoreError> {
        // Drained, not taken: the map keeps its capacity (at most `MAX_PENDING` entries of two
        // words) instead of growing again from nothing after every write.
        let mut pending: Vec<(Noted, u64)> = self.lock().drain().collect();
        pending.sort_unstable_by(|(a, _), (b, _)| a.id().cmp(b.id()));
        // A use `n` seconds of monotonic time ago happened `n` seconds before the wall clock's now.
        let (second_now, unix_now) = (self.second(CoarseInstant::now()), now_unix());
        let mut written = 0;
        for (start, chunk) in (0..).step_by(CHUNK).zip(pending.chunks(CHUNK)) {
            let uses: Vec<LastUsed> = chunk
                .iter()
                .map(|(noted, second)| LastUsed {
                    id: noted.id().to_owned(),
                    at: unix_now.saturating_sub(i64::try_from(second_now.saturating_sub(*second)).unwrap_or(i64::MAX)),
                })
                .collect();
            if let Err(e) = self.store.record_last_used(&uses).await {
                self.requeue(pending.drain(start..));
                return Err(e);
            }
            written += uses.len();
        }
        Ok(written)
    }

    /// Puts uses that could not be written back among the pending ones, up to [`MAX_PENDING`].
    fn requeue(&self, uses: impl Iterator<Item = (Noted, u64)>) {
        let mut pending = self.lock();
        for (noted, second) in uses {
            note(&mut pending, noted, second);
        }
    }

    /// Stops the background task and writes what is pending.
    pub(super) async fn shutdown(&self) -> Result<(), StoreError> {
        if !self.stopped.swap(true, Ordering::SeqCst) {
            self.stop.notify_one();
        }
        self.flush().await.map(drop)
    }

    /// Whole seconds since the recorder was made, plus one (zero means never).
    fn second(&self, now: CoarseInstant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs().saturating_add(1)
    }

    /// Starts the background writer, once, where a Tokio runtime runs.
    fn start(self: &Arc<Self>) {
        if self.stopped.load(Ordering::Relaxed) || self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.started.store(false, Ordering::SeqCst);
            return;
        };
        runtime.spawn(write_periodically(
            Arc::downgrade(self),
            Arc::clone(&self.stop),
            Arc::clone(&self.write_now),
            self.interval,
        ));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Noted, u64>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Notes a use at `second`: the latest for a key already noted; a new key only below
/// [`MAX_PENDING`].
fn note(pending: &mut HashMap<Noted, u64>, noted: Noted, second: u64) {
    if let Some(latest) = pending.get_mut(&noted) {
        *latest = (*latest).max(second);
    } else if pending.len() < MAX_PENDING {
        pending.insert(noted, second);
    }
}

/// The background writer. Holds no strong reference while it waits: a dropped verifier ends it.
async fn write_periodically(
    recorder: Weak<UsageRecorder>,
    stop: Arc<Notify>,
    write_now: Arc<Notify>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = write_now.notified() => {}
            () = stop.notified() => return,
        }
        let Some(recorder) = recorder.upgrade() else { return };
        if let Err(e) = recorder.flush().await {
            tracing::warn!(target: "tokengate::keys", error = %e, "could not write last_used_at; will retry");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::auth::AuthInfo;
    use crate::keys::secret::SecretHash;
    use crate::keys::store::{KeyRecord, NewKey, StoreFuture};
    use crate::token::TokenType;

    /// A store that keeps every `last_used_at` batch it is given, or fails them all.
    #[derive(Default)]
    struct Batches {
        written: Mutex<Vec<Vec<LastUsed>>>,
        down: AtomicBool,
    }

    impl KeyStore for Batches {
        fn create(&self, _key: NewKey) -> StoreFuture<'_, KeyRecord> {
            Box::pin(async { Err(StoreError::Unavailable("not here".into())) })
        }
        fn get<'a>(&'a self, _id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
            Box::pin(async { Ok(None) })
        }
        fn list<'a>(&'a self, _subject: Option<&'a str>) -> StoreFuture<'a, Vec<KeyRecord>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn revoke<'a>(&'a self, _id: &'a str, _r: Option<&'a str>, _at: i64) -> StoreFuture<'a, Option<KeyRecord>> {
            Box::pin(async { Ok(None) })
        }
        fn find_by_hash<'a>(&'a self, _hash: &'a SecretHash) -> StoreFuture<'a, Option<KeyRecord>> {
            Box::pin(async { Ok(None) })
        }
        fn record_last_used<'a>(&'a self, uses: &'a [LastUsed]) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                if self.down.load(Ordering::SeqCst) {
                    return Err(StoreError::Unavailable("down".into()));
                }
                self.written.lock().unwrap().push(uses.to_vec());
                Ok(())
            })
        }
    }

    fn key(n: usize) -> Auth {
        let mut info = AuthInfo::new(TokenType::ApiKey);
        info.id = Some(arcstr::format!("ak_{n:08}"));
        Auth::new(info)
    }

    fn recorder(store: &Arc<Batches>) -> Arc<UsageRecorder> {
        UsageRecorder::new(Arc::clone(store) as Arc<dyn KeyStore>, Duration::from_secs(3600))
    }

    #[tokio::test]
    async fn a_write_is_in_id_order_and_in_chunks() {
        let store = Arc::new(Batches::default());
        let recorder = recorder(&store);
        let now = CoarseInstant::now();
        // Noted out of order, one key twice.
        let count = CHUNK + 10;
        for n in (0..count).rev() {
            recorder.record(&key(n * 7919 % count), now);
        }
        recorder.record(&key(3), now);
        assert_eq!(recorder.flush().await.unwrap(), count);
        let batches = store.written.lock().unwrap().clone();
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [CHUNK, 10]);
        let ids: Vec<&str> = batches.iter().flatten().map(|u| u.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "every key once, in id order");
        assert_eq!(recorder.flush().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn noted_keys_are_bounded_and_a_failed_write_keeps_them() {
        let store = Arc::new(Batches::default());
        store.down.store(true, Ordering::SeqCst);
        let recorder = recorder(&store);
        let now = CoarseInstant::now();
        for n in 0..MAX_PENDING + 100 {
            recorder.record(&key(n), now);
        }
        assert_eq!(
            recorder.lock().len(),
            MAX_PENDING,
            "beyond the bound, new keys are not noted"
        );
        // A key already noted still moves forward.
        recorder.record(&key(0), now);
        assert!(recorder.flush().await.is_err());
        assert_eq!(
            recorder.lock().len(),
            MAX_PENDING,
            "a failed write keeps what it did not write"
        );
        store.down.store(false, Ordering::SeqCst);
        assert_eq!(recorder.flush().await.unwrap(), MAX_PENDING);
        assert!(recorder.lock().is_empty());
    }

    #[tokio::test]
    async fn many_noted_keys_are_written_before_the_tick() {
        let store = Arc::new(Batches::default());
        let recorder = recorder(&store);
        let now = CoarseInstant::now();
        for n in 0..EARLY_WRITE {
            recorder.record(&key(n), now);
        }
        // The interval is an hour: only the early write can have written them.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.written.lock().unwrap().iter().map(Vec::len).sum::<usize>() < EARLY_WRITE {
            assert!(std::time::Instant::now() < deadline, "no early write");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
