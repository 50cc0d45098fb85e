//! Writes the tokens for a checked `#[session]` struct.

use heck::ToShoutySnakeCase;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{ext::IdentExt, spanned::Spanned};

use crate::{
    ast::{Container, Field},
    attr::FieldDefault,
};

/// Everything the macro emits: the struct, its key constants and `view`, the view type
/// with one accessor set per field, the `SessionSchema` impl, and trait-bound probes.
pub(crate) fn expand(c: &Container) -> TokenStream {
    let item = &c.item;
    let ident = &item.ident;
    let vis = &item.vis;
    let krate = &c.krate;
    let view = format_ident!("{}View", ident.unraw());
    let stored: Vec<&Field> = c.fields.iter().filter(|f| !f.skip).collect();

    let key_consts = stored.iter().map(|f| {
        let name = key_const(f);
        let key = &f.key;
        let doc = format!(
            "The session key of field `{}`: `\"{key}\"`.",
            f.ident.unraw()
        );
        quote! {
            #[doc = #doc]
            #vis const #name: &'static str = #key;
        }
    });
    let accessors = stored.iter().map(|f| accessors(krate, f));
    let probes = stored.iter().map(|f| {
        let ty = &f.ty;
        quote_spanned! {ty.span()=> #krate::__private::assert_field::<#ty>(); }
    });
    let namespace = &c.namespace;
    let version = c.version;
    let keys = stored.iter().map(|f| key_const(f));
    let load_fields = c.fields.iter().map(|f| load_field(krate, f));
    let field_idents = c.fields.iter().map(|f| &f.ident);
    let load_into_fields = stored.iter().map(|f| load_into_field(krate, f));
    let entries = stored.iter().map(|f| {
        let name = key_const(f);
        let field = &f.ident;
        let ty = &f.ty;
        let encoded = quote_spanned! {ty.span()=>
            #krate::__private::to_raw::<#ty>(Self::#name, &self.#field)?
        };
        quote! { (Self::#name, #encoded) }
    });
    let saves = stored.iter().map(|f| {
        let name = key_const(f);
        let field = &f.ident;
        let ty = &f.ty;
        quote_spanned! {ty.span()=>
            #krate::schema::SessionAccess::set_value::<#ty>(session, Self::#name, &self.#field)?;
        }
    });
    // With `migrate(from = N, with = f)`: `load` and `load_into` first turn data of version
    // N (and, through its own migration, older) into this version; `is_stored` also sees it.
    let (migrate_load, migrate_load_into, is_stored) = match &c.migrate {
        None => (TokenStream::new(), TokenStream::new(), TokenStream::new()),
        Some(m) => {
            let from = m.from;
            let with = &m.with;
            let call = quote! {
                #krate::__private::migrate::<Self, _, _, _, _, #from>(session, #with)
            };
            (
                quote! {
                    if let ::core::option::Option::Some(migrated) = #call? {
                        return ::core::result::Result::Ok(::core::option::Option::Some(migrated));
                    }
                },
                quote! {
                    match #call {
                        ::core::result::Result::Ok(::core::option::Option::Some(migrated)) => {
                            *target = migrated;
                            return;
                        }
                        ::core::result::Result::Ok(::core::option::Option::None) => {}
                        ::core::result::Result::Err(err) => #krate::__private::warn_migration(&err),
                    }
                },
                quote! {
                    fn is_stored<__S>(session: &__S) -> bool
                    where
                        __S: #krate::schema::SessionAccess + ?::core::marker::Sized,
                    {
                        #krate::__private::any_key_stored(session, Self::KEYS)
                            || #krate::__private::source_stored(session, &#with)
                    }
                },
            )
        }
    };
    let view_doc =
        format!("Typed accessors for the session keys of [`{ident}`]: made by [`{ident}::view`].");
    let view_fn_doc = format!(
        "A typed view of the `{namespace}` keys of `session`: one getter, setter, remover \
         and updater per field, each touching only its own key."
    );

    quote! {
        #item

        #[automatically_derived]
        impl #ident {
            #(#key_consts)*

            #[doc = #view_fn_doc]
            #vis fn view<__S>(session: &__S) -> #view<'_, __S>
            where
                __S: #krate::schema::SessionAccess + ?::core::marker::Sized,
            {
                #view { session }
            }
        }

        #[doc = #view_doc]
        #vis struct #view<'__s, __S: ?::core::marker::Sized> {
            session: &'__s __S,
        }

        #[automatically_derived]
        impl<'__s, __S> #view<'__s, __S>
        where
            __S: #krate::schema::SessionAccess + ?::core::marker::Sized,
        {
            #(#accessors)*
        }

        #[automatically_derived]
        impl #krate::schema::SessionSchema for #ident {
            const NAMESPACE: &'static str = #namespace;
            const VERSION: u32 = #version;
            const KEYS: &'static [&'static str] = &[#(Self::#keys),*];

            fn load<__S>(
                session: &__S,
            ) -> ::core::result::Result<::core::option::Option<Self>, #krate::schema::SchemaError>
            where
                __S: #krate::schema::SessionAccess + ?::core::marker::Sized,
            {
                #migrate_load
                #(#load_fields)*
                ::core::result::Result::Ok(::core::option::Option::Some(Self { #(#field_idents),* }))
            }

            fn load_into<__S>(target: &mut Self, session: &__S)
            where
                __S: #krate::schema::SessionAccess + ?::core::marker::Sized,
            {
                #migrate_load_into
                #(#load_into_fields)*
            }

            #is_stored

            fn save<__S>(&self, session: &__S) -> ::core::result::Result<(), #krate::schema::SchemaError>
            where
                __S: #krate::schema::SessionAccess + ?::core::marker::Sized,
            {
                #(#saves)*
                ::core::result::Result::Ok(())
            }

            fn entries(
                &self,
            ) -> ::core::result::Result<
                #krate::__private::Vec<(&'static str, #krate::__private::Box<#krate::__private::RawValue>)>,
                #krate::schema::SchemaError,
            > {
                ::core::result::Result::Ok(#krate::__private::vec![#(#entries),*])
            }
        }

        const _: () = {
            // Each stored field's type must be Serialize + DeserializeOwned; the error
            // points at the field's type.
            #[allow(dead_code)]
            fn __session_field_probes() {
                #(#probes)*
            }
        };
    }
}

/// `SECRET_KEY` for field `secret`.
fn key_const(f: &Field) -> syn::Ident {
    format_ident!(
        "{}_KEY",
        f.ident.unraw().to_string().to_shouty_snake_case(),
        span = f.ident.span()
    )
}

/// The value a field takes when its key is absent, if it has a default.
fn default_value(f: &Field) -> Option<TokenStream> {
    let ty = &f.ty;
    match &f.default {
        FieldDefault::None => None,
        FieldDefault::Trait(span) => {
            Some(quote_spanned! {*span=> <#ty as ::core::default::Default>::default() })
        }
        FieldDefault::Expr(expr) => Some(quote_spanned! {expr.span()=> {
            let __default: #ty = #expr;
            __default
        }}),
    }
}

/// `let field = ...;` in `load`.
fn load_field(krate: &syn::Path, f: &Field) -> TokenStream {
    let field = &f.ident;
    let ty = &f.ty;
    if f.skip {
        let value = default_value(f).unwrap_or_else(
            || quote_spanned! {ty.span()=> <#ty as ::core::default::Default>::default() },
        );
        return quote! { let #field = #value; };
    }
    let name = key_const(f);
    let absent = default_value(f).unwrap_or_else(
        || quote! { return ::core::result::Result::Ok(::core::option::Option::None) },
    );
    quote! {
        let #field = match #krate::schema::SessionAccess::get_value::<#ty>(session, Self::#name)? {
            ::core::option::Option::Some(value) => value,
            ::core::option::Option::None => #absent,
        };
    }
}

/// One field's part of `load_into`.
fn load_into_field(krate: &syn::Path, f: &Field) -> TokenStream {
    let field = &f.ident;
    let ty = &f.ty;
    let name = key_const(f);
    let fallback = default_value(f)
        .map(|value| quote! { target.#field = #value; })
        .unwrap_or_default();
    quote! {
        match #krate::schema::SessionAccess::get_value::<#ty>(session, Self::#name) {
            ::core::result::Result::Ok(::core::option::Option::Some(value)) => target.#field = value,
            ::core::result::Result::Ok(::core::option::Option::None) => { #fallback }
            ::core::result::Result::Err(err) => {
                #krate::__private::warn_undecodable(&err);
                #fallback
            }
        }
    }
}

/// Getter, setter, remover and updater of one field, on the view.
fn accessors(krate: &syn::Path, f: &Field) -> TokenStream {
    let ty = &f.ty;
    let field = f.ident.unraw();
    let getter = f.ident.clone();
    let setter = format_ident!("set_{}", field, span = f.ident.span());
    let remover = format_ident!("remove_{}", field, span = f.ident.span());
    let updater = format_ident!("update_{}", field, span = f.ident.span());
    let key = &f.key;
    let error = quote!(#krate::schema::SchemaError);
    let result = |t: TokenStream| quote!(::core::result::Result<#t, #error>);
    let set_doc = format!(
        "Writes field `{field}` (key `\"{key}\"`), leaving every other key as it is.\n\n\
         # Errors\n\n`SchemaError::Encode` naming the key if the value cannot be encoded."
    );
    let remove_doc = format!("Removes field `{field}` (key `\"{key}\"`) from the session.");

    let (get_doc, get_ty, get_body, update_doc, update_arg, update_body) = match default_value(f) {
        Some(default) => (
            format!("Reads field `{field}` (key `\"{key}\"`), or its default when absent.\n\n# Errors\n\n`SchemaError::Decode` naming the key if the stored value does not decode."),
            result(quote!(#ty)),
            quote! {
                ::core::result::Result::Ok(
                    match #krate::schema::SessionAccess::get_value::<#ty>(self.session, #key)? {
                        ::core::option::Option::Some(value) => value,
                        ::core::option::Option::None => #default,
                    },
                )
            },
            format!("Reads field `{field}` (or its default), lets `f` change it, and writes it back.\n\n# Errors\n\nAs the getter and the setter."),
            quote!(&mut #ty),
            quote! {
                let mut value = self.#getter()?;
                let out = f(&mut value);
                self.#setter(&value)?;
                ::core::result::Result::Ok(out)
            },
        ),
        None => (
            format!("Reads field `{field}` (key `\"{key}\"`); `None` when absent.\n\n# Errors\n\n`SchemaError::Decode` naming the key if the stored value does not decode."),
            result(quote!(::core::option::Option<#ty>)),
            quote! {
                #krate::schema::SessionAccess::get_value::<#ty>(self.session, #key)
            },
            format!("Reads field `{field}` as an `Option`, lets `f` change it, and writes it back (`None` removes the key).\n\n# Errors\n\nAs the getter and the setter."),
            quote!(&mut ::core::option::Option<#ty>),
            quote! {
                let mut value = self.#getter()?;
                let out = f(&mut value);
                match &value {
                    ::core::option::Option::Some(value) => self.#setter(value)?,
                    ::core::option::Option::None => self.#remover(),
                }
                ::core::result::Result::Ok(out)
            },
        ),
    };
    let ok_unit = result(quote!(()));
    let ok_r = result(quote!(__R));
    quote! {
        #[doc = #get_doc]
        pub fn #getter(&self) -> #get_ty {
            #get_body
        }

        #[doc = #set_doc]
        pub fn #setter(&self, value: impl ::core::borrow::Borrow<#ty>) -> #ok_unit {
            #krate::schema::SessionAccess::set_value::<#ty>(
                self.session,
                #key,
                ::core::borrow::Borrow::borrow(&value),
            )
        }

        #[doc = #remove_doc]
        pub fn #remover(&self) {
            #krate::schema::SessionAccess::remove_value(self.session, #key);
        }

        #[doc = #update_doc]
        pub fn #updater<__R>(&self, f: impl ::core::ops::FnOnce(#update_arg) -> __R) -> #ok_r {
            #update_body
        }
    }
}
