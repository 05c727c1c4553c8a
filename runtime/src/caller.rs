//! Typed callers: one view per token type, with the fields that type always has, and
//! [`Caller`], an enum over the types a route accepts.
//!
//! [`Auth`] has every field an `Option`, because it describes any token. A handler whose route
//! accepts one type takes that type's view instead — [`SessionCaller`], [`OAuthCaller`],
//! [`ApiKeyCaller`] or [`M2mCaller`] — and reads `caller.user_id` as a `String`. A route that
//! accepts several takes a [`Caller`] and `match`es it; the attributes narrow a bare `Caller`
//! parameter to the route's accepted types, so the `match` needs an arm for those types only
//! and is still exhaustive:
//!
//! ```
//! use tokengate_runtime::caller::{ApiKeyCaller, Caller, NotAccepted, SessionCaller};
//! use tokengate_runtime::{Auth, AuthInfo, TokenType};
//!
//! // What `#[accepts_token(session_token, api_key)]` makes of a bare `Caller` parameter.
//! type Narrowed = Caller<SessionCaller, NotAccepted, ApiKeyCaller, NotAccepted>;
//!
//! fn describe(caller: Narrowed) -> String {
//!     match caller {
//!         Caller::Session(s) => format!("user {}", s.user_id),
//!         Caller::ApiKey(k) => format!("key {} of {}", k.id, k.subject),
//!         // No arm for OAuth or M2M tokens: the route does not accept them.
//!     }
//! }
//!
//! let mut info = AuthInfo::new(TokenType::ApiKey);
//! info.id = Some("key_1".into());
//! info.subject = Some("user_1".into());
//! let caller = Narrowed::from_auth(&Auth::new(info)).unwrap();
//! assert_eq!(describe(caller), "key key_1 of user_1");
//! ```
//!
//! With the attributes (the `tokengate` crate's documentation runs this):
//!
//! ```text
//! #[accepts_token(api_key)]
//! async fn keys_only(caller: ApiKeyCaller) -> String { caller.id }
//!
//! #[accepts_token(session_token, api_key)]
//! async fn either(caller: Caller) -> String {
//!     match caller {
//!         Caller::Session(s) => s.user_id,
//!         Caller::ApiKey(k) => k.id,
//!     }
//! }
//! ```
//!
//! Taking a view of a type the route does not accept (or a single view on a route that
//! accepts several) is a compile error at the parameter. Where the attributes cannot see the
//! policy (a [`PolicyLayer`](crate::PolicyLayer)'s routes), a view that does not match the
//! verified token fails closed: `500`, with a log line naming the mismatch.
//!
//! On an optional route (`#[accepts_token(optional, ...)]`) take `Option<SessionCaller>` or
//! `Option<Caller>`: `None` for an anonymous caller.

use arcstr::ArcStr;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::auth::Auth;
use crate::rejection::Rejection;
use crate::token::TokenType;

/// A view of the verified caller for one token type.
pub trait CallerView: Sized {
    /// The token type this view is of; `None` for [`NotAccepted`].
    const TOKEN_TYPE: Option<TokenType>;

    /// The view of `auth`, or why it cannot be made (a token of another type, or a verifier
    /// that left out a field this type always has).
    fn from_auth(auth: &Auth) -> Result<Self, ViewError>;
}

/// Why a view could not be made of the verified caller: a route or verifier misconfiguration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The token is of another type than the view.
    #[error("the handler takes a view of {wanted} but the verified token is {presented}")]
    WrongType {
        /// The view's type.
        wanted: &'static str,
        /// The verified token's type.
        presented: TokenType,
    },
    /// The verifier returned no value for a field this token type always has.
    #[error("the verifier of {token_type} returned no `{field}`")]
    MissingField {
        /// The token type.
        token_type: TokenType,
        /// The field.
        field: &'static str,
    },
}

/// A type of token the route does not accept: the uninhabited type the attributes put in the
/// slots of [`Caller`] a route leaves out, so `match` needs no arm for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotAccepted {}

impl CallerView for NotAccepted {
    const TOKEN_TYPE: Option<TokenType> = None;

    fn from_auth(auth: &Auth) -> Result<Self, ViewError> {
        Err(ViewError::WrongType {
            wanted: "a type this `Caller` leaves out",
            presented: auth.token_type,
        })
    }
}

