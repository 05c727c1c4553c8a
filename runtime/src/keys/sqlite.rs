//! An SQLite [`KeyStore`]: one file, nothing to start. WAL mode, the file created when
//! missing, migrations run on open (tracked in `_tokengate_migrations`, so the application
//! can keep its own tables and migrations in the same database).
//!
//! Three tables: `tokengate_keys`, stored in the order of the secret's SHA-256, its primary
//! key (an uncached key is one descent of one tree, a page read when keys are used in no
//! particular order); `tokengate_key_usage`, each key's `last_used_at` (small rows, so a
//! batch of them rewrites few pages); `tokengate_key_events`, the audit trail.
//!
//! ```
//! use tokengate_runtime::keys::{KeySpec, KeyStore, SqliteKeyStore, issue};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = std::env::temp_dir().join(format!("tokengate-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let store = SqliteKeyStore::open(dir.join("keys.db")).await.unwrap();
//! let key = issue(&store, KeySpec::api_key("user_1", "ci")).await.unwrap();
//! assert_eq!(store.list(Some("user_1")).await.unwrap()[0].id, key.record.id);
//! store.close().await;
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # });
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rusqlite::OptionalExtension as _;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow};

use super::change::{Changed, DEFAULT_ACTOR, KeyAction, KeyChange, KeyEvent};
use super::secret::{KeyKind, SecretHash};
use super::store::{
    KeyQuery, KeyRecord, KeyStore, LastUsed, NewKey, StoreError, StoreFuture, key_migrator, page_select,
};

/// How many read-only connections of their own the lookups by secret hash use (file databases
/// only; [`SqliteKeyStore::lookups`]).
pub const LOOKUP_CONNECTIONS: usize = 4;

/// A key's `last_used_at`, in a table of its own (migration 5): a batch of them rewrites pages
/// of small rows, tens of keys to a page, instead of one page of the large key table per key
/// when keys are used in no particular order (BENCHMARKS.md, "The slow path"). A time never
/// moves backwards.
///
/// The key table is not consulted: that probe of its id index cost as much again as the write
/// (a random page per key). A key deleted by another process in the seconds between a use and
/// the write of that use can so leave a row behind, which nothing reads (records are read
/// from the key table, joined to this one) and which a key created later with the same id
/// clears ([`KeyStore::create`]).
const RECORD_LAST_USED: &str = "INSERT INTO tokengate_key_usage (id, last_used_at) VALUES (?2, ?1) \
     ON CONFLICT (id) DO UPDATE SET last_used_at = MAX(last_used_at, excluded.last_used_at)";

/// Where a key's record is read from: its row and its `last_used_at`.
macro_rules! keys {
    () => {
        "tokengate_keys LEFT JOIN tokengate_key_usage USING (id)"
    };
}

/// How long a statement waits for a lock held by another connection or process before the
/// store reports itself unavailable (a `503`).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(3);

/// A record's columns, in the order `raw_record` reads them; `last_used_at` is read from
/// `tokengate_key_usage` (`keys!()`), or given as `$last_used` where that table is not joined.
macro_rules! columns {
    () => {
        columns!("last_used_at")
    };
    ($last_used:literal) => {
        concat!(
            "id, kind, secret_hash, name, description, subject, scopes, claims, created_at, expires_at, \
             revoked_at, revocation_reason, ",
            $last_used,
            ", disabled_at, previous_secret_hash, grace_until, rate_limit"
        )
    };
}

/// A secret is the key's current one or, during a grace period, the one a reroll replaced. The
/// current secret (nearly every lookup) is one descent of the table's own tree; the previous
/// one is looked for only when no key has the secret as its current one. (One statement with
/// `OR` costs more: SQLite runs it as two probes whose keys it collects and reads back.)
const FIND_BY_HASH: [&str; 2] = [
    concat!("SELECT ", columns!(), " FROM ", keys!(), " WHERE secret_hash = ?1"),
    concat!(
        "SELECT ",
        columns!(),
        " FROM ",
        keys!(),
        " WHERE previous_secret_hash = ?1"
    ),
];

