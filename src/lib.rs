//! tokengate: declare on each axum handler which bearer tokens it accepts and what they must
//! carry; tokengate enforces it, checks it at compile time, and reports it.
//!
//! See the README for a tour. This crate re-exports [`tokengate_runtime`] and, with the
//! default `macros` feature, the attributes of `tokengate-macros`.
//!
//! # Guarding handlers
//!
//! ```
//! use axum::routing::{get, post};
//! use axum::{Json, Router};
//! use tokengate::{Auth, TokenGate, accepts_token, public, require_role, require_scope};
//!
//! /// Sessions may create users; API keys need `write:users` (the scope applies to API keys only).
//! #[accepts_token(session_token, api_key)]
//! #[require_scope(api_key: "write:users")]
//! pub async fn create_user(auth: Auth, Json(body): Json<serde_json::Value>) -> String {
//!     format!("{:?} created {body}", auth.user_id)
//! }
//!
//! /// Machine tokens with `read:users`, or `admin`.
//! #[accepts_token(api_key, m2m_token)]
//! #[require_scope(any("read:users", "admin"))]
//! pub async fn list_users() -> &'static str {
//!     "[]"
//! }
//!
//! /// Several attributes combine with AND; their order does not matter.
//! #[require_scope("reports:read")]
//! #[require_scope(any("reports:export", "admin"))]
//! #[accepts_token(oauth_token, api_key)]
//! pub async fn export() -> &'static str {
//!     "csv"
//! }
//!
//! /// Session tokens only (Clerk's default) with an organization role.
//! #[require_role("org:admin")]
//! pub async fn settings(auth: Auth) -> String {
//!     format!("{:?}", auth.org_id)
//! }
//!
//! /// Only the user themself: a custom condition reading the `{id}` path parameter.
//! async fn is_self(auth: &tokengate::Auth, parts: &mut tokengate::Parts) -> bool {
//!     use axum::extract::{FromRequestParts, Path};
//!     match Path::<String>::from_request_parts(parts, &()).await {
//!         Ok(Path(id)) => auth.user_id.as_deref() == Some(id.as_str()),
//!         Err(_) => false,
//!     }
//! }
//!
//! #[tokengate::require(is_self)]
//! pub async fn profile(axum::extract::Path(id): axum::extract::Path<String>) -> String {
//!     id
//! }
//!
//! /// Intentionally open, and reported as such.
//! #[public]
//! pub async fn health() -> &'static str {
//!     "ok"
//! }
//!
//! // Routing is unchanged. The `TokenGate` must be reachable from the state (`FromRef`).
//! let app: Router<TokenGate> = Router::new()
//!     .route("/users", post(create_user).get(list_users))
//!     .route("/export", get(export))
//!     .route("/settings", get(settings))
//!     .route("/users/{id}", get(profile))
//!     .route("/health", get(health));
//! ```
//!
//! The forms of each attribute: [`accepts_token`], [`require_scope`], [`require_role`],
//! [`require_permission`], [`require_feature`], [`require_plan`], [`require_reverification`],
//! [`require_acr`], [`require`], [`public`]. The same declarations make a group layer's policy:
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use tokengate::{PolicyLayer, TokenGate, TokenType, policy, verifier::StaticVerifier};
//!
//! let gate = TokenGate::builder()
//!     .verifier(TokenType::ApiKey, Arc::new(StaticVerifier::new()))
//!     .build()
//!     .unwrap();
//! let admin: Router = Router::new()
//!     .route("/stats", get(|| async { "ok" }))
//!     .layer(PolicyLayer::new(gate, policy!(accepts_token(api_key), require_scope("admin"))));
//! ```
//!
//! # Optional authentication
//!
//! `optional` in `#[accepts_token]` serves anonymous callers too: a request with no
//! credential at all runs the handler with `Option<Auth>` (or `Option<Caller>`) `None`. A
//! credential that is present is verified and checked as on any route, and a bad one —
//! malformed, forged, expired, revoked, of a type the route does not accept, another
//! `Authorization` scheme — is refused, never served as anonymous.
//!
//! ```
//! use axum::Json;
//! use serde_json::{Value, json};
//! use tokengate::{Caller, accepts_token};
//!
//! /// A public feed that personalises for a signed-in caller.
//! #[accepts_token(optional, session_token, api_key)]
//! async fn feed(caller: Option<Caller>) -> Json<Value> {
//!     match caller {
//!         None => Json(json!({ "personalized": false })),
//!         Some(Caller::Session(s)) => Json(json!({ "personalized": true, "userId": s.user_id })),
//!         Some(Caller::ApiKey(k)) => Json(json!({ "personalized": true, "userId": k.user_id })),
//!     }
//! }
//! ```
//!
//! `optional` alone (no token type), with `#[public]`, or with `#[require]` (a predicate an
//! anonymous caller would skip) is a compile error, and so is a non-`Option` `Auth` or caller
//! parameter on an optional route:
//!
//! ```compile_fail
//! #[tokengate::accepts_token(optional)]
//! async fn feed() {}
//! ```
//!
//! ```compile_fail
//! #[tokengate::accepts_token(optional, session_token)]
//! async fn feed(auth: tokengate::Auth) {}
//! ```
//!
//! # Typed callers
//!
//! [`Auth`] has every field an `Option`. A handler whose route accepts one token type takes
//! that type's view instead ([`SessionCaller`], [`OAuthCaller`], [`ApiKeyCaller`],
//! [`M2mCaller`]: the fields that type always has are plain values); a route that accepts
//! several takes [`Caller`], which the attributes narrow to the accepted types, so a `match`
//! with one arm per accepted type is exhaustive (module [`caller`]):
//!
//! ```
//! use tokengate::caller::{ApiKeyCaller, SessionCaller};
//! use tokengate::{Caller, accepts_token};
//!
//! #[accepts_token(api_key)]
//! async fn key_info(key: ApiKeyCaller) -> String {
//!     format!("{} acts for {} with {:?}", key.id, key.subject, key.scopes)
//! }
//!
//! #[tokengate::require_role("org:admin")]
//! async fn settings(session: SessionCaller) -> String {
//!     session.org.map(|org| org.id).unwrap_or_default()
//! }
//!
//! #[accepts_token(session_token, api_key)]
//! async fn either(caller: Caller) -> String {
//!     match caller {
//!         Caller::Session(s) => s.user_id,
//!         Caller::ApiKey(k) => k.subject,
//!     }
//! }
//! ```
//!
//! A view of a type the route does not accept, or one view on a route that accepts several,
//! is a compile error at the parameter:
//!
//! ```compile_fail
//! #[tokengate::accepts_token(api_key)]
//! async fn profile(session: tokengate::SessionCaller) {}
//! ```
//!
//! # Testing handlers
//!
//! With the `testing` feature (in `[dev-dependencies]`), [`testing::TestGate`] is a gate
//! that verifies real JWTs of a generated key pair and API keys of an in-memory store: a
//! guarded handler is tested through its real router, no network.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use tokengate::caller::SessionCaller;
//! use tokengate::testing::TestGate;
//! use tokengate::{accepts_token, require_role};
//! use tower::ServiceExt as _;
//!
//! #[require_role("org:admin")]
//! async fn settings(session: SessionCaller) -> String {
//!     session.user_id
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let t = TestGate::new()?;
//! let app: Router = Router::new().route("/settings", get(settings)).with_state(t.gate.clone());
//! let call = |token: String| {
//!     let request = Request::get("/settings").header("authorization", format!("Bearer {token}"));
//!     app.clone().oneshot(request.body(Body::empty()).unwrap())
//! };
//!
//! let admin = t.issuer.session("user_1").org("org_1", "org:admin").sign()?;
//! assert_eq!(call(admin).await?.status(), StatusCode::OK);
//! let member = t.issuer.session("user_2").org("org_1", "org:member").sign()?;
//! assert_eq!(call(member).await?.status(), StatusCode::FORBIDDEN);
//! let key = t.keys.api_key("user_3", ["admin"]).await?;
//! assert_eq!(call(key.secret).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! # What the attributes generate
//!
//! The guarded function gains a first parameter, a [`Guard`], so the token is checked before
//! any other extractor runs: a request with a bad token never has its body read. The policy
//! is a `static` built at compile time, and the handler is registered for the route-policy
//! report ([`registry`]). The function keeps its name, visibility, docs, generics, return
//! type and other attributes. A function without parameters gains a
//! `Guard<_, `[`OnRequest`]`>`, which takes axum's request whole instead of its parts: axum
//! then keeps no copy of the parts in the handler's future.
//!
//! - **Unit tests** call the handler directly, passing [`Guard::for_tests`] first:
//!   `create_user(Guard::for_tests(), auth, Json(body)).await`. A `#[public]` handler gains
//!   the zero-sized [`Public`] marker instead, which checks nothing: `health(Public).await`.
//! - **`#[debug_handler]`** goes *below* the tokengate attributes (it then checks the
//!   guarded signature; give it `state = YourState`).
//! - **Handlers are free functions**: the attributes add items beside the function, which an
//!   `impl` block cannot hold.
//!
//! # Mistakes caught at compile time
//!
//! Each is an error at the offending token, saying how to fix it (the `tests/ui/fail` cases
//! show every message). A few:
//!
//! An unknown token type (the error suggests `api_key`):
//!
//! ```compile_fail
//! #[tokengate::accepts_token(api_kye)]
//! async fn handler() {}
//! ```
//!
//! A scope requirement that applies to session tokens, which carry no scopes (the error
//! suggests `#[require_scope(api_key: "write:users")]`):
//!
//! ```compile_fail
//! #[tokengate::accepts_token(session_token, api_key)]
//! #[tokengate::require_scope("write:users")]
//! async fn create_user() {}
//! ```
//!
//! `#[require_scope]` without `#[accepts_token]`: the default is session tokens only:
//!
//! ```compile_fail
//! #[tokengate::require_scope("write:users")]
//! async fn create_user() {}
//! ```
//!
//! A requirement limited to a type the route does not accept:
//!
//! ```compile_fail
//! #[tokengate::accepts_token(api_key)]
//! #[tokengate::require_scope(m2m_token: "write:users")]
//! async fn create_user() {}
//! ```
//!
//! A scope outside RFC 6749's grammar:
//!
//! ```compile_fail
//! #[tokengate::accepts_token(api_key)]
//! #[tokengate::require_scope("read users")]
//! async fn list_users() {}
//! ```
//!
//! A role on a route that accepts no session tokens:
//!
//! ```compile_fail
//! #[tokengate::accepts_token(api_key)]
//! #[tokengate::require_role("org:admin")]
//! async fn settings() {}
//! ```
//!
//! An unknown reverification preset (the error suggests `strict`), and a step-up requirement on
//! a route that accepts no OAuth tokens:
//!
//! ```compile_fail
//! #[tokengate::require_reverification(strcit)]
//! async fn delete_account() {}
//! ```
//!
//! ```compile_fail
//! #[tokengate::require_acr("mfa")]
//! async fn payouts() {}
//! ```
//!
//! `#[public]` on a guarded route, and a handler that is not `async`:
//!
//! ```compile_fail
//! #[tokengate::public]
//! #[tokengate::accepts_token(api_key)]
//! async fn health() {}
//! ```
//!
//! ```compile_fail
//! #[tokengate::accepts_token(api_key)]
//! fn handler() {}
//! ```
//!
//! A predicate named by a string instead of its path:
//!
//! ```compile_fail
//! #[tokengate::require("is_owner")]
//! async fn invoice() {}
//! ```
//!
//! The same checks in `policy!`:
//!
//! ```compile_fail
//! let policy = tokengate::policy!(accepts_token(session_token, api_key), require_scope("admin"));
//! ```

pub use tokengate_runtime::*;

#[cfg(feature = "macros")]
pub use tokengate_macros::*;
