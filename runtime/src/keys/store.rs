//! The key store: the [`KeyStore`] trait every backend implements, its record types, and
//! [`issue`], which creates a key and returns its secret once.
//!
//! The trait is database-agnostic: an in-memory store ([`MemoryKeyStore`](super::MemoryKeyStore))
//! an SQLite store ([`SqliteKeyStore`](super::SqliteKeyStore)) and a PostgreSQL store
//! ([`PostgresKeyStore`](super::PostgresKeyStore)) implement it. Times are seconds since the Unix epoch.
//!
//! ```
//! use tokengate_runtime::keys::{KeySpec, KeyStore, MemoryKeyStore, SecretHash, issue};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryKeyStore::new();
//! let issued = issue(&store, KeySpec::api_key("user_123", "ci").scope("write:users")).await.unwrap();
//! let found = store.find_by_hash(&SecretHash::of(issued.secret.expose())).await.unwrap().unwrap();
//! assert_eq!(found.id, issued.record.id);
//! assert_eq!(found.scopes, ["write:users"]);
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokengate_core::grammar;
use tokengate_core::rate::Rate;

use crate::auth::AuthInfo;
use crate::rejection::InvalidReason;

use super::change::{Changed, KeyChange, KeyEvent};
use super::secret::{KeyKind, Secret, SecretHash, generate_id};

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot answer (locked, missing file, disk full, connection refused…). The
    /// verifier turns it into a `503`, never a `401`.
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
    /// The request is invalid (an empty name, claims that are not a JSON object…).
    #[error("{0}")]
    Invalid(String),
    /// A key with the same id or secret hash exists.
    #[error("a key with the same id or secret already exists")]
    Conflict,
    /// The database URL names a backend this version does not support.
    #[error("{0}")]
    Unsupported(String),
    /// The store or verifier is misconfigured (a bad URL, a zero interval…).
    #[error("{0}")]
    InvalidConfig(String),
}

/// The future a store returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A stored key. Holds the hash of its secret, never the secret; the hash is not serialized.
#[derive(Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct KeyRecord {
    /// `ak_…` or `mt_…` followed by 32 hex digits.
    pub id: String,
    /// API key or M2M token.
    pub kind: KeyKind,
    /// A name for humans (`ci`, `billing-worker`).
    pub name: String,
    /// A longer description.
    pub description: Option<String>,
    /// Whom the key acts for: `user_…`, `org_…` or `mch_…`.
    pub subject: String,
    /// Scopes the key carries.
    pub scopes: Vec<String>,
    /// Custom claims, a JSON object.
    pub claims: serde_json::Value,
    /// Creation time.
    pub created_at: i64,
    /// Expiration time, if any.
    pub expires_at: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
    /// Why it was revoked.
    pub revocation_reason: Option<String>,
    /// When it was last used (written in batches, so up to a flush interval late).
    pub last_used_at: Option<i64>,
    /// When it was disabled, while it is (`token-disabled`).
    pub disabled_at: Option<i64>,
    /// Its own rate limit (`20/min`), counted on every route in addition to the routes' own.
    pub rate_limit: Option<String>,
    /// Until when the secret it had before its last reroll keeps working.
    pub grace_until: Option<i64>,
    /// The SHA-256 of the secret.
    #[serde(skip)]
    pub secret_hash: SecretHash,
    /// The SHA-256 of the secret it had before its last reroll.
    #[serde(skip)]
    pub previous_secret_hash: Option<SecretHash>,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("subject", &self.subject)
            .field("scopes", &self.scopes)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("disabled_at", &self.disabled_at)
            .field("grace_until", &self.grace_until)
            .field("last_used_at", &self.last_used_at)
            .finish_non_exhaustive()
    }
}

impl KeyRecord {
    /// Builds the record a store keeps for `key`.
    pub fn from_new(key: NewKey) -> KeyRecord {
        KeyRecord {
            id: key.id,
            kind: key.kind,
            name: key.name,
            description: key.description,
            subject: key.subject,
            scopes: key.scopes,
            claims: key.claims,
            created_at: key.created_at,
            expires_at: key.expires_at,
            revoked_at: None,
            revocation_reason: None,
            last_used_at: None,
            disabled_at: None,
            rate_limit: key.rate_limit,
            grace_until: None,
            secret_hash: key.secret_hash,
            previous_secret_hash: None,
        }
    }