/// The same without `last_used_at` (`KeyStore::find_to_verify`): a random key's usage row is
/// one more page to read.
const FIND_TO_VERIFY: [&str; 2] = [
    concat!(
        "SELECT ",
        columns!("NULL AS last_used_at"),
        " FROM tokengate_keys WHERE secret_hash = ?1"
    ),
    concat!(
        "SELECT ",
        columns!("NULL AS last_used_at"),
        " FROM tokengate_keys WHERE previous_secret_hash = ?1"
    ),
];

/// Writes back what a change made of a key.
const SAVE: &str = "UPDATE tokengate_keys SET name = ?, description = ?, scopes = ?, claims = ?, expires_at = ?, \
     revoked_at = ?, revocation_reason = ?, disabled_at = ?, secret_hash = ?, previous_secret_hash = ?, \
     grace_until = ?, rate_limit = ? WHERE id = ?";

const APPEND_EVENT: &str =
    "INSERT INTO tokengate_key_events (key_id, at, action, actor, changes) VALUES (?, ?, ?, ?, ?)";

mod connections;
mod migrations;
use self::migrations::MIGRATIONS;
pub use connections::{Access, READ_CACHE_KIB, SqliteConnections, WRITE_CACHE_KIB};

/// Keys in an SQLite database.
#[derive(Clone, Debug)]
pub struct SqliteKeyStore {
    pool: SqlitePool,
    /// The queries a request can wait for (lookups by hash, `last_used_at` batches) on
    /// rusqlite connections of their own; `None` for an in-memory database, which only the
    /// pool's connection sees.
    fast: Option<FastPath>,
}

/// The store's rusqlite connections: read-only ones for lookups, one for `last_used_at`.
#[derive(Clone, Debug)]
struct FastPath {
    lookups: SqliteConnections,
    writer: SqliteConnections,
}

