//! What happens to a key after it was issued — update, reroll, disable, enable, revoke,
//! delete — and the audit trail that records each change.
//!
//! What a change does to a record is decided here, once, for every store
//! ([`KeyChange::apply`]); a store only loads the row, saves what `apply` returns and appends
//! the [`KeyEvent`], in one transaction ([`KeyStore::change`]). The
//! functions at the bottom ([`update`], [`reroll`], …) are what the CLI and
//! [`KeyVerifier`](super::KeyVerifier) call.
//!
//! ```
//! use std::time::Duration;
//! use tokengate_runtime::keys::{KeySpec, KeyStore, KeyUpdate, MemoryKeyStore, change, issue};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryKeyStore::new();
//! let key = issue(&store, KeySpec::api_key("user_1", "ci").actor("alice")).await.unwrap();
//! let id = &key.record.id;
//! change::update(&store, id, KeyUpdate::new().add_scope("write:users"), "alice").await.unwrap();
//! let (record, new_secret) = change::reroll(&store, id, Duration::from_secs(86_400), "alice")
//!     .await.unwrap().unwrap();
//! assert_eq!(record.scopes, ["write:users"]);
//! assert_ne!(new_secret.expose(), key.secret.expose()); // the old one works for a day more
//! let actions: Vec<_> = store.history(id).await.unwrap().iter().map(|e| e.action.as_str()).collect();
//! assert_eq!(actions, ["create", "update", "reroll"]);
//! # });
//! ```

use std::time::Duration;

use serde_json::{Map, Value, json};

use tokengate_core::rate::Rate;

use super::secret::{KeyKind, Secret, SecretHash};
use super::store::{KeyRecord, KeySpec, KeyStore, StoreError, now_unix};

/// The actor recorded for changes the application makes without naming one.
pub const DEFAULT_ACTOR: &str = "application";

/// The longest grace period a rerolled secret may keep working: 30 days.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);

/// What [`KeyChange::Update`] changes; a field left `None` stays as it is.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct KeyUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new description (`Some(None)` removes it).
    pub description: Option<Option<String>>,
    /// The scopes, replacing all of them.
    pub scopes: Option<Vec<String>>,
    /// Scopes to add.
    pub add_scopes: Vec<String>,
    /// Scopes to remove.
    pub remove_scopes: Vec<String>,
    /// New custom claims (a JSON object), replacing them.
    pub claims: Option<Value>,
    /// A new expiry (`Some(None)`: never expires).
    pub expires_at: Option<Option<i64>>,
    /// A new rate limit of the key's own (`Some(None)`: none).
    pub rate_limit: Option<Option<Rate>>,
}

impl KeyUpdate {
    /// Changes nothing yet.
    pub fn new() -> KeyUpdate {
        KeyUpdate::default()
    }

    /// Renames the key.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> KeyUpdate {
        self.name = Some(name.into());
        self
    }

    /// Sets (or with `None` removes) the description.
    #[must_use]
    pub fn description(mut self, description: Option<String>) -> KeyUpdate {
        self.description = Some(description);
        self
    }

    /// Replaces every scope.
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> KeyUpdate {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a scope.
    #[must_use]
    pub fn add_scope(mut self, scope: impl Into<String>) -> KeyUpdate {
        self.add_scopes.push(scope.into());
        self
    }

    /// Removes a scope.
    #[must_use]
    pub fn remove_scope(mut self, scope: impl Into<String>) -> KeyUpdate {
        self.remove_scopes.push(scope.into());
        self
    }

    /// Replaces the custom claims (a JSON object).
    #[must_use]
    pub fn claims(mut self, claims: Value) -> KeyUpdate {
        self.claims = Some(claims);
        self
    }

    /// Sets the expiry (`None`: never expires).
    #[must_use]
    pub fn expires_at(mut self, at: Option<i64>) -> KeyUpdate {
        self.expires_at = Some(at);
        self
    }

    /// Sets (or with `None` removes) the key's own rate limit.
    #[must_use]
    pub fn rate_limit(mut self, rate: Option<Rate>) -> KeyUpdate {
        self.rate_limit = Some(rate);
        self
    }
}

