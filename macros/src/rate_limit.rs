//! `#[rate_limit("100/min")]`, `#[rate_limit(api_key: "100/min", per = subject)]`: one rate
//! (checked with `tokengate-core`'s grammar), an optional type limit and whom it counts for.

use proc_macro2::{Span, TokenTree};
use tokengate_core::rate::{Per, Rate};
use tokengate_core::{TokenType, TokenTypes};

use crate::errors::Errors;
use crate::names::nearest;
use crate::parse::{Declared, RequireArgs, ValueArg};
use crate::validate::{Accepts, Req, ReqKind, Resolved, limit_is_accepted, resolve_type};

/// The checked rate limit, or `None` (with every problem recorded) when there is none.
pub(crate) fn check(
    d: &Declared,
    args: &RequireArgs,
    per: Option<&(proc_macro2::Ident, Vec<TokenTree>)>,
    accepts: Option<Accepts>,
    route: &str,
    errors: &mut Errors,
) -> Option<Req> {
    if let Some(any) = args.any {
        errors.at(
            any,
            "a rate limit has one rate, so `any(...)`/`all(...)` has no meaning here; write `#[rate_limit(\"100/min\")]`, one attribute per limit",
        );
    }
    let rate = rate(d, args, errors);
    let per = per.map_or(Some(Per::Key), |(key, value)| per_value(key.span(), value, errors));
    let applies_to = type_limit(args, accepts, route, errors);
    Some(Req {
        kind: ReqKind::RateLimit,
        any: false,
        values: vec![rate?.to_string(), per?.as_str().to_owned()],
        applies_to,
    })
}

/// The one rate, as a string.
fn rate(d: &Declared, args: &RequireArgs, errors: &mut Errors) -> Option<Rate> {
    let mut values = args.values.iter();
    let Some(first) = values.next() else {
        if !d.malformed {
            errors.at(
                args.empty_span,
                "`#[rate_limit]` needs a rate, e.g. `#[rate_limit(\"100/min\")]` (per second, minute, hour or day: \"10/s\", \"100/min\", \"5000/h\", \"100000/day\")",
            );
        }
        return None;
    };
    for extra in values {
        let span = match extra {
            ValueArg::Str(lit) => lit.span(),
            ValueArg::Ident(ident) => ident.span(),
        };
        errors.at(
            span,
            "`#[rate_limit]` takes one rate; for several limits on one route, write one `#[rate_limit]` each",
        );
    }
    match first {
        ValueArg::Str(lit) => match lit.value().parse::<Rate>() {
            Ok(rate) => Some(rate),
            Err(message) => {
                errors.at(lit.span(), message);
                None
            }
        },
        ValueArg::Ident(ident) => {
            errors.at(
                ident.span(),
                format!("a rate is a string: write `#[rate_limit(\"{ident}\")]` with quotes, e.g. `#[rate_limit(\"100/min\")]`"),
            );
            None
        }
    }
}

/// `per = key` or `per = subject`.
fn per_value(key_span: Span, value: &[TokenTree], errors: &mut Errors) -> Option<Per> {
    let name = match value {
        [TokenTree::Ident(ident)] => ident.to_string(),
        [TokenTree::Literal(lit)] => lit.to_string().trim_matches('"').to_owned(),
        _ => String::new(),
    };
    let span = value.first().map_or(key_span, TokenTree::span);
    if let Some(per) = Per::from_name(&name).filter(|_| matches!(value, [TokenTree::Ident(_)])) {
        return Some(per);
    }
    let hint = nearest(&name, ["key", "subject"])
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    errors.at(
        span,
        format!("{hint}`per` is `key` (each key or token counts alone, the default) or `subject` (all keys of one customer together), written without quotes"),
    );
    None
}

/// The types the limit applies to (empty: every type the route accepts).
fn type_limit(args: &RequireArgs, accepts: Option<Accepts>, route: &str, errors: &mut Errors) -> TokenTypes {
    let Some((types, _colon)) = &args.limit else {
        return TokenTypes::EMPTY;
    };
    let mut limit = TokenTypes::EMPTY;
    let mut limited: Vec<(TokenType, Span)> = Vec::new();
    for arg in types {
        match resolve_type(arg, false, errors) {
            Some(Resolved::Type(t)) if limit.contains(t) => {
                errors.at(arg.span(), format!("`{t}` is listed twice; remove one"));
            }
            Some(Resolved::Type(t)) => {
                limit = limit.with(t);
                limited.push((t, arg.span()));
            }
            Some(Resolved::Any) | None => {}
        }
    }
    if let Some(accepts) = accepts {
        limit_is_accepted(&limited, accepts.set(), route, errors);
        if let Some((t, span)) = limited.iter().find(|(t, _)| *t == TokenType::SessionToken)
            && !accepts.set().contains(*t)
        {
            errors.at(
                *span,
                format!("this rate limit is limited to `{t}`, but the {route} does not accept it; add it to `#[accepts_token]`, or remove it from the limit"),
            );
        }
    }
    limit
}
