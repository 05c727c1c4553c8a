//! Validation: the parsed declarations of one handler (or one `policy!`) become a [`Spec`],
//! or errors that say what is wrong, where, and how to fix it.
//!
//! The value rules are `tokengate_core::grammar`'s, which the runtime applies to policies built
//! at run time.

use std::collections::HashSet;

use proc_macro2::{Ident, Span};
use tokengate_core::grammar::ValueKind;
use tokengate_core::{TokenType, TokenTypes};

use crate::errors::Errors;
use crate::names::{AttrKind, limit_form, unknown_type_message, valid_types};
use crate::parse::{Args, Declared, PREDICATE_SIGNATURE, RequireArgs, TypeArg, ValueArg};
use crate::step_up::{check_reverification, positive};

/// Where the declarations are used.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// Attributes on a handler.
    Handler,
    /// `policy!(...)` for a group layer.
    Layer,
}

/// A checked policy declaration.
pub(crate) struct Spec {
    pub(crate) accepts: Accepts,
    pub(crate) requirements: Vec<Req>,
    /// The `#[require(...)]` predicates, in the order written; all must hold.
    pub(crate) conditions: Vec<Condition>,
    pub(crate) public: bool,
    /// `accepts_token(optional, ...)`: anonymous callers admitted (the span of `optional`).
    pub(crate) optional: Option<Span>,
    /// `#[require_dpop]`: DPoP-bound tokens.
    pub(crate) dpop: bool,
    /// `#[require_mtls]`: certificate-bound tokens.
    pub(crate) mtls: bool,
}

/// A checked `#[require]` predicate.
pub(crate) struct Condition {
    /// The path as the user wrote it (its spans point at the user's tokens).
    pub(crate) path: syn::Path,
    /// The path as text, `crate::auth::is_owner`: the name in the report and the rejection.
    pub(crate) name: String,
}

/// Which token types the route accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepts {
    /// No `accepts_token`: Clerk's default, session tokens only.
    Default,
    /// `accepts_token(any)`.
    Any,
    /// The listed types.
    Types(TokenTypes),
}

impl Accepts {
    pub(crate) fn set(self) -> TokenTypes {
        match self {
            Accepts::Default => TokenTypes::DEFAULT,
            Accepts::Any => TokenTypes::ANY,
            Accepts::Types(set) => set,
        }
    }
}

/// What a checked requirement looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReqKind {
    /// Values of a grammar: scopes, roles, permissions, features, plans, `acr`.
    Value(ValueKind),
    /// One reverification requirement, in its text form.
    Reverification,
    /// One maximum authentication age, in seconds.
    MaxAge,
    /// A rate limit: the rate and whom it counts for (`key`, `subject`).
    RateLimit,
}

/// A checked requirement.
pub(crate) struct Req {
    pub(crate) kind: ReqKind,
    pub(crate) any: bool,
    pub(crate) values: Vec<String>,
    /// Empty: every accepted type.
    pub(crate) applies_to: TokenTypes,
}

/// Checks the declarations; records every problem in `errors` and returns what it could
/// make of them.
pub(crate) fn validate(decls: &[Declared], context: Context, errors: &mut Errors) -> Spec {
    let mut spec = Spec {
        accepts: Accepts::Default,
        requirements: Vec::new(),
        conditions: Vec::new(),
        public: false,
        optional: None,
        dpop: false,
        mtls: false,
    };
    check_counts(decls, context, errors);
    let accepts_known = read_accepts(decls, &mut spec, errors);
    // When the accepted types are not known, checks against them would only repeat an error
    // already reported.
    let accepts = accepts_known.then_some(spec.accepts);
    for d in decls {
        check_requirement(d, accepts, context, &mut spec, errors);
    }
    if let Some(optional) = spec.optional
        && let Some(first) = spec.conditions.first()
    {
        errors.push(syn::Error::new(
            optional,
            format!(
                "`optional` admits anonymous callers, but `#[require({})]` checks the caller, and an anonymous one has none, so the check would be skipped for exactly the callers it should stop; remove `optional`, or drop `#[require]` and check `Option<Auth>` in the handler",
                first.name
            ),
        ));
    }
    spec
}

