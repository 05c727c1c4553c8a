//! The verified identity a handler receives: [`Auth`], with Clerk's fields.
//!
//! `Auth` is an extractor. It is available once a policy ran for the request — a handler
//! attribute (`#[accepts_token]`) or a [`PolicyLayer`](crate::PolicyLayer) — and cheap to
//! clone (a shared pointer). `Option<Auth>` works on routes that may be unauthenticated.
//!
//! ```
//! use tokengate_runtime::{Auth, AuthInfo, TokenType};
//!
//! let mut info = AuthInfo::new(TokenType::ApiKey);
//! info.subject = Some("user_123".into());
//! info.scopes = vec!["write:users".into()];
//! let auth = Auth::new(info.with_derived_ids());
//! assert_eq!(auth.user_id.as_deref(), Some("user_123"));
//! assert!(auth.has_scope("write:users"));
//! ```

use std::sync::Arc;

use arcstr::ArcStr;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::rejection::Rejection;
use crate::token::TokenType;

/// What a verifier learned about a token. Fields follow Clerk's auth objects.
///
/// The identifiers are [`ArcStr`]s (re-exported as `tokengate::ArcStr`): one pointer each,
/// dereferencing to `&str`, shared rather than copied when cloned (a session's `user_id` is its
/// `subject`). Read one with `auth.user_id.as_deref()`; set one with `Some("user_1".into())`
/// (from a `&str` or a `String`); own one with `auth.user_id.as_deref().map(str::to_owned)`.
/// A cached API key is an `AuthInfo` held as long as it is cached, so its size is memory per
/// key: 200 bytes, where eleven `Option<String>`s made it 376 (BENCHMARKS.md, section 8).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AuthInfo {
    /// The kind of token that was verified.
    pub token_type: TokenType,
    /// The token's own id (API key id, M2M token id, `jti`…), when it has one.
    pub id: Option<ArcStr>,
    /// The subject: a user, organization or machine id.
    pub subject: Option<ArcStr>,
    /// The subject when it is a user (`user_…`), or a session's user.
    pub user_id: Option<ArcStr>,
    /// The active organization, or the subject when it is one (`org_…`).
    pub org_id: Option<ArcStr>,
    /// The session id of a session token (`sid`).
    pub session_id: Option<ArcStr>,
    /// A session's status (`sts`).
    pub session_status: Option<ArcStr>,
    /// The API key's name.
    pub name: Option<ArcStr>,
    /// The OAuth client that obtained the token.
    pub client_id: Option<ArcStr>,
    /// The machine behind an M2M token (`mch_…`).
    pub machine_id: Option<ArcStr>,
    /// Scopes the token carries (machine tokens).
    pub scopes: Vec<String>,
    /// The role in the active organization (`org:admin`).
    pub org_role: Option<ArcStr>,
    /// The organization slug.
    pub org_slug: Option<ArcStr>,
    /// Permissions in the active organization (`org:invoices:create`).
    pub org_permissions: Vec<String>,
    /// Expiration, in seconds since the Unix epoch.
    pub expiration: Option<i64>,
    /// Every claim or custom field the token carried.
    pub claims: serde_json::Value,
    /// The key's own rate limit (`keys create --rate-limit`), counted on every route in
    /// addition to the routes' own.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "rate_text")]
    pub rate_limit: Option<tokengate_core::rate::Rate>,
}

fn rate_text<S: serde::Serializer>(rate: &Option<tokengate_core::rate::Rate>, s: S) -> Result<S::Ok, S::Error> {
    match rate {
        Some(rate) => s.collect_str(rate),
        None => s.serialize_none(),
    }
}

impl AuthInfo {
    /// Empty information for a token of `token_type`.
    pub fn new(token_type: TokenType) -> AuthInfo {
        AuthInfo {
            token_type,
            id: None,
            subject: None,
            user_id: None,
            org_id: None,
            session_id: None,
            session_status: None,
            name: None,
            client_id: None,
            machine_id: None,
            scopes: Vec::new(),
            org_role: None,
            org_slug: None,
            org_permissions: Vec::new(),
            expiration: None,
            claims: serde_json::Value::Object(serde_json::Map::new()),
            rate_limit: None,
        }
    }