/// A change to a stored key.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum KeyChange {
    /// Name, description, scopes, claims or expiry.
    Update(KeyUpdate),
    /// A new secret for the same key; the current one keeps working until
    /// `previous_valid_until` (then `token-rotated`). A secret still in an earlier grace
    /// period stops working at once.
    Reroll {
        /// The SHA-256 of the new secret.
        secret_hash: SecretHash,
        /// When the current secret stops working.
        previous_valid_until: i64,
    },
    /// Refuse the key (`token-disabled`) until it is enabled again.
    Disable,
    /// Accept a disabled key again.
    Enable,
    /// Refuse the key for good (`token-revoked`).
    Revoke {
        /// Why, kept with the key.
        reason: Option<String>,
    },
    /// Remove the key; its audit trail stays.
    Delete,
    /// A secret of the key was found in public (GitHub's secret scanning): recorded; with
    /// `revoke`, the key is revoked or, when the secret found is the one a reroll replaced,
    /// that secret's grace period ends now.
    ReportLeak {
        /// Whether the secret found is the one a reroll replaced.
        previous: bool,
        /// Where it was found.
        url: String,
        /// Revoke (or end the grace period) rather than only record.
        revoke: bool,
    },
}

/// What an audit event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyAction {
    /// Issued.
    Create,
    /// See [`KeyChange::Update`].
    Update,
    /// See [`KeyChange::Reroll`].
    Reroll,
    /// See [`KeyChange::Disable`].
    Disable,
    /// See [`KeyChange::Enable`].
    Enable,
    /// See [`KeyChange::Revoke`].
    Revoke,
    /// See [`KeyChange::Delete`].
    Delete,
    /// See [`KeyChange::ReportLeak`].
    Leak,
}

impl KeyAction {
    /// The name stored and printed (`create`, `reroll`…).
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyAction::Create => "create",
            KeyAction::Update => "update",
            KeyAction::Reroll => "reroll",
            KeyAction::Disable => "disable",
            KeyAction::Enable => "enable",
            KeyAction::Revoke => "revoke",
            KeyAction::Delete => "delete",
            KeyAction::Leak => "leak",
        }
    }

    /// The action stored as `name`.
    pub fn from_name(name: &str) -> Option<KeyAction> {
        [
            KeyAction::Create,
            KeyAction::Update,
            KeyAction::Reroll,
            KeyAction::Disable,
            KeyAction::Enable,
            KeyAction::Revoke,
            KeyAction::Delete,
            KeyAction::Leak,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }
}

/// One entry of a key's audit trail. Never holds a secret, nor a secret's hash.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct KeyEvent {
    /// The key.
    pub key_id: String,
    /// When (seconds since the epoch).
    pub at: i64,
    /// What was done.
    pub action: KeyAction,
    /// Who did it (`--actor`, the OS user, or [`DEFAULT_ACTOR`]).
    pub actor: String,
    /// What changed: for an update `{"field": {"from": …, "to": …}}`; for a reroll the old
    /// secret's deadline; for a revocation the reason; for a creation the key's fields.
    pub changes: Value,
}

impl KeyEvent {
    /// An event of `action` on `key_id`.
    pub fn new(
        key_id: impl Into<String>,
        at: i64,
        action: KeyAction,
        actor: impl Into<String>,
        changes: Value,
    ) -> Self {
        KeyEvent {
            key_id: key_id.into(),
            at,
            action,
            actor: actor.into(),
            changes,
        }
    }

    /// The creation event of a new key.
    pub(crate) fn created(record: &KeyRecord, actor: &str) -> KeyEvent {
        let changes = json!({
            "kind": record.kind.as_str(), "name": record.name, "subject": record.subject,
            "scopes": record.scopes, "expires_at": record.expires_at, "rate_limit": record.rate_limit,
        });
        KeyEvent::new(&record.id, record.created_at, KeyAction::Create, actor, changes)
    }
}

/// What [`KeyStore::change`] did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Changed {
    /// The key before.
    pub before: KeyRecord,
    /// The key after; `None` once deleted.
    pub after: Option<KeyRecord>,
    /// The audit event appended; `None` when the change changed nothing (disabling a disabled
    /// key, revoking a revoked one).
    pub event: Option<KeyEvent>,
}

impl Changed {
    /// A change that changed nothing.
    pub fn nothing(record: KeyRecord) -> Changed {
        Changed {
            after: Some(record.clone()),
            before: record,
            event: None,
        }
    }
}

