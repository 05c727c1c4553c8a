//! A PostgreSQL [`KeyStore`]: one database shared by several server instances, with
//! revocations announced to all of them at once through `LISTEN/NOTIFY`.
//!
//! - Migrations run on open, tracked in `_tokengate_migrations` (as in SQLite), under
//!   PostgreSQL's advisory lock, so instances starting together do not race.
//! - A trigger on `tokengate_keys` sends `NOTIFY tokengate_key_revoked, '<hex sha-256>'` when a
//!   key is revoked, changed (expiry, scopes, claims, subject) or deleted — by this library,
//!   the CLI or plain SQL. Every [`KeyVerifier`](super::KeyVerifier) built over a
//!   `PostgresKeyStore` listens (one connection per store) and evicts the key from its cache
//!   within milliseconds.
//! - If the notification connection drops, it is logged (target `tokengate::keys`), the cache
//!   TTL bounds the revocation delay meanwhile, and the listener reconnects with backoff; on
//!   recovery it is logged again and caches are cleared, since notices may have been missed.
//! - A database that cannot be reached is [`StoreError::Unavailable`] (a `503`) once the pool's
//!   acquire timeout ([`PostgresOptions::acquire_timeout`]) has passed.
//! - A lookup is one round-trip: a pooled connection is checked before a query only when it
//!   has been idle for [`CHECK_CONNECTIONS_IDLE_FOR`] (sqlx would check it every time).
//!
//! ```no_run
//! use std::time::Duration;
//! use tokengate_runtime::keys::{KeyVerifier, PostgresKeyStore, PostgresOptions};
//!
//! # async fn run() -> Result<(), tokengate_runtime::keys::StoreError> {
//! let options = PostgresOptions::new().max_connections(20).acquire_timeout(Duration::from_secs(2));
//! let store = PostgresKeyStore::connect_with("postgres://app@db.internal/app", options).await?;
//! let verifier = KeyVerifier::new(std::sync::Arc::new(store));
//! # Ok(()) }
//! ```

mod migrations;
mod notices;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, Row};
use tokio::sync::broadcast;

use self::migrations::MIGRATIONS;
use self::notices::Notices;
use super::change::{Changed, DEFAULT_ACTOR, KeyAction, KeyChange, KeyEvent};
use super::secret::{KeyKind, SecretHash};
use super::store::{
    KeyQuery, KeyRecord, KeyStore, LastUsed, NewKey, RevocationNotice, StoreError, StoreFuture, key_migrator,
    page_select,
};
/// A database URL as a message may show it (kept here, where it was first; [`crate::net::redact_url`]).
pub use crate::net::redact_url;

/// The channel the revocation trigger notifies, with the secret's SHA-256 in hex as payload.
pub const REVOCATION_CHANNEL: &str = "tokengate_key_revoked";
/// How many connections the pool opens at most, by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// How long a query waits for a connection by default before the store reports itself
/// unavailable (a `503`).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one store operation may take by default (waiting for a connection included)
/// before it is abandoned as unavailable: a database that hangs, or a network that drops
/// packets without an error, is a `503`, not a request stuck for minutes.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// A pooled connection idle at least this long is checked (one `Sync`, one round-trip) before
/// a query uses it; one in use more recently is not, so that a busy store's lookup is one
/// round-trip, its query. sqlx's default checks every connection on every acquire: a second
/// round-trip before each query. A connection that broke less than this ago fails its query
/// (a `503` for that request) and is closed as it goes back to the pool.
pub const CHECK_CONNECTIONS_IDLE_FOR: Duration = Duration::from_secs(1);

macro_rules! columns {
    () => {
        "id, kind, secret_hash, name, description, subject, scopes, claims, created_at, expires_at, \
         revoked_at, revocation_reason, last_used_at, disabled_at, previous_secret_hash, \
         grace_until, rate_limit"
    };
}

/// Connection-pool settings of a [`PostgresKeyStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct PostgresOptions {
    max_connections: u32,
    acquire_timeout: Duration,
    query_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions::new()
    }
}

