//! The application's own `users` table, in SQLite or PostgreSQL (wherever the keys are).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tokengate::keys::{
    Access, DEFAULT_DATABASE_URL, SqliteConnections, StoreError, is_postgres_url, redact_url, sqlite_file,
};

use crate::{DEMO_USER, Fatal, fail};

/// The `users` table, in SQLite or PostgreSQL (wherever the keys are). With SQLite, the query
/// on a request's path (`find`) runs on rusqlite connections with its statement prepared once
/// (tokengate's `SqliteConnections`), the rest on the sqlx pool.
#[derive(Clone)]
pub(crate) enum UsersDb {
    Sqlite(SqlitePool, SqliteConnections),
    Postgres(PgPool),
}

type UserRow = (String, String, String);

impl UsersDb {
    pub(crate) async fn find(&self, id: &str) -> Result<Vec<UserRow>, String> {
        match self {
            UsersDb::Sqlite(_, reads) => {
                let id = id.to_owned();
                let rows = reads.read(move |c| {
                    let mut find = c
                        .prepare_cached("SELECT id, name, email FROM users WHERE id = ?1")
                        .map_err(StoreError::sqlite)?;
                    let rows = find
                        .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .map_err(StoreError::sqlite)?;
                    rows.collect::<Result<Vec<UserRow>, _>>().map_err(StoreError::sqlite)
                });
                rows.await.map_err(|e| e.to_string())
            }
            UsersDb::Postgres(pool) => sqlx::query_as("SELECT id, name, email FROM users WHERE id = $1")
                .bind(id)
                .fetch_all(pool)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Deletes a user; how many rows went.
    pub(crate) async fn delete(&self, id: &str) -> Result<u64, sqlx::Error> {
        Ok(match self {
            UsersDb::Sqlite(pool, _) => sqlx::query("DELETE FROM users WHERE id = ?")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
            UsersDb::Postgres(pool) => sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn seed_demo_user(&self) -> Result<(), sqlx::Error> {
        match self {
            UsersDb::Sqlite(pool, _) => {
                sqlx::query(
                    "INSERT OR IGNORE INTO users (id, name, email) VALUES (?, 'Demo User', 'demo@example.com')",
                )
                .bind(DEMO_USER)
                .execute(pool)
                .await?;
            }
            UsersDb::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO users (id, name, email) VALUES ($1, 'Demo User', 'demo@example.com') \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(DEMO_USER)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn close(&self) {
        match self {
            UsersDb::Sqlite(pool, reads) => {
                reads.close();
                pool.close().await;
            }
            UsersDb::Postgres(pool) => pool.close().await,
        }
    }
}

/// The SQLite file a database URL names (as the key store reads it); `None` for a PostgreSQL
/// URL.
pub(crate) fn sqlite_path(database: &str) -> Result<Option<PathBuf>, Fatal> {
    if is_postgres_url(database) {
        return Ok(None);
    }
    sqlite_file(database).map(Some).ok_or_else(|| {
        fail(format!(
            "--database {}: the example server needs a database file (e.g. {DEFAULT_DATABASE_URL})",
            redact_url(database.trim())
        ))
    })
}

pub(crate) async fn open_users_db(path: &Path) -> Result<UsersDb, Fatal> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(3));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|e| fail(format!("cannot open the database {}: {e}", path.display())))?;
    sqlx::query("CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    let reads = SqliteConnections::open(path, 2, Access::ReadOnly)
        .map_err(|e| fail(format!("cannot open the database {}: {e}", path.display())))?;
    Ok(UsersDb::Sqlite(pool, reads))
}

pub(crate) async fn open_users_pg(url: &str) -> Result<PgPool, Fatal> {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .map_err(|e| fail(format!("cannot open the database {}: {e}", redact_url(url))))?;
    // Instances starting together would race on CREATE TABLE IF NOT EXISTS: take turns.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tokengate-example-users'))")
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(pool)
}