    /// Whether the key was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether the key has expired at `now`.
    pub fn is_expired_at(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|exp| exp <= now)
    }

    /// Whether the key may be used at `now`: `Revoked` first, then `Disabled`, then `Expired`.
    pub fn check_usable_at(&self, now: i64) -> Result<(), InvalidReason> {
        if self.is_revoked() {
            Err(InvalidReason::Revoked)
        } else if self.disabled_at.is_some() {
            Err(InvalidReason::Disabled)
        } else if self.is_expired_at(now) {
            Err(InvalidReason::Expired)
        } else {
            Ok(())
        }
    }

    /// Whether the secret hashing to `hash` opens this key at `now`: its current secret, or
    /// the one before its last reroll until that one's deadline (`Rotated` after it). `Ok`
    /// holds that deadline for the previous secret, `None` for the current one; a hash that is
    /// neither is `UnknownToken`. Compared in constant time.
    pub fn check_secret_at(&self, hash: &SecretHash, now: i64) -> Result<Option<i64>, InvalidReason> {
        let deadline = if self.secret_hash.ct_eq(hash) {
            None
        } else if self.previous_secret_hash.is_some_and(|h| h.ct_eq(hash)) {
            // A previous secret without a deadline is a store's error: refused.
            Some(self.grace_until.unwrap_or(i64::MIN))
        } else {
            return Err(InvalidReason::UnknownToken);
        };
        if self.is_revoked() {
            return Err(InvalidReason::Revoked);
        }
        if deadline.is_some_and(|until| until <= now) {
            return Err(InvalidReason::Rotated);
        }
        self.check_usable_at(now)?;
        Ok(deadline)
    }

    /// What a handler sees for this key (`user_id`/`org_id`/`machine_id` derived from the subject).
    pub fn to_auth_info(&self) -> AuthInfo {
        self.clone().into_auth_info()
    }

    /// [`to_auth_info`](Self::to_auth_info), taking the record's strings instead of copying
    /// them (the key verifier's path: the record is dropped next). The scopes keep no spare
    /// capacity: the result is what a cached key holds for as long as it is cached.
    pub fn into_auth_info(self) -> AuthInfo {
        let mut info = AuthInfo::new(self.kind.token_type());
        // Checked when written; a value that does not parse counts as no limit of its own.
        info.rate_limit = self.rate_limit.as_deref().and_then(|r| r.parse().ok());
        info.id = Some(self.id.into());
        info.subject = Some(self.subject.into());
        info.name = Some(self.name.into());
        info.scopes = self.scopes;
        info.scopes.shrink_to_fit();
        info.expiration = self.expires_at;
        info.claims = self.claims;
        info.with_derived_ids()
    }
}

/// A key to insert, secret already hashed. Built by [`issue`]; stores insert it as is.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NewKey {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: KeyKind,
    /// The SHA-256 of its secret.
    pub secret_hash: SecretHash,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its subject.
    pub subject: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its claims (a JSON object).
    pub claims: serde_json::Value,
    /// Creation time.
    pub created_at: i64,
    /// Expiration time.
    pub expires_at: Option<i64>,
    /// Who issues it, for the audit trail.
    pub actor: String,
    /// Its own rate limit (`20/min`).
    pub rate_limit: Option<String>,
}

impl NewKey {
    /// A key with every field given; for stores' own tests and data imports. Use [`issue`] to
    /// create keys.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        kind: KeyKind,
        secret_hash: SecretHash,
        name: String,
        subject: String,
        scopes: Vec<String>,
        created_at: i64,
        expires_at: Option<i64>,
    ) -> NewKey {
        NewKey {
            id,
            kind,
            secret_hash,
            name,
            description: None,
            subject,
            scopes,
            claims: serde_json::Value::Object(serde_json::Map::new()),
            created_at,
            expires_at,
            actor: super::change::DEFAULT_ACTOR.to_owned(),
            rate_limit: None,
        }
    }
}

/// One `last_used_at` update in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastUsed {
    /// The key id.
    pub id: String,
    /// When it was used.
    pub at: i64,
}

/// Which keys [`KeyStore::list_page`] returns: of one subject or all, of one name or all,
/// those after one key, at most `limit` (default [`KeyQuery::DEFAULT_LIMIT`]).
///
/// ```
/// use tokengate_runtime::keys::KeyQuery;
///
/// let first = KeyQuery::new().subject("user_123").limit(50);
/// // The next page starts after the last key of this one.
/// let next = first.clone().after("ak_0123456789abcdef0123456789abcdef");
/// assert_eq!(next.limit, 50);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyQuery {
    /// Only the keys of this subject.
    pub subject: Option<String>,
    /// Only the keys with this name.
    pub name: Option<String>,
    /// Only the keys after the key with this id, in the listing's order; a key that does not
    /// exist is [`StoreError::Invalid`].
    pub after: Option<String>,
    /// At most this many keys (at least 1).
    pub limit: usize,
}

