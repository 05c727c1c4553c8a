//! `last_used_at`, written in batches: each use of a key is noted in memory (a key used on
//! every request is noted at most once a second), and a background task writes what was noted
//! every flush interval. [`UsageRecorder::shutdown`] writes the last batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::auth::Auth;
use crate::cache::CoarseInstant;

use super::store::{KeyStore, LastUsed, StoreError, now_unix};

/// Notes uses of keys and writes them to the store in batches.
pub(super) struct UsageRecorder {
    store: Arc<dyn KeyStore>,
    /// Keys used since the last write: id → the second of the latest use.
    pending: Mutex<HashMap<String, u64>>,
    /// Second zero of the uses noted.
    epoch: CoarseInstant,
    interval: Duration,
    started: AtomicBool,
    stopped: AtomicBool,
    stop: Arc<Notify>,
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
        })
    }

    /// Notes a use of `auth`'s key at `now`; returns when the next use is worth noting (the
    /// start of the next second).
    pub(super) fn record(self: &Arc<Self>, auth: &Auth, now: CoarseInstant) -> CoarseInstant {
        let second = self.second(now);
        if let Some(id) = &auth.id {
            let mut pending = self.lock();
            let latest = pending.entry(id.clone()).or_insert(second);
            *latest = (*latest).max(second);
        }
        self.start();
        // Past the clock's range (a century away), every later use is noted: harmless.
        self.epoch
            .checked_add(Duration::from_secs(second))
            .unwrap_or(self.epoch)
    }

    /// Writes what is pending now; how many keys were written. On a store failure they stay
    /// pending for the next write.
    pub(super) async fn flush(&self) -> Result<usize, StoreError> {
        let pending = std::mem::take(&mut *self.lock());
        if pending.is_empty() {
            return Ok(0);
        }
        // A use `n` seconds of monotonic time ago happened `n` seconds before the wall clock's now.
        let (second_now, unix_now) = (self.second(CoarseInstant::now()), now_unix());
        let uses: Vec<LastUsed> = pending
            .iter()
            .map(|(id, second)| LastUsed {
                id: id.clone(),
                at: unix_now.saturating_sub(i64::try_from(second_now.saturating_sub(*second)).unwrap_or(i64::MAX)),
            })
            .collect();
        if let Err(e) = self.store.record_last_used(&uses).await {
            let mut requeue = self.lock();
            for (id, second) in pending {
                let latest = requeue.entry(id).or_insert(second);
                *latest = (*latest).max(second);
            }
            return Err(e);
        }
        Ok(uses.len())
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
            self.interval,
        ));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The background writer. Holds no strong reference while it waits: a dropped verifier ends it.
async fn write_periodically(recorder: Weak<UsageRecorder>, stop: Arc<Notify>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.notified() => return,
        }
        let Some(recorder) = recorder.upgrade() else { return };
        if let Err(e) = recorder.flush().await {
            tracing::warn!(target: "tokengate::keys", error = %e, "could not write last_used_at; will retry");
        }
    }
}
