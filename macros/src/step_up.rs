//! The arguments of `#[require_reverification]` (a Clerk preset, or `level = …,
//! after_minutes = …`) and the `max_age = …` of `#[require_acr]`: parsed with the span of every
//! token, then checked.

use proc_macro2::{Ident, Span, TokenTree};
use tokengate_core::reverification::{Level, Preset, Reverification};

use crate::errors::Errors;
use crate::names::nearest;

/// `require_reverification(...)` as written.
pub(crate) enum ReverificationArgs {
    /// `strict`.
    Preset(Ident),
    /// `level = second_factor, after_minutes = 30`: each key with its value's tokens.
    Object(Vec<(Ident, Vec<TokenTree>)>),
    /// Nothing usable (already reported).
    Invalid,
}

/// A whole number as written after `=`, with the span to point at.
pub(crate) struct Number {
    pub(crate) span: Span,
    /// `None`: not a number (reported when checked).
    pub(crate) value: Option<i128>,
    pub(crate) text: String,
}

const PRESETS_HELP: &str = "the presets are `strict_mfa` (10 minutes, multi_factor), `strict` (10 minutes, second_factor), `moderate` (60 minutes, second_factor) and `lax` (1440 minutes, second_factor); or write `level = second_factor, after_minutes = 30`";

/// `key = tokens`, if `chunk` is one.
pub(crate) fn assignment(chunk: &[TokenTree]) -> Option<(Ident, Vec<TokenTree>)> {
    match chunk {
        [TokenTree::Ident(key), TokenTree::Punct(eq), rest @ ..] if eq.as_char() == '=' => {
            Some((key.clone(), rest.to_vec()))
        }
        _ => None,
    }
}

/// The number after `=` (`30`, `-5`, or something else).
pub(crate) fn number(key: &Ident, tokens: &[TokenTree]) -> Number {
    let text = tokens.iter().map(ToString::to_string).collect::<String>();
    let span = tokens.first().map_or_else(|| key.span(), TokenTree::span);
    let literal = |tt: &TokenTree| match tt {
        TokenTree::Literal(_) => syn::parse2::<syn::LitInt>(tt.clone().into())
            .ok()
            .and_then(|l| l.base10_parse::<i128>().ok()),
        _ => None,
    };
    let value = match tokens {
        [tt] => literal(tt),
        [TokenTree::Punct(minus), tt] if minus.as_char() == '-' => literal(tt).map(|v| -v),
        _ => None,
    };
    Number { span, value, text }
}

/// Parses the arguments of `require_reverification`.
pub(crate) fn reverification_args(span: Span, chunks: &[Vec<TokenTree>], errors: &mut Errors) -> ReverificationArgs {
    match chunks {
        [] => {
            errors.at(
                span,
                format!("`#[require_reverification]` needs a preset or a level and a number of minutes, e.g. `#[require_reverification(strict)]`; {PRESETS_HELP}"),
            );
            ReverificationArgs::Invalid
        }
        [only] if assignment(only).is_none() => preset_arg(only, errors),
        [_, second, ..] if chunks.iter().all(|c| assignment(c).is_none()) => {
            errors.at(
                second.first().map_or(span, TokenTree::span),
                "`#[require_reverification]` takes one preset; the strictest one covers the others (`strict_mfa` over `strict`, `strict` over `moderate` and `lax`)",
            );
            ReverificationArgs::Invalid
        }
        _ => {
            let mut pairs = Vec::new();
            for chunk in chunks {
                match assignment(chunk) {
                    Some(pair) => pairs.push(pair),
                    None => errors.at(
                        chunk.first().map_or(span, TokenTree::span),
                        "the object form lists `level = <level>, after_minutes = <minutes>`, e.g. `#[require_reverification(level = second_factor, after_minutes = 30)]`",
                    ),
                }
            }
            ReverificationArgs::Object(pairs)
        }
    }
}

fn preset_arg(chunk: &[TokenTree], errors: &mut Errors) -> ReverificationArgs {
    match chunk {
        [TokenTree::Ident(ident)] => ReverificationArgs::Preset(ident.clone()),
        [tt @ TokenTree::Literal(_)] => {
            let text = tt.to_string();
            let name = text.trim_matches('"');
            let message = if Preset::from_name(name).is_some() {
                format!("a preset is a name, not a string: write `{name}` without the quotes")
            } else {
                format!("expected a preset name, found `{text}`; {PRESETS_HELP}")
            };
            errors.at(tt.span(), message);
            ReverificationArgs::Invalid
        }
        [first, ..] => {
            errors.at(first.span(), format!("expected a preset name; {PRESETS_HELP}"));
            ReverificationArgs::Invalid
        }
        [] => ReverificationArgs::Invalid,
    }
}

