//! Expansion: a checked [`Spec`] becomes statics, a policy type, a guard parameter and a
//! registry record. Generated code names everything by absolute path
//! (`::tokengate::__private::…`, `::core::…`) and prefixes its identifiers with `__tokengate_`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned as _;
use syn::{Attribute, ItemFn, parse_quote};

use tokengate_core::grammar::ValueKind;
use tokengate_core::{TokenType, TokenTypes};

use crate::validate::{Accepts, Condition, Req, ReqKind, Spec};

/// The statics a policy refers to, and the `const` expression that builds it.
struct PolicyStatics {
    items: TokenStream,
    construct: TokenStream,
}

/// The runtime enum's variant.
fn variant(token_type: TokenType) -> Ident {
    let name = match token_type {
        TokenType::SessionToken => "SessionToken",
        TokenType::OAuthToken => "OAuthToken",
        TokenType::ApiKey => "ApiKey",
        TokenType::M2mToken => "M2mToken",
    };
    Ident::new(name, Span::call_site())
}

fn token_types(set: TokenTypes) -> TokenStream {
    let variants = set.iter().map(variant);
    quote!(::tokengate::__private::TokenTypes::EMPTY #(.with(::tokengate::__private::TokenType::#variants))*)
}

/// `static`s for the values, the requirements and the policy. Arrays are separate statics:
/// a `&[...]` temporary with drop glue cannot be a `const fn` argument in a static.
fn policy_statics(spec: &Spec) -> PolicyStatics {
    let p = quote!(::tokengate::__private);
    let accepts = match spec.accepts {
        Accepts::Any => quote!(#p::TokenTypes::ANY),
        other => token_types(other.set()),
    };
    let mut items = TokenStream::new();
    let mut requirements = Vec::new();
    for (i, req) in spec.requirements.iter().enumerate() {
        let values_ident = format_ident!("__TOKENGATE_VALUES_{}", i);
        let n = req.values.len();
        let values = &req.values;
        items.extend(quote! {
            static #values_ident: [#p::Cow<'static, str>; #n] = [#(#p::Cow::Borrowed(#values)),*];
        });
        requirements.push(requirement(req, &values_ident));
    }
    // Conditions are recorded for the report (the guard evaluates them); one requirement each.
    for (i, condition) in spec.conditions.iter().enumerate() {
        let values_ident = format_ident!("__TOKENGATE_CONDITION_{}", i);
        let name = &condition.name;
        items.extend(quote! {
            static #values_ident: [#p::Cow<'static, str>; 1] = [#p::Cow::Borrowed(#name)];
        });
        requirements.push(quote! {
            #p::Requirement::from_parts(
                #p::RequirementKind::Condition,
                #p::Match::All,
                &#values_ident,
                #p::TokenTypes::EMPTY,
            )
        });
    }
    let n = requirements.len();
    items.extend(quote! {
        static __TOKENGATE_REQUIREMENTS: [#p::Requirement; #n] = [#(#requirements),*];
    });
    let optional = spec.optional.map(|_| quote!(.optional()));
    let construct = match (spec.dpop, spec.mtls) {
        (false, false) => quote!(#p::Policy::from_parts(#accepts, &__TOKENGATE_REQUIREMENTS) #optional),
        (dpop, mtls) => {
            let dpop = dpop.then(|| quote!(.with(#p::Binding::DPOP)));
            let mtls = mtls.then(|| quote!(.with(#p::Binding::MTLS)));
            quote!(#p::Policy::from_parts_bound(#accepts, &__TOKENGATE_REQUIREMENTS, #p::Binding::NONE #dpop #mtls) #optional)
        }
    };
    PolicyStatics { items, construct }
}

/// One checked requirement as a `Requirement::from_parts` call over its values' static.
fn requirement(req: &Req, values_ident: &Ident) -> TokenStream {
    let p = quote!(::tokengate::__private);
    let kind = match req.kind {
        ReqKind::Value(ValueKind::Scope) => quote!(Scope),
        ReqKind::Value(ValueKind::Role) => quote!(Role),
        ReqKind::Value(ValueKind::Permission) => quote!(Permission),
        ReqKind::Value(ValueKind::Feature) => quote!(Feature),
        ReqKind::Value(ValueKind::Plan) => quote!(Plan),
        ReqKind::Value(ValueKind::Acr) => quote!(Acr),
        ReqKind::Reverification => quote!(Reverification),
        ReqKind::MaxAge => quote!(MaxAge),
        ReqKind::RateLimit => quote!(RateLimit),
    };
    let matching = if req.any { quote!(Any) } else { quote!(All) };
    let applies_to = token_types(req.applies_to);
    quote! {
        #p::Requirement::from_parts(
            #p::RequirementKind::#kind,
            #p::Match::#matching,
            &#values_ident,
            #applies_to,
        )
    }
}

/// The `policy!` expression: a `Policy` value (usable in a `static` too).
pub(crate) fn policy_expr(spec: &Spec) -> TokenStream {
    let PolicyStatics { items, construct } = policy_statics(spec);
    quote! {
        {
            #items
            #construct
        }
    }
}

/// The attributes that decide whether the handler exists (`#[cfg]`), copied onto every item
/// generated beside it.
fn cfgs(attrs: &[Attribute]) -> Vec<&Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("cfg")).collect()
}

/// Refers to the paths of the tokengate attributes that were taken off a function, so their
/// imports are used (no `unused_imports` warning whichever attribute expanded first).
pub(crate) fn mark_used(attrs: &[Attribute], paths: &[syn::Path]) -> TokenStream {
    if paths.is_empty() {
        return TokenStream::new();
    }
    let cfgs = cfgs(attrs);
    quote! {
        #(#cfgs)*
        const _: () = {
            #(
                #[allow(unused_imports)]
                use #paths as _;
            )*
        };
    }
}

/// The registry record for `func`.
fn record(func: &ItemFn, status: &TokenStream) -> TokenStream {
    let p = quote!(::tokengate::__private);
    let ident = &func.sig.ident;
    let name = ident.unraw().to_string();
    let fn_span = func.sig.fn_token.span;
    let line = quote_spanned!(fn_span=> ::core::line!());
    let file = quote_spanned!(fn_span=> ::core::file!());
    // A generic function item has no single `TypeId`; the report falls back to its path.
    let (type_id_fn, type_id) = if !func.sig.generics.params.is_empty() {
        (quote!(), quote!(::core::option::Option::None))
    } else {
        (
            quote! {
                fn __tokengate_type_id() -> ::core::any::TypeId {
                    #p::type_id_of(&#ident)
                }
            },
            quote!(::core::option::Option::Some(__tokengate_type_id)),
        )
    };
    quote! {
        #type_id_fn
        #p::inventory::submit! {
            #p::HandlerRecord {
                name: #name,
                module_path: ::core::module_path!(),
                file: #file,
                line: #line,
                status: #status,
                type_id: #type_id,
            }
        }
    }
}

/// A guarded handler: the policy type and its statics, the record, and the function with a
/// guard as its first parameter.
pub(crate) fn guarded_handler(mut func: ItemFn, spec: &Spec) -> TokenStream {
    let p = quote!(::tokengate::__private);
    let vis = &func.vis;
    let name = func.sig.ident.unraw();
    let policy_type = format_ident!("__tokengate_policy_{}", name, span = Span::call_site());
    let cfgs = cfgs(&func.attrs);
    let PolicyStatics { items, construct } = policy_statics(spec);
    let record = record(&func, &quote!(#p::HandlerStatus::Guarded(&__TOKENGATE_POLICY)));
    let doc = format!("The tokengate policy of `{name}` (generated by its attributes).");
    // The route's name in metrics and traces: the path the route-policy report shows.
    let name_str = name.to_string();
    let conditions = conditions_fn(&spec.conditions);
    // With no other parameter and no condition, nothing after the guard could read the `Auth`.
    let share_auth = if func.sig.inputs.is_empty() && spec.conditions.is_empty() {
        quote!(
            const SHARE_AUTH: bool = false;
        )
    } else {
        TokenStream::new()
    };
    let generated = quote! {
        #(#cfgs)*
        #[doc = #doc]
        #[doc(hidden)]
        #[allow(non_camel_case_types, unreachable_pub)]
        #[derive(::core::fmt::Debug)]
        #vis struct #policy_type;

        #(#cfgs)*
        const _: () = {
            #items
            static __TOKENGATE_POLICY: #p::Policy = #construct;
            impl #p::PolicySource for #policy_type {
                fn policy() -> &'static #p::Policy {
                    &__TOKENGATE_POLICY
                }
                fn route() -> &'static str {
                    ::core::concat!(::core::module_path!(), "::", #name_str)
                }
                #share_auth
                #conditions
            }
            #record
        };
    };
    // A handler without parameters hands axum's request to the guard whole (`OnRequest`):
    // axum then keeps no copy of the request's parts in the handler's future.
    let guard = if func.sig.inputs.is_empty() {
        quote!(#p::Guard<#policy_type, #p::OnRequest>)
    } else {
        quote!(#p::Guard<#policy_type>)
    };
    func.sig.inputs.insert(0, parse_quote!(_: #guard));
    quote! {
        #generated
        #func
    }
}

/// `PolicySource::conditions` awaiting each predicate in order; the first that returns
/// `false` refuses the request. Each call is spanned at the user's path, so an unknown or
/// mistyped predicate is the compiler's own error at the name.
fn conditions_fn(conditions: &[Condition]) -> TokenStream {
    if conditions.is_empty() {
        return TokenStream::new();
    }
    let p = quote!(::tokengate::__private);
    let checks = conditions.iter().map(|c| {
        let path = &c.path;
        let name = &c.name;
        let call = quote_spanned!(path.span()=> #path(__tokengate_auth, &mut *__tokengate_parts).await);
        quote! {
            let __tokengate_holds: bool = #call;
            if !__tokengate_holds {
                return ::core::result::Result::Err(#p::Rejection::condition_failed(#name));
            }
        }
    });
    quote! {
        fn conditions<'__tokengate>(
            __tokengate_auth: &'__tokengate #p::Auth,
            __tokengate_parts: &'__tokengate mut #p::Parts,
        ) -> ::core::option::Option<#p::ConditionFuture<'__tokengate>> {
            ::core::option::Option::Some(::std::boxed::Box::pin(async move {
                #(#checks)*
                ::core::result::Result::Ok(())
            }))
        }
    }
}

/// A `#[public]` handler: its record, and the function with the `Public` marker as its first
/// parameter (it extracts nothing; aide reads it as `security: []`).
pub(crate) fn public_handler(mut func: ItemFn) -> TokenStream {
    let cfgs = cfgs(&func.attrs);
    let record = record(&func, &quote!(::tokengate::__private::HandlerStatus::Public));
    func.sig
        .inputs
        .insert(0, parse_quote!(_: ::tokengate::__private::Public));
    quote! {
        #(#cfgs)*
        const _: () = {
            #record
        };
        #func
    }
}