/// What [`KeyChange::apply`] makes of a record.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Applied {
    /// The record to save; `None`: delete it.
    pub record: Option<KeyRecord>,
    /// The audit event to append.
    pub event: KeyEvent,
}

impl KeyChange {
    /// The action it records.
    pub fn action(&self) -> KeyAction {
        match self {
            KeyChange::Update(_) => KeyAction::Update,
            KeyChange::Reroll { .. } => KeyAction::Reroll,
            KeyChange::Disable => KeyAction::Disable,
            KeyChange::Enable => KeyAction::Enable,
            KeyChange::Revoke { .. } => KeyAction::Revoke,
            KeyChange::Delete => KeyAction::Delete,
            KeyChange::ReportLeak { .. } => KeyAction::Leak,
        }
    }

    /// What the change makes of `record` at `at` by `actor`: the record to save and the event
    /// to append, or `None` when nothing would change. A revoked key can only be deleted.
    pub fn apply(&self, record: &KeyRecord, actor: &str, at: i64) -> Result<Option<Applied>, StoreError> {
        check_actor(actor)?;
        let revoked = record.revoked_at.is_some();
        let is_final = matches!(
            self,
            KeyChange::Revoke { .. } | KeyChange::Delete | KeyChange::ReportLeak { .. }
        );
        if revoked && !is_final {
            return Err(StoreError::Invalid(format!(
                "the key `{}` is revoked, which is final: issue a new key instead",
                record.id
            )));
        }
        let mut after = record.clone();
        let changes = match self {
            KeyChange::Update(update) => update.apply_to(&mut after, at)?,
            KeyChange::Reroll {
                secret_hash,
                previous_valid_until,
            } => {
                after.previous_secret_hash = Some(record.secret_hash);
                after.grace_until = Some(*previous_valid_until);
                after.secret_hash = *secret_hash;
                Some(json!({ "grace_until": previous_valid_until }))
            }
            KeyChange::Disable if record.disabled_at.is_none() => {
                after.disabled_at = Some(at);
                Some(json!({}))
            }
            KeyChange::Enable if record.disabled_at.is_some() => {
                after.disabled_at = None;
                Some(json!({}))
            }
            KeyChange::Revoke { reason } if !revoked => {
                after.revoked_at = Some(at);
                after.revocation_reason.clone_from(reason);
                Some(json!({ "reason": reason }))
            }
            KeyChange::Delete => Some(json!({ "name": record.name, "subject": record.subject })),
            KeyChange::ReportLeak { previous, url, revoke } => {
                Some(report_leak(&mut after, *previous, url, *revoke, at))
            }
            KeyChange::Disable | KeyChange::Enable | KeyChange::Revoke { .. } => None,
        };
        Ok(changes.map(|changes| Applied {
            record: (!matches!(self, KeyChange::Delete)).then_some(after),
            event: KeyEvent::new(&record.id, at, self.action(), actor, changes),
        }))
    }
}

impl KeyUpdate {
    /// Applies the update to `record`; what changed, field by field (`None`: nothing).
    fn apply_to(&self, record: &mut KeyRecord, at: i64) -> Result<Option<Value>, StoreError> {
        if self.scopes.is_some() && !(self.add_scopes.is_empty() && self.remove_scopes.is_empty()) {
            return Err(StoreError::Invalid(
                "give either the scopes to replace all of them with, or scopes to add and remove, not both".into(),
            ));
        }
        let before = record.clone();
        if let Some(name) = &self.name {
            record.name.clone_from(name);
        }
        if let Some(description) = &self.description {
            record.description.clone_from(description);
        }
        if self.scopes.is_some() {
            record.scopes.clear();
        }
        for scope in self.scopes.iter().flatten().chain(&self.add_scopes) {
            if !record.scopes.contains(scope) {
                record.scopes.push(scope.clone());
            }
        }
        record.scopes.retain(|s| !self.remove_scopes.contains(s));
        if let Some(claims) = &self.claims {
            record.claims = claims.clone();
        }
        if let Some(expires_at) = self.expires_at {
            record.expires_at = expires_at;
        }
        if let Some(rate) = self.rate_limit {
            record.rate_limit = rate.map(|r| r.to_string());
        }
        let mut check = KeySpec::new(record.kind, &record.subject, &record.name)
            .scopes(record.scopes.clone())
            .claims(record.claims.clone());
        check.description.clone_from(&record.description);
        check.expires_at = record.expires_at.filter(|exp| Some(*exp) != before.expires_at);
        check.validate(at)?;
        Ok(field_changes(&before, record))
    }
}

