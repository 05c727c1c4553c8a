//! Parsing: the tokengate attributes (and `policy!` items) into views that keep every token's
//! span. Nothing is checked here beyond the shape of the arguments; names and values are
//! checked in [`validate`](crate::validate).

use proc_macro2::{Delimiter, Group, Ident, Punct, Spacing, Span, TokenStream, TokenTree};
use syn::parse::Parser as _;
use syn::{Attribute, LitStr, Meta, Path};

use crate::errors::Errors;
use crate::names::{AttrKind, nearest, valid_types};
use crate::step_up::{ReverificationArgs, assignment, reverification_args};

/// One tokengate attribute as the user wrote it.
pub(crate) struct Declared {
    pub(crate) kind: AttrKind,
    /// The attribute's name, or the whole attribute for the one being expanded.
    pub(crate) span: Span,
    pub(crate) args: Args,
    /// Some argument could not be parsed (already reported): checks that would only
    /// repeat that error are skipped.
    pub(crate) malformed: bool,
}

/// An attribute's arguments.
pub(crate) enum Args {
    /// `accepts_token(...)`: the listed types.
    Accepts(Vec<TypeArg>),
    /// `require_scope(...)`, `require_role(...)`, `require_permission(...)`.
    Require(RequireArgs),
    /// `require(...)`: the predicates' paths, as written.
    Conditions(Vec<Path>),
    /// `require_reverification(...)`.
    Reverification(ReverificationArgs),
    /// `require_acr(...)`: the `acr` values, and `max_age = ...` (its key and value tokens).
    Acr(RequireArgs, Option<(Ident, Vec<TokenTree>)>),
    /// `rate_limit(...)`: the rate (with its type limit), and `per = ...`.
    RateLimit(RequireArgs, Option<(Ident, Vec<TokenTree>)>),
    /// `public`.
    Public,
    /// `require_dpop` or `require_mtls`: no arguments.
    Binding,
}

/// A token type as written: an identifier, or (a mistake) a string.
pub(crate) enum TypeArg {
    Ident(Ident),
    Str(LitStr),
}

impl TypeArg {
    pub(crate) fn span(&self) -> Span {
        match self {
            TypeArg::Ident(i) => i.span(),
            TypeArg::Str(s) => s.span(),
        }
    }
}

/// `[types:] values` or `[types:] any(values)` / `all(values)`.
pub(crate) struct RequireArgs {
    /// The type limit before `:`, with the span of the `:`.
    pub(crate) limit: Option<(Vec<TypeArg>, Span)>,
    /// `any(...)` / `all(...)` as written; `None` is all-of.
    pub(crate) any: Option<Span>,
    pub(crate) values: Vec<ValueArg>,
    /// Where to point when there is no value.
    pub(crate) empty_span: Span,
}

/// A required value as written: a string, or (a mistake) an identifier.
pub(crate) enum ValueArg {
    Str(LitStr),
    Ident(Ident),
}

/// The tokengate attribute `attr` is, if it is one (matched on the last path segment, so
/// `#[tokengate::accepts_token]` works too).
pub(crate) fn tokengate_kind(attr: &Attribute) -> Option<AttrKind> {
    let last = attr.path().segments.last()?;
    AttrKind::from_name(&last.ident.to_string())
}

/// Parses an attribute found among the function's attributes.
pub(crate) fn from_attribute(kind: AttrKind, attr: &Attribute, errors: &mut Errors) -> Option<Declared> {
    let span = attr
        .path()
        .segments
        .last()
        .map_or_else(Span::call_site, |s| s.ident.span());
    from_meta(kind, span, &attr.meta, errors)
}

/// Parses a `Meta` (an attribute's content, or an item of `policy!`).
pub(crate) fn from_meta(kind: AttrKind, span: Span, meta: &Meta, errors: &mut Errors) -> Option<Declared> {
    match meta {
        Meta::Path(_) => declared(kind, span, TokenStream::new(), errors),
        Meta::List(list) => declared(kind, span, list.tokens.clone(), errors),
        Meta::NameValue(nv) => {
            errors.at(
                nv.eq_token.span,
                format!(
                    "`{name} = ...` is not a form of this attribute; write `{name}(...)`, e.g. {example}",
                    name = kind.name(),
                    example = example(kind)
                ),
            );
            None
        }
    }
}

