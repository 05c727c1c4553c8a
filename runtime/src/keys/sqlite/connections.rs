//! A few rusqlite connections to one SQLite file: the path of the SQLite store's lookups by
//! hash and `last_used_at` writes — the queries a request can wait for — and of an
//! application's own reads in the same database. Writes run on Tokio's blocking threads
//! ([`SqliteConnections::run`]); short reads on the calling thread while a connection is free
//! ([`SqliteConnections::read`]).
//!
//! Why not sqlx, which the store uses for everything else: sqlx runs each SQLite connection on
//! a worker thread of its own and reaches it through an async pool and channels, which costs
//! tens of microseconds per query, several times SQLite's own point lookup (BENCHMARKS.md,
//! "The slow path"). Here a query is a statement prepared once per connection
//! (`prepare_cached`), run in place or after one hop to a blocking thread.
//!
//! No lock is held across an `.await`: a thread takes one connection's mutex for the length of
//! one closure.
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
//!     .read(|c| {
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

/// The page cache of each read-only connection, in KiB: room for the interior pages of a key
/// table of about 300 000 keys (the store's table is keyed by the secret's hash without a row
/// id, so its interior pages hold whole rows: about 390 pages, 1.6 MB, at 300 000 keys) and
/// for what recent lookups read. A lookup in random order then reads about 0.8 pages from the
/// operating system, against 1.3 with 1 MiB (BENCHMARKS.md, "The slow path"). Pages are cached
/// as they are read: a small database costs what it holds.
pub const READ_CACHE_KIB: u32 = 2048;

/// The page cache of each read-write connection, in KiB. The store's writer writes
/// `last_used_at` in chunks sorted by key id, which visit each page once: pages it is done
/// with need not stay, and a transaction larger than the cache moves its pages to the WAL
/// before it commits instead of at the commit, which writes nothing more. SQLite's default
/// (2 MiB) would hold 2 MiB of pages no one reads again.
pub const WRITE_CACHE_KIB: u32 = 512;

/// Whether connections may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `PRAGMA query_only`: any write fails; a page cache of [`READ_CACHE_KIB`].
    ReadOnly,
    /// Reads and writes, with `PRAGMA synchronous = NORMAL` (in WAL mode: a commit is durable
    /// once the next checkpoint syncs; a power loss may undo the last commits, never corrupt
    /// the file) and a page cache of [`WRITE_CACHE_KIB`].
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

    /// Runs `f` on the calling thread with a connection that is free now, or on a blocking
    /// thread as [`run`](SqliteConnections::run) does when every connection is taken.
    ///
    /// For short reads on a request's path (a point lookup by an indexed key): such a query
    /// costs SQLite a few microseconds from its page cache, less than the two thread switches
    /// of a hop to a blocking thread (BENCHMARKS.md, "The slow path"). The database is in WAL
    /// mode, where a reader does not wait for the writer; a read that must go to disk holds
    /// the calling thread for that read.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match self.inner.read_now(f) {
            Ok(result) => result,
            Err(f) => self.run(f).await,
        }
    }

    /// Closes every connection; later calls answer unavailable.
    pub fn close(&self) {
        for slot in &self.inner.connections {
            lock(slot).take();
        }
    }
}

impl Inner {
    /// `f` run on this thread with a free connection, or `f` back when none is free.
    fn read_now<T, F>(&self, f: F) -> Result<Result<T, StoreError>, F>
    where
        F: FnOnce(&mut Connection) -> Result<T, StoreError>,
    {
        let Some(mut slot) = self.connections.iter().find_map(|slot| slot.try_lock().ok()) else {
            return Err(f);
        };
        Ok(match slot.as_mut() {
            Some(connection) => f(connection),
            None => Err(StoreError::Unavailable("SQLite: the connections are closed".into())),
        })
    }

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
    match access {
        // Point lookups in a large table find their leaf pages in the cache by chance only;
        // the interior pages, read by every lookup, stay (READ_CACHE_KIB).
        Access::ReadOnly => connection
            .execute_batch(&format!("PRAGMA query_only = 1; PRAGMA cache_size = -{READ_CACHE_KIB}"))
            .map_err(StoreError::sqlite)?,
        // WAL with `synchronous = NORMAL` syncs at checkpoints, not at every commit: a power
        // loss may forget the last commits, never corrupts the file. What this connection
        // writes (`last_used_at`) is worth no disk flush per batch.
        Access::ReadWrite => connection
            .execute_batch(&format!(
                "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{WRITE_CACHE_KIB}"
            ))
            .map_err(StoreError::sqlite)?,
    }
    Ok(connection)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn count(c: &mut Connection) -> Result<i64, StoreError> {
        let mut count = c.prepare_cached("SELECT COUNT(*) FROM t").map_err(StoreError::sqlite)?;
        count.query_row([], |row| row.get(0)).map_err(StoreError::sqlite)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_run_in_place_or_wait_for_a_busy_connection_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = SqliteConnections::open(&path, 1, Access::ReadWrite).unwrap();
        writer
            .run(|c| {
                c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x)")
                    .map_err(StoreError::sqlite)
            })
            .await
            .unwrap();
        let reads = SqliteConnections::open(&path, 1, Access::ReadOnly).unwrap();
        assert_eq!(reads.read(count).await.unwrap(), 0);

        // The only connection is busy for a while: a read waits for it on a blocking thread.
        let busy = reads.clone();
        let holder = tokio::spawn(async move {
            busy.run(|c| {
                std::thread::sleep(Duration::from_millis(200));
                count(c)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer
            .run(|c| c.execute("INSERT INTO t VALUES (1)", []).map_err(StoreError::sqlite))
            .await
            .unwrap();
        let asked = std::time::Instant::now();
        assert_eq!(reads.read(count).await.unwrap(), 1, "a committed write is read");
        assert!(
            asked.elapsed() >= Duration::from_millis(100),
            "the read waited for the connection"
        );
        assert_eq!(holder.await.unwrap().unwrap(), 1);

        let refused = reads.read(|c| c.execute("INSERT INTO t VALUES (2)", []).map_err(StoreError::sqlite));
        assert!(matches!(refused.await, Err(StoreError::Unavailable(_))), "query_only");
        reads.close();
        assert!(matches!(reads.read(count).await, Err(StoreError::Unavailable(_))));
        assert!(matches!(reads.run(count).await, Err(StoreError::Unavailable(_))));
    }
}
