//! The checked model of a `#[session]` struct, keeping the original syntax for spans.

use heck::ToSnakeCase;
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{ext::IdentExt, spanned::Spanned};

use crate::{
    attr::{FieldAttrs, FieldDefault, Migrate, StructAttrs, SESSION},
    check,
    ctxt::Ctxt,
};

/// A `#[session]` struct, checked.
pub(crate) struct Container {
    /// The struct as the user wrote it, minus our field attributes.
    pub(crate) item: syn::ItemStruct,
    pub(crate) namespace: String,
    pub(crate) version: u32,
    pub(crate) krate: syn::Path,
    pub(crate) fields: Vec<Field>,
    /// `migrate(from = N, with = f)`, checked: `N` is older than `version`.
    pub(crate) migrate: Option<Migrate>,
}

/// One field of the struct.
pub(crate) struct Field {
    pub(crate) ident: syn::Ident,
    pub(crate) ty: syn::Type,
    /// The full session key, `"<namespace>[.v<N>].<name>"`.
    pub(crate) key: String,
    /// Where the key's name comes from: the `rename` literal or the field name.
    pub(crate) key_span: Span,
    pub(crate) default: FieldDefault,
    pub(crate) skip: bool,
}

impl Container {
    /// Reads and checks the struct; every error found, at once.
    pub(crate) fn from_item(args: TokenStream, item: &syn::Item) -> syn::Result<Self> {
        let mut cx = Ctxt::default();
        let attrs = StructAttrs::parse(&mut cx, args);
        let item = match item {
            syn::Item::Struct(item) => item,
            syn::Item::Enum(item) => {
                cx.error_spanned_by(
                    item.enum_token,
                    "#[session] works on structs with named fields, not on enums: \
                     store the enum as one field of a struct",
                );
                return Err(cx.check().err().unwrap_or_else(|| unreachable_error(item)));
            }
            syn::Item::Union(item) => {
                cx.error_spanned_by(
                    item.union_token,
                    "#[session] works on structs with named fields, not on unions",
                );
                return Err(cx.check().err().unwrap_or_else(|| unreachable_error(item)));
            }
            other => {
                cx.error_spanned_by(other, "#[session] works on structs with named fields");
                return Err(cx.check().err().unwrap_or_else(|| unreachable_error(other)));
            }
        };
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            cx.error_spanned_by(
                &item.generics,
                "#[session] does not support generic structs: each field's stored type must \
                 be known, so use concrete types",
            );
        }
        let named = match &item.fields {
            syn::Fields::Named(named) => Some(named),
            syn::Fields::Unnamed(fields) => {
                cx.error_spanned_by(
                    fields,
                    "#[session] needs named fields: each field name becomes a session key; \
                     tuple structs have none",
                );
                None
            }
            syn::Fields::Unit => {
                cx.error_spanned_by(
                    &item.ident,
                    "#[session] needs named fields: a unit struct would store nothing",
                );
                None
            }
        };

        let version = attrs.version.map_or(0, |(version, _)| version);
        let namespace = attrs.namespace.as_ref().map_or_else(
            || item.ident.unraw().to_string().to_snake_case(),
            syn::LitStr::value,
        );
        let prefix = match version {
            0 => format!("{namespace}."),
            v => format!("{namespace}.v{v}."),
        };
        let mut fields = Vec::new();
        for field in named.into_iter().flat_map(|named| &named.named) {
            let field_attrs = FieldAttrs::parse(&mut cx, field);
            let Some(ident) = field.ident.clone() else {
                continue;
            };
            if let (Some(_), Some(rename)) = (field_attrs.skip, &field_attrs.rename) {
                cx.error_spanned_by(
                    rename,
                    "a `skip` field is not stored: `rename` has no effect",
                );
            }
            let (name, key_span) = match &field_attrs.rename {
                Some(lit) => (lit.value(), lit.span()),
                None => (ident.unraw().to_string(), ident.span()),
            };
            fields.push(Field {
                key: format!("{prefix}{name}"),
                key_span,
                ident,
                ty: field.ty.clone(),
                default: field_attrs.default,
                skip: field_attrs.skip.is_some(),
            });
        }
        check::unique_keys(&mut cx, &fields);
        if let Some(migrate) = &attrs.migrate {
            match attrs.version {
                None => cx.push(syn::Error::new(
                    migrate.span,
                    "`migrate` needs a `version = N` on this struct: the version the data \
                     is migrated to",
                )),
                Some((to, _)) if migrate.from >= to => cx.push(syn::Error::new(
                    migrate.from_span,
                    format!(
                        "a migration comes from an older version: `from = {}` is not older \
                         than this struct's `version = {to}`",
                        migrate.from
                    ),
                )),
                Some(_) => {}
            }
        }
        cx.check()?;

        let krate = attrs.krate.unwrap_or_else(core_path);
        let mut item = item.clone();
        strip_struct(&mut item);
        Ok(Self {
            item,
            namespace,
            version,
            krate,
            fields,
            migrate: attrs.migrate,
        })
    }
}

/// Where `session_core` is for the crate being compiled: its own dependency on
/// `session-core` (under whatever name it was given), else the re-export in
/// `session-actix`, so a user who depends on `session-actix` alone needs nothing else.
/// `session-core` itself (its tests and doctests) names itself `::session_core` through
/// `extern crate self as session_core`.
fn core_path() -> syn::Path {
    use proc_macro_crate::{crate_name, FoundCrate};
    let ident = |name: &str| syn::Ident::new(name, Span::call_site());
    match crate_name("session-core") {
        Ok(FoundCrate::Itself) => return syn::parse_quote!(::session_core),
        Ok(FoundCrate::Name(name)) => {
            let name = ident(&name);
            return syn::parse_quote!(::#name);
        }
        Err(_) => {}
    }
    match crate_name("session-actix") {
        Ok(FoundCrate::Name(name)) => {
            let name = ident(&name);
            syn::parse_quote!(::#name::session_core)
        }
        // Not found (or a manifest we cannot read): the plain name, whose "unresolved
        // crate" error says what to add.
        Ok(FoundCrate::Itself) | Err(_) => syn::parse_quote!(::session_core),
    }
}

fn unreachable_error(tokens: &dyn ToTokens) -> syn::Error {
    syn::Error::new(
        tokens.to_token_stream().span(),
        "#[session] cannot be used here",
    )
}

/// The item with our `#[session(...)]` field attributes removed (they are not real
/// attributes once the macro has run).
pub(crate) fn strip_attrs(mut item: syn::Item) -> TokenStream {
    if let syn::Item::Struct(item) = &mut item {
        strip_struct(item);
    }
    item.into_token_stream()
}

fn strip_struct(item: &mut syn::ItemStruct) {
    for field in item.fields.iter_mut() {
        field.attrs.retain(|attr| !attr.path().is_ident(SESSION));
    }
}