/// Parses the arguments of a `kind` attribute; `span` is where to point for the attribute
/// as a whole. Records every problem in `errors`; `None` when nothing usable remains.
pub(crate) fn declared(kind: AttrKind, span: Span, args: TokenStream, errors: &mut Errors) -> Option<Declared> {
    let before = errors.count();
    let chunks = split_commas(args, errors);
    let args = match kind {
        AttrKind::AcceptsToken => Args::Accepts(chunks.into_iter().filter_map(|c| type_arg(&c, errors)).collect()),
        AttrKind::RequireScope
        | AttrKind::RequireRole
        | AttrKind::RequirePermission
        | AttrKind::RequireFeature
        | AttrKind::RequirePlan => Args::Require(require_args(kind, span, chunks, errors)),
        AttrKind::RequireReverification => Args::Reverification(reverification_args(span, &chunks, errors)),
        AttrKind::RequireAcr => {
            let (args, max_age) = with_option(AttrKind::RequireAcr, "max_age", span, chunks, errors);
            Args::Acr(args, max_age)
        }
        AttrKind::RateLimit => {
            let (args, per) = with_option(AttrKind::RateLimit, "per", span, chunks, errors);
            Args::RateLimit(args, per)
        }
        AttrKind::Require => Args::Conditions(chunks.iter().filter_map(|c| condition_arg(c, errors)).collect()),
        AttrKind::Public => {
            if let Some(first) = chunks.first().and_then(|c| c.first()) {
                errors.at(
                    first.span(),
                    "`#[public]` takes no arguments: it only marks the route as intentionally open; write `#[public]`",
                );
            }
            Args::Public
        }
        AttrKind::RequireDpop | AttrKind::RequireMtls => {
            if let Some(first) = chunks.first().and_then(|c| c.first()) {
                errors.at(
                    first.span(),
                    format!(
                        "`#[{name}]` takes no arguments: it applies to every accepted token type that can be bound (oauth_token, m2m_token); write `#[{name}]`",
                        name = kind.name()
                    ),
                );
            }
            Args::Binding
        }
    };
    let malformed = errors.count() > before;
    Some(Declared {
        kind,
        span,
        args,
        malformed,
    })
}

/// An example of the attribute, for messages.
pub(crate) fn example(kind: AttrKind) -> &'static str {
    match kind {
        AttrKind::AcceptsToken => "`#[accepts_token(api_key, m2m_token)]`",
        AttrKind::RequireScope => "`#[require_scope(\"write:users\")]`",
        AttrKind::RequireRole => "`#[require_role(\"org:admin\")]`",
        AttrKind::RequirePermission => "`#[require_permission(\"org:invoices:create\")]`",
        AttrKind::Require => "`#[require(is_owner)]`",
        AttrKind::Public => "`#[public]`",
        AttrKind::RequireFeature => "`#[require_feature(\"exports\")]`",
        AttrKind::RequirePlan => "`#[require_plan(\"o:pro\")]`",
        AttrKind::RequireReverification => "`#[require_reverification(strict)]`",
        AttrKind::RequireAcr => "`#[require_acr(\"mfa\", max_age = 600)]`",
        AttrKind::RateLimit => "`#[rate_limit(\"100/min\")]`",
        AttrKind::RequireDpop => "`#[require_dpop]`",
        AttrKind::RequireMtls => "`#[require_mtls]`",
    }
}

/// The arguments of `require_acr(...)` (option `max_age`) or `rate_limit(...)` (option `per`):
/// `option = value` taken out (once), the rest read as a requirement's values.
fn with_option(
    kind: AttrKind,
    option: &str,
    span: Span,
    chunks: Vec<Vec<TokenTree>>,
    errors: &mut Errors,
) -> (RequireArgs, Option<(Ident, Vec<TokenTree>)>) {
    let mut found = None;
    let mut rest = Vec::new();
    let takes = match kind {
        AttrKind::RateLimit => "a rate such as `\"100/min\"` and `per = key` or `per = subject`",
        _ => "`acr` strings, `any(...)` and `max_age = <seconds>`",
    };
    for chunk in chunks {
        match assignment(&chunk) {
            Some((key, value)) if key == option && found.is_none() => found = Some((key, value)),
            Some((key, _)) if key == option => errors.at(key.span(), format!("`{option}` is given twice; remove one")),
            Some((key, _)) => {
                let hint = nearest(&key.to_string(), [option])
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                errors.at(
                    key.span(),
                    format!(
                        "unknown argument `{key} = ...`; {hint}`#[{}]` takes {takes}",
                        kind.name()
                    ),
                );
            }
            None => rest.push(chunk),
        }
    }
    let args = if rest.is_empty() {
        RequireArgs {
            limit: None,
            any: None,
            values: Vec::new(),
            empty_span: span,
        }
    } else {
        require_args(kind, span, rest, errors)
    };
    (args, found)
}

