//! Revocation notices: a store that announces revocations
//! ([`KeyStore::revocation_notices`](super::KeyStore::revocation_notices), the PostgreSQL
//! store) has each verifier evict a key revoked by any process within about a second.
//!
//! Notices that arrive together (a bulk revocation elsewhere) are evicted in one batch; a
//! notice that the channel lost (the listener lagged) or a `Resync` (the notification
//! connection was down) evicts everything.

use std::collections::HashSet;
use std::sync::Weak;

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::secret::SecretHash;
use super::store::RevocationNotice;

/// What a batch of notices asks a verifier to evict.
pub(super) enum Eviction {
    /// These keys.
    Keys(HashSet<SecretHash>),
    /// Everything: some notices may have been lost.
    All,
}

/// Spawns the task that hands each batch of notices to `evict` on `owner`, until `owner` is
/// dropped or the store closes the channel. Holds no strong reference while it waits.
pub(super) fn spawn_listener<T: Send + Sync + 'static>(
    runtime: &tokio::runtime::Handle,
    mut notices: Receiver<RevocationNotice>,
    owner: Weak<T>,
    evict: fn(&T, Eviction),
) {
    runtime.spawn(async move {
        while let Some(eviction) = next_batch(&mut notices).await {
            let Some(owner) = owner.upgrade() else { return };
            evict(&owner, eviction);
        }
    });
}

/// Waits for a notice and takes those already waiting behind it; `None` once the channel
/// is closed.
async fn next_batch(notices: &mut Receiver<RevocationNotice>) -> Option<Eviction> {
    let mut keys = match notices.recv().await {
        Ok(RevocationNotice::Revoked(hash)) => HashSet::from([hash]),
        Ok(RevocationNotice::Resync) | Err(RecvError::Lagged(_)) => return Some(Eviction::All),
        Err(RecvError::Closed) => return None,
    };
    loop {
        match notices.try_recv() {
            Ok(RevocationNotice::Revoked(hash)) => {
                keys.insert(hash);
            }
            Ok(RevocationNotice::Resync) | Err(TryRecvError::Lagged(_)) => return Some(Eviction::All),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return Some(Eviction::Keys(keys)),
        }
    }
}