/// The active organization of a session.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Org {
    /// The organization id (`org_…`).
    pub id: String,
    /// Its slug.
    pub slug: Option<String>,
    /// The user's role in it (`org:admin`).
    pub role: Option<String>,
    /// The user's permissions in it (`org:invoices:create`).
    pub permissions: Vec<String>,
}

/// A signed-in user's session token.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SessionCaller {
    /// The user (`sub`).
    pub user_id: String,
    /// The session (`sid`); absent only where the session rules allow it.
    pub session_id: Option<String>,
    /// The session's status (`sts`).
    pub session_status: Option<String>,
    /// The active organization, if any.
    pub org: Option<Org>,
    /// Expiration, in seconds since the Unix epoch.
    pub expiration: Option<i64>,
    /// Every claim of the token.
    pub claims: serde_json::Value,
}

/// An OAuth access token.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OAuthCaller {
    /// The subject (`sub`): the user who granted the token, or the client itself.
    pub subject: String,
    /// The subject when it is a user.
    pub user_id: Option<String>,
    /// The OAuth client that obtained the token.
    pub client_id: Option<String>,
    /// The token's id (`jti`), when it has one.
    pub id: Option<String>,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Expiration, in seconds since the Unix epoch.
    pub expiration: Option<i64>,
    /// Every claim or introspection member.
    pub claims: serde_json::Value,
}

/// An API key.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ApiKeyCaller {
    /// The key's id.
    pub id: String,
    /// Whom the key acts for: a user, an organization or a machine id.
    pub subject: String,
    /// The subject when it is a user (`user_…`).
    pub user_id: Option<String>,
    /// The subject when it is an organization (`org_…`).
    pub org_id: Option<String>,
    /// The key's name.
    pub name: Option<String>,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Expiration, in seconds since the Unix epoch.
    pub expiration: Option<i64>,
    /// Custom claims stored with the key.
    pub claims: serde_json::Value,
}

/// A machine-to-machine token.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct M2mCaller {
    /// The machine (or other subject) it acts for.
    pub subject: String,
    /// The machine (`mch_…`).
    pub machine_id: Option<String>,
    /// The token's id, when it has one.
    pub id: Option<String>,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Expiration, in seconds since the Unix epoch.
    pub expiration: Option<i64>,
    /// Custom claims.
    pub claims: serde_json::Value,
}

/// Checks the type, then reads a field this type always has.
fn expect_type(auth: &Auth, token_type: TokenType) -> Result<(), ViewError> {
    if auth.token_type == token_type {
        Ok(())
    } else {
        Err(ViewError::WrongType {
            wanted: token_type.as_str(),
            presented: auth.token_type,
        })
    }
}

fn required(value: &Option<ArcStr>, token_type: TokenType, field: &'static str) -> Result<String, ViewError> {
    owned(value).ok_or(ViewError::MissingField { token_type, field })
}

/// A view's own copy of an optional field.
fn owned(value: &Option<ArcStr>) -> Option<String> {
    value.as_deref().map(str::to_owned)
}

impl CallerView for SessionCaller {
    const TOKEN_TYPE: Option<TokenType> = Some(TokenType::SessionToken);

    fn from_auth(auth: &Auth) -> Result<Self, ViewError> {
        const T: TokenType = TokenType::SessionToken;
        expect_type(auth, T)?;
        let org = auth.org_id.as_ref().map(|id| Org {
            id: id.to_string(),
            slug: owned(&auth.org_slug),
            role: owned(&auth.org_role),
            permissions: auth.org_permissions.clone(),
        });
        Ok(SessionCaller {
            user_id: required(&auth.user_id, T, "user_id")?,
            session_id: owned(&auth.session_id),
            session_status: owned(&auth.session_status),
            org,
            expiration: auth.expiration,
            claims: auth.claims.clone(),
        })
    }
}

impl CallerView for OAuthCaller {
    const TOKEN_TYPE: Option<TokenType> = Some(TokenType::OAuthToken);