impl PostgresOptions {
    /// [`DEFAULT_MAX_CONNECTIONS`] connections, [`DEFAULT_ACQUIRE_TIMEOUT`].
    pub fn new() -> PostgresOptions {
        PostgresOptions {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }

    /// How long one store operation may take, waiting for a connection included (default
    /// 5 s); past it the operation is abandoned and the store reports itself unavailable.
    pub fn query_timeout(mut self, timeout: Duration) -> PostgresOptions {
        self.query_timeout = timeout;
        self
    }

    /// How many connections the pool opens at most (default 10; one more is held by the
    /// revocation listener once a verifier subscribes).
    pub fn max_connections(mut self, max: u32) -> PostgresOptions {
        self.max_connections = max;
        self
    }

    /// How long a query waits for a connection (opening one included) before the store
    /// reports itself unavailable (default 3 s): the longest an uncached key waits for its
    /// `503` while the database is down.
    pub fn acquire_timeout(mut self, timeout: Duration) -> PostgresOptions {
        self.acquire_timeout = timeout;
        self
    }

    fn validate(&self) -> Result<(), StoreError> {
        if self.max_connections < 2 {
            return Err(StoreError::InvalidConfig(format!(
                "the PostgreSQL pool needs at least 2 connections (one is held by the revocation listener); got {}",
                self.max_connections
            )));
        }
        if self.query_timeout.is_zero() {
            return Err(StoreError::InvalidConfig(
                "the PostgreSQL query timeout must be more than zero (e.g. 5 s)".into(),
            ));
        }
        if self.acquire_timeout.is_zero() {
            return Err(StoreError::InvalidConfig(
                "the PostgreSQL acquire timeout must be more than zero (e.g. 3 s)".into(),
            ));
        }
        Ok(())
    }
}

/// Keys in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresKeyStore {
    pool: PgPool,
    query_timeout: Duration,
    notices: Arc<Notices>,
}

impl fmt::Debug for PostgresKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresKeyStore")
            .field("connections", &self.pool.size())
            .field("listening", &self.notices.started())
            .finish_non_exhaustive()
    }
}

impl PostgresKeyStore {
    /// Connects to a `postgres://` / `postgresql://` URL with the default pool settings and
    /// runs the migrations.
    pub async fn connect(url: &str) -> Result<PostgresKeyStore, StoreError> {
        PostgresKeyStore::connect_with(url, PostgresOptions::new()).await
    }

    /// Connects with explicit pool settings and runs the migrations.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<PostgresKeyStore, StoreError> {
        options.validate()?;
        let what = redact_url(url);
        let connect = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::InvalidConfig(format!(
                "`{what}` is not a valid PostgreSQL URL ({e}); write `postgres://USER:PASSWORD@HOST:PORT/DATABASE`"
            ))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(|connection, meta| {
                Box::pin(async move {
                    if meta.idle_for >= CHECK_CONNECTIONS_IDLE_FOR {
                        connection.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot connect to the PostgreSQL database `{what}`: {e}; check that the server runs and the URL's host, port, user and password"
                ))
            })?;
        PostgresKeyStore::from_pool_named(pool, &what, options.query_timeout).await
    }

    /// Wraps an existing pool (sharing the application's database) and runs the migrations.
    pub async fn from_pool(pool: PgPool) -> Result<PostgresKeyStore, StoreError> {
        PostgresKeyStore::from_pool_named(pool, "the shared pool", DEFAULT_QUERY_TIMEOUT).await
    }

    async fn from_pool_named(
        pool: PgPool,
        what: &str,
        query_timeout: Duration,
    ) -> Result<PostgresKeyStore, StoreError> {
        let store = PostgresKeyStore {
            pool,
            query_timeout,
            notices: Arc::new(Notices::new()),
        };
        store.migrate(what).await?;
        Ok(store)
    }

    async fn migrate(&self, what: &str) -> Result<(), StoreError> {
        key_migrator(&MIGRATIONS).run(&self.pool).await.map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot migrate the key tables in the PostgreSQL database `{what}`: {e}"
            ))
        })
    }

    /// The connection pool, to keep application tables in the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection, the revocation listener's too. Later calls fail as unavailable.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs one store operation within the query timeout.
    async fn timed<T>(&self, operation: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.query_timeout, operation).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "PostgreSQL did not answer within {:?}",
                self.query_timeout
            ))),
        }
    }
}