    /// Fills `user_id`, `org_id` and `machine_id` from the subject's prefix when unset, as
    /// Clerk does for machine tokens.
    #[must_use]
    pub fn with_derived_ids(mut self) -> AuthInfo {
        if let Some(subject) = &self.subject {
            if self.user_id.is_none() && subject.starts_with("user_") {
                self.user_id = Some(subject.clone());
            }
            if self.org_id.is_none() && subject.starts_with("org_") {
                self.org_id = Some(subject.clone());
            }
            if self.machine_id.is_none() && subject.starts_with("mch_") {
                self.machine_id = Some(subject.clone());
            }
        }
        self
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the expiration, if any, has passed at `now` (seconds since the epoch).
    pub fn is_expired_at(&self, now: i64) -> bool {
        self.expiration.is_some_and(|exp| exp <= now)
    }
}

/// The verified identity of the caller; derefs to [`AuthInfo`]. Cheap to clone.
#[derive(Clone, Debug, PartialEq)]
pub struct Auth(Arc<AuthInfo>);

impl Auth {
    /// Wraps verified information.
    pub fn new(info: AuthInfo) -> Auth {
        Auth(Arc::new(info))
    }

    /// The shared information.
    pub fn info(&self) -> &Arc<AuthInfo> {
        &self.0
    }
}

impl From<AuthInfo> for Auth {
    fn from(info: AuthInfo) -> Self {
        Auth::new(info)
    }
}

impl From<Arc<AuthInfo>> for Auth {
    fn from(info: Arc<AuthInfo>) -> Self {
        Auth(info)
    }
}

impl std::ops::Deref for Auth {
    type Target = AuthInfo;

    fn deref(&self) -> &AuthInfo {
        &self.0
    }
}

impl serde::Serialize for Auth {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Auth>() {
            Some(auth) => Ok(auth.clone()),
            None => {
                tracing::error!(
                    target: "tokengate",
                    path = %parts.uri.path(),
                    "a handler asks for `Auth` but no tokengate policy ran for this route; \
                     add #[accepts_token(...)] to the handler or a PolicyLayer to its router"
                );
                Err(Rejection::Misconfigured("`Auth` requested on a route without a policy"))
            }
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Auth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Auth>().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_follow_the_subject_prefix() {
        let mut a = AuthInfo::new(TokenType::ApiKey);
        a.subject = Some("org_9".into());
        let a = a.with_derived_ids();
        assert_eq!(a.org_id.as_deref(), Some("org_9"));
        assert_eq!(a.user_id, None);
        let mut m = AuthInfo::new(TokenType::M2mToken);
        m.subject = Some("mch_1".into());
        assert_eq!(m.with_derived_ids().machine_id.as_deref(), Some("mch_1"));
    }

    #[test]
    fn an_auth_info_is_small_it_is_memory_per_cached_key() {
        // Eleven `Option<String>`s made it 376 bytes; each `ArcStr` is one pointer.
        assert!(
            std::mem::size_of::<AuthInfo>() <= 200,
            "{}",
            std::mem::size_of::<AuthInfo>()
        );
        assert_eq!(std::mem::size_of::<Option<ArcStr>>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn a_derived_user_id_shares_the_subject() {
        let mut a = AuthInfo::new(TokenType::ApiKey);
        a.subject = Some("user_1".into());
        let a = a.with_derived_ids();
        let (subject, user) = (a.subject.as_deref().unwrap(), a.user_id.as_deref().unwrap());
        assert_eq!(user, "user_1");
        assert!(std::ptr::eq(subject, user), "with_derived_ids copied the subject");
    }

    #[test]
    fn expiry() {
        let mut a = AuthInfo::new(TokenType::ApiKey);
        assert!(!a.is_expired_at(100));
        a.expiration = Some(100);
        assert!(a.is_expired_at(100));
        assert!(!a.is_expired_at(99));
    }
}
