//! An in-memory [`KeyStore`], for tests and examples: keys vanish with the process.
//!
//! ```
//! use tokengate_runtime::keys::{KeySpec, KeyStore, MemoryKeyStore, issue};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryKeyStore::new();
//! let key = issue(&store, KeySpec::api_key("user_1", "ci")).await.unwrap();
//! let revoked = store.revoke(&key.record.id, Some("leaked"), 100).await.unwrap().unwrap();
//! assert_eq!(revoked.revocation_reason.as_deref(), Some("leaked"));
//! # });
//! ```

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use super::change::{Changed, KeyChange, KeyEvent};
use super::secret::SecretHash;
use super::store::{KeyRecord, KeyStore, LastUsed, NewKey, StoreError, StoreFuture};

#[derive(Default)]
struct Tables {
    by_id: HashMap<String, KeyRecord>,
    /// Current and previous (rerolled) secrets.
    by_hash: HashMap<SecretHash, String>,
    order: Vec<String>,
    events: Vec<KeyEvent>,
}

impl Tables {
    /// Saves what a change made of a key (`None`: deleted), re-filing its secrets.
    fn save(&mut self, before: &KeyRecord, after: Option<&KeyRecord>) {
        for hash in [Some(before.secret_hash), before.previous_secret_hash]
            .into_iter()
            .flatten()
        {
            self.by_hash.remove(&hash);
        }
        match after {
            Some(after) => {
                for hash in [Some(after.secret_hash), after.previous_secret_hash]
                    .into_iter()
                    .flatten()
                {
                    self.by_hash.insert(hash, after.id.clone());
                }
                self.by_id.insert(after.id.clone(), after.clone());
            }
            None => {
                self.by_id.remove(&before.id);
                self.order.retain(|id| id != &before.id);
            }
        }
    }

    fn change(&mut self, id: &str, change: &KeyChange, actor: &str, at: i64) -> Result<Option<Changed>, StoreError> {
        let Some(before) = self.by_id.get(id).cloned() else {
            return Ok(None);
        };
        let Some(applied) = change.apply(&before, actor, at)? else {
            return Ok(Some(Changed::nothing(before)));
        };
        self.save(&before, applied.record.as_ref());
        self.events.push(applied.event.clone());
        Ok(Some(Changed {
            before,
            after: applied.record,
            event: Some(applied.event),
        }))
    }
}

/// Keys in a map behind a short-held lock. Not for production: nothing is persisted.
#[derive(Default)]
pub struct MemoryKeyStore {
    tables: RwLock<Tables>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> MemoryKeyStore {
        MemoryKeyStore::default()
    }

    fn read<T>(&self, f: impl FnOnce(&Tables) -> T) -> T {
        f(&self.tables.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> T {
        f(&mut self.tables.write().unwrap_or_else(PoisonError::into_inner))
    }
}

impl std::fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.read(|t| t.by_id.len());
        f.debug_struct("MemoryKeyStore").field("keys", &keys).finish()
    }
}

fn ready<'a, T: Send + 'a>(value: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl KeyStore for MemoryKeyStore {
    fn create(&self, key: NewKey) -> StoreFuture<'_, KeyRecord> {
        let result = self.write(|t| {
            if t.by_id.contains_key(&key.id) || t.by_hash.contains_key(&key.secret_hash) {
                return Err(StoreError::Conflict);
            }
            let actor = key.actor.clone();
            let record = KeyRecord::from_new(key);
            t.events.push(KeyEvent::created(&record, &actor));
            t.by_hash.insert(record.secret_hash, record.id.clone());
            t.order.push(record.id.clone());
            t.by_id.insert(record.id.clone(), record.clone());
            Ok(record)
        });
        ready(result)
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        ready(Ok(self.read(|t| t.by_id.get(id).cloned())))
    }

    fn list<'a>(&'a self, subject: Option<&'a str>) -> StoreFuture<'a, Vec<KeyRecord>> {
        let records = self.read(|t| {
            t.order
                .iter()
                .filter_map(|id| t.by_id.get(id))
                .filter(|r| subject.is_none_or(|s| r.subject == s))
                .cloned()
                .collect()
        });
        ready(Ok(records))
    }

    fn revoke<'a>(&'a self, id: &'a str, reason: Option<&'a str>, at: i64) -> StoreFuture<'a, Option<KeyRecord>> {
        let change = KeyChange::Revoke {
            reason: reason.map(str::to_owned),
        };
        let result = self.write(|t| t.change(id, &change, super::change::DEFAULT_ACTOR, at));
        ready(result.map(|changed| changed.and_then(|c| c.after)))
    }

    fn change<'a>(
        &'a self,
        id: &'a str,
        change: &'a KeyChange,
        actor: &'a str,
        at: i64,
    ) -> StoreFuture<'a, Option<Changed>> {
        ready(self.write(|t| t.change(id, change, actor, at)))
    }

    fn history<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Vec<KeyEvent>> {
        ready(Ok(
            self.read(|t| t.events.iter().filter(|e| e.key_id == id).cloned().collect())
        ))
    }

    fn find_by_hash<'a>(&'a self, hash: &'a SecretHash) -> StoreFuture<'a, Option<KeyRecord>> {
        ready(Ok(
            self.read(|t| t.by_hash.get(hash).and_then(|id| t.by_id.get(id)).cloned())
        ))
    }

    fn record_last_used<'a>(&'a self, uses: &'a [LastUsed]) -> StoreFuture<'a, ()> {
        self.write(|t| {
            for u in uses {
                if let Some(r) = t.by_id.get_mut(&u.id) {
                    r.last_used_at = Some(r.last_used_at.map_or(u.at, |prev| prev.max(u.at)));
                }
            }
        });
        ready(Ok(()))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