fn db_error(e: sqlx::Error) -> StoreError {
    if e.as_database_error().is_some_and(|d| d.is_unique_violation()) {
        return StoreError::Conflict;
    }
    StoreError::Unavailable(format!("PostgreSQL: {e}"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL: the key table holds an invalid {what}"))
}

fn record_from_row(row: &PgRow) -> Result<KeyRecord, StoreError> {
    let kind: String = row.try_get("kind").map_err(db_error)?;
    let hash: Vec<u8> = row.try_get("secret_hash").map_err(db_error)?;
    let previous: Option<Vec<u8>> = row.try_get("previous_secret_hash").map_err(db_error)?;
    let scopes: Json<Vec<String>> = row.try_get("scopes").map_err(|_| corrupt("scope list"))?;
    let claims: Json<serde_json::Value> = row.try_get("claims").map_err(|_| corrupt("claims object"))?;
    Ok(KeyRecord {
        id: row.try_get("id").map_err(db_error)?,
        kind: KeyKind::from_name(&kind).ok_or_else(|| corrupt("kind"))?,
        name: row.try_get("name").map_err(db_error)?,
        description: row.try_get("description").map_err(db_error)?,
        subject: row.try_get("subject").map_err(db_error)?,
        scopes: scopes.0,
        claims: claims.0,
        created_at: row.try_get("created_at").map_err(db_error)?,
        expires_at: row.try_get("expires_at").map_err(db_error)?,
        revoked_at: row.try_get("revoked_at").map_err(db_error)?,
        revocation_reason: row.try_get("revocation_reason").map_err(db_error)?,
        last_used_at: row.try_get("last_used_at").map_err(db_error)?,
        disabled_at: row.try_get("disabled_at").map_err(db_error)?,
        grace_until: row.try_get("grace_until").map_err(db_error)?,
        rate_limit: row.try_get("rate_limit").map_err(db_error)?,
        secret_hash: SecretHash::from_slice(&hash).ok_or_else(|| corrupt("secret hash"))?,
        previous_secret_hash: match previous {
            Some(bytes) => Some(SecretHash::from_slice(&bytes).ok_or_else(|| corrupt("secret hash"))?),
            None => None,
        },
    })
}

/// Writes back what a change made of a key, in the change's transaction.
async fn save(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, record: &KeyRecord) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tokengate_keys SET name = $1, description = $2, scopes = $3, claims = $4, expires_at = $5, \
         revoked_at = $6, revocation_reason = $7, disabled_at = $8, secret_hash = $9, previous_secret_hash = $10, \
         grace_until = $11, rate_limit = $12 WHERE id = $13",
    )
    .bind(&record.name)
    .bind(&record.description)
    .bind(Json(&record.scopes))
    .bind(Json(&record.claims))
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
async fn append_event(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, event: &KeyEvent) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO tokengate_key_events (key_id, at, action, actor, changes) VALUES ($1, $2, $3, $4, $5)")
        .bind(&event.key_id)
        .bind(event.at)
        .bind(event.action.as_str())
        .bind(&event.actor)
        .bind(Json(&event.changes))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

impl KeyStore for PostgresKeyStore {
    fn create(&self, key: NewKey) -> StoreFuture<'_, KeyRecord> {
        Box::pin(self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            sqlx::query(
                "INSERT INTO tokengate_keys (id, kind, secret_hash, name, description, subject, scopes, claims, \
                 created_at, expires_at, rate_limit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&key.id)
            .bind(key.kind.as_str())
            .bind(&key.secret_hash.as_bytes()[..])
            .bind(&key.name)
            .bind(&key.description)
            .bind(&key.subject)
            .bind(Json(&key.scopes))
            .bind(Json(&key.claims))
            .bind(key.created_at)
            .bind(key.expires_at)
            .bind(&key.rate_limit)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            let actor = key.actor.clone();
            let record = KeyRecord::from_new(key);
            append_event(&mut tx, &KeyEvent::created(&record, &actor)).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(record)
        }))
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(self.timed(async move {
            let row = sqlx::query(concat!("SELECT ", columns!(), " FROM tokengate_keys WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            row.as_ref().map(record_from_row).transpose()
        }))
    }

    fn list<'a>(&'a self, subject: Option<&'a str>) -> StoreFuture<'a, Vec<KeyRecord>> {
        Box::pin(self.timed(async move {
            let rows = match subject {
                Some(subject) => {
                    sqlx::query(concat!(
                        "SELECT ",
                        columns!(),
                        " FROM tokengate_keys WHERE subject = $1 ORDER BY created_at, seq"
                    ))
                    .bind(subject)
                    .fetch_all(&self.pool)
                    .await
                }
                None => {
                    sqlx::query(concat!(
                        "SELECT ",
                        columns!(),
                        " FROM tokengate_keys ORDER BY created_at, seq"
                    ))
                    .fetch_all(&self.pool)
                    .await
                }
            }
            .map_err(db_error)?;
            rows.iter().map(record_from_row).collect()
        }))
    }

    fn list_page<'a>(&'a self, query: &'a KeyQuery) -> StoreFuture<'a, Vec<KeyRecord>> {
        Box::pin(self.timed(async move {
            let after = match &query.after {
                None => None,
                Some(id) => {
                    let position: Option<(i64, i64)> =
                        sqlx::query_as("SELECT created_at, seq FROM tokengate_keys WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&self.pool)
                            .await
                            .map_err(db_error)?;
                    Some(position.ok_or_else(|| query.unknown_after())?)
                }
            };
            let mut select = page_select::<sqlx::Postgres>(columns!(), "tokengate_keys", "seq", query, after);
            let rows = select.build().fetch_all(&self.pool).await.map_err(db_error)?;
            rows.iter().map(record_from_row).collect()
        }))
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
        Box::pin(self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM tokengate_keys WHERE id = $1 FOR UPDATE"
            ))
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
            // The trigger notifies every listening instance when this commits.
            match &applied.record {
                Some(after) => save(&mut tx, after).await?,
                None => {
                    sqlx::query("DELETE FROM tokengate_keys WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
            }
            append_event(&mut tx, &applied.event).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(Some(Changed {
                before,
                after: applied.record,
                event: Some(applied.event),
            }))
        }))
    }

    fn history<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Vec<KeyEvent>> {
        Box::pin(self.timed(async move {
            let rows: Vec<(String, i64, String, String, Json<serde_json::Value>)> = sqlx::query_as(
                "SELECT key_id, at, action, actor, changes FROM tokengate_key_events WHERE key_id = $1 ORDER BY seq",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.into_iter()
                .map(|(key_id, at, action, actor, changes)| {
                    let action = KeyAction::from_name(&action).ok_or_else(|| corrupt("audit action"))?;
                    Ok(KeyEvent::new(key_id, at, action, actor, changes.0))
                })
                .collect()
        }))
    }

    fn find_by_hash<'a>(&'a self, hash: &'a SecretHash) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(self.timed(async move {
            // The current secret or, during a grace period, the one a reroll replaced.
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM tokengate_keys WHERE secret_hash = $1 OR previous_secret_hash = $1"
            ))
            .bind(&hash.as_bytes()[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            row.as_ref().map(record_from_row).transpose()
        }))
    }

    fn record_last_used<'a>(&'a self, uses: &'a [LastUsed]) -> StoreFuture<'a, ()> {
        Box::pin(self.timed(async move {
            if uses.is_empty() {
                return Ok(());
            }
            // One statement for the batch; an id twice keeps its latest time.
            let mut latest: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
            for u in uses {
                let at = latest.entry(u.id.as_str()).or_insert(u.at);
                *at = (*at).max(u.at);
            }
            let ids: Vec<&str> = latest.keys().copied().collect();
            let times: Vec<i64> = latest.values().copied().collect();
            sqlx::query(
                "UPDATE tokengate_keys AS k SET last_used_at = GREATEST(COALESCE(k.last_used_at, 0), u.at) \
                 FROM UNNEST($1::text[], $2::bigint[]) AS u(id, at) WHERE k.id = u.id",
            )
            .bind(ids)
            .bind(times)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(())
        }))
    }

    fn name(&self) -> &'static str {
        "postgres"
    }

    fn revocation_notices(&self) -> Option<broadcast::Receiver<RevocationNotice>> {
        self.notices.subscribe(&self.pool)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pool_settings_are_checked() {
        let err = PostgresOptions::new().max_connections(1).validate().unwrap_err();
        assert!(err.to_string().contains("at least 2"), "{err}");
        let err = PostgresOptions::new()
            .acquire_timeout(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("acquire timeout"), "{err}");
        let err = PostgresOptions::new()
            .query_timeout(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("query timeout"), "{err}");
        assert!(PostgresOptions::default().validate().is_ok());
    }
}
