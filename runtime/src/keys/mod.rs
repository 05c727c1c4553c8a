//! API keys (`ak_…`) and opaque M2M tokens (`mt_…`): issued and verified by tokengate itself,
//! on a real database (SQLite by default: a file, nothing to start; PostgreSQL for several
//! instances sharing keys, with revocations announced to all of them).
//!
//! - [`secret`]: the secret format, its checksum, and the hash that is stored instead;
//! - [`store`]: the database-agnostic [`KeyStore`] trait, its records, and [`issue`];
//! - [`memory`], [`sqlite`] and [`postgres`]: the stores; [`open_store`] picks one from a
//!   database URL;
//! - [`verifier`]: [`KeyVerifier`], the cached [`Verifier`](crate::Verifier) for both kinds,
//!   and what it is made of: `key_cache` (verified and refused keys by SHA-256),
//!   `single_flight` (one store lookup per secret however many requests wait for it),
//!   `usage` (batched `last_used_at`) and `revocations` (notices from other instances).
//!
//! ```
//! use tokengate_runtime::keys::{DEFAULT_DATABASE_URL, KeySpec, KeyVerifier, open_store};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! assert_eq!(DEFAULT_DATABASE_URL, "sqlite://tokengate.db");
//! let store = open_store("memory:").await.unwrap();
//! let verifier = KeyVerifier::new(store);
//! let key = verifier.issue(KeySpec::m2m_token("mch_billing", "billing")).await.unwrap();
//! let auth = verifier.verify_secret(key.secret.expose()).await.unwrap();
//! assert_eq!(auth.machine_id.as_deref(), Some("mch_billing"));
//! # });
//! ```

mod key_cache;
pub mod memory;
pub mod postgres;
mod revocations;
pub mod secret;
mod single_flight;
pub mod sqlite;
pub mod store;
mod usage;
pub mod verifier;

use std::sync::Arc;

pub use memory::MemoryKeyStore;
pub use postgres::{PostgresKeyStore, PostgresOptions, redact_url};
pub use secret::{KeyKind, Secret, SecretHash, check_secret};
pub use sqlite::SqliteKeyStore;
pub use store::{
    IssuedKey, KeyRecord, KeySpec, KeyStore, LastUsed, NewKey, RevocationNotice, StoreError, StoreFuture, issue,
    now_unix,
};
pub use verifier::{
    DEFAULT_CACHE_TTL, DEFAULT_FLUSH_INTERVAL, DEFAULT_NEGATIVE_CACHE_CAPACITY, DEFAULT_NEGATIVE_CACHE_TTL,
    KeyVerifier, KeyVerifierBuilder,
};

/// The database file the CLI and the example server use when none is given, in the working
/// directory.
pub const DEFAULT_DATABASE_FILE: &str = "tokengate.db";

/// [`DEFAULT_DATABASE_FILE`] as a URL: the default of `--database` / `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tokengate.db";

/// Opens the key store a database URL or path names:
///
/// - `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:` → [`SqliteKeyStore`];
/// - a plain file path (`tokengate.db`, `/var/lib/app/keys.db`) → [`SqliteKeyStore`];
/// - `memory:` → [`MemoryKeyStore`] (nothing persisted);
/// - `postgres://…` / `postgresql://…` → [`PostgresKeyStore`] with the default
///   [`PostgresOptions`] (use [`PostgresKeyStore::connect_with`] for others).
pub async fn open_store(database: &str) -> Result<Arc<dyn KeyStore>, StoreError> {
    let database = database.trim();
    if database.is_empty() {
        return Err(StoreError::InvalidConfig(format!(
            "the database URL is empty; give `{DEFAULT_DATABASE_URL}`, another `sqlite://PATH`, or a file path"
        )));
    }
    if is_postgres_url(database) {
        return Ok(Arc::new(PostgresKeyStore::connect(database).await?));
    }
    if database == "memory:" || database == "memory://" {
        return Ok(Arc::new(MemoryKeyStore::new()));
    }
    Ok(Arc::new(open_sqlite(database).await?))
}

/// Whether `database` names a PostgreSQL database (`postgres://…` or `postgresql://…`).
pub fn is_postgres_url(database: &str) -> bool {
    let database = database.trim();
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// Opens an SQLite database from the same forms as [`open_store`] (`sqlite://PATH`,
/// `sqlite:PATH`, `sqlite::memory:` or a plain path), for an application that keeps its own
/// tables beside the keys (see [`SqliteKeyStore::pool`]).
pub async fn open_sqlite(database: &str) -> Result<SqliteKeyStore, StoreError> {
    let database = database.trim();
    if database.starts_with("sqlite:") {
        return SqliteKeyStore::connect(database).await;
    }
    if let Some((scheme, _)) = database.split_once("://") {
        return Err(StoreError::InvalidConfig(format!(
            "unsupported database URL scheme `{scheme}://`; use `sqlite://PATH`, a file path, `postgres://…` or `memory:`"
        )));
    }
    if database.is_empty() {
        return Err(StoreError::InvalidConfig(format!(
            "the database path is empty; give `{DEFAULT_DATABASE_URL}`, another `sqlite://PATH`, or a file path"
        )));
    }
    SqliteKeyStore::open(database).await
}
