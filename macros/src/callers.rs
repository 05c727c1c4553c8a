//! The handler's caller parameters, checked against the route's accepted types: a typed view
//! (`SessionCaller`, …) of a type the route does not accept is an error at the parameter, a
//! bare `Caller` is narrowed to the accepted types, and a caller that an anonymous request
//! cannot supply is an error on an optional route.
//!
//! Parameters are recognised by the last segment of their type's path (`Auth`,
//! `tokengate::SessionCaller`, `Option<Caller>`), as the attributes themselves are.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned as _;
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, Type, TypePath};
use tokengate_core::{TokenType, TokenTypes};

use crate::errors::Errors;
use crate::validate::Spec;

/// A caller parameter the attributes know.
enum Known {
    /// `Auth`: every type.
    Auth,
    /// A view of one token type.
    View(TokenType),
    /// `Caller` without arguments.
    Caller,
}

/// The view type of each token type, by name.
const VIEWS: [(&str, TokenType); 4] = [
    ("SessionCaller", TokenType::SessionToken),
    ("OAuthCaller", TokenType::OAuthToken),
    ("ApiKeyCaller", TokenType::ApiKey),
    ("M2mCaller", TokenType::M2mToken),
];

fn view_name(token_type: TokenType) -> &'static str {
    VIEWS
        .iter()
        .find(|(_, t)| *t == token_type)
        .map_or("Caller", |(n, _)| n)
}

/// Checks every parameter of `func` and narrows its bare `Caller`s to the accepted types.
pub(crate) fn check_and_narrow(func: &mut ItemFn, spec: &Spec, errors: &mut Errors) {
    let accepted = spec.accepts.set();
    for input in func.sig.inputs.iter_mut() {
        let FnArg::Typed(typed) = input else { continue };
        let (ty, in_option) = match option_inner(&mut typed.ty) {
            Some(inner) => (inner, true),
            None => (&mut *typed.ty, false),
        };
        let Type::Path(path) = ty else { continue };
        let Some(known) = known(path) else { continue };
        if spec.optional.is_some() && !in_option {
            errors.at(path.span(), anonymous_message(&known, path));
        }
        match known {
            Known::View(token_type) => check_view(token_type, accepted, path, errors),
            Known::Caller => narrow(path, accepted),
            Known::Auth => {}
        }
    }
}

/// The `T` of `Option<T>`.
fn option_inner(ty: &mut Type) -> Option<&mut Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last_mut()?;
    if last.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &mut last.arguments else {
        return None;
    };
    if args.args.len() != 1 {
        return None;
    }
    match args.args.first_mut() {
        Some(GenericArgument::Type(inner)) => Some(inner),
        _ => None,
    }
}

fn known(path: &TypePath) -> Option<Known> {
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if !matches!(last.arguments, PathArguments::None) {
        return None;
    }
    let name = last.ident.to_string();
    match name.as_str() {
        "Auth" => Some(Known::Auth),
        "Caller" => Some(Known::Caller),
        _ => VIEWS.iter().find(|(n, _)| *n == name).map(|(_, t)| Known::View(*t)),
    }
}

/// On an optional route, an anonymous request has no caller.
fn anonymous_message(known: &Known, path: &TypePath) -> String {
    let written = quote!(#path).to_string().replace(' ', "");
    let what = match known {
        Known::Auth => "the verified caller",
        Known::View(_) => "a typed view of the verified caller",
        Known::Caller => "the verified caller",
    };
    format!(
        "this route is `optional`: an anonymous request has no caller, so `{written}` ({what}) could not be extracted; take `Option<{written}>` (`None` for anonymous callers)"
    )
}

/// A typed view: its type must be the route's only accepted type.
fn check_view(token_type: TokenType, accepted: TokenTypes, path: &TypePath, errors: &mut Errors) {
    let view = view_name(token_type);
    if !accepted.contains(token_type) {
        let instead = match accepted.iter().collect::<Vec<_>>().as_slice() {
            [only] => format!("take `{}`", view_name(*only)),
            _ => "take `Caller` and `match` on it".to_owned(),
        };
        errors.at(
            path.span(),
            format!(
                "`{view}` holds `{token_type}` callers, but this route does not accept `{token_type}` (it accepts: {accepted}); {instead}, or add `{token_type}` to `#[accepts_token]`"
            ),
        );
    } else if accepted.iter().count() > 1 {
        errors.at(
            path.span(),
            format!(
                "`{view}` holds only `{token_type}` callers, but this route accepts several types (it accepts: {accepted}), and the others could not be extracted; take `Caller` and `match` on it, with an arm for each accepted type"
            ),
        );
    }
}

/// `Caller` becomes `Caller<SessionCaller, NotAccepted, ApiKeyCaller, NotAccepted>` (for a
/// route accepting sessions and API keys): a `match` needs arms for the accepted types only.
fn narrow(path: &mut TypePath, accepted: TokenTypes) {
    let p = quote!(::tokengate::__private);
    let slots: Vec<TokenStream> = TokenType::ALL
        .into_iter()
        .map(|t| {
            if accepted.contains(t) {
                let view = syn::Ident::new(view_name(t), proc_macro2::Span::call_site());
                quote!(#p::#view)
            } else {
                quote!(#p::NotAccepted)
            }
        })
        .collect();
    if let Some(last) = path.path.segments.last_mut() {
        last.arguments = PathArguments::AngleBracketed(syn::parse_quote!(<#(#slots),*>));
    }
}