impl Default for KeyQuery {
    fn default() -> KeyQuery {
        KeyQuery::new()
    }
}

impl KeyQuery {
    /// How many keys a page holds unless told otherwise.
    pub const DEFAULT_LIMIT: usize = 100;

    /// Every key, the first [`DEFAULT_LIMIT`](KeyQuery::DEFAULT_LIMIT).
    pub fn new() -> KeyQuery {
        KeyQuery {
            subject: None,
            name: None,
            after: None,
            limit: KeyQuery::DEFAULT_LIMIT,
        }
    }

    /// Only the keys of `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> KeyQuery {
        self.subject = Some(subject.into());
        self
    }

    /// Only the keys named `name`.
    pub fn name(mut self, name: impl Into<String>) -> KeyQuery {
        self.name = Some(name.into());
        self
    }

    /// Only the keys after the key `id`.
    pub fn after(mut self, id: impl Into<String>) -> KeyQuery {
        self.after = Some(id.into());
        self
    }

    /// At most `limit` keys (a limit of 0 counts as 1).
    pub fn limit(mut self, limit: usize) -> KeyQuery {
        self.limit = limit.max(1);
        self
    }

    /// The SQL `LIMIT`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn sql_limit(&self) -> i64 {
        i64::try_from(self.limit.max(1)).unwrap_or(i64::MAX)
    }

    /// The page this query selects from `records`, all of the subject's keys in order.
    pub(crate) fn page_of(&self, records: Vec<KeyRecord>) -> Result<Vec<KeyRecord>, StoreError> {
        let start = match &self.after {
            None => 0,
            Some(after) => records
                .iter()
                .position(|r| &r.id == after)
                .map(|i| i + 1)
                .ok_or_else(|| self.unknown_after())?,
        };
        Ok(records
            .into_iter()
            .skip(start)
            .filter(|r| self.name.as_ref().is_none_or(|n| &r.name == n))
            .take(self.limit.max(1))
            .collect())
    }

    /// The error for an `after` key that does not exist.
    pub(crate) fn unknown_after(&self) -> StoreError {
        StoreError::Invalid(format!(
            "there is no key {} to list after; give the id of a key the previous page showed",
            super::secret::quote_id(self.after.as_deref().unwrap_or_default())
        ))
    }
}

/// A change made by another process (another server instance, the CLI) that a verifier's
/// cache must forget, announced by stores that can (PostgreSQL's `LISTEN/NOTIFY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationNotice {
    /// The key whose secret hashes to this was revoked, changed or deleted.
    Revoked(SecretHash),
    /// Notices may have been missed (the notification connection was lost and is back, or
    /// this receiver fell behind): forget every cached key.
    Resync,
}