    fn from_auth(auth: &Auth) -> Result<Self, ViewError> {
        const T: TokenType = TokenType::OAuthToken;
        expect_type(auth, T)?;
        Ok(OAuthCaller {
            subject: required(&auth.subject, T, "subject")?,
            user_id: owned(&auth.user_id),
            client_id: owned(&auth.client_id),
            id: owned(&auth.id),
            scopes: auth.scopes.clone(),
            expiration: auth.expiration,
            claims: auth.claims.clone(),
        })
    }
}

impl CallerView for ApiKeyCaller {
    const TOKEN_TYPE: Option<TokenType> = Some(TokenType::ApiKey);

    fn from_auth(auth: &Auth) -> Result<Self, ViewError> {
        const T: TokenType = TokenType::ApiKey;
        expect_type(auth, T)?;
        Ok(ApiKeyCaller {
            id: required(&auth.id, T, "id")?,
            subject: required(&auth.subject, T, "subject")?,
            user_id: owned(&auth.user_id),
            org_id: owned(&auth.org_id),
            name: owned(&auth.name),
            scopes: auth.scopes.clone(),
            expiration: auth.expiration,
            claims: auth.claims.clone(),
        })
    }
}

impl CallerView for M2mCaller {
    const TOKEN_TYPE: Option<TokenType> = Some(TokenType::M2mToken);

    fn from_auth(auth: &Auth) -> Result<Self, ViewError> {
        const T: TokenType = TokenType::M2mToken;
        expect_type(auth, T)?;
        Ok(M2mCaller {
            subject: required(&auth.subject, T, "subject")?,
            machine_id: owned(&auth.machine_id),
            id: owned(&auth.id),
            scopes: auth.scopes.clone(),
            expiration: auth.expiration,
            claims: auth.claims.clone(),
        })
    }
}

/// The verified caller of a route that accepts several token types: one variant per type.
///
/// The parameters are the views of the four types; a slot the route does not accept holds
/// [`NotAccepted`] (uninhabited), so a `match` needs no arm for it. In a handler with the
/// attributes, write a bare `Caller`: the attributes fill the slots from
/// `#[accepts_token(...)]`. Elsewhere, a bare `Caller` accepts all four.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "tokenType", rename_all = "snake_case")]
pub enum Caller<S = SessionCaller, O = OAuthCaller, A = ApiKeyCaller, M = M2mCaller> {
    /// A session token.
    #[serde(rename = "session_token")]
    Session(S),
    /// An OAuth access token.
    #[serde(rename = "oauth_token")]
    OAuth(O),
    /// An API key.
    #[serde(rename = "api_key")]
    ApiKey(A),
    /// A machine-to-machine token.
    #[serde(rename = "m2m_token")]
    M2m(M),
}

impl<S: CallerView, O: CallerView, A: CallerView, M: CallerView> Caller<S, O, A, M> {
    /// The caller of `auth`, in the variant of its token type.
    pub fn from_auth(auth: &Auth) -> Result<Self, ViewError> {
        let not_accepted = || ViewError::WrongType {
            wanted: "a type this `Caller` leaves out",
            presented: auth.token_type,
        };
        let variant = match auth.token_type {
            TokenType::SessionToken if S::TOKEN_TYPE.is_some() => Caller::Session(S::from_auth(auth)?),
            TokenType::OAuthToken if O::TOKEN_TYPE.is_some() => Caller::OAuth(O::from_auth(auth)?),
            TokenType::ApiKey if A::TOKEN_TYPE.is_some() => Caller::ApiKey(A::from_auth(auth)?),
            TokenType::M2mToken if M::TOKEN_TYPE.is_some() => Caller::M2m(M::from_auth(auth)?),
            _ => return Err(not_accepted()),
        };
        Ok(variant)
    }

    /// The token type of the variant.
    pub fn token_type(&self) -> TokenType {
        match self {
            Caller::Session(_) => TokenType::SessionToken,
            Caller::OAuth(_) => TokenType::OAuthToken,
            Caller::ApiKey(_) => TokenType::ApiKey,
            Caller::M2m(_) => TokenType::M2mToken,
        }
    }
}

/// The verified `Auth` of the request, or the misconfiguration that leaves none.
fn verified(parts: &Parts) -> Result<&Auth, Rejection> {
    parts.extensions.get::<Auth>().ok_or_else(|| {
        tracing::error!(
            target: "tokengate",
            path = %parts.uri.path(),
            "a handler takes a typed caller but no tokengate policy ran for this route; \
             add #[accepts_token(...)] to the handler or a PolicyLayer to its router"
        );
        Rejection::Misconfigured("typed caller requested on a route without a policy")
    })
}

