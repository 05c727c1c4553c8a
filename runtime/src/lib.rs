//! The runtime of tokengate: declarative bearer-token policies for axum.
//!
//! A request goes through five steps, each cheaper than the next:
//!
//! 1. [`extract`]: find the token (`Authorization: Bearer`, or the `__session` cookie);
//! 2. [`classify`]: decide its type from its shape (Clerk's order);
//! 3. refuse a type the route does not accept — before any verifier runs;
//! 4. [`verifier`]: verify it with the verifier configured for its type, then [`binding`]:
//!    a token bound to a key (DPoP) or a client certificate (mTLS) only with its proof;
//! 5. [`policy`]: check scopes, roles and permissions.
//!
//! The [`TokenGate`] holds the configuration; [`Guard`] (what the attributes generate) and
//! [`PolicyLayer`] run it; [`Auth`] hands the result to the handler; [`Rejection`]s become
//! RFC 6750 responses.
//!
//! Most users depend on the `tokengate` facade crate and write `#[accepts_token(...)]`.

pub mod auth;
pub mod binding;
pub mod budget;
mod cache;
pub mod caller;
pub mod classify;
#[cfg(feature = "clerk")]
pub mod clerk;
pub mod extract;
pub mod gate;
pub mod guard;
#[cfg(feature = "introspection")]
pub mod introspection;
pub mod jwt;
pub mod keys;
pub mod layer;
pub mod mcp;
pub mod metadata;
pub mod net;
#[cfg(any(feature = "utoipa", feature = "aide"))]
pub mod openapi;
pub mod policy;
mod public;
pub mod rate_limit;
pub mod registry;
pub mod rejection;
pub mod report;
pub mod routing;
#[cfg(feature = "secret-scanning")]
pub mod secret_scanning;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;
pub mod verifier;

pub use arcstr::ArcStr;
pub use auth::{Auth, AuthInfo};
pub use caller::{ApiKeyCaller, Caller, M2mCaller, OAuthCaller, SessionCaller};
pub use gate::{ConfigError, TokenGate, TokenGateBuilder};
pub use guard::{Guard, OnParts, OnRequest, PolicySource};
#[cfg(feature = "introspection")]
pub use introspection::{IntrospectionConfig, IntrospectionVerifier};
#[cfg(feature = "jwks")]
pub use jwt::JwksCache;
pub use jwt::{JwtConfigError, JwtVerifier, KeySet, M2mRules, OAuthRules, SessionRules, TokenCacheConfig};
#[cfg(feature = "sqlite")]
pub use keys::SqliteKeyStore;
pub use keys::{KeySpec, KeyStore, KeyVerifier};
pub use layer::{PolicyLayer, PolicyService};
pub use policy::{Match, Policy, Requirement, RequirementKind};
pub use public::Public;
pub use rejection::Rejection;
pub use token::{TokenType, TokenTypes};
pub use verifier::{ByFormat, ByIssuer, Credential, StaticVerifier, Verifier, VerifyError};

/// The request head (`http::request::Parts`), as `#[require]` predicates and
/// [`PolicySource::conditions`] receive it: `async fn is_owner(auth: &Auth, parts: &mut Parts) -> bool`.
pub use http::request::Parts;

/// What the attributes' generated code refers to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use std::borrow::Cow;

    pub use inventory;

    pub use crate::auth::Auth;
    pub use crate::binding::Binding;
    pub use crate::caller::{ApiKeyCaller, Caller, M2mCaller, NotAccepted, OAuthCaller, SessionCaller};
    pub use crate::guard::{ConditionFuture, Guard, OnParts, OnRequest, PolicySource};
    pub use crate::policy::{Match, Policy, Requirement, RequirementKind};
    pub use crate::public::Public;
    pub use crate::registry::{HandlerRecord, HandlerStatus, type_id_of};
    pub use crate::rejection::Rejection;
    pub use crate::token::{TokenType, TokenTypes};
    pub use http::request::Parts;
}
