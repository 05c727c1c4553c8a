//! When the JWKS is fetched again, and the fetch itself: single flight, scheduled refresh,
//! unknown-`kid` cooldown, exponential backoff after failures, a bounded response.
//!
//! A fetch runs in its own task; the requests that need it wait on a [`watch`] channel whose
//! sender the task drops when done, at most the fetch timeout. Only one fetch runs at a time:
//! a trigger while one runs joins it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Inner, Snapshot};
use crate::jwt::keys::KeySet;
use crate::telemetry::{self, Backend};

/// Where refreshing stands: the fetch running, the last attempt, the failures since the last
/// success and the backoff they caused.
#[derive(Default)]
pub(super) struct RefreshState {
    in_flight: Option<watch::Receiver<()>>,
    last_attempt: Option<Instant>,
    pub(super) failures: u32,
    retry_at: Option<Instant>,
    pub(super) last_error: Option<String>,
}

/// What started a fetch: it decides which limits apply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Trigger {
    /// No usable key: a request waits for it.
    NoKeys,
    /// The keys are due for refresh; nobody waits.
    Scheduled,
    /// A token's `kid` is not in the set.
    UnknownKid,
    /// An explicit [`JwksCache::refresh`](super::JwksCache::refresh).
    Manual,
}

pub(super) fn lock(state: &Mutex<RefreshState>) -> MutexGuard<'_, RefreshState> {
    // The state stays consistent even if a holder panicked: every write is a plain store.
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How usable the loaded keys are: fresh, due for a refresh, or too old (or none).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Freshness {
    Fresh,
    Due,
    Unusable,
}

/// Waits for a fetch to finish (its sender is dropped), bounded by the fetch timeout.
pub(super) async fn wait(mut rx: watch::Receiver<()>, fetch_timeout: Duration) {
    let _ = tokio::time::timeout(fetch_timeout + Duration::from_millis(250), rx.changed()).await;
}

impl Inner {
    pub(super) fn freshness(&self, snapshot: &Snapshot, now: Instant) -> Freshness {
        let Some(fetched_at) = snapshot.fetched_at else {
            return Freshness::Unusable;
        };
        let age = now.saturating_duration_since(fetched_at);
        if age
            >= self
                .settings
                .refresh_interval
                .saturating_add(self.settings.stale_if_error)
        {
            Freshness::Unusable
        } else if age >= self.settings.refresh_interval {
            Freshness::Due
        } else {
            Freshness::Fresh
        }
    }

    pub(super) fn retry_after(&self, now: Instant) -> Option<Duration> {
        lock(&self.state).retry_at.map(|at| at.saturating_duration_since(now))
    }

    /// Starts a fetch, or joins the one running. `Err` when the trigger is rate-limited
    /// (with the time until the backoff ends, when that is why) or no runtime is available.
    pub(super) fn start_refresh(this: &Arc<Inner>, trigger: Trigger) -> Result<watch::Receiver<()>, Option<Duration>> {
        let mut state = lock(&this.state);
        if let Some(rx) = &state.in_flight {
            if rx.has_changed().is_ok() {
                return Ok(rx.clone());
            }
            // The fetch task ended without clearing its slot (it cannot, short of a panic).
            state.in_flight = None;
        }
        let now = Instant::now();
        // A fetch that finished between the caller's look at the keys and this lock stored
        // them before clearing its slot: use them rather than fetching again.
        if trigger == Trigger::NoKeys && this.freshness(&this.snapshot.load(), now) != Freshness::Unusable {
            let (done, rx) = watch::channel(());
            drop(done);
            return Ok(rx);
        }
        if trigger != Trigger::Manual {
            if let Some(retry_at) = state.retry_at
                && now < retry_at
            {
                return Err(Some(retry_at - now));
            }
            if trigger == Trigger::UnknownKid
                && state
                    .last_attempt
                    .is_some_and(|t| now.saturating_duration_since(t) < this.settings.cooldown)
            {
                return Err(None);
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(None);
        };
        let (tx, rx) = watch::channel(());
        state.in_flight = Some(rx.clone());
        state.last_attempt = Some(now);
        drop(state);
        let inner = Arc::clone(this);
        runtime.spawn(async move {
            inner.run_fetch(trigger).await;
            drop(tx);
        });
        Ok(rx)
    }

    async fn run_fetch(&self, trigger: Trigger) {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch().await;
        let now = Instant::now();
        let mut state = lock(&self.state);
        match result {
            Ok(keys) => {
                let old = self.snapshot.load();
                let generation = if old.fetched_at.is_some() && old.keys.same_keys(&keys) {
                    old.generation
                } else {
                    old.generation.wrapping_add(1)
                };
                tracing::debug!(target: "tokengate", url = %self.url, keys = keys.len(), generation, ?trigger, "JWKS refreshed");
                self.snapshot.store(Arc::new(Snapshot {
                    keys,
                    fetched_at: Some(now),
                    generation,
                }));
                state.failures = 0;
                state.retry_at = None;
                state.last_error = None;
            }
            Err(reason) => {
                state.failures = state.failures.saturating_add(1);
                let factor = 1u32 << state.failures.saturating_sub(1).min(16);
                let backoff = self
                    .settings
                    .backoff_min
                    .saturating_mul(factor)
                    .min(self.settings.backoff_max);
                state.retry_at = Some(now + backoff);
                tracing::warn!(
                    target: "tokengate",
                    url = %self.url,
                    %reason,
                    failures = state.failures,
                    retry_in_ms = backoff.as_millis() as u64,
                    "JWKS fetch failed; keeping the last good keys"
                );
                state.last_error = Some(reason);
            }
        }
        state.in_flight = None;
    }

    fn describe(&self, error: reqwest::Error, what: &str) -> String {
        if error.is_timeout() {
            format!("timed out after {:?}", self.settings.fetch_timeout)
        } else {
            format!("{what}: {}", error.without_url())
        }
    }

    /// One fetch of the JWKS, counted and traced as a backend call.
    async fn fetch(&self) -> Result<KeySet, String> {
        let span = telemetry::http_call_span(Backend::Jwks, self.url.host_str());
        telemetry::backend_call(Backend::Jwks, span, self.fetch_keys()).await
    }

    async fn fetch_keys(&self) -> Result<KeySet, String> {
        let max = self.settings.max_response_bytes;
        let request = async {
            let mut response = self
                .client
                .get(self.url.clone())
                .headers(self.headers.clone())
                .send()
                .await
                .map_err(|e| self.describe(e, "request failed"))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("the server answered {status}"));
            }
            if response.content_length().is_some_and(|len| len > max as u64) {
                return Err(format!("the JWKS is larger than {max} bytes"));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| self.describe(e, "reading the body failed"))?
            {
                if body.len() + chunk.len() > max {
                    return Err(format!("the JWKS is larger than {max} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        let body = tokio::time::timeout(self.settings.fetch_timeout, request)
            .await
            .map_err(|_| format!("timed out after {:?}", self.settings.fetch_timeout))??;
        let (keys, skipped) = KeySet::parse_jwks(&body).map_err(|e| e.to_string())?;
        if skipped > 0 {
            tracing::debug!(target: "tokengate", url = %self.url, skipped, "JWKS keys skipped (symmetric, `use: enc`, weak, unsupported or malformed)");
        }
        if keys.is_empty() {
            return Err(format!("the JWKS holds no usable signing key ({skipped} skipped)"));
        }
        Ok(keys)
    }
}