impl SqliteKeyStore {
    /// Opens (creating if missing) the database file at `path` and runs the migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteKeyStore, StoreError> {
        let path = path.as_ref();
        let options = SqliteConnectOptions::new().filename(path);
        SqliteKeyStore::open_inner(options, &path.display().to_string(), false).await
    }

    /// Opens an `sqlite:` URL (`sqlite://keys.db`, `sqlite:///var/lib/app/keys.db`,
    /// `sqlite::memory:`).
    pub async fn connect(url: &str) -> Result<SqliteKeyStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(|e| {
            StoreError::InvalidConfig(format!(
                "`{url}` is not a valid SQLite URL ({e}); write `sqlite://PATH` or give a file path"
            ))
        })?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        SqliteKeyStore::open_inner(options, url, in_memory).await
    }

    /// Opens a database file with explicit options; `create_if_missing`, WAL and the busy
    /// timeout are set on top of them. `what` names the database in error messages.
    pub async fn with_options(options: SqliteConnectOptions, what: &str) -> Result<SqliteKeyStore, StoreError> {
        SqliteKeyStore::open_inner(options, what, false).await
    }

    async fn open_inner(
        options: SqliteConnectOptions,
        what: &str,
        in_memory: bool,
    ) -> Result<SqliteKeyStore, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(if in_memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // An in-memory database lives as long as its one connection.
        let pool_options = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        };
        let pool = pool_options
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| open_error(what, &e))?;
        SqliteKeyStore::from_pool_named(pool, what).await
    }

    /// Wraps an existing pool (sharing the application's database) and runs the migrations.
    pub async fn from_pool(pool: SqlitePool) -> Result<SqliteKeyStore, StoreError> {
        SqliteKeyStore::from_pool_named(pool, "the shared pool").await
    }

    async fn from_pool_named(pool: SqlitePool, what: &str) -> Result<SqliteKeyStore, StoreError> {
        let mut store = SqliteKeyStore { pool, fast: None };
        store.migrate(what).await?;
        if let Some(file) = store.file().await? {
            store.fast = Some(FastPath {
                lookups: SqliteConnections::open(&file, LOOKUP_CONNECTIONS, Access::ReadOnly)?,
                writer: SqliteConnections::open(&file, 1, Access::ReadWrite)?,
            });
        }
        Ok(store)
    }

    /// The database's file, as SQLite names it (`None` in memory).
    async fn file(&self) -> Result<Option<PathBuf>, StoreError> {
        let rows = sqlx::query("PRAGMA database_list")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        for row in rows {
            let name: String = row.try_get("name").map_err(db_error)?;
            let file: String = row.try_get("file").map_err(db_error)?;
            if name == "main" {
                return Ok(Some(PathBuf::from(file)).filter(|f| !f.as_os_str().is_empty()));
            }
        }
        Ok(None)
    }

    async fn migrate(&self, what: &str) -> Result<(), StoreError> {
        self.check_rebuild(what).await?;
        key_migrator(&MIGRATIONS).run(&self.pool).await.map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot migrate the key tables in the SQLite database `{what}`: {e}"
            ))
        })
    }

    /// Refuses to run migration 5 (which rebuilds `tokengate_keys`) over what depends on the
    /// table: dropping it would fire the foreign keys of the application's tables that
    /// reference it (`ON DELETE CASCADE` would empty them) and lose its triggers, and a view of
    /// it would make the rename fail. The database is left as it was, with a message that says
    /// what to do.
    async fn check_rebuild(&self, what: &str) -> Result<(), StoreError> {
        let table: Option<String> =
            sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'tokengate_keys'")
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        // Nothing to rebuild in a new database, or one migrated already.
        if table.is_none_or(|sql| sql.contains("WITHOUT ROWID")) {
            return Ok(());
        }
        let dependents: Vec<String> = sqlx::query_scalar(
            "SELECT 'table ' || m.name FROM sqlite_schema m, pragma_foreign_key_list(m.name) f \
             WHERE m.type = 'table' AND f.\"table\" = 'tokengate_keys' \
             UNION SELECT type || ' ' || name FROM sqlite_schema \
             WHERE type IN ('view', 'trigger') AND sql LIKE '%tokengate_keys%' ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        if dependents.is_empty() {
            return Ok(());
        }
        Err(StoreError::Unavailable(format!(
            "cannot migrate the key tables in the SQLite database `{what}`: this version rebuilds the table \
             tokengate_keys (stored by secret hash), and {} depend on it (a foreign key would fire when the \
             old table is dropped, a trigger or view would be lost); drop them, open the store once with this \
             version, then create them again",
            dependents.join(", ")
        )))
    }

    /// The connection pool, to keep application tables in the same database.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The read-only connections the lookups by hash use, for the application's own reads on
    /// a request's path (a statement prepared once, no async pool); `None` in memory.
    pub fn lookups(&self) -> Option<&SqliteConnections> {
        self.fast.as_ref().map(|f| &f.lookups)
    }

    /// The rusqlite connections, while the pool is open.
    fn fast(&self) -> Option<&FastPath> {
        self.fast.as_ref().filter(|_| !self.pool.is_closed())
    }

    /// Closes every connection (checkpointing the WAL). Later calls fail as unavailable.
    pub async fn close(&self) {
        if let Some(fast) = &self.fast {
            fast.lookups.close();
            fast.writer.close();
        }
        self.pool.close().await;
    }
}

/// Why a database file could not be opened, and what to check: a file that is not an SQLite
/// database (`SQLITE_NOTADB`), else the path and its directory.
fn open_error(what: &str, e: &sqlx::Error) -> StoreError {
    let not_a_database = e.as_database_error().and_then(|d| d.code()).as_deref() == Some("26");
    let hint = if not_a_database {
        "the file is not an SQLite database; give the path of the key database, or of a new file to create"
    } else {
        "check that the path names a file (not a directory) and that its directory exists and is writable"
    };
    StoreError::Unavailable(format!("cannot open the SQLite database `{what}`: {e}; {hint}"))
}

