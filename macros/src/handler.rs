//! The handler attributes: collect every tokengate attribute of the function (whichever
//! expands first takes the others), check them, and expand — or re-emit the function
//! unchanged beside the errors, so one mistake does not cascade into the router code.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::{Attribute, FnArg, Item, ItemFn, Path};

use crate::callers;
use crate::errors::Errors;
use crate::expand;
use crate::names::AttrKind;
use crate::parse::{self, Declared, tokengate_kind};
use crate::validate::{self, Context};

/// Expands the `kind` attribute with `args` on `item`.
pub(crate) fn expand(kind: AttrKind, args: TokenStream, item: TokenStream) -> TokenStream {
    let original = item.clone();
    let mut func = match syn::parse2::<Item>(item) {
        Ok(Item::Fn(func)) => func,
        Ok(mut other) => return not_a_function(kind, &mut other),
        Err(error) => {
            let error = error.to_compile_error();
            return quote!(#error #original);
        }
    };
    let mut errors = Errors::default();
    let mut decls: Vec<Declared> = Vec::new();
    decls.extend(parse::declared(kind, Span::call_site(), args, &mut errors));
    let (taken, paths) = take_tokengate_attrs(&mut func.attrs, &mut errors);
    decls.extend(taken);
    // The attributes taken off still count as uses of their imports.
    let uses = expand::mark_used(&func.attrs, &paths);
    check_signature(kind, &func, &mut errors);
    let spec = validate::validate(&decls, Context::Handler, &mut errors);
    if errors.count() == 0 && !spec.public {
        callers::check_and_narrow(&mut func, &spec, &mut errors);
    }
    let expanded = match errors.finish() {
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #func)
        }
        Ok(()) if spec.public => expand::public_handler(func),
        Ok(()) => expand::guarded_handler(func, &spec),
    };
    quote!(#uses #expanded)
}

/// Removes the tokengate attributes from `attrs` and parses them; also returns their paths.
fn take_tokengate_attrs(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> (Vec<Declared>, Vec<Path>) {
    let mut decls = Vec::new();
    let mut paths = Vec::new();
    attrs.retain(|attr| match tokengate_kind(attr) {
        Some(kind) => {
            decls.extend(parse::from_attribute(kind, attr, errors));
            paths.push(attr.path().clone());
            false
        }
        None => true,
    });
    (decls, paths)
}

fn check_signature(kind: AttrKind, func: &ItemFn, errors: &mut Errors) {
    let sig = &func.sig;
    let name = &sig.ident;
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            format!(
                "`#[{}]` goes on an `async fn` handler; write `async fn {name}(...)`",
                kind.name()
            ),
        );
    }
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        errors.at(
            receiver.self_token.span,
            format!(
                "`#[{}]` goes on a free `async fn` handler, not a method taking `self`; move `{name}` out of the `impl` block and take what it needs with extractors (e.g. `State<...>`)",
                kind.name()
            ),
        );
    }
}

