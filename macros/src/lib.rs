//! Attribute macros of tokengate: `#[accepts_token]`, `#[require_scope]`, `#[require_role]`,
//! `#[require_permission]`, `#[require_feature]`, `#[require_plan]`,
//! `#[require_reverification]`, `#[require_acr]`, `#[require_dpop]`, `#[require_mtls]`,
//! `#[require]`, `#[public]`, and `policy!` for group layers.
//!
//! Use them through the `tokengate` crate, which re-exports them; the generated code refers
//! to `::tokengate`. Each entry point here is one line into the `handler` or `policy`
//! module (parse → validate → expand).
//!
//! # How a handler is guarded
//!
//! The tokengate attributes on one function are read together, in any order: whichever
//! expands first takes the others off the function (an attribute is recognized by the last
//! segment of its path, so `#[tokengate::accepts_token]` works too). Then:
//!
//! - a hidden zero-sized type `__tokengate_policy_<name>` implementing `PolicySource` names a
//!   policy held in a `static` (built at compile time: nothing is allocated per request);
//! - the function gains a first parameter `_: Guard<__tokengate_policy_<name>>`. axum runs
//!   extractors in order, so the token is checked before any other extractor runs — a
//!   request with a bad token never has its body read — and the verified `Auth` is then
//!   available to the handler's own `Auth` parameter;
//! - a `HandlerRecord` is registered for the route-policy report.
//!
//! The name, visibility, doc comments, other attributes, generics and return type are kept,
//! so `Router::route("/users", post(create_user))` is unchanged.
//!
//! **Unit tests** call the handler as a function; its first argument is the guard, which
//! `Guard::for_tests()` makes without checking anything (its policy type is inferred):
//! `create_user(Guard::for_tests(), Json(body)).await`. Requests never take that path:
//! axum makes guards only by running the policy.
//!
//! Handlers must be free functions (module items): the attributes add items beside the
//! function, which an `impl` block cannot hold.
//!
//! Every mistake is a compile error at the offending token, with the fix in the message;
//! the function is still emitted, so the router code around it compiles.

mod callers;
mod errors;
mod expand;
mod handler;
mod names;
mod parse;
mod policy;
mod rate_limit;
mod step_up;
mod validate;

use proc_macro::TokenStream;

use crate::names::AttrKind;

/// Declares which token types a handler accepts, and guards it.
///
/// ```text
/// #[accepts_token(api_key)]
/// #[accepts_token(session_token, oauth_token, api_key, m2m_token)]
/// #[accepts_token(any)]
/// #[accepts_token(optional, session_token, api_key)]   // anonymous callers too
/// ```
///
/// `optional` also admits a request that carries no credential at all: the handler then
/// takes `Option<Auth>` (or `Option<Caller>`, `Option<SessionCaller>`…), `None` for an
/// anonymous caller. A credential that is present is checked as usual and a bad one refused,
/// never treated as anonymous. `optional` needs at least one token type and cannot go with
/// `#[public]` or `#[require]`; a non-`Option` caller parameter on an optional route is an
/// error at the parameter.
///
/// The handler's caller parameters are checked against the accepted types: a typed view
/// (`SessionCaller`, `OAuthCaller`, `ApiKeyCaller`, `M2mCaller`) must be of the route's only
/// accepted type, and a bare `Caller` is narrowed to the accepted types, so a `match` with an
/// arm per accepted type is exhaustive.
///
/// Token types are `session_token` (Clerk session JWTs), `oauth_token`, `api_key` and
/// `m2m_token`; `any` accepts all four. A request with a token of another type is refused
/// with `401 invalid_token` before any verifier runs. Without `#[accepts_token]`, a handler
/// with `#[require_role]` or `#[require_permission]` accepts Clerk's default: session tokens
/// only.
///
/// ```text
/// /// Creates a user. Sessions may; API keys need `write:users`.
/// #[accepts_token(session_token, api_key)]
/// #[require_scope(api_key: "write:users")]
/// pub async fn create_user(auth: Auth, Json(body): Json<NewUser>) -> StatusCode { ... }
/// ```
///
/// (Runnable examples are in the `tokengate` crate's documentation, whose generated code
/// this crate refers to.)
///
/// Compile errors: an unknown type (with the nearest valid name), a type in quotes, an
/// empty list, a type listed twice, `any` with other types, `#[accepts_token]` twice, not an
/// `async fn`, a method taking `self`. The handler must be a free function: inside an `impl`
/// block, rustc refuses the policy type the attribute puts beside it ("struct is not
/// supported in traits or impls").
#[proc_macro_attribute]
pub fn accepts_token(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::AcceptsToken, args.into(), item.into()).into()
}