/// The first `accepts_token` (later ones are `check_counts`'s errors) and `#[public]` into
/// `spec`; whether the accepted types are known (the declaration parsed and checked cleanly).
fn read_accepts(decls: &[Declared], spec: &mut Spec, errors: &mut Errors) -> bool {
    let mut seen_accepts = false;
    let mut accepts_known = true;
    for d in decls {
        match &d.args {
            Args::Accepts(types) if !seen_accepts => {
                seen_accepts = true;
                let before = errors.count();
                (spec.accepts, spec.optional) = accepts(d, types, errors);
                accepts_known = !d.malformed && errors.count() == before;
            }
            Args::Public => spec.public = true,
            _ => {}
        }
    }
    accepts_known
}

/// One requirement declaration checked (against the accepted types when they are known) and
/// added to `spec`; other declarations are left alone.
fn check_requirement(d: &Declared, accepts: Option<Accepts>, context: Context, spec: &mut Spec, errors: &mut Errors) {
    match &d.args {
        Args::Require(args) => spec.requirements.push(requirement(d, args, accepts, context, errors)),
        Args::Conditions(paths) => conditions(d, paths, context, &mut spec.conditions, errors),
        Args::Reverification(args) => {
            let checked = check_reverification(args, d.span, errors);
            if let Some(accepts) = accepts {
                serves_sessions(d, accepts, context, errors);
            }
            spec.requirements.extend(checked.map(|r| Req {
                kind: ReqKind::Reverification,
                any: false,
                values: vec![r.to_string()],
                applies_to: TokenTypes::DEFAULT,
            }));
        }
        Args::RateLimit(args, per) => {
            let route = if context == Context::Layer { "policy" } else { "route" };
            spec.requirements
                .extend(crate::rate_limit::check(d, args, per.as_ref(), accepts, route, errors));
        }
        Args::Binding => {
            match d.kind {
                AttrKind::RequireDpop => spec.dpop = true,
                _ => spec.mtls = true,
            }
            if let Some(accepts) = accepts {
                bindable(d, accepts, context, errors);
            }
        }
        Args::Acr(args, max_age) => acr(
            d,
            args,
            max_age.as_ref(),
            accepts,
            context,
            &mut spec.requirements,
            errors,
        ),
        _ => {}
    }
}