/// Where keys live. Implementations must be safe to share between tasks; every method is
/// one short operation (no lock held across an `.await` by callers).
pub trait KeyStore: Send + Sync + 'static {
    /// Inserts a new key. [`StoreError::Conflict`] if its id or hash exists.
    fn create(&self, key: NewKey) -> StoreFuture<'_, KeyRecord>;

    /// The key with `id`, revoked or not.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>>;

    /// Every key, or those of `subject`, oldest first. Reads them all into memory: for a
    /// table of any size, page through it with [`list_page`](KeyStore::list_page).
    fn list<'a>(&'a self, subject: Option<&'a str>) -> StoreFuture<'a, Vec<KeyRecord>>;

    /// One page of the keys `query` selects, in a stable order (oldest first, ties in the
    /// order of insertion): those after `query.after`, at most `query.limit`. The SQL stores
    /// answer with one indexed query whatever the table's size; this default reads
    /// [`list`](KeyStore::list) whole and pages it in memory.
    fn list_page<'a>(&'a self, query: &'a KeyQuery) -> StoreFuture<'a, Vec<KeyRecord>> {
        Box::pin(async move { query.page_of(self.list(query.subject.as_deref()).await?) })
    }

    /// Revokes the key with `id` at `at`; revoking twice keeps the first time and reason.
    /// `None` when no key has that id.
    fn revoke<'a>(&'a self, id: &'a str, reason: Option<&'a str>, at: i64) -> StoreFuture<'a, Option<KeyRecord>>;

    /// The key whose secret hashes to `hash`.
    fn find_by_hash<'a>(&'a self, hash: &'a SecretHash) -> StoreFuture<'a, Option<KeyRecord>>;

    /// What verification looks up: [`find_by_hash`](KeyStore::find_by_hash)'s key, whose
    /// `last_used_at` may be left out (`None`): verification does not read it, and a store may
    /// keep it apart (the SQLite store, where reading it costs an uncached key one more page).
    /// The default is `find_by_hash`.
    fn find_to_verify<'a>(&'a self, hash: &'a SecretHash) -> StoreFuture<'a, Option<KeyRecord>> {
        self.find_by_hash(hash)
    }

    /// Writes a batch of `last_used_at` times (never moving one backwards).
    fn record_last_used<'a>(&'a self, uses: &'a [LastUsed]) -> StoreFuture<'a, ()>;

    /// Applies `change` to the key `id` at `at` by `actor`: loads the key, saves what
    /// [`KeyChange::apply`] makes of it and appends its event to the audit trail, all in one
    /// transaction. `None` when no key has that id. Stores that cannot (the default) answer
    /// [`StoreError::Unsupported`].
    fn change<'a>(
        &'a self,
        id: &'a str,
        change: &'a KeyChange,
        actor: &'a str,
        at: i64,
    ) -> StoreFuture<'a, Option<Changed>> {
        let _ = (id, change, actor, at);
        Box::pin(std::future::ready(Err(self.cannot("change keys after issuing them"))))
    }

    /// The audit trail of the key `id`, oldest first (kept after the key is deleted).
    fn history<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Vec<KeyEvent>> {
        let _ = id;
        Box::pin(std::future::ready(Err(self.cannot("keep an audit trail"))))
    }

    /// A short name for logs (`"sqlite"`, `"memory"`).
    fn name(&self) -> &'static str {
        "custom"
    }

    /// The error of a store that cannot do `what`.
    #[doc(hidden)]
    fn cannot(&self, what: &str) -> StoreError {
        StoreError::Unsupported(format!(
            "the {} key store cannot {what}; use the SQLite, PostgreSQL or memory store",
            self.name()
        ))
    }

    /// Revocations made by other processes, for stores that can announce them (the
    /// PostgreSQL store does, with `LISTEN/NOTIFY`). A [`KeyVerifier`](super::KeyVerifier)
    /// subscribes when it is built and evicts what it hears; without notices (the default,
    /// `None`), a revocation made elsewhere is seen within the cache TTL.
    fn revocation_notices(&self) -> Option<tokio::sync::broadcast::Receiver<RevocationNotice>> {
        None
    }
}

impl<S: KeyStore + ?Sized> KeyStore for Arc<S> {
    fn create(&self, key: NewKey) -> StoreFuture<'_, KeyRecord> {
        (**self).create(key)
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        (**self).get(id)
    }

    fn list<'a>(&'a self, subject: Option<&'a str>) -> StoreFuture<'a, Vec<KeyRecord>> {
        (**self).list(subject)
    }

    fn list_page<'a>(&'a self, query: &'a KeyQuery) -> StoreFuture<'a, Vec<KeyRecord>> {
        (**self).list_page(query)
    }

    fn revoke<'a>(&'a self, id: &'a str, reason: Option<&'a str>, at: i64) -> StoreFuture<'a, Option<KeyRecord>> {
        (**self).revoke(id, reason, at)
    }

    fn find_by_hash<'a>(&'a self, hash: &'a SecretHash) -> StoreFuture<'a, Option<KeyRecord>> {
        (**self).find_by_hash(hash)
    }

    fn find_to_verify<'a>(&'a self, hash: &'a SecretHash) -> StoreFuture<'a, Option<KeyRecord>> {
        (**self).find_to_verify(hash)
    }

    fn record_last_used<'a>(&'a self, uses: &'a [LastUsed]) -> StoreFuture<'a, ()> {
        (**self).record_last_used(uses)
    }

    fn change<'a>(
        &'a self,
        id: &'a str,
        change: &'a KeyChange,
        actor: &'a str,
        at: i64,
    ) -> StoreFuture<'a, Option<Changed>> {
        (**self).change(id, change, actor, at)
    }

    fn history<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Vec<KeyEvent>> {
        (**self).history(id)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn revocation_notices(&self) -> Option<tokio::sync::broadcast::Receiver<RevocationNotice>> {
        (**self).revocation_notices()
    }
}

