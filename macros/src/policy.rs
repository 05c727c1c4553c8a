//! `policy!(...)`: the attributes' declarations as a `Policy` value for a group layer, with
//! the same checks.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Meta, Token};

use crate::errors::Errors;
use crate::expand;
use crate::names::{AttrKind, nearest};
use crate::parse;
use crate::validate::{self, Context};

/// Expands `policy!(input)`.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut decls = Vec::new();
    match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(input) {
        Ok(items) => {
            for meta in &items {
                let path = meta.path();
                let kind = path.get_ident().and_then(|i| AttrKind::from_name(&i.to_string()));
                match kind {
                    Some(kind) => {
                        let span = path
                            .segments
                            .last()
                            .map_or_else(proc_macro2::Span::call_site, |s| s.ident.span());
                        decls.extend(parse::from_meta(kind, span, meta, &mut errors));
                    }
                    None => {
                        let name = quote!(#path).to_string().replace(' ', "");
                        let names = AttrKind::ALL.map(AttrKind::name);
                        let hint = nearest(&name, names)
                            .map(|s| format!("did you mean `{s}`? "))
                            .unwrap_or_default();
                        errors.push(syn::Error::new_spanned(
                            path,
                            format!(
                                "unknown policy item `{name}`; {hint}`policy!` takes `accepts_token(...)`, `require_scope(...)`, `require_role(...)`, `require_permission(...)`, `require_feature(...)`, `require_plan(...)`, `require_reverification(...)`, `require_acr(...)`, `require_dpop` and `require_mtls`, separated by commas"
                            ),
                        ));
                    }
                }
            }
        }
        Err(error) => errors.push(error),
    }
    let spec = validate::validate(&decls, Context::Layer, &mut errors);
    match errors.finish() {
        Ok(()) => expand::policy_expr(&spec),
        Err(error) => {
            // A value of the right type beside the errors, so the code around compiles.
            let error = without_attribute_brackets(error).to_compile_error();
            quote! {
                {
                    #error
                    ::tokengate::__private::Policy::accepting(::tokengate::__private::TokenTypes::EMPTY)
                }
            }
        }
    }
}

/// The messages show attributes (`#[require_scope(...)]`); in `policy!` the items are
/// written without `#[...]`.
fn without_attribute_brackets(error: syn::Error) -> syn::Error {
    let mut out: Option<syn::Error> = None;
    for e in error {
        let message = e.to_string().replace("`#[", "`").replace("]`", "`");
        let e = syn::Error::new(e.span(), message);
        match &mut out {
            Some(first) => first.combine(e),
            None => out = Some(e),
        }
    }
    out.unwrap_or_else(|| syn::Error::new(proc_macro2::Span::call_site(), "invalid policy"))
}