/// The token trees of `args`, split at top-level commas; a trailing comma is allowed.
fn split_commas(args: TokenStream, errors: &mut Errors) -> Vec<Vec<TokenTree>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    for tt in args {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ',' => {
                if current.is_empty() {
                    errors.at(p.span(), "unexpected `,`: an argument is missing before it");
                } else {
                    chunks.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(tt),
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

fn lit_str(tt: &TokenTree) -> Option<LitStr> {
    match tt {
        TokenTree::Literal(_) => syn::parse2::<LitStr>(tt.clone().into()).ok(),
        _ => None,
    }
}

fn render(tokens: &[TokenTree]) -> String {
    let text = tokens.iter().cloned().collect::<TokenStream>().to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// One argument of `accepts_token`, or of a type limit.
fn type_arg(chunk: &[TokenTree], errors: &mut Errors) -> Option<TypeArg> {
    match chunk {
        [TokenTree::Ident(ident)] => Some(TypeArg::Ident(ident.clone())),
        [tt] if lit_str(tt).is_some() => lit_str(tt).map(TypeArg::Str),
        [TokenTree::Ident(ident), next, ..]
            if matches!(next, TokenTree::Group(_)) || matches!(next, TokenTree::Punct(p) if p.as_char() == '=') =>
        {
            errors.at(
                ident.span(),
                format!(
                    "unknown argument `{}`: `#[accepts_token]` takes only token types, e.g. `#[accepts_token(api_key, m2m_token)]`\nvalid token types: {}",
                    render(chunk),
                    valid_types(true)
                ),
            );
            None
        }
        _ if chunk
            .iter()
            .any(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == '|')) =>
        {
            let bar = chunk
                .iter()
                .find(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == '|'));
            errors.at(
                bar.map_or_else(Span::call_site, TokenTree::span),
                "separate accepted token types with `,`: `#[accepts_token(api_key, m2m_token)]`",
            );
            None
        }
        [first, ..] => {
            errors.at(
                first.span(),
                format!(
                    "expected a token type, found `{}`\nvalid token types: {}",
                    render(chunk),
                    valid_types(true)
                ),
            );
            None
        }
        [] => None,
    }
}

/// The index of a lone `:` (not part of `::`) in `chunk`.
fn limit_colon(chunk: &[TokenTree]) -> Option<usize> {
    let is_colon = |tt: &TokenTree| matches!(tt, TokenTree::Punct(p) if p.as_char() == ':');
    (0..chunk.len()).find(|&i| {
        is_colon(&chunk[i]) && !(i > 0 && is_colon(&chunk[i - 1])) && !chunk.get(i + 1).is_some_and(is_colon)
    })
}

/// The arguments of `require_scope`, `require_role` or `require_permission`:
/// `[types:] values` or `[types:] any(values)` / `all(values)`.
fn require_args(kind: AttrKind, span: Span, mut chunks: Vec<Vec<TokenTree>>, errors: &mut Errors) -> RequireArgs {
    let mut args = RequireArgs {
        limit: None,
        any: None,
        values: Vec::new(),
        empty_span: span,
    };
    merge_comma_separated_limit(kind, span, &mut chunks, errors);
    if let Some((types, colon_span)) = leading_limit(&mut chunks, span, errors) {
        args.limit = Some((types, colon_span));
        args.empty_span = colon_span;
    }
    for chunk in chunks.iter().skip(usize::from(args.limit.is_none())) {
        misplaced_limit(kind, chunk, errors);
    }
    if let Some((name, group)) = only_group(&chunks) {
        if name == "any" {
            args.any = Some(name.span());
        }
        args.empty_span = name.span();
        let inner = split_commas(group.stream(), errors);
        args.values = inner.iter().filter_map(|c| value_arg(kind, c, true, errors)).collect();
        return args;
    }
    args.values = listed_values(kind, &chunks, errors);
    args
}

/// `api_key, m2m_token: "x"`: a limit whose types are separated by commas. Reported, then
/// merged into one `api_key | m2m_token: "x"` argument so the rest is read as meant.
fn merge_comma_separated_limit(kind: AttrKind, span: Span, chunks: &mut Vec<Vec<TokenTree>>, errors: &mut Errors) {
    if chunks.first().is_some_and(|c| limit_colon(c).is_none())
        && let Some(k) = chunks.iter().position(|c| limit_colon(c).is_some())
        && chunks[..k]
            .iter()
            .all(|c| matches!(c.as_slice(), [TokenTree::Ident(_)]))
    {
        let names: Vec<String> = chunks[..=k]
            .iter()
            .flat_map(|c| {
                c.iter()
                    .take_while(|t| !matches!(t, TokenTree::Punct(p) if p.as_char() == ':'))
            })
            .map(ToString::to_string)
            .collect();
        errors.at(
            chunks.first().and_then(|c| c.first()).map_or(span, TokenTree::span),
            format!(
                "separate the token types of a limit with `|`: `#[{}({}: ...)]`",
                kind.name(),
                names.join(" | ")
            ),
        );
        let mut merged = Vec::new();
        for chunk in chunks.drain(..k) {
            merged.extend(chunk);
            merged.push(TokenTree::Punct(Punct::new('|', Spacing::Alone)));
        }
        merged.extend(chunks.remove(0));
        chunks.insert(0, merged);
    }
}

/// A type limit `api_key | m2m_token:` opening the first argument: its types and the span of
/// its `:`, taken off the arguments.
fn leading_limit(chunks: &mut Vec<Vec<TokenTree>>, span: Span, errors: &mut Errors) -> Option<(Vec<TypeArg>, Span)> {
    let first = chunks.first_mut()?;
    let colon = limit_colon(first)?;
    let rest = first.split_off(colon + 1);
    let colon_span = first.pop().map_or(span, |tt| tt.span());
    let types = limit_types(first, colon_span, errors);
    *first = rest;
    if first.is_empty() {
        chunks.remove(0);
    }
    Some((types, colon_span))
}

/// A type limit anywhere but at the start of the first argument.
fn misplaced_limit(kind: AttrKind, chunk: &[TokenTree], errors: &mut Errors) {
    if let Some(colon) = limit_colon(chunk) {
        errors.at(
            chunk[colon].span(),
            format!(
                "a type limit goes first and applies to the whole attribute; write this one as its own attribute, e.g. `#[{}(api_key: \"{}\")]`",
                kind.name(),
                kind.example()
            ),
        );
    }
}

/// `any("a", "b")` / `all("a", "b")` as the only argument.
fn only_group(chunks: &[Vec<TokenTree>]) -> Option<(&Ident, &Group)> {
    if let [only] = chunks
        && let [TokenTree::Ident(name), TokenTree::Group(group)] = only.as_slice()
        && (name == "any" || name == "all")
        && group.delimiter() == Delimiter::Parenthesis
    {
        Some((name, group))
    } else {
        None
    }
}

/// The values listed directly (all of them required); an error for an `any(...)` or
/// `all(...)` among others.
fn listed_values(kind: AttrKind, chunks: &[Vec<TokenTree>], errors: &mut Errors) -> Vec<ValueArg> {
    let mut values = Vec::new();
    for chunk in chunks {
        match chunk.as_slice() {
            [TokenTree::Ident(name), TokenTree::Group(group)] if name == "any" || name == "all" => {
                let message = if group.delimiter() == Delimiter::Parenthesis {
                    format!(
                        "`{name}(...)` must be the only argument (after an optional type limit): `#[{kind}({name}(\"a\", \"b\"))]`; to combine groups with AND, write several `#[{kind}]` attributes",
                        kind = kind.name()
                    )
                } else {
                    format!("write `{name}(...)` with parentheses: `{name}(\"a\", \"b\")`")
                };
                errors.at(name.span(), message);
            }
            // A misplaced type limit, reported by `misplaced_limit`.
            _ if limit_colon(chunk).is_some() => {}
            _ => {
                if let Some(v) = value_arg(kind, chunk, false, errors) {
                    values.push(v);
                }
            }
        }
    }
    values
}

fn limit_types(tokens: &[TokenTree], colon: Span, errors: &mut Errors) -> Vec<TypeArg> {
    let mut types = Vec::new();
    let mut part = Vec::new();
    let mut flush = |part: &mut Vec<TokenTree>, at: Span, errors: &mut Errors| {
        if part.is_empty() {
            errors.at(
                at,
                "expected a token type here: a type limit is `api_key:` or `api_key | m2m_token:`",
            );
        } else if let Some(t) = type_arg(part, errors) {
            types.push(t);
        }
        part.clear();
    };
    for tt in tokens {
        match tt {
            TokenTree::Punct(p) if p.as_char() == '|' => flush(&mut part, p.span(), errors),
            _ => part.push(tt.clone()),
        }
    }
    flush(&mut part, colon, errors);
    types
}

/// The signature a `#[require]` predicate has, for messages.
pub(crate) const PREDICATE_SIGNATURE: &str = "async fn is_owner(auth: &Auth, parts: &mut Parts) -> bool";

/// One predicate of `#[require(...)]`: a path like `is_owner` or `crate::auth::is_owner`.
fn condition_arg(chunk: &[TokenTree], errors: &mut Errors) -> Option<Path> {
    let tokens: TokenStream = chunk.iter().cloned().collect();
    if let Ok(path) = Path::parse_mod_style.parse2(tokens) {
        return Some(path);
    }
    let first = chunk.first().map_or_else(Span::call_site, TokenTree::span);
    let message = match chunk {
        [tt] if lit_str(tt).is_some() => {
            let value = lit_str(tt).map(|l| l.value()).unwrap_or_default();
            if Path::parse_mod_style.parse_str(&value).is_ok() {
                format!(
                    "a predicate is named by its path, not a string: write `#[require({value})]` without the quotes"
                )
            } else {
                format!(
                    "a predicate is named by its path, not a string, e.g. `#[require(is_owner)]` for `{PREDICATE_SIGNATURE}`"
                )
            }
        }
        [TokenTree::Literal(_)] => format!(
            "expected the path of a predicate, found the literal `{}`; write e.g. `#[require(is_owner)]` for `{PREDICATE_SIGNATURE}`",
            render(chunk)
        ),
        [TokenTree::Ident(name), TokenTree::Group(_)] if name == "any" || name == "all" => format!(
            "`#[require]` takes predicate paths, all of which must hold; `{name}(...)` is not supported: write one predicate that combines the others"
        ),
        [.., TokenTree::Group(group)] if group.delimiter() == Delimiter::Parenthesis => {
            let name = render(&chunk[..chunk.len() - 1]).replace(" :: ", "::");
            format!(
                "name the predicate without calling it: `#[require({name})]`; tokengate calls it with the request's `&Auth` and `&mut Parts`"
            )
        }
        _ => format!(
            "expected the path of a predicate, e.g. `is_owner` or `crate::auth::is_owner`, found `{}`",
            render(chunk)
        ),
    };
    errors.at(first, message);
    None
}

/// One required value; `nested` inside `any(...)`/`all(...)`.
fn value_arg(kind: AttrKind, chunk: &[TokenTree], nested: bool, errors: &mut Errors) -> Option<ValueArg> {
    let noun = kind.value_noun();
    match chunk {
        [tt] if lit_str(tt).is_some() => lit_str(tt).map(ValueArg::Str),
        [TokenTree::Ident(ident)] => Some(ValueArg::Ident(ident.clone())),
        [TokenTree::Ident(name), TokenTree::Group(_)] => {
            let n = name.to_string();
            if (n == "any" || n == "all") && nested {
                errors.at(
                    name.span(),
                    format!("`{n}(...)` cannot be nested; list the {noun}s directly: `{n}(\"a\", \"b\")`"),
                );
            } else {
                let hint = nearest(&n, ["any", "all"])
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                errors.at(
                    name.span(),
                    format!(
                        "unknown argument `{n}(...)`{hint}\n`#[{kind}]` takes {noun} strings (all required), `any(...)` (one is enough) or `all(...)`, optionally after a type limit like `api_key:`",
                        kind = kind.name()
                    ),
                );
            }
            None
        }
        [first, ..] => {
            errors.at(
                first.span(),
                format!(
                    "expected a {noun} string like \"{}\", found `{}`",
                    kind.example(),
                    render(chunk)
                ),
            );
            None
        }
        [] => None,
    }
}