/// What a caller asks for when issuing a key.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct KeySpec {
    /// API key or M2M token.
    pub kind: KeyKind,
    /// A name for humans.
    pub name: String,
    /// A longer description.
    pub description: Option<String>,
    /// `user_…`, `org_…` or `mch_…`.
    pub subject: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Custom claims: a JSON object.
    pub claims: serde_json::Value,
    /// Expiration time, if any (seconds since the epoch).
    pub expires_at: Option<i64>,
    /// Who issues it, for the audit trail (default [`DEFAULT_ACTOR`](super::change::DEFAULT_ACTOR)).
    pub actor: String,
    /// Its own rate limit, counted on every route in addition to the routes' own.
    pub rate_limit: Option<Rate>,
}

impl KeySpec {
    /// An API key (`ak_…`) for `subject`, named `name`, without scopes or expiry.
    pub fn api_key(subject: impl Into<String>, name: impl Into<String>) -> KeySpec {
        KeySpec::new(KeyKind::ApiKey, subject, name)
    }

    /// An opaque M2M token (`mt_…`) for `subject` (usually `mch_…`).
    pub fn m2m_token(subject: impl Into<String>, name: impl Into<String>) -> KeySpec {
        KeySpec::new(KeyKind::M2mToken, subject, name)
    }

    /// A key of `kind`.
    pub fn new(kind: KeyKind, subject: impl Into<String>, name: impl Into<String>) -> KeySpec {
        KeySpec {
            kind,
            name: name.into(),
            description: None,
            subject: subject.into(),
            scopes: Vec::new(),
            claims: serde_json::Value::Object(serde_json::Map::new()),
            expires_at: None,
            actor: super::change::DEFAULT_ACTOR.to_owned(),
            rate_limit: None,
        }
    }

    /// Gives the key a rate limit of its own (on every route, in addition to the routes').
    #[must_use]
    pub fn rate_limit(mut self, rate: Rate) -> KeySpec {
        self.rate_limit = Some(rate);
        self
    }

    /// Names who issues the key, for the audit trail.
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> KeySpec {
        self.actor = actor.into();
        self
    }

    /// Adds a scope.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> KeySpec {
        self.scopes.push(scope.into());
        self
    }

    /// Adds scopes.
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> KeySpec {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> KeySpec {
        self.description = Some(description.into());
        self
    }

    /// Sets the custom claims (must be a JSON object).
    #[must_use]
    pub fn claims(mut self, claims: serde_json::Value) -> KeySpec {
        self.claims = claims;
        self
    }

    /// Expires at `at` (seconds since the epoch).
    #[must_use]
    pub fn expires_at(mut self, at: i64) -> KeySpec {
        self.expires_at = Some(at);
        self
    }

    /// Expires `after` from now.
    #[must_use]
    pub fn expires_in(self, after: Duration) -> KeySpec {
        let after = i64::try_from(after.as_secs()).unwrap_or(i64::MAX);
        self.expires_at(now_unix().saturating_add(after))
    }

    /// Checks the spec; every message says what to fix.
    pub fn validate(&self, now: i64) -> Result<(), StoreError> {
        let invalid = |m: String| Err(StoreError::Invalid(m));
        if self.name.trim().is_empty() || self.name.len() > 255 || self.name.chars().any(char::is_control) {
            return invalid("the name must be 1 to 255 printable characters".into());
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 1024) {
            return invalid("the description must be at most 1024 bytes".into());
        }
        let subject_ok = ["user_", "org_", "mch_"]
            .iter()
            .any(|p| self.subject.len() > p.len() && self.subject.starts_with(p))
            && self.subject.len() <= 255
            && self
                .subject
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !subject_ok {
            return invalid(format!(
                "the subject `{}` must be a user, organization or machine id: `user_…`, `org_…` or `mch_…` \
                 (letters, digits, `_` and `-`)",
                self.subject.escape_debug()
            ));
        }
        for scope in &self.scopes {
            if grammar::validate_scope(scope).is_err() {
                return invalid(format!(
                    "the scope `{}` is not a valid scope: use printable ASCII without spaces, `\"` or `\\`",
                    scope.escape_debug()
                ));
            }
        }
        super::change::check_actor(&self.actor)?;
        if !self.claims.is_object() {
            return invalid("the claims must be a JSON object, e.g. {\"team\":\"billing\"}".into());
        }
        if let Some(exp) = self.expires_at
            && exp <= now
        {
            return invalid("the expiration must be in the future".into());
        }
        Ok(())
    }
}