/// Requires scopes of the verified token.
///
/// ```text
/// #[require_scope("read:users", "write:users")]        // all of them
/// #[require_scope(all("read:users", "write:users"))]   // the same, explicitly
/// #[require_scope(any("read:users", "admin"))]          // one is enough
/// #[require_scope(api_key: "write:users")]              // only API keys need it
/// #[require_scope(api_key | m2m_token: any("a", "b"))]  // limited to several types
/// ```
///
/// Several `#[require_scope]` attributes combine with AND. A type limit (`api_key:` or
/// `api_key | m2m_token:`) opens the arguments and applies the requirement to those token
/// types only; the other accepted types pass it.
///
/// Session tokens carry no scopes, so a scope requirement that applies to them is a compile
/// error: limit it to the machine types the route accepts. This includes `#[require_scope]`
/// without `#[accepts_token]` (Clerk's default is session tokens only). Scopes follow
/// RFC 6749's grammar: printable ASCII without spaces, `"` or `\`.
#[proc_macro_attribute]
pub fn require_scope(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::RequireScope, args.into(), item.into()).into()
}

/// Requires an organization role of a signed-in user (session tokens).
///
/// ```text
/// #[require_role("org:admin")]
/// #[require_role(any("org:admin", "org:billing"))]
/// ```
///
/// Roles are of the form `org:<role>`. The requirement applies to session tokens only; other
/// token types the route accepts are governed by `#[require_scope]`. A session without an
/// active organization is refused (`403`, reason `no-active-organization`). A route that
/// accepts no session tokens cannot require a role: that is a compile error.
///
/// **Machine tokens are not held to it.** On a route that also accepts machine tokens, a
/// role says nothing about them (they belong to no organization session): with only
/// `#[require_role]`, *any* valid API key passes. Give them a scope of their own:
///
/// ```text
/// #[accepts_token(session_token, api_key)]
/// #[require_role("org:admin")]                 // sessions: the organization role
/// #[require_scope(api_key: "admin")]           // API keys: a scope
/// ```
///
/// (A compile-time warning for the scope-less case is not possible on stable Rust, so this
/// is documented rather than diagnosed.)
#[proc_macro_attribute]
pub fn require_role(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::RequireRole, args.into(), item.into()).into()
}

/// Requires organization permissions of a signed-in user (session tokens).
///
/// ```text
/// #[require_permission("org:invoices:create")]
/// #[require_permission("org:invoices:create", "org:invoices:read")]   // all of them
/// #[require_permission(any("org:invoices:create", "org:invoices:manage"))]
/// ```
///
/// Permissions are of the form `org:<feature>:<action>`. Like `#[require_role]`, the
/// requirement applies to session tokens only, and needs a route that accepts them; on a
/// route that also accepts machine tokens, give those a `#[require_scope]` (see
/// `#[require_role]`), or any valid machine token passes.
#[proc_macro_attribute]
pub fn require_permission(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::RequirePermission, args.into(), item.into()).into()
}

/// Requires Clerk Billing features of a signed-in user (session tokens, the `fea` claim).
///
/// ```text
/// #[require_feature("exports")]                  // the organization's or the user's
/// #[require_feature("o:exports")]                // the active organization's
/// #[require_feature(any("u:exports", "o:exports"))]
/// ```
///
/// Decided as Clerk's `has({ feature })`: the claim's `o:`, `u:`, `ou:`/`uo:` entries; a claim
/// that is absent, not a string or holds an entry without `:` grants nothing. Refusal: `403`,
/// reason `missing-feature`, naming what is missing. A name is ASCII letters, digits, `_` and
/// `-`, optionally after the scope `o:` or `u:`. Like `#[require_role]`, it applies to session
/// tokens only and needs a route that accepts them; give machine tokens a `#[require_scope]`.
#[proc_macro_attribute]
pub fn require_feature(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::RequireFeature, args.into(), item.into()).into()
}