/// A view that cannot be made: logged, and refused with `500` (fail closed).
fn view_failed(parts: &Parts, error: ViewError) -> Rejection {
    tracing::error!(target: "tokengate", path = %parts.uri.path(), %error, "typed caller unavailable");
    Rejection::Misconfigured("the handler's typed caller does not match the verified token")
}

macro_rules! extractors {
    ($($view:ty),*) => {$(
        impl<St: Send + Sync> FromRequestParts<St> for $view {
            type Rejection = Rejection;

            async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Rejection> {
                let auth = verified(parts)?;
                <$view as CallerView>::from_auth(auth).map_err(|e| view_failed(parts, e))
            }
        }

        impl<St: Send + Sync> OptionalFromRequestParts<St> for $view {
            type Rejection = Rejection;

            /// `None` for an optional route's anonymous caller.
            async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Option<Self>, Rejection> {
                match parts.extensions.get::<Auth>() {
                    None => Ok(None),
                    Some(auth) => <$view as CallerView>::from_auth(auth).map(Some).map_err(|e| view_failed(parts, e)),
                }
            }
        }
    )*};
}

extractors!(SessionCaller, OAuthCaller, ApiKeyCaller, M2mCaller);

impl<St, S, O, A, M> FromRequestParts<St> for Caller<S, O, A, M>
where
    St: Send + Sync,
    S: CallerView + Send,
    O: CallerView + Send,
    A: CallerView + Send,
    M: CallerView + Send,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Rejection> {
        let auth = verified(parts)?;
        Caller::from_auth(auth).map_err(|e| view_failed(parts, e))
    }
}

impl<St, S, O, A, M> OptionalFromRequestParts<St> for Caller<S, O, A, M>
where
    St: Send + Sync,
    S: CallerView + Send,
    O: CallerView + Send,
    A: CallerView + Send,
    M: CallerView + Send,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Option<Self>, Rejection> {
        match parts.extensions.get::<Auth>() {
            None => Ok(None),
            Some(auth) => Caller::from_auth(auth).map(Some).map_err(|e| view_failed(parts, e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::auth::AuthInfo;

    fn session() -> Auth {
        let mut info = AuthInfo::new(TokenType::SessionToken);
        info.subject = Some("user_1".into());
        info.user_id = Some("user_1".into());
        info.session_id = Some("sess_1".into());
        info.org_id = Some("org_1".into());
        info.org_role = Some("org:admin".into());
        Auth::new(info)
    }

    #[test]
    fn a_session_view_has_its_user_and_organization() {
        let caller = SessionCaller::from_auth(&session()).unwrap();
        assert_eq!(caller.user_id, "user_1");
        assert_eq!(caller.org.unwrap().role.as_deref(), Some("org:admin"));
    }

    #[test]
    fn a_view_of_another_type_or_without_its_fields_is_refused() {
        assert!(matches!(
            ApiKeyCaller::from_auth(&session()),
            Err(ViewError::WrongType { .. })
        ));
        let key = Auth::new(AuthInfo::new(TokenType::ApiKey));
        assert_eq!(
            ApiKeyCaller::from_auth(&key),
            Err(ViewError::MissingField {
                token_type: TokenType::ApiKey,
                field: "id"
            })
        );
    }

    #[test]
    fn a_narrowed_caller_refuses_the_types_it_leaves_out() {
        type SessionsAndKeys = Caller<SessionCaller, NotAccepted, ApiKeyCaller, NotAccepted>;
        let caller = SessionsAndKeys::from_auth(&session()).unwrap();
        match caller {
            Caller::Session(s) => assert_eq!(s.user_id, "user_1"),
            Caller::ApiKey(_) => unreachable!(),
        }
        let mut m2m = AuthInfo::new(TokenType::M2mToken);
        m2m.subject = Some("mch_1".into());
        assert!(SessionsAndKeys::from_auth(&Auth::new(m2m.clone())).is_err());
        assert_eq!(
            Caller::<SessionCaller>::from_auth(&Auth::new(m2m))
                .unwrap()
                .token_type(),
            TokenType::M2mToken
        );
    }
}