/// A newly issued key: its record and its secret, which is shown once and never stored.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IssuedKey {
    /// The stored record.
    pub record: KeyRecord,
    /// The plaintext secret. Show it once; never log it.
    pub secret: Secret,
}

/// Validates `spec`, draws a secret and an id, and stores the key with the secret's hash.
pub async fn issue<S: KeyStore + ?Sized>(store: &S, spec: KeySpec) -> Result<IssuedKey, StoreError> {
    let now = now_unix();
    spec.validate(now)?;
    let rng_failed = |e: getrandom::Error| {
        StoreError::Unavailable(format!("the operating system's random number generator failed: {e}"))
    };
    let secret = Secret::generate(spec.kind).map_err(rng_failed)?;
    let id = generate_id(spec.kind).map_err(rng_failed)?;
    let mut scopes: Vec<String> = Vec::with_capacity(spec.scopes.len());
    for scope in spec.scopes {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let key = NewKey {
        id,
        kind: spec.kind,
        secret_hash: secret.hash(),
        name: spec.name,
        description: spec.description,
        subject: spec.subject,
        scopes,
        claims: spec.claims,
        created_at: now,
        expires_at: spec.expires_at,
        actor: spec.actor,
        rate_limit: spec.rate_limit.map(|r| r.to_string()),
    };
    let record = store.create(key).await?;
    Ok(IssuedKey { record, secret })
}

/// The current time in seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The table both SQL stores track their migrations in (beside the application's own).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const MIGRATIONS_TABLE: &str = "_tokengate_migrations";

/// The `SELECT` of one page of `query` from `from` (the key table, or what a store reads a
/// record from): its filters, the rows after
/// `after` (the creation time and tie-breaker of the key to list after, which the store read),
/// in the order `created_at, {tiebreak}`, at most its limit.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn page_select<DB>(
    columns: &str,
    from: &str,
    tiebreak: &str,
    query: &KeyQuery,
    after: Option<(i64, i64)>,
) -> sqlx::QueryBuilder<DB>
where
    DB: sqlx::Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut sql = sqlx::QueryBuilder::new(format!("SELECT {columns} FROM {from} WHERE TRUE"));
    if let Some(subject) = &query.subject {
        sql.push(" AND subject = ").push_bind(subject.clone());
    }
    if let Some(name) = &query.name {
        sql.push(" AND name = ").push_bind(name.clone());
    }
    if let Some((created_at, position)) = after {
        sql.push(format_args!(" AND (created_at, {tiebreak}) > ("))
            .push_bind(created_at)
            .push(", ")
            .push_bind(position)
            .push(")");
    }
    sql.push(format_args!(" ORDER BY created_at, {tiebreak} LIMIT "))
        .push_bind(query.sql_limit());
    sql
}

/// The key-table migrations (`(description, sql)`, numbered from 1 in order) as an sqlx
/// migrator tracked in [`MIGRATIONS_TABLE`], so an application's own migrations in the same
/// database are left alone.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn key_migrator(steps: &[(&'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr as _;
    let migrations = (1..)
        .zip(steps)
        .map(|(version, &(description, sql))| {
            sqlx::migrate::Migration::new(
                version,
                std::borrow::Cow::Borrowed(description),
                sqlx::migrate::MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = sqlx::migrate::Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.set_ignore_missing(true);
    migrator
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validation_explains_what_to_fix() {
        let now = now_unix();
        assert!(
            KeySpec::api_key("user_1", "ci")
                .scope("write:users")
                .validate(now)
                .is_ok()
        );
        let err = KeySpec::api_key("bob", "ci").validate(now).unwrap_err().to_string();
        assert!(err.contains("user_"), "{err}");
        let err = KeySpec::api_key("user_1", "ci")
            .scope("a b")
            .validate(now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("scope"), "{err}");
        for bad in ["", "a\"b", "a\\b", "é"] {
            assert!(
                KeySpec::api_key("user_1", "ci").scope(bad).validate(now).is_err(),
                "{bad:?}"
            );
        }
        let err = KeySpec::api_key("user_1", "ci")
            .claims(serde_json::json!([1]))
            .validate(now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("JSON object"), "{err}");
        assert!(KeySpec::api_key("user_1", " ").validate(now).is_err());
        assert!(
            KeySpec::api_key("user_1", "ci")
                .expires_at(now - 1)
                .validate(now)
                .is_err()
        );
    }
}