fn db_error(e: sqlx::Error) -> StoreError {
    if e.as_database_error().is_some_and(|d| d.is_unique_violation()) {
        return StoreError::Conflict;
    }
    StoreError::Unavailable(format!("SQLite: {e}"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(format!("SQLite: the key table holds an invalid {what}"))
}

/// A row of the key table as stored, before its JSON and kind are checked: what both the sqlx
/// path and the lookup connections ([`readers`]) read.
struct RawRecord {
    id: String,
    kind: String,
    secret_hash: Vec<u8>,
    name: String,
    description: Option<String>,
    subject: String,
    scopes: String,
    claims: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    revocation_reason: Option<String>,
    last_used_at: Option<i64>,
    disabled_at: Option<i64>,
    previous_secret_hash: Option<Vec<u8>>,
    grace_until: Option<i64>,
    rate_limit: Option<String>,
}

impl RawRecord {
    fn into_record(self) -> Result<KeyRecord, StoreError> {
        Ok(KeyRecord {
            id: self.id,
            kind: KeyKind::from_name(&self.kind).ok_or_else(|| corrupt("kind"))?,
            name: self.name,
            description: self.description,
            subject: self.subject,
            scopes: serde_json::from_str(&self.scopes).map_err(|_| corrupt("scope list"))?,
            claims: serde_json::from_str(&self.claims).map_err(|_| corrupt("claims object"))?,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            revocation_reason: self.revocation_reason,
            last_used_at: self.last_used_at,
            disabled_at: self.disabled_at,
            grace_until: self.grace_until,
            rate_limit: self.rate_limit,
            secret_hash: SecretHash::from_slice(&self.secret_hash).ok_or_else(|| corrupt("secret hash"))?,
            previous_secret_hash: match self.previous_secret_hash {
                Some(bytes) => Some(SecretHash::from_slice(&bytes).ok_or_else(|| corrupt("secret hash"))?),
                None => None,
            },
        })
    }
}

/// The row in the order of `columns!()`, read by rusqlite.
fn raw_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
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
        disabled_at: row.get(13)?,
        previous_secret_hash: row.get(14)?,
        grace_until: row.get(15)?,
        rate_limit: row.get(16)?,
    })
}

/// A batch of `last_used_at` times in one transaction.
fn write_last_used(c: &mut rusqlite::Connection, uses: &[LastUsed]) -> Result<(), StoreError> {
    let tx = c.transaction().map_err(StoreError::sqlite)?;
    {
        let mut update = tx.prepare_cached(RECORD_LAST_USED).map_err(StoreError::sqlite)?;
        for u in uses {
            update
                .execute(rusqlite::params![u.at, u.id])
                .map_err(StoreError::sqlite)?;
        }
    }
    tx.commit().map_err(StoreError::sqlite)
}

impl StoreError {
    /// A rusqlite error as a store error: a uniqueness violation is [`StoreError::Conflict`],
    /// anything else [`StoreError::Unavailable`] (a `503`).
    pub fn sqlite(e: rusqlite::Error) -> StoreError {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
            return StoreError::Conflict;
        }
        StoreError::Unavailable(format!("SQLite: {e}"))
    }
}

fn record_from_row(row: &SqliteRow) -> Result<KeyRecord, StoreError> {
    let raw = RawRecord {
        id: row.try_get("id").map_err(db_error)?,
        kind: row.try_get("kind").map_err(db_error)?,
        secret_hash: row.try_get("secret_hash").map_err(db_error)?,
        name: row.try_get("name").map_err(db_error)?,
        description: row.try_get("description").map_err(db_error)?,
        subject: row.try_get("subject").map_err(db_error)?,
        scopes: row.try_get("scopes").map_err(db_error)?,
        claims: row.try_get("claims").map_err(db_error)?,
        created_at: row.try_get("created_at").map_err(db_error)?,
        expires_at: row.try_get("expires_at").map_err(db_error)?,
        revoked_at: row.try_get("revoked_at").map_err(db_error)?,
        revocation_reason: row.try_get("revocation_reason").map_err(db_error)?,
        last_used_at: row.try_get("last_used_at").map_err(db_error)?,
        disabled_at: row.try_get("disabled_at").map_err(db_error)?,
        previous_secret_hash: row.try_get("previous_secret_hash").map_err(db_error)?,
        grace_until: row.try_get("grace_until").map_err(db_error)?,
        rate_limit: row.try_get("rate_limit").map_err(db_error)?,
    };
    raw.into_record()
}