/// Requires Clerk Billing plans of a signed-in user (session tokens, the `pla` claim).
///
/// ```text
/// #[require_plan("o:pro")]                       // the active organization's plan
/// #[require_plan(any("u:pro", "o:pro"))]
/// ```
///
/// The same forms and rules as `#[require_feature]`; refusal reason `missing-plan`.
#[proc_macro_attribute]
pub fn require_plan(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::RequirePlan, args.into(), item.into()).into()
}

/// Requires that a signed-in user verified their factors recently (session tokens, the `fva`
/// claim), as Clerk's `auth.protect({ reverification })` does.
///
/// ```text
/// #[require_reverification(strict)]                                   // a Clerk preset
/// #[require_reverification(level = second_factor, after_minutes = 30)]
/// ```
///
/// Presets: `strict_mfa` (10 minutes, `multi_factor`), `strict` (10, `second_factor`),
/// `moderate` (60, `second_factor`), `lax` (1440, `second_factor`); levels `first_factor`,
/// `second_factor`, `multi_factor`. A refusal is `403` with Clerk's body
/// (`{"clerk_error":{"type":"forbidden","reason":"reverification-error","metadata":{"reverification":"strict"}}}`),
/// which Clerk's front-end `useReverification()` recognises. Compile errors: an unknown preset
/// or level (with a suggestion), `after_minutes` not over zero, a route without session tokens.
#[proc_macro_attribute]
pub fn require_reverification(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::RequireReverification, args.into(), item.into()).into()
}

/// Requires how the user of an OAuth access token authenticated (RFC 9470 step-up): the
/// token's `acr` and, with `max_age`, how long ago (`auth_time`, in seconds).
///
/// ```text
/// #[require_acr("mfa")]
/// #[require_acr(any("mfa", "phr"), max_age = 600)]
/// #[require_acr(max_age = 600)]
/// ```
///
/// Applies to OAuth access tokens only, and needs a route that accepts them. A refusal is
/// `401` with `WWW-Authenticate: Bearer error="insufficient_user_authentication",
/// error_description="…", acr_values="mfa", max_age=600`, so the client asks the
/// authorization server for a fresh authentication.
#[proc_macro_attribute]
pub fn require_acr(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::RequireAcr, args.into(), item.into()).into()
}

/// Limits how often each key (or each subject) may call the route.
///
/// ```text
/// #[accepts_token(api_key, oauth_token)]
/// #[rate_limit("100/min")]                       // each key or token: 100 a minute
/// #[rate_limit(api_key: "10/s", per = subject)]  // API keys of one customer together: 10 a second
/// async fn search(auth: Auth) -> Json<Auth> { ... }
/// ```
///
/// A rate is a number per second, minute, hour or day (`"10/s"`, `"100/min"`, `"5000/h"`,
/// `"100000/day"`); `per` is `key` (the default: the key's or token's id, else its subject)
/// or `subject`. Each limit is counted after every other check passed, with GCRA (a burst of
/// the whole quota, then one request per share of the period), in this process or in Redis
/// (`TokenGateBuilder::rate_limits`). Over a limit: `429` with `Retry-After`, reason
/// `rate-limited`; every answer carries `RateLimit-Policy` and `RateLimit` (IETF draft
/// headers). The report and OpenAPI output list each route's limits.
///
/// Compile errors: no rate, a malformed rate (at the string), several rates in one attribute,
/// `any(...)`, an unknown option or `per` value (with a suggestion), a type limit the route
/// does not accept.
#[proc_macro_attribute]
pub fn rate_limit(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::RateLimit, args.into(), item.into()).into()
}

/// Requires DPoP-bound tokens (RFC 9449): an OAuth or M2M token on this route must be bound to
/// a key (`cnf.jkt`), sent as `Authorization: DPoP <token>` with a `DPoP` proof of that key
/// for this request.
///
/// ```text
/// #[accepts_token(oauth_token)]
/// #[require_dpop]
/// async fn transfer(auth: Auth) -> Json<Auth> { ... }
/// ```
///
/// Only OAuth access tokens and M2M tokens can be bound; a route that also accepts API keys
/// or session tokens keeps accepting those unbound. A DPoP-bound token is checked with its
/// proof on *every* route, declared or not; this attribute also refuses unbound tokens
/// (`401`, reason `dpop-required`, with a `DPoP` challenge). The `TokenGate` needs
/// `TokenGateBuilder::dpop`.
///
/// Compile errors: arguments, the attribute twice, a route that accepts no token type that
/// can be bound (the message names `oauth_token` and `m2m_token`).
#[proc_macro_attribute]
pub fn require_dpop(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::RequireDpop, args.into(), item.into()).into()
}