/// `require_acr(...)`: the `acr` values (one, or any of several) and the maximum age, on a
/// route that accepts OAuth tokens.
fn acr(
    d: &Declared,
    args: &RequireArgs,
    max_age: Option<&(Ident, Vec<proc_macro2::TokenTree>)>,
    accepts: Option<Accepts>,
    context: Context,
    out: &mut Vec<Req>,
    errors: &mut Errors,
) {
    let oauth = TokenTypes::EMPTY.with(TokenType::OAuthToken);
    if args.values.is_empty() && max_age.is_none() && !d.malformed {
        errors.at(
            args.empty_span,
            "`#[require_acr]` needs an `acr` or a maximum age, e.g. `#[require_acr(\"mfa\")]`, `#[require_acr(any(\"mfa\", \"phr\"), max_age = 600)]` or `#[require_acr(max_age = 600)]`",
        );
    } else if !args.values.is_empty() || max_age.is_none() {
        let mut req = requirement(d, args, None, context, errors);
        if !req.any && req.values.len() > 1 {
            errors.at(
                d.span,
                format!(
                    "an OAuth token carries one `acr`, so requiring all of several can never hold; to accept either, write `#[require_acr(any({}))]`",
                    req.values.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        req.applies_to = oauth;
        out.push(req);
    }
    if let Some((key, value)) = max_age
        && let Some(seconds) = positive(key, value, "max_age", "seconds", errors)
    {
        out.push(Req {
            kind: ReqKind::MaxAge,
            any: false,
            values: vec![seconds.to_string()],
            applies_to: oauth,
        });
    }
    if let Some(accepts) = accepts
        && !accepts.set().contains(TokenType::OAuthToken)
    {
        let route = if context == Context::Layer { "policy" } else { "route" };
        errors.at(
            d.span,
            format!(
                "`#[require_acr]` checks how the user of an OAuth access token authenticated (RFC 9470 `acr` and `auth_time`), but this {route} accepts no OAuth tokens (it accepts: {}); add `oauth_token` to `#[accepts_token]`, or use `#[require_reverification]` for sessions",
                accepts.set()
            ),
        );
    }
}

/// The token types DPoP and certificate binding apply to (tokengate-runtime's `binding::BINDABLE`).
const BINDABLE: TokenTypes = TokenTypes::EMPTY.with(TokenType::OAuthToken).with(TokenType::M2mToken);

/// `#[require_dpop]` / `#[require_mtls]` on a route that accepts no token type that can be
/// bound: an error that says which can.
fn bindable(d: &Declared, accepts: Accepts, context: Context, errors: &mut Errors) {
    let accepted = accepts.set();
    if accepts == Accepts::Any || !accepted.intersection(BINDABLE).is_empty() {
        return;
    }
    let route = if context == Context::Layer { "policy" } else { "route" };
    let (what, how) = match d.kind {
        AttrKind::RequireDpop => ("DPoP-bound tokens (RFC 9449)", "a DPoP key (`cnf.jkt`)"),
        _ => (
            "certificate-bound tokens (RFC 8705)",
            "a client certificate (`cnf.\"x5t#S256\"`)",
        ),
    };
    errors.at(
        d.span,
        format!(
            "`#[{attr}]` requires {what}, but this {route} accepts only {accepted}, which cannot be bound to {how}; the token types that can be bound are `oauth_token` and `m2m_token`: add one to `#[accepts_token]`, or remove `#[{attr}]`",
            attr = d.kind.name(),
        ),
    );
}

/// A session-only requirement on a route that accepts no session tokens: an error.
fn serves_sessions(d: &Declared, accepts: Accepts, context: Context, errors: &mut Errors) {
    let accepted = accepts.set();
    if accepted.contains(TokenType::SessionToken) {
        return;
    }
    let route = if context == Context::Layer { "policy" } else { "route" };
    let what = match d.kind {
        AttrKind::RequireRole => "the organization role of a signed-in user",
        AttrKind::RequirePermission => "the organization permission of a signed-in user",
        AttrKind::RequireFeature => "a Clerk Billing feature of a signed-in user (the session's `fea` claim)",
        AttrKind::RequirePlan => "a Clerk Billing plan of a signed-in user (the session's `pla` claim)",
        _ => "how recently a signed-in user verified their factors (the session's `fva` claim)",
    };
    let instead = match d.kind {
        AttrKind::RequireReverification if accepted.contains(TokenType::OAuthToken) => {
            "or, for OAuth tokens, use `#[require_acr(..., max_age = ...)]`"
        }
        _ => "or require a scope instead",
    };
    errors.at(
        d.span,
        format!(
            "`#[{attr}]` checks {what}, which only session tokens carry, but this {route} accepts no session tokens (it accepts: {accepted}); add `session_token` to `#[accepts_token]`, {instead}",
            attr = d.kind.name(),
        ),
    );
}

/// `#[require(a, b)]`: at least one predicate, none twice (across attributes too), and only
/// on handlers.
fn conditions(d: &Declared, paths: &[syn::Path], context: Context, out: &mut Vec<Condition>, errors: &mut Errors) {
    if context == Context::Layer {
        errors.at(
            d.span,
            "`require(...)` is not available in `policy!`: a policy is data and a predicate is code; add it to the layer with `PolicyLayer::new(gate, policy!(...)).with_condition(\"name\", |auth, parts| Box::pin(async move { ... }))`, or give each handler its own `require` attribute",
        );
        return;
    }
    if paths.is_empty() && !d.malformed {
        errors.at(
            d.span,
            format!(
                "`#[require]` needs at least one predicate, e.g. `#[require(is_owner)]` with `{PREDICATE_SIGNATURE}`"
            ),
        );
    }
    for path in paths {
        let name = quote::quote!(#path).to_string().replace(' ', "");
        if out.iter().any(|c| c.name == name) {
            errors.push(syn::Error::new_spanned(
                path,
                format!("predicate `{name}` is required twice; remove one"),
            ));
        } else {
            out.push(Condition {
                path: path.clone(),
                name,
            });
        }
    }
}

/// The same attribute twice, `#[public]` with a policy.
fn check_counts(decls: &[Declared], context: Context, errors: &mut Errors) {
    let of = |kind: AttrKind| decls.iter().filter(move |d| d.kind == kind);
    for d in of(AttrKind::AcceptsToken).skip(1) {
        errors.at(
            d.span,
            "`#[accepts_token]` is given twice; list every accepted type in one attribute, e.g. `#[accepts_token(session_token, api_key)]`",
        );
    }
    for d in of(AttrKind::Public).skip(1) {
        errors.at(d.span, "`#[public]` is given twice; remove one");
    }
    for kind in [AttrKind::RequireDpop, AttrKind::RequireMtls] {
        for d in of(kind).skip(1) {
            errors.at(d.span, format!("`#[{}]` is given twice; remove one", kind.name()));
        }
    }
    if let Some(public) = of(AttrKind::Public).next() {
        if context == Context::Layer {
            errors.at(
                public.span,
                "`public` has no meaning in `policy!`: a group that is open needs no `PolicyLayer`; remove `public`",
            );
        } else if let Some(optional) = decls.iter().find_map(optional_of) {
            errors.at(
                optional,
                "`optional` cannot go with `#[public]`: `#[public]` verifies nothing, while `#[accepts_token(optional, ...)]` admits anonymous callers but still verifies (and refuses a bad) credential when one is sent; keep one: remove `#[public]` for optional authentication, or remove `#[accepts_token]` for an open route",
            );
        } else if let Some(other) = decls.iter().find(|d| d.kind != AttrKind::Public) {
            errors.at(
                public.span,
                format!(
                    "`#[public]` marks a route as intentionally open, but this handler also has `#[{}]`; remove `#[public]` to guard the route, or remove the other tokengate attributes to make it public",
                    other.kind.name()
                ),
            );
        }
    }
}

/// The `optional` keyword of an `accepts_token` declaration, if it has one.
fn optional_of(d: &Declared) -> Option<Span> {
    match &d.args {
        Args::Accepts(types) => types.iter().find(|t| is_optional_keyword(t)).map(TypeArg::span),
        _ => None,
    }
}

/// Resolves a token type name; `None` (with an error) when it is not one.
pub(crate) fn resolve_type(arg: &TypeArg, allow_any: bool, errors: &mut Errors) -> Option<Resolved> {
    match arg {
        TypeArg::Ident(ident) => {
            let name = ident.to_string();
            let name = name.strip_prefix("r#").unwrap_or(&name);
            if name == "any" && allow_any {
                return Some(Resolved::Any);
            }
            match TokenType::from_name(name) {
                Some(t) => Some(Resolved::Type(t)),
                None if name == "any" => {
                    errors.at(
                        ident.span(),
                        "`any` cannot limit a requirement; remove the limit to apply the requirement to every type the route accepts",
                    );
                    None
                }
                None => {
                    errors.at(ident.span(), unknown_type_message(name, allow_any));
                    None
                }
            }
        }
        TypeArg::Str(lit) => {
            let value = lit.value();
            let known = TokenType::from_name(&value).is_some() || (allow_any && value == "any");
            let message = if known {
                format!("token types are identifiers, not strings: write `{value}` without the quotes")
            } else {
                format!(
                    "token types are identifiers, not strings; {}",
                    unknown_type_message(&value, allow_any)
                )
            };
            errors.at(lit.span(), message);
            None
        }
    }
}

pub(crate) enum Resolved {
    Any,
    Type(TokenType),
}

/// Whether `arg` is the `optional` keyword of `accepts_token`.
pub(crate) fn is_optional_keyword(arg: &TypeArg) -> bool {
    matches!(arg, TypeArg::Ident(ident) if ident == "optional")
}

/// `accepts_token(...)`: the accepted types, and the span of `optional` when given.
fn accepts(d: &Declared, types: &[TypeArg], errors: &mut Errors) -> (Accepts, Option<Span>) {
    let mut optional = None;
    let mut rest = Vec::new();
    for arg in types {
        match (is_optional_keyword(arg), optional) {
            (true, None) => optional = Some(arg.span()),
            (true, Some(_)) => errors.at(arg.span(), "`optional` is given twice; remove one"),
            (false, _) => rest.push(arg),
        }
    }
    if let Some(span) = optional
        && rest.is_empty()
        && !d.malformed
    {
        errors.at(
            span,
            format!(
                "`optional` admits anonymous callers beside signed-in ones, so it needs the token types a signed-in caller may present, e.g. `#[accepts_token(optional, session_token, api_key)]`; for a route that verifies nothing, write `#[public]`\nvalid token types: {}",
                valid_types(true)
            ),
        );
        return (Accepts::Types(TokenTypes::EMPTY), optional);
    }
    (accepted_types(d, &rest, errors), optional)
}

fn accepted_types(d: &Declared, types: &[&TypeArg], errors: &mut Errors) -> Accepts {
    if types.is_empty() {
        if d.malformed {
            return Accepts::Types(TokenTypes::EMPTY);
        }
        errors.at(
            d.span,
            format!(
                "`#[accepts_token]` needs at least one token type, e.g. `#[accepts_token(api_key)]`\nvalid token types: {}",
                valid_types(true)
            ),
        );
        return Accepts::Types(TokenTypes::EMPTY);
    }
    let mut set = TokenTypes::EMPTY;
    let mut any = None;
    for &arg in types {
        match resolve_type(arg, true, errors) {
            Some(Resolved::Any) => any = Some(arg.span()),
            Some(Resolved::Type(t)) if set.contains(t) => {
                errors.at(arg.span(), format!("`{t}` is listed twice; remove one"));
            }
            Some(Resolved::Type(t)) => set = set.with(t),
            None => {}
        }
    }
    match any {
        Some(span) if types.len() > 1 => {
            errors.at(
                span,
                "`any` already accepts every token type; remove the other types, or replace `any` by the list of types to accept",
            );
            Accepts::Any
        }
        Some(_) => Accepts::Any,
        None => Accepts::Types(set),
    }
}

/// One `require_scope` / `require_role` / `require_permission` attribute: its values, its type
/// limit, and, when the accepted types are known, whether it can hold for them.
fn requirement(
    d: &Declared,
    args: &RequireArgs,
    accepts: Option<Accepts>,
    context: Context,
    errors: &mut Errors,
) -> Req {
    let kind = match d.kind {
        AttrKind::RequireRole => ValueKind::Role,
        AttrKind::RequirePermission => ValueKind::Permission,
        AttrKind::RequireFeature => ValueKind::Feature,
        AttrKind::RequirePlan => ValueKind::Plan,
        AttrKind::RequireAcr => ValueKind::Acr,
        _ => ValueKind::Scope,
    };
    let start = errors.count();
    let values = values(d, kind, args, errors);
    let (limit, limited) = type_limit(d, kind, args, errors);
    let mut req = Req {
        kind: ReqKind::Value(kind),
        any: args.any.is_some(),
        values,
        applies_to: limit,
    };

    // Checks against the accepted types, when they are known.
    let Some(accepts) = accepts else {
        return req;
    };
    let route = if context == Context::Layer { "policy" } else { "route" };
    let sound = !d.malformed && errors.count() == start;
    if kind == ValueKind::Scope {
        limit_is_accepted(&limited, accepts.set(), route, errors);
    }
    // The checks below would only repeat a mistake already reported in this attribute.
    if sound {
        req.applies_to = applies_to(d, &req, args.limit.is_none(), accepts, route, errors);
    }
    req
}

/// The values of a requirement that follow its grammar, each once; an error for every other.
fn values(d: &Declared, kind: ValueKind, args: &RequireArgs, errors: &mut Errors) -> Vec<String> {
    let attr = d.kind.name();
    let noun = d.kind.value_noun();
    let mut values = Vec::new();
    let mut seen = HashSet::new();
    for v in &args.values {
        match v {
            ValueArg::Str(lit) => {
                let value = lit.value();
                if let Err(error) = kind.validate(&value) {
                    errors.at(lit.span(), error.in_attribute());
                } else if !seen.insert(value.clone()) {
                    errors.at(lit.span(), format!("{noun} `{value}` is listed twice; remove one"));
                } else {
                    values.push(value);
                }
            }
            ValueArg::Ident(ident) => unquoted_value(d, ident, errors),
        }
    }
    if args.values.is_empty() && !d.malformed {
        errors.at(
            args.empty_span,
            format!(
                "`#[{attr}]` needs at least one {noun}, e.g. `#[{attr}(\"{}\")]`",
                d.kind.example()
            ),
        );
    }
    values
}

/// A value written as an identifier: it needs quotes, or, if it names a token type, was meant
/// as a type limit.
fn unquoted_value(d: &Declared, ident: &Ident, errors: &mut Errors) {
    let attr = d.kind.name();
    let noun = d.kind.value_noun();
    let name = ident.to_string();
    let hint = if TokenType::from_name(&name).is_some() {
        format!(
            "; to limit the requirement to `{name}` tokens, end the limit with `:`: `#[{attr}({name}: \"{}\")]`",
            d.kind.example()
        )
    } else {
        String::new()
    };
    errors.at(
        ident.span(),
        format!("{noun}s are string literals: write `\"{name}\"`{hint}"),
    );
}

/// The token types a requirement is limited to (empty: no limit), and each with the span it
/// was named at.
fn type_limit(
    d: &Declared,
    kind: ValueKind,
    args: &RequireArgs,
    errors: &mut Errors,
) -> (TokenTypes, Vec<(TokenType, Span)>) {
    let mut limit = TokenTypes::EMPTY;
    let mut limited = Vec::new();
    let Some((types, colon)) = &args.limit else {
        return (limit, limited);
    };
    if kind == ValueKind::Acr {
        errors.at(
            *colon,
            "`#[require_acr]` always applies to OAuth access tokens only (the others carry no `acr`); remove the type limit",
        );
    } else if kind != ValueKind::Scope {
        errors.at(
            *colon,
            format!(
                "`#[{attr}]` always applies to session tokens only (machine tokens carry no {noun}s; give them a `#[require_scope]`); remove the type limit",
                attr = d.kind.name(),
                noun = d.kind.value_noun(),
            ),
        );
    }
    for arg in types {
        match resolve_type(arg, false, errors) {
            Some(Resolved::Type(t)) if limit.contains(t) => {
                errors.at(arg.span(), format!("`{t}` is listed twice; remove one"));
            }
            Some(Resolved::Type(t)) => {
                limit = limit.with(t);
                limited.push((t, arg.span()));
                if kind == ValueKind::Scope && t == TokenType::SessionToken {
                    errors.at(
                        arg.span(),
                        "session tokens carry no scopes, so this requirement would refuse every session; remove `session_token` from the limit (use `#[require_role]` or `#[require_permission]` for sessions)",
                    );
                }
            }
            Some(Resolved::Any) | None => {}
        }
    }
    (limit, limited)
}

/// Every type a scope requirement is limited to is one the route accepts (session tokens
/// were reported by [`type_limit`]).
pub(crate) fn limit_is_accepted(limited: &[(TokenType, Span)], accepted: TokenTypes, route: &str, errors: &mut Errors) {
    for (t, span) in limited {
        if *t != TokenType::SessionToken && !accepted.contains(*t) {
            errors.at(
                *span,
                format!(
                    "this requirement is limited to `{t}`, but the {route} does not accept `{t}` (it accepts: {accepted}); add it to `#[accepts_token]`, or remove it from the limit"
                ),
            );
        }
    }
}

/// The types a sound requirement applies to; an error when it would refuse every token of
/// an accepted type that cannot carry what it requires.
fn applies_to(
    d: &Declared,
    req: &Req,
    unlimited: bool,
    accepts: Accepts,
    route: &str,
    errors: &mut Errors,
) -> TokenTypes {
    let accepted = accepts.set();
    let context = if route == "policy" {
        Context::Layer
    } else {
        Context::Handler
    };
    match req.kind {
        ReqKind::Value(ValueKind::Scope) if unlimited && accepted.contains(TokenType::SessionToken) => {
            errors.at(d.span, scope_on_sessions(req, accepts));
            TokenTypes::EMPTY
        }
        ReqKind::Value(ValueKind::Scope) => req.applies_to,
        ReqKind::Value(ValueKind::Acr) | ReqKind::MaxAge => TokenTypes::EMPTY.with(TokenType::OAuthToken),
        _ => {
            serves_sessions(d, accepts, context, errors);
            TokenTypes::DEFAULT
        }
    }
}

/// The message for a scope requirement that would apply to session tokens, which carry none.
fn scope_on_sessions(req: &Req, accepts: Accepts) -> String {
    let listed = req
        .values
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let example = if req.any { format!("any({listed})") } else { listed };
    let machines = accepts.set().without(TokenType::SessionToken);
    match accepts {
        Accepts::Default => "`#[require_scope]` without `#[accepts_token]`: the route accepts only session tokens (Clerk's default), which carry no scopes, so every request would be refused; declare the machine tokens that carry the scope, e.g. `#[accepts_token(api_key)]`".to_owned(),
        _ if machines.is_empty() => "this route accepts only session tokens, which carry no scopes, so every request would be refused; accept machine tokens (e.g. `#[accepts_token(session_token, api_key)]`) and limit the scope to them, or use `#[require_role]` / `#[require_permission]` for sessions".to_owned(),
        _ => format!(
            "this scope requirement also applies to session tokens, which carry no scopes, so every session would be refused; limit it to the other accepted types: `#[require_scope({}: {example})]`",
            limit_form(machines)
        ),
    }
}