/// The checked requirement, or `None` with every problem reported.
pub(crate) fn check_reverification(
    args: &ReverificationArgs,
    span: Span,
    errors: &mut Errors,
) -> Option<Reverification> {
    match args {
        ReverificationArgs::Invalid => None,
        ReverificationArgs::Preset(ident) => {
            let name = ident.to_string();
            if let Some(preset) = Preset::from_name(&name) {
                return Some(Reverification::Preset(preset));
            }
            let hint = nearest(&name, Preset::ALL.map(Preset::as_str))
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            errors.at(
                ident.span(),
                format!("unknown reverification preset `{name}`; {hint}{PRESETS_HELP}"),
            );
            None
        }
        ReverificationArgs::Object(pairs) => check_object(pairs, span, errors),
    }
}

fn check_object(pairs: &[(Ident, Vec<TokenTree>)], span: Span, errors: &mut Errors) -> Option<Reverification> {
    let mut level = None;
    let mut minutes = None;
    let mut complete = true;
    for (key, value) in pairs {
        match key.to_string().as_str() {
            "level" if level.is_some() => {
                errors.at(key.span(), "`level` is given twice; remove one");
            }
            "level" => level = Some(check_level(key, value, errors)),
            "after_minutes" if minutes.is_some() => errors.at(key.span(), "`after_minutes` is given twice; remove one"),
            "after_minutes" => minutes = Some(positive(key, value, "after_minutes", "minutes", errors)),
            other => {
                complete = false;
                let hint = nearest(other, ["level", "after_minutes"])
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                errors.at(
                    key.span(),
                    format!(
                        "unknown key `{other}`; {hint}the object form is `level = second_factor, after_minutes = 30`"
                    ),
                );
            }
        }
    }
    for (missing, name) in [
        (level.is_none(), "level = second_factor"),
        (minutes.is_none(), "after_minutes = 30"),
    ] {
        if missing && complete {
            errors.at(span, format!("the object form needs `{name}` too: `#[require_reverification(level = second_factor, after_minutes = 30)]`"));
        }
    }
    Some(Reverification::Custom {
        level: level??,
        after_minutes: minutes??,
    })
}

fn check_level(key: &Ident, value: &[TokenTree], errors: &mut Errors) -> Option<Level> {
    let levels = Level::ALL.map(Level::as_str);
    let (name, span) = match value {
        [TokenTree::Ident(ident)] => (ident.to_string(), ident.span()),
        [tt] => (tt.to_string().trim_matches('"').to_owned(), tt.span()),
        _ => (String::new(), value.first().map_or_else(|| key.span(), TokenTree::span)),
    };
    match Level::from_name(&name) {
        Some(level) if matches!(value, [TokenTree::Ident(_)]) => return Some(level),
        Some(_) => errors.at(span, format!("a level is a name, not a string: write `level = {name}`")),
        None => {
            let hint = nearest(&name, levels)
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            errors.at(
                span,
                format!(
                    "unknown level `{name}`; {hint}the levels are `first_factor`, `second_factor` and `multi_factor`"
                ),
            );
        }
    }
    None
}

/// A whole number over zero that fits in a `u32`, for `key = value`.
pub(crate) fn positive(key: &Ident, value: &[TokenTree], name: &str, unit: &str, errors: &mut Errors) -> Option<u32> {
    let n = number(key, value);
    match n.value {
        Some(v) if v > 0 => u32::try_from(v).ok().or_else(|| {
            errors.at(
                n.span,
                format!("`{name} = {v}` is too large: at most {} {unit}", u32::MAX),
            );
            None
        }),
        Some(v) => {
            errors.at(
                n.span,
                format!("`{name}` must be over zero, found `{v}`: a number of {unit} such as `{name} = 30`"),
            );
            None
        }
        None => {
            errors.at(
                n.span,
                format!(
                    "`{name}` takes a whole number of {unit}, e.g. `{name} = 30`, found `{}`",
                    n.text
                ),
            );
            None
        }
    }
}