/// Requires certificate-bound tokens (RFC 8705): an OAuth or M2M token on this route must be
/// bound to a client certificate (`cnf."x5t#S256"`), and the request must come with that
/// certificate (the server's own TLS, or a trusted proxy's header).
///
/// ```text
/// #[accepts_token(oauth_token)]
/// #[require_mtls]
/// async fn settle(auth: Auth) -> Json<Auth> { ... }
/// ```
///
/// Like `#[require_dpop]`: OAuth and M2M tokens only, certificate-bound tokens are checked on
/// every route anyway, and unbound ones are refused here (`401`, reason
/// `certificate-binding-required`). Compile errors: arguments, the attribute twice, a route
/// that accepts no token type that can be bound.
#[proc_macro_attribute]
pub fn require_mtls(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::RequireMtls, args.into(), item.into()).into()
}

/// Requires custom conditions: async predicates over the verified caller and the request.
///
/// ```text
/// #[accepts_token(session_token, api_key)]
/// #[require(is_self)]                          // one predicate
/// #[require(crate::auth::is_member, is_open)]  // several: all must hold, checked in order
/// async fn profile(auth: Auth, Path(id): Path<String>) -> String { ... }
///
/// async fn is_self(auth: &Auth, parts: &mut Parts) -> bool {
///     match Path::<String>::from_request_parts(parts, &()).await {
///         Ok(Path(id)) => auth.user_id.as_deref() == Some(id.as_str()),
///         Err(_) => false,
///     }
/// }
/// ```
///
/// A predicate is named by its path and has the signature
/// `async fn(auth: &Auth, parts: &mut Parts) -> bool` (`Parts` is `http::request::Parts`,
/// re-exported as `tokengate::Parts`); its future must be `Send`. The predicates run in the
/// guard, after the token was verified and every scope, role and permission passed, and
/// before the handler's other extractors; they are awaited in the order written (several
/// attributes too), and the first that returns `false` refuses the request with `403`,
/// reason `condition-failed`, naming the predicate. A request with a bad token never reaches
/// them.
///
/// The report lists each as a requirement of kind `condition` whose value is the path.
/// `policy!` does not take conditions (a policy is data); a group layer gets one with
/// `PolicyLayer::with_condition("name", |auth, parts| Box::pin(async move { ... }))`.
///
/// Compile errors: an empty `#[require()]`, a string or other literal instead of a path,
/// `any(...)`, a call (`is_owner()`), the same predicate twice, `#[public]` with
/// `#[require]`; an unknown predicate or one with the wrong signature is the compiler's own
/// error at the name.
#[proc_macro_attribute]
pub fn require(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::Require, args.into(), item.into()).into()
}

/// Marks a handler as intentionally open, for the route-policy report.
///
/// The handler verifies nothing; it is registered as public so the report (and the start-up
/// check) can tell "open on purpose" from "forgot the attribute". It gains one first
/// parameter, the zero-sized `tokengate::Public` marker, which extracts nothing and never
/// fails (aide reads it as the operation's `security: []`); a unit test calls
/// `health(Public).await`. `#[public]` together with another tokengate attribute is a compile
/// error.
#[proc_macro_attribute]
pub fn public(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(AttrKind::Public, args.into(), item.into()).into()
}

/// A `Policy` value for a group layer, declared like the attributes and checked the same
/// way.
///
/// ```text
/// policy!(accepts_token(api_key, m2m_token), require_scope("admin"))
/// policy!(accepts_token(session_token, api_key), require_scope(api_key: "admin"), require_role("org:admin"))
/// policy!(require_feature("exports"), require_reverification(strict))
/// policy!(accepts_token(oauth_token), require_acr("mfa", max_age = 600))
/// policy!()   // Clerk's default: any signed-in session
/// ```
///
/// The items are the attributes without `#[...]`, separated by commas. The value is built
/// from statics (usable in a `static` too) and goes into `PolicyLayer::new(gate, policy)`.
#[proc_macro]
pub fn policy(input: TokenStream) -> TokenStream {
    policy::expand(input.into()).into()
}
