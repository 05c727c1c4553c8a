//! A few rusqlite connections to one SQLite file, used on Tokio's blocking threads: the path
//! of the SQLite store's lookups by hash and `last_used_at` writes — the queries a request can
//! wait for — and of an application's own reads in the same database.
//!
//! Why not sqlx, which the store uses for everything else: sqlx runs each SQLite connection on
//! a worker thread of its own and reaches it through an async pool and channels, which costs
//! tens of microseconds per query, several times SQLite's own point lookup (BENCHMARKS.md,
//! "The slow path"). Here a query is one hop to a blocking thread and a statement prepared
//! once per connection (`prepare_cached`).
//!
//! No lock is held across an `.await`: a blocking thread takes one connection's mutex for the
//! length of one closure.
//!
//! ```
//! use tokengate_runtime::keys::{SqliteConnections, SqliteKeyStore, StoreError};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteKeyStore::open(dir.path().join("app.db")).await.unwrap();
//! // The store's own read-only connections serve the application's reads too.
//! let reads: &SqliteConnections = store.lookups().unwrap();
//! let keys: i64 = reads
//!     .run(|c| {
//!         let mut count = c.prepare_cached("SELECT COUNT(*) FROM tokengate_keys").map_err(StoreError::sqlite)?;
//!         count.query_row([], |row| row.get(0)).map_err(StoreError::sqlite)
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!(keys, 0);
//! # });
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;

use super::BUSY_TIMEOUT;
use crate::keys::store::StoreError;

/// Whether connections may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `PRAGMA query_only`: any write fails.
    ReadOnly,
    /// Reads and writes.
    ReadWrite,
}

/// Connections to one SQLite file (WAL mode: readers never wait for the writer). Cloning
/// shares them; closed connections answer [`StoreError::Unavailable`].
#[derive(Clone)]
pub struct SqliteConnections {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    connections: Vec<Mutex<Option<Connection>>>,
    next: AtomicUsize,
}

impl fmt::Debug for SqliteConnections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConnections")
            .field("path", &self.inner.path)
            .field("connections", &self.inner.connections.len())
            .finish()
    }
}

impl SqliteConnections {
    /// Opens `count` (at least 1) connections to the existing database file at `path`, each
    /// waiting at most [`BUSY_TIMEOUT`] for a lock.
    pub fn open(path: impl AsRef<Path>, count: usize, access: Access) -> Result<SqliteConnections, StoreError> {
        let path = path.as_ref();
        let connections = (0..count.max(1))
            .map(|_| open_connection(path, access).map(|c| Mutex::new(Some(c))))
            .collect::<Result<_, _>>()?;
        Ok(SqliteConnections {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                connections,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` with a connection on a blocking thread (a free connection if one is, else the
    /// next in turn, waited for on that thread).
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut slot = inner.connection();
            let connection = slot
                .as_mut()
                .ok_or_else(|| StoreError::Unavailable("SQLite: the connections are closed".into()))?;
            f(connection)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("SQLite: the query task failed: {e}")))?
    }

    /// Closes every connection; later calls answer unavailable.
    pub fn close(&self) {
        for slot in &self.inner.connections {
            lock(slot).take();
        }
    }
}

impl Inner {
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

fn open_connection(path: &Path, access: Access) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open the SQLite database `{}`: {e}", path.display())))?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(StoreError::sqlite)?;
    if access == Access::ReadOnly {
        connection
            .pragma_update(None, "query_only", true)
            .map_err(StoreError::sqlite)?;
    }
    Ok(connection)
}
