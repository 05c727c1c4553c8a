//! The SQLite store's lookup of a key by its secret's hash — the query behind every key no
//! cache knows — on connections of its own: rusqlite, each connection with the statement
//! prepared once, run on Tokio's blocking threads.
//!
//! Why not sqlx, which the store uses for everything else: sqlx runs each SQLite connection on
//! a worker thread of its own and reaches it through an async pool and channels, which costs
//! tens of microseconds per query, several times SQLite's own point lookup
//! (BENCHMARKS.md, section 2). Here a lookup is one hop to a blocking thread, a cached
//! statement and one row.
//!
//! The connections are opened read-write on the same file (WAL mode, so readers never wait
//! for the writer) with `query_only` set: they can read nothing a committed write has not
//! finished, and write nothing. No lock is held across an `.await`: a blocking thread takes one
//! connection's mutex for the length of one query.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension, Row};

use super::{BUSY_TIMEOUT, RawRecord};
use crate::keys::secret::SecretHash;
use crate::keys::store::{KeyRecord, StoreError};

const FIND_BY_HASH: &str = concat!("SELECT ", columns!(), " FROM tokengate_keys WHERE secret_hash = ?1");

/// A few connections for lookups by hash. Closed connections (`None`) answer unavailable.
pub(super) struct Readers {
    path: PathBuf,
    connections: Vec<Mutex<Option<Connection>>>,
    next: AtomicUsize,
}

impl fmt::Debug for Readers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readers")
            .field("path", &self.path)
            .field("connections", &self.connections.len())
            .finish()
    }
}

impl Readers {
    /// Opens `count` (≥ 1) connections to the database file at `path`.
    pub(super) fn open(path: &Path, count: usize) -> Result<Readers, StoreError> {
        let connections = (0..count.max(1))
            .map(|_| open_connection(path).map(|c| Mutex::new(Some(c))))
            .collect::<Result<_, _>>()?;
        Ok(Readers {
            path: path.to_path_buf(),
            connections,
            next: AtomicUsize::new(0),
        })
    }

    /// The key whose secret hashes to `hash`, read on a blocking thread.
    pub(super) async fn find_by_hash(self: &Arc<Self>, hash: &SecretHash) -> Result<Option<KeyRecord>, StoreError> {
        let readers = Arc::clone(self);
        let hash = *hash;
        tokio::task::spawn_blocking(move || readers.lookup(&hash))
            .await
            .map_err(|e| StoreError::Unavailable(format!("SQLite: the lookup task failed: {e}")))?
    }

    /// Closes every connection; later lookups answer unavailable.
    pub(super) fn close(&self) {
        for slot in &self.connections {
            lock(slot).take();
        }
    }

    fn lookup(&self, hash: &SecretHash) -> Result<Option<KeyRecord>, StoreError> {
        let mut slot = self.connection();
        let connection = slot
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("SQLite: the key store is closed".into()))?;
        let mut statement = connection.prepare_cached(FIND_BY_HASH).map_err(db_error)?;
        let raw = statement
            .query_row([&hash.as_bytes()[..]], raw_record)
            .optional()
            .map_err(db_error)?;
        raw.map(RawRecord::into_record).transpose()
    }

    /// A free connection if one is, else the next in turn (waited for on this blocking thread).
    fn connection(&self) -> MutexGuard<'_, Option<Connection>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.connections.len();
        for i in 0..count {
            if let Ok(guard) = self.connections[(start + i) % count].try_lock() {
                return guard;
            }
        }
        lock(&self.connections[start % count])
    }
}

fn lock(slot: &Mutex<Option<Connection>>) -> MutexGuard<'_, Option<Connection>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot open the SQLite database `{}` for key lookups: {e}",
            path.display()
        ))
    })?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
    connection.pragma_update(None, "query_only", true).map_err(db_error)?;
    Ok(connection)
}

fn db_error(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("SQLite: {e}"))
}

/// The row in the order of `columns!()`.
fn raw_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        id: row.get(0)?,
        kind: row.get(1)?,
        secret_hash: row.get(2)?,
        name: row.get(3)?,
        description: row.get(4)?,
        subject: row.get(5)?,
        scopes: row.get(6)?,
        claims: row.get(7)?,
        created_at: row.get(8)?,
        expires_at: row.get(9)?,
        revoked_at: row.get(10)?,
        revocation_reason: row.get(11)?,
        last_used_at: row.get(12)?,
    })
}
