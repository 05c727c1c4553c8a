//! API keys (`ak_…`) and opaque M2M tokens (`mt_…`): issued and verified by tokengate itself,
//! on a real database (SQLite by default: a file, nothing to start; PostgreSQL for several
//! instances sharing keys, with revocations announced to all of them).
//!
//! - [`secret`]: the secret format, its checksum, and the hash that is stored instead;
//! - [`store`]: the database-agnostic [`KeyStore`] trait, its records, and [`issue`];
//! - [`change`]: what happens to a key after it was issued (update, reroll with a grace
//!   period, disable, enable, revoke, delete) and the audit trail of each change;
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

pub mod change;
mod key_cache;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod revocations;
pub mod secret;
mod single_flight;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
mod usage;
pub mod verifier;

use std::sync::Arc;

/// A database URL as a message may show it (also [`crate::net::redact_url`]).
pub use crate::net::redact_url;
pub use change::{Changed, DEFAULT_ACTOR, KeyAction, KeyChange, KeyEvent, KeyUpdate};
pub use memory::MemoryKeyStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresKeyStore, PostgresOptions};
pub use secret::{KeyKind, Secret, SecretHash, check_secret, is_key_id, looks_like_secret, quote_id};
#[cfg(feature = "sqlite")]
pub use sqlite::{Access, SqliteConnections, SqliteKeyStore};
pub use store::{
    IssuedKey, KeyQuery, KeyRecord, KeySpec, KeyStore, LastUsed, NewKey, RevocationNotice, StoreError, StoreFuture,
    issue, now_unix,
};
pub use verifier::{
    DEFAULT_CACHE_TTL, DEFAULT_FLUSH_INTERVAL, DEFAULT_NEGATIVE_CACHE_CAPACITY, DEFAULT_NEGATIVE_CACHE_TTL,
    KeyVerifier, KeyVerifierBuilder, MAX_CACHE_TTL,
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
        return open_postgres(database).await;
    }
    if database == "memory:" || database == "memory://" {
        return Ok(Arc::new(MemoryKeyStore::new()));
    }
    open_sqlite_store(database).await
}

#[cfg(feature = "sqlite")]
async fn open_sqlite_store(database: &str) -> Result<Arc<dyn KeyStore>, StoreError> {
    Ok(Arc::new(open_sqlite(database).await?))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite_store(_database: &str) -> Result<Arc<dyn KeyStore>, StoreError> {
    Err(not_compiled("an SQLite database (URL or file path)", "sqlite"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(database: &str) -> Result<Arc<dyn KeyStore>, StoreError> {
    Ok(Arc::new(PostgresKeyStore::connect(database).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_database: &str) -> Result<Arc<dyn KeyStore>, StoreError> {
    Err(not_compiled("a PostgreSQL database URL", "postgres"))
}

/// The error for a store whose cargo feature is off.
#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
fn not_compiled(what: &str, feature: &str) -> StoreError {
    StoreError::InvalidConfig(format!(
        "{what} needs tokengate's `{feature}` feature, which this build does not have; \
         enable it in Cargo.toml: tokengate = {{ version = \"…\", features = [\"{feature}\"] }}"
    ))
}

/// Whether `database` names a PostgreSQL database (`postgres://…` or `postgresql://…`).
pub fn is_postgres_url(database: &str) -> bool {
    let database = database.trim();
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// The file an SQLite database URL or path names (`sqlite://PATH`, `sqlite:PATH`, a plain
/// path), as [`open_store`] reads it; `None` for PostgreSQL, `memory:`, an in-memory SQLite
/// database and any other scheme.
///
/// ```
/// use std::path::Path;
/// use tokengate_runtime::keys::sqlite_file;
///
/// assert_eq!(sqlite_file("sqlite://tokengate.db").as_deref(), Some(Path::new("tokengate.db")));
/// assert_eq!(sqlite_file("sqlite:///var/lib/app/keys.db?mode=rwc").as_deref(), Some(Path::new("/var/lib/app/keys.db")));
/// assert_eq!(sqlite_file("keys.db").as_deref(), Some(Path::new("keys.db")));
/// assert_eq!(sqlite_file("sqlite://my%20keys.db").as_deref(), Some(Path::new("my keys.db")));
/// assert_eq!(sqlite_file("keys?.db").as_deref(), Some(Path::new("keys?.db")));
/// assert_eq!(sqlite_file("sqlite::memory:"), None);
/// assert_eq!(sqlite_file("postgres://db/keys"), None);
/// ```
pub fn sqlite_file(database: &str) -> Option<std::path::PathBuf> {
    let database = database.trim();
    if is_postgres_url(database) || database == "memory:" || database == "memory://" {
        return None;
    }
    let path = match database
        .strip_prefix("sqlite://")
        .or_else(|| database.strip_prefix("sqlite:"))
    {
        // A URL's path ends at its query and is percent-decoded, as sqlx reads it.
        Some(url_path) => {
            let url_path = url_path.split('?').next().unwrap_or(url_path);
            percent_encoding::percent_decode_str(url_path)
                .decode_utf8_lossy()
                .into_owned()
        }
        None => database.to_owned(),
    };
    if path.is_empty() || path.contains(":memory:") || path.contains("://") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

#[cfg(feature = "sqlite")]
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