/// The attribute is on something other than a function: say so, and re-emit the item
/// without tokengate attributes (so they do not report the same mistake again).
fn not_a_function(kind: AttrKind, item: &mut Item) -> TokenStream {
    let message = format!(
        "`#[{}]` goes on an `async fn` handler, e.g. {} above `async fn handler(...) -> ... {{ ... }}`",
        kind.name(),
        parse::example(kind)
    );
    let mut errors = Errors::default();
    errors.at(item_keyword_span(item), message);
    let uses = item_attrs(item).map(|attrs| {
        let (_, paths) = take_tokengate_attrs(attrs, &mut Errors::default());
        expand::mark_used(attrs, &paths)
    });
    let error = errors.finish().err().map(|e| e.to_compile_error());
    quote!(#error #uses #item)
}

fn item_keyword_span(item: &Item) -> Span {
    match item {
        Item::Struct(i) => i.struct_token.span,
        Item::Enum(i) => i.enum_token.span,
        Item::Const(i) => i.const_token.span,
        Item::Static(i) => i.static_token.span,
        Item::Mod(i) => i.mod_token.span,
        Item::Impl(i) => i.impl_token.span,
        Item::Trait(i) => i.trait_token.span,
        Item::Type(i) => i.type_token.span,
        Item::Use(i) => i.use_token.span,
        other => other
            .to_token_stream()
            .into_iter()
            .next()
            .map_or_else(Span::call_site, |t| t.span()),
    }
}

fn item_attrs(item: &mut Item) -> Option<&mut Vec<Attribute>> {
    match item {
        Item::Struct(i) => Some(&mut i.attrs),
        Item::Enum(i) => Some(&mut i.attrs),
        Item::Const(i) => Some(&mut i.attrs),
        Item::Static(i) => Some(&mut i.attrs),
        Item::Mod(i) => Some(&mut i.attrs),
        Item::Impl(i) => Some(&mut i.attrs),
        Item::Trait(i) => Some(&mut i.attrs),
        Item::Type(i) => Some(&mut i.attrs),
        Item::Use(i) => Some(&mut i.attrs),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn run(kind: AttrKind, args: &str, item: &str) -> String {
        let args: TokenStream = args.parse().unwrap();
        let item: TokenStream = item.parse().unwrap();
        expand(kind, args, item).to_string()
    }

    const CREATE_USER: &str = "/// Docs.\n#[accepts_token(session_token, api_key)] #[other] \
        pub async fn create_user(Json(body): Json<X>) -> impl IntoResponse { body }";

    #[test]
    fn guard_is_the_first_parameter_and_the_rest_is_kept() {
        let out = run(AttrKind::RequireScope, r#"api_key: "write:users""#, CREATE_USER);
        let func = out.split("} ; # [doc = \" Docs.\"]").nth(1).unwrap();
        assert_eq!(
            func.trim(),
            "# [other] pub async fn create_user (_ : :: tokengate :: __private :: Guard < __tokengate_policy_create_user > , \
             Json (body) : Json < X >) -> impl IntoResponse { body }"
        );
        assert!(out.contains("pub struct __tokengate_policy_create_user ;"));
        assert!(
            out.contains("use accepts_token as _ ;"),
            "the taken attribute's import is used"
        );
    }

    #[test]
    fn on_error_the_function_is_emitted_unchanged_without_tokengate_attributes() {
        let out = run(
            AttrKind::RequireScope,
            r#""x""#,
            "#[other] #[require_role(\"org:admin\")] async fn bad() {}",
        );
        assert!(out.starts_with(
            "const _ : () = { # [allow (unused_imports)] use require_role as _ ; } ; :: core :: compile_error !"
        ));
        assert!(out.ends_with("# [other] async fn bad () { }"), "{out}");
        assert!(!out.contains("Guard"));
    }

    #[test]
    fn odd_input_is_an_error_never_a_panic() {
        let args = [
            "",
            ",",
            ",,",
            "api_key,,",
            "::",
            ":",
            "|",
            "api_key |",
            "| api_key:",
            "api_key: ",
            "any(",
            "any()",
            "any(any())",
            "\"a\" : \"b\"",
            "1",
            "'a'",
            "b\"x\"",
            "r#type",
            "self",
            "crate::x",
            "[]",
            "{}",
            "api_key::x",
            "api_key: any(\"a\"), \"b\"",
            "all(\"\")",
            "= 3",
            "#",
            "'lifetime",
            "optional",
            "optional,",
            "optional, optional",
            "optional, any",
            "optional(api_key)",
            "api_key: optional",
        ];
        let items = [
            "async fn f() {}",
            "fn f() {}",
            "struct S;",
            "async fn f(&self) {}",
            "async fn f<T>(t: T) where T: Send {}",
            "impl X {}",
            "x y z",
            "",
        ];
        for kind in AttrKind::ALL {
            for a in args {
                for item in items {
                    let Ok(a) = a.parse::<TokenStream>() else { continue };
                    let Ok(item) = item.parse::<TokenStream>() else {
                        continue;
                    };
                    let out = expand(kind, a.clone(), item).to_string();
                    assert!(
                        out.contains("compile_error") || out.contains("tokengate :: __private"),
                        "{kind:?}({a}): {out}"
                    );
                }
                let input = format!("accepts_token({a}), require_scope({a})")
                    .parse()
                    .unwrap_or_default();
                let out = crate::policy::expand(input).to_string();
                assert!(
                    out.contains("compile_error") || out.contains("from_parts"),
                    "policy!({a}): {out}"
                );
            }
        }
    }
}