/// Writes back what a change made of a key, in the change's transaction.
async fn save(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>, record: &KeyRecord) -> Result<(), StoreError> {
    let scopes = serde_json::to_string(&record.scopes)
        .map_err(|e| StoreError::Invalid(format!("cannot store the scopes: {e}")))?;
    sqlx::query(SAVE)
        .bind(&record.name)
        .bind(&record.description)
        .bind(scopes)
        .bind(record.claims.to_string())
        .bind(record.expires_at)
        .bind(record.revoked_at)
        .bind(&record.revocation_reason)
        .bind(record.disabled_at)
        .bind(&record.secret_hash.as_bytes()[..])
        .bind(record.previous_secret_hash.as_ref().map(|h| h.as_bytes().to_vec()))
        .bind(record.grace_until)
        .bind(&record.rate_limit)
        .bind(&record.id)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Appends an audit event, in the change's transaction.
async fn append_event(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>, event: &KeyEvent) -> Result<(), StoreError> {
    sqlx::query(APPEND_EVENT)
        .bind(&event.key_id)
        .bind(event.at)
        .bind(event.action.as_str())
        .bind(&event.actor)
        .bind(event.changes.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

impl SqliteKeyStore {
    /// The key the first of `queries` (by the current secret, then the previous one) finds:
    /// on a read-only connection in place when the database is a file.
    async fn find(&self, hash: SecretHash, queries: [&'static str; 2]) -> Result<Option<KeyRecord>, StoreError> {
        if let Some(fast) = self.fast() {
            let raw = fast
                .lookups
                .read(move |c| {
                    for query in queries {
                        let mut find = c.prepare_cached(query).map_err(StoreError::sqlite)?;
                        let found = find
                            .query_row([&hash.as_bytes()[..]], raw_record)
                            .optional()
                            .map_err(StoreError::sqlite)?;
                        if found.is_some() {
                            return Ok(found);
                        }
                    }
                    Ok(None)
                })
                .await?;
            return raw.map(RawRecord::into_record).transpose();
        }
        for query in queries {
            let row = sqlx::query(query)
                .bind(&hash.as_bytes()[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            if let Some(row) = row {
                return record_from_row(&row).map(Some);
            }
        }
        Ok(None)
    }
}

impl KeyStore for SqliteKeyStore {
    fn create(&self, key: NewKey) -> StoreFuture<'_, KeyRecord> {
        Box::pin(async move {
            let scopes = serde_json::to_string(&key.scopes)
                .map_err(|e| StoreError::Invalid(format!("cannot store the scopes: {e}")))?;
            let claims = serde_json::to_string(&key.claims)
                .map_err(|e| StoreError::Invalid(format!("cannot store the claims: {e}")))?;
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            sqlx::query(
                "INSERT INTO tokengate_keys (id, kind, secret_hash, name, description, subject, scopes, claims, \
                 created_at, expires_at, rate_limit, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
                 (SELECT IFNULL(MAX(seq), 0) + 1 FROM tokengate_keys WHERE created_at = ?9))",
            )
            .bind(&key.id)
            .bind(key.kind.as_str())
            .bind(&key.secret_hash.as_bytes()[..])
            .bind(&key.name)
            .bind(&key.description)
            .bind(&key.subject)
            .bind(scopes)
            .bind(claims)
            .bind(key.created_at)
            .bind(key.expires_at)
            .bind(&key.rate_limit)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            // A use of a deleted key with this id, written after its deletion (RECORD_LAST_USED).
            sqlx::query("DELETE FROM tokengate_key_usage WHERE id = ?")
                .bind(&key.id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            let actor = key.actor.clone();
            let record = KeyRecord::from_new(key);
            append_event(&mut tx, &KeyEvent::created(&record, &actor)).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(record)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(async move {
            let row = sqlx::query(concat!("SELECT ", columns!(), " FROM ", keys!(), " WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            row.as_ref().map(record_from_row).transpose()
        })
    }

    fn list<'a>(&'a self, subject: Option<&'a str>) -> StoreFuture<'a, Vec<KeyRecord>> {
        Box::pin(async move {
            let rows = match subject {
                Some(subject) => {
                    sqlx::query(concat!(
                        "SELECT ",
                        columns!(),
                        " FROM ",
                        keys!(),
                        " WHERE subject = ? ORDER BY created_at, seq"
                    ))
                    .bind(subject)
                    .fetch_all(&self.pool)
                    .await
                }
                None => {
                    sqlx::query(concat!(
                        "SELECT ",
                        columns!(),
                        " FROM ",
                        keys!(),
                        " ORDER BY created_at, seq"
                    ))
                    .fetch_all(&self.pool)
                    .await
                }
            }
            .map_err(db_error)?;
            rows.iter().map(record_from_row).collect()
        })
    }

    fn list_page<'a>(&'a self, query: &'a KeyQuery) -> StoreFuture<'a, Vec<KeyRecord>> {
        Box::pin(async move {
            let after = match &query.after {
                None => None,
                Some(id) => {
                    let position: Option<(i64, i64)> =
                        sqlx::query_as("SELECT created_at, seq FROM tokengate_keys WHERE id = ?")
                            .bind(id)
                            .fetch_optional(&self.pool)
                            .await
                            .map_err(db_error)?;
                    Some(position.ok_or_else(|| query.unknown_after())?)
                }
            };
            let mut select = page_select::<sqlx::Sqlite>(columns!(), keys!(), "seq", query, after);
            let rows = select.build().fetch_all(&self.pool).await.map_err(db_error)?;
            rows.iter().map(record_from_row).collect()
        })
    }

    fn revoke<'a>(&'a self, id: &'a str, reason: Option<&'a str>, at: i64) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(async move {
            let change = KeyChange::Revoke {
                reason: reason.map(str::to_owned),
            };
            let changed = self.change(id, &change, DEFAULT_ACTOR, at).await?;
            Ok(changed.and_then(|c| c.after))
        })
    }

    fn change<'a>(
        &'a self,
        id: &'a str,
        change: &'a KeyChange,
        actor: &'a str,
        at: i64,
    ) -> StoreFuture<'a, Option<Changed>> {
        Box::pin(async move {
            // IMMEDIATE: the write lock from the read on, so two changes cannot interleave.
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
            let row = sqlx::query(concat!("SELECT ", columns!(), " FROM ", keys!(), " WHERE id = ?"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            let Some(before) = row.as_ref().map(record_from_row).transpose()? else {
                return Ok(None);
            };
            let Some(applied) = change.apply(&before, actor, at)? else {
                return Ok(Some(Changed::nothing(before)));
            };
            match &applied.record {
                Some(after) => save(&mut tx, after).await?,
                None => {
                    for delete in [
                        "DELETE FROM tokengate_keys WHERE id = ?",
                        "DELETE FROM tokengate_key_usage WHERE id = ?",
                    ] {
                        sqlx::query(delete).bind(id).execute(&mut *tx).await.map_err(db_error)?;
                    }
                }
            }
            append_event(&mut tx, &applied.event).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(Some(Changed {
                before,
                after: applied.record,
                event: Some(applied.event),
            }))
        })
    }

    fn history<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Vec<KeyEvent>> {
        Box::pin(async move {
            let rows: Vec<(String, i64, String, String, String)> = sqlx::query_as(
                "SELECT key_id, at, action, actor, changes FROM tokengate_key_events WHERE key_id = ? ORDER BY seq",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.into_iter()
                .map(|(key_id, at, action, actor, changes)| {
                    let action = KeyAction::from_name(&action).ok_or_else(|| corrupt("audit action"))?;
                    let changes = serde_json::from_str(&changes).map_err(|_| corrupt("audit change"))?;
                    Ok(KeyEvent::new(key_id, at, action, actor, changes))
                })
                .collect()
        })
    }

    fn find_by_hash<'a>(&'a self, hash: &'a SecretHash) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(self.find(*hash, FIND_BY_HASH))
    }

    fn find_to_verify<'a>(&'a self, hash: &'a SecretHash) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(self.find(*hash, FIND_TO_VERIFY))
    }

    fn record_last_used<'a>(&'a self, uses: &'a [LastUsed]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if uses.is_empty() {
                return Ok(());
            }
            if let Some(fast) = self.fast() {
                let uses = uses.to_vec();
                return fast.writer.run(move |c| write_last_used(c, &uses)).await;
            }
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            for u in uses {
                sqlx::query(RECORD_LAST_USED)
                    .bind(u.at)
                    .bind(&u.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)
        })
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::keys::store::issue;
    use crate::keys::{KeySpec, Secret};

    /// A database file at `path` with the first four migrations, as an earlier version left it.
    async fn before_migration_5(path: &Path) -> SqlitePool {
        let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        key_migrator(&MIGRATIONS[..4]).run(&pool).await.unwrap();
        pool
    }

    /// A database of the first four migrations, with keys used and not: migration 5 keeps
    /// every key, its `last_used_at` and the listing's order, and what comes after it fits in.
    #[tokio::test]
    async fn migration_5_keeps_the_keys_their_last_use_and_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        let pool = before_migration_5(&path).await;
        // Three keys created in the same second, inserted in an order their ids do not follow.
        let secrets: Vec<Secret> = (0..3).map(|_| Secret::generate(KeyKind::ApiKey).unwrap()).collect();
        for (i, (id, last_used)) in [("ak_c", Some(700)), ("ak_a", None), ("ak_b", Some(900))]
            .into_iter()
            .enumerate()
        {
            sqlx::query(
                "INSERT INTO tokengate_keys (id, kind, secret_hash, name, subject, scopes, claims, created_at, \
                 last_used_at) VALUES (?, 'api_key', ?, 'old', 'user_1', '[\"read\"]', '{}', 100, ?)",
            )
            .bind(id)
            .bind(&secrets[i].hash().as_bytes()[..])
            .bind(last_used)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = SqliteKeyStore::open(&path).await.unwrap();
        let listed = store.list(Some("user_1")).await.unwrap();
        let order: Vec<(&str, Option<i64>)> = listed.iter().map(|r| (r.id.as_str(), r.last_used_at)).collect();
        assert_eq!(order, [("ak_c", Some(700)), ("ak_a", None), ("ak_b", Some(900))]);
        for (secret, id) in secrets.iter().zip(["ak_c", "ak_a", "ak_b"]) {
            let found = store.find_to_verify(&secret.hash()).await.unwrap().unwrap();
            assert_eq!(
                (found.id.as_str(), found.scopes.as_slice()),
                (id, &["read".to_owned()][..])
            );
        }

        // A key issued now lists after them; its uses are written and read back.
        let new = issue(&store, KeySpec::api_key("user_1", "new")).await.unwrap();
        store
            .record_last_used(&[
                LastUsed {
                    id: new.record.id.clone(),
                    at: 1_000,
                },
                LastUsed {
                    id: "ak_c".into(),
                    at: 650,
                },
            ])
            .await
            .unwrap();
        let listed = store
            .list_page(&KeyQuery::new().subject("user_1").after("ak_a"))
            .await
            .unwrap();
        let order: Vec<(&str, Option<i64>)> = listed.iter().map(|r| (r.id.as_str(), r.last_used_at)).collect();
        assert_eq!(order, [("ak_b", Some(900)), (new.record.id.as_str(), Some(1_000))]);
        assert_eq!(
            store.get("ak_c").await.unwrap().unwrap().last_used_at,
            Some(700),
            "never backwards"
        );

        // A deleted key takes its usage row with it.
        store
            .change("ak_b", &KeyChange::Delete, "test", 2_000)
            .await
            .unwrap()
            .unwrap();
        let usage = || async {
            let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM tokengate_key_usage ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap();
            ids
        };
        let mut expected = vec!["ak_c".to_owned(), new.record.id.clone()];
        expected.sort();
        assert_eq!(usage().await, expected);

        // A use written after the deletion leaves a row that nothing reads, and that a key
        // created later with the same id does not inherit.
        store
            .record_last_used(&[LastUsed {
                id: "ak_b".into(),
                at: 2_100,
            }])
            .await
            .unwrap();
        assert!(store.get("ak_b").await.unwrap().is_none());
        assert_eq!(store.list(Some("user_1")).await.unwrap().len(), 3);
        let again = NewKey::new(
            "ak_b".into(),
            KeyKind::ApiKey,
            Secret::generate(KeyKind::ApiKey).unwrap().hash(),
            "again".into(),
            "user_1".into(),
            vec![],
            3_000,
            None,
        );
        store.create(again).await.unwrap();
        assert_eq!(store.get("ak_b").await.unwrap().unwrap().last_used_at, None);
        assert_eq!(
            usage().await,
            expected,
            "the stale row went with the new key's creation"
        );
        store.close().await;
    }

    /// An application table that references the key table stops migration 5 before it drops
    /// anything: a clear error, every row where it was.
    #[tokio::test]
    async fn migration_5_refuses_to_drop_a_table_others_reference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        let pool = before_migration_5(&path).await;
        sqlx::raw_sql(
            "INSERT INTO tokengate_keys (id, kind, secret_hash, name, subject, scopes, claims, created_at) \
             VALUES ('ak_1', 'api_key', randomblob(32), 'k', 'user_1', '[]', '{}', 1); \
             CREATE TABLE app_calls (key_id TEXT REFERENCES tokengate_keys (id) ON DELETE CASCADE); \
             INSERT INTO app_calls VALUES ('ak_1'); \
             CREATE VIEW app_keys AS SELECT id FROM tokengate_keys;",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let refused = SqliteKeyStore::open(&path).await.unwrap_err().to_string();
        assert!(
            refused.contains("table app_calls, view app_keys depend on it"),
            "{refused}"
        );
        assert!(refused.contains("drop them, open the store once"), "{refused}");
        let pool = SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let rows: (i64, i64) =
            sqlx::query_as("SELECT (SELECT COUNT(*) FROM app_calls), (SELECT COUNT(*) FROM tokengate_keys)")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(rows, (1, 1), "nothing dropped");
        sqlx::raw_sql("DROP VIEW app_keys; DROP TABLE app_calls")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let store = SqliteKeyStore::open(&path).await.unwrap();
        assert_eq!(store.get("ak_1").await.unwrap().unwrap().name, "k");
        store.close().await;
    }

    /// SQLite's plan for a listing of a subject's keys of one name (development mode's start):
    /// served in order by one index, never a walk of every key of the subject.
    #[tokio::test]
    async fn listing_by_subject_and_name_is_one_index_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteKeyStore::open(dir.path().join("plan.db")).await.unwrap();
        let query = KeyQuery::new().subject("user_demo").name("demo-write");
        for after in [None, Some((5, 7))] {
            let select = page_select::<sqlx::Sqlite>(columns!(), keys!(), "seq", &query, after);
            let mut explain = sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {}",
                select.sql().as_str()
            )))
            .bind("user_demo")
            .bind("demo-write");
            if let Some((created_at, position)) = after {
                explain = explain.bind(created_at).bind(position);
            }
            let plan: Vec<String> = explain
                .bind(10_i64)
                .fetch_all(store.pool())
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<String, _>("detail"))
                .collect();
            // The keys in order from one index, each key's `last_used_at` by its primary key:
            // no sort, no scan.
            assert_eq!(plan.len(), 2, "{plan:?}");
            assert!(
                plan[0].contains("USING INDEX tokengate_keys_subject_name_created (subject=? AND name=?"),
                "{plan:?}"
            );
            assert!(
                plan[1].contains("tokengate_key_usage USING PRIMARY KEY (id=?)"),
                "{plan:?}"
            );
        }
    }
}
