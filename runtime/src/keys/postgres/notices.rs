//! The revocation listener of a [`PostgresKeyStore`](super::PostgresKeyStore): one `LISTEN`
//! connection per store, forwarding the trigger's notices to every subscribed verifier.
//!
//! The listener starts with the first subscription and stops when the last clone of the store
//! is dropped. A lost connection is logged once (target `tokengate::keys`) and re-established
//! with backoff; every (re)connection first sends [`RevocationNotice::Resync`], since notices
//! may have been missed while nobody listened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;

use super::REVOCATION_CHANNEL;
use crate::keys::secret::SecretHash;
use crate::keys::store::RevocationNotice;
use crate::telemetry::{self, Notice};

/// The first and the longest wait between two reconnection attempts of the notification
/// listener.
const RECONNECT_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// The revocation listener of one store (shared by its clones); stopped when the last clone
/// is dropped.
pub(super) struct Notices {
    sender: broadcast::Sender<RevocationNotice>,
    started: AtomicBool,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Notices {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

impl Notices {
    /// A listener not started yet.
    pub(super) fn new() -> Notices {
        let (sender, _) = broadcast::channel(1024);
        Notices {
            sender,
            started: AtomicBool::new(false),
            task: std::sync::Mutex::new(None),
        }
    }

    /// Whether the listener was started.
    pub(super) fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// A receiver of the notices of `pool`'s database, the listener started if it was not;
    /// `None` outside a tokio runtime.
    pub(super) fn subscribe(&self, pool: &PgPool) -> Option<broadcast::Receiver<RevocationNotice>> {
        // Subscribe before the listener starts, so its first notices are not lost.
        let receiver = self.sender.subscribe();
        self.start(pool).then_some(receiver)
    }

    fn start(&self, pool: &PgPool) -> bool {
        if self.started.load(Ordering::SeqCst) {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self.started.swap(true, Ordering::SeqCst) {
            return true;
        }
        let task = runtime.spawn(listen(pool.clone(), self.sender.clone()));
        *self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
        true
    }
}

/// Keeps a `LISTEN` connection open, forwarding notices; reconnects with backoff.
async fn listen(pool: PgPool, sender: broadcast::Sender<RevocationNotice>) {
    let mut backoff = RECONNECT_BACKOFF.0;
    // Whether the connection was up before (to log the loss and the recovery once each).
    let mut lost = false;
    let mut failures: u32 = 0;
    loop {
        if pool.is_closed() {
            return;
        }
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(
                        target: "tokengate::keys",
                        error = %e,
                        "cannot listen for revocations on PostgreSQL; keys revoked elsewhere are refused within the cache TTL until it reconnects (retrying with backoff)"
                    );
                } else {
                    tracing::debug!(target: "tokengate::keys", error = %e, attempt = failures, "revocation listener: reconnection failed");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_BACKOFF.1);
                continue;
            }
        };
        if lost || failures > 0 {
            tracing::info!(
                target: "tokengate::keys",
                "revocation listener reconnected to PostgreSQL; revocations from other instances are seen at once again"
            );
        }
        // Whatever happened before this connection listened may have been missed.
        let _ = sender.send(RevocationNotice::Resync);
        telemetry::revocation_notice(Notice::Resync);
        backoff = RECONNECT_BACKOFF.0;
        failures = 0;
        if let Stopped::PoolClosed = forward(&mut listener, &sender).await {
            return;
        }
        drop(listener);
        lost = true;
        tokio::time::sleep(backoff).await;
    }
}

/// Why a `LISTEN` connection stopped forwarding notices.
enum Stopped {
    /// The connection was lost or failed (logged): reconnect.
    Lost,
    /// The store was closed: stop listening.
    PoolClosed,
}

/// Forwards the notices one connection receives until it stops.
async fn forward(listener: &mut PgListener, sender: &broadcast::Sender<RevocationNotice>) -> Stopped {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => match parse_hash(notification.payload()) {
                Some(hash) => {
                    telemetry::revocation_notice(Notice::Revoked);
                    let _ = sender.send(RevocationNotice::Revoked(hash));
                }
                None => {
                    telemetry::revocation_notice(Notice::Unreadable);
                    tracing::warn!(target: "tokengate::keys", "ignored a malformed revocation notice");
                }
            },
            Ok(None) => {
                tracing::warn!(
                    target: "tokengate::keys",
                    "the PostgreSQL revocation listener lost its connection; keys revoked elsewhere are refused within the cache TTL until it reconnects"
                );
                return Stopped::Lost;
            }
            Err(sqlx::Error::PoolClosed) => return Stopped::PoolClosed,
            Err(e) => {
                tracing::warn!(
                    target: "tokengate::keys",
                    error = %e,
                    "the PostgreSQL revocation listener failed; keys revoked elsewhere are refused within the cache TTL until it reconnects"
                );
                return Stopped::Lost;
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is re-established by `listen` above, with backoff and logs.
    listener.eager_reconnect(false);
    listener.listen(REVOCATION_CHANNEL).await?;
    Ok(listener)
}

fn parse_hash(hex: &str) -> Option<SecretHash> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    SecretHash::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_payloads_parse_as_hashes() {
        let hash = SecretHash::of("ak_x");
        let hex: String = hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_hash(&hex), Some(hash));
        assert_eq!(parse_hash(&hex.to_uppercase()), Some(hash));
        assert_eq!(parse_hash(&hex[1..]), None);
        assert_eq!(parse_hash(&format!("{}zz", &hex[2..])), None);
        assert_eq!(parse_hash(""), None);
    }
}
