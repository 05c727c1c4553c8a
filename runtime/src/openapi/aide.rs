//! The guard as an `aide::OperationInput`: aide documents each guarded operation's security.
//!
//! A handler with the attributes takes a [`Guard`] first; with aide's `ApiRouter`, that guard
//! writes the operation's `security` (one alternative per accepted token type and choice of
//! any-of scopes, `{}` last on an optional route). A `#[public]` handler takes the [`Public`]
//! marker first, which writes `security: []`: the route is open even where the document
//! declares a top-level requirement. [`security_schemes`] adds the four bearer schemes the
//! requirements name. `Auth`, the typed callers and `Caller` are inputs too (they
//! add nothing), so handlers taking them are accepted by aide.

use ::aide::OperationInput;
use ::aide::generate::GenContext;
use ::aide::openapi::{Operation, SecurityScheme};
use ::aide::transform::TransformOpenApi;

use crate::auth::Auth;
use crate::caller::{ApiKeyCaller, Caller, M2mCaller, OAuthCaller, SessionCaller};
use crate::guard::{Guard, PolicySource};
use crate::public::Public;
use crate::report::{security_requirements, security_scheme};
use crate::token::TokenType;

impl<P: PolicySource, At> OperationInput for Guard<P, At> {
    fn operation_input(_ctx: &mut GenContext, operation: &mut Operation) {
        operation.security = security_requirements(P::policy())
            .into_iter()
            .map(|alternative| {
                alternative
                    .into_iter()
                    .map(|(t, scopes)| (t.as_str().to_owned(), scopes))
                    .collect()
            })
            .collect();
    }
}

/// aide's `Operation` leaves out an empty `security` when it serializes, so the `[]` goes in as
/// an extension (aide writes extensions flattened into the operation), and any requirement
/// already there is cleared so the key appears once.
impl OperationInput for Public {
    fn operation_input(_ctx: &mut GenContext, operation: &mut Operation) {
        operation.security.clear();
        operation
            .extensions
            .insert("security".to_owned(), serde_json::Value::Array(Vec::new()));
    }
}

impl OperationInput for Auth {}
impl OperationInput for SessionCaller {}
impl OperationInput for OAuthCaller {}
impl OperationInput for ApiKeyCaller {}
impl OperationInput for M2mCaller {}
impl<S, O, A, M> OperationInput for Caller<S, O, A, M> {}

/// Adds the four bearer schemes (`session_token`, `oauth_token`, `api_key`, `m2m_token`) to
/// the document's `components.securitySchemes`:
/// `api.finish_api_with(&mut doc, tokengate::openapi::aide::security_schemes)`.
pub fn security_schemes(api: TransformOpenApi<'_>) -> TransformOpenApi<'_> {
    TokenType::ALL.into_iter().fold(api, |api, t| {
        let (format, description) = security_scheme(t);
        api.security_scheme(
            t.as_str(),
            SecurityScheme::Http {
                scheme: "bearer".to_owned(),
                bearer_format: Some(format.to_owned()),
                description: Some(description.to_owned()),
                extensions: Default::default(),
            },
        )
    })
}