/// Records a leak in `record` and says what was done.
fn report_leak(record: &mut KeyRecord, previous: bool, url: &str, revoke: bool, at: i64) -> Value {
    let done = match (revoke, previous) {
        (false, _) => "recorded",
        (true, _) if record.revoked_at.is_some() => "already revoked",
        (true, true) => {
            record.grace_until = record.grace_until.map(|until| until.min(at));
            "grace period ended"
        }
        (true, false) => {
            record.revoked_at = Some(at);
            record.revocation_reason = Some("leaked: found in public by GitHub secret scanning".into());
            "revoked"
        }
    };
    let secret = if previous { "previous" } else { "current" };
    json!({ "url": url, "secret": secret, "done": done })
}

/// `{"field": {"from": …, "to": …}}` for each field that differs; `None` when none does.
fn field_changes(before: &KeyRecord, after: &KeyRecord) -> Option<Value> {
    let mut changes = Map::new();
    let mut compare = |field: &str, from: Value, to: Value| {
        if from != to {
            changes.insert(field.into(), json!({ "from": from, "to": to }));
        }
    };
    compare("name", json!(before.name), json!(after.name));
    compare("description", json!(before.description), json!(after.description));
    compare("scopes", json!(before.scopes), json!(after.scopes));
    compare("claims", before.claims.clone(), after.claims.clone());
    compare("expires_at", json!(before.expires_at), json!(after.expires_at));
    compare("rate_limit", json!(before.rate_limit), json!(after.rate_limit));
    (!changes.is_empty()).then_some(Value::Object(changes))
}

/// Checks an actor name: 1 to 255 printable characters.
pub(crate) fn check_actor(actor: &str) -> Result<(), StoreError> {
    if actor.trim().is_empty() || actor.len() > 255 || actor.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "the actor must be 1 to 255 printable characters (who makes the change, e.g. a user name)".into(),
        ));
    }
    Ok(())
}

/// Updates the key `id`; `None` when there is none.
pub async fn update<S: KeyStore + ?Sized>(
    store: &S,
    id: &str,
    update: KeyUpdate,
    actor: &str,
) -> Result<Option<Changed>, StoreError> {
    store.change(id, &KeyChange::Update(update), actor, now_unix()).await
}

/// Gives the key `id` a new secret, returned once; the current secret keeps working for
/// `grace` (at most [`MAX_GRACE`]; zero refuses it at once). `None` when there is no such key.
pub async fn reroll<S: KeyStore + ?Sized>(
    store: &S,
    id: &str,
    grace: Duration,
    actor: &str,
) -> Result<Option<(KeyRecord, Secret)>, StoreError> {
    let Some(current) = store.get(id).await? else {
        return Ok(None);
    };
    let now = now_unix();
    let (change, secret) = reroll_of(current.kind, grace, now)?;
    let changed = store.change(id, &change, actor, now).await?;
    Ok(changed.and_then(|c| c.after).map(|record| (record, secret)))
}

/// A reroll of a key of `kind` at `now`: the change, and the new secret to show once.
pub fn reroll_of(kind: KeyKind, grace: Duration, now: i64) -> Result<(KeyChange, Secret), StoreError> {
    if grace > MAX_GRACE {
        return Err(StoreError::Invalid(format!(
            "the grace period must be at most {} days",
            MAX_GRACE.as_secs() / 86_400
        )));
    }
    let secret = Secret::generate(kind)
        .map_err(|e| StoreError::Unavailable(format!("the operating system's random number generator failed: {e}")))?;
    let change = KeyChange::Reroll {
        secret_hash: secret.hash(),
        previous_valid_until: now.saturating_add(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX)),
    };
    Ok((change, secret))
}

/// Applies `change` to the key `id` now; `None` when there is none.
pub async fn apply<S: KeyStore + ?Sized>(
    store: &S,
    id: &str,
    change: &KeyChange,
    actor: &str,
) -> Result<Option<Changed>, StoreError> {
    store.change(id, change, actor, now_unix()).await
}
