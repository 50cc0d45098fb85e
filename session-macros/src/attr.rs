//! Parsing `#[session(...)]` options: one constant per option name.

use syn::{meta::ParseNestedMeta, spanned::Spanned, Expr, LitInt, LitStr};

use crate::ctxt::Ctxt;

/// The attribute's name, on the struct and on fields.
pub(crate) const SESSION: &str = "session";

const NAMESPACE: &str = "namespace";
const VERSION: &str = "version";
const CRATE: &str = "crate";
const MIGRATE: &str = "migrate";
const STRUCT_OPTIONS: &[&str] = &[NAMESPACE, VERSION, CRATE, MIGRATE];

const FROM: &str = "from";
const WITH: &str = "with";
const MIGRATE_OPTIONS: &[&str] = &[FROM, WITH];

const RENAME: &str = "rename";
const DEFAULT: &str = "default";
const SKIP: &str = "skip";
const FIELD_OPTIONS: &[&str] = &[RENAME, DEFAULT, SKIP];

/// Options given on the struct: `#[session(namespace = "..", version = N, crate = "..")]`.
#[derive(Default)]
pub(crate) struct StructAttrs {
    pub(crate) namespace: Option<LitStr>,
    pub(crate) version: Option<(u32, proc_macro2::Span)>,
    pub(crate) krate: Option<syn::Path>,
    pub(crate) migrate: Option<Migrate>,
}

/// `migrate(from = N, with = path::to::fn)`: how an older version's data becomes this one.
pub(crate) struct Migrate {
    /// The version migrated from (`0`: the struct had no `version`).
    pub(crate) from: u32,
    pub(crate) from_span: proc_macro2::Span,
    /// A function `fn(Old) -> Result<Self, E>`; `Old` is the older `#[session]` struct.
    pub(crate) with: syn::Path,
    /// The `migrate` option itself, for errors about it as a whole.
    pub(crate) span: proc_macro2::Span,
}

/// How a field gets its value when its key is absent.
pub(crate) enum FieldDefault {
    /// No default: the accessor returns `Option<T>`.
    None,
    /// `default`: `<T as Default>::default()`; the span points at the option.
    Trait(proc_macro2::Span),
    /// `default = expr`.
    Expr(Box<Expr>),
}

/// Options given on a field.
pub(crate) struct FieldAttrs {
    pub(crate) rename: Option<LitStr>,
    pub(crate) default: FieldDefault,
    pub(crate) skip: Option<proc_macro2::Span>,
}

impl StructAttrs {
    /// Parses the arguments of the struct attribute.
    pub(crate) fn parse(cx: &mut Ctxt, args: proc_macro2::TokenStream) -> Self {
        let mut attrs = Self::default();
        if args.is_empty() {
            return attrs;
        }
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident(NAMESPACE) {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() || lit.value().contains('.') {
                    cx.error_spanned_by(&lit, "namespace must be non-empty and contain no `.`");
                }
                set_once(cx, &meta, &mut attrs.namespace, lit);
            } else if meta.path.is_ident(VERSION) {
                let lit: LitInt = meta.value()?.parse()?;
                match lit.base10_parse::<u32>() {
                    Ok(0) => cx.error_spanned_by(&lit, "version starts at 1 (no version is 0)"),
                    Ok(version) => set_once(cx, &meta, &mut attrs.version, (version, lit.span())),
                    Err(err) => cx.push(err),
                }
            } else if meta.path.is_ident(MIGRATE) {
                if let Some(migrate) = parse_migrate(cx, &meta)? {
                    set_once(cx, &meta, &mut attrs.migrate, migrate);
                }
            } else if meta.path.is_ident(CRATE) {
                let lit: LitStr = meta.value()?.parse()?;
                let path = lit.parse::<syn::Path>()?;
                set_once(cx, &meta, &mut attrs.krate, path);
            } else {
                cx.push(unknown(&meta, STRUCT_OPTIONS));
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(err) = syn::parse::Parser::parse2(parser, args) {
            cx.push(err);
        }
        attrs
    }
}

/// The inside of `migrate(...)`; `None` (with the errors reported) if incomplete.
fn parse_migrate(cx: &mut Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Migrate>> {
    let mut from: Option<(u32, proc_macro2::Span)> = None;
    let mut with: Option<syn::Path> = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident(FROM) {
            let lit: LitInt = inner.value()?.parse()?;
            match lit.base10_parse::<u32>() {
                Ok(version) => set_once(cx, &inner, &mut from, (version, lit.span())),
                Err(err) => cx.push(err),
            }
        } else if inner.path.is_ident(WITH) {
            let path: syn::Path = inner.value()?.parse()?;
            set_once(cx, &inner, &mut with, path);
        } else {
            cx.push(unknown(&inner, MIGRATE_OPTIONS));
            skip_value(&inner)?;
        }
        Ok(())
    })?;
    let span = meta.path.span();
    match (from, with) {
        (Some((from, from_span)), Some(with)) => Ok(Some(Migrate {
            from,
            from_span,
            with,
            span,
        })),
        (None, _) => {
            cx.error_spanned_by(
                &meta.path,
                "`migrate` needs the version it migrates from: `migrate(from = 1, with = ...)`",
            );
            Ok(None)
        }
        (_, None) => {
            cx.error_spanned_by(
                &meta.path,
                "`migrate` needs the function that converts: `migrate(from = 1, with = \
                 path::to::fn)`, a `fn(Old) -> Result<Self, E>`",
            );
            Ok(None)
        }
    }
}

impl FieldAttrs {
    /// Parses every `#[session(...)]` on a field.
    pub(crate) fn parse(cx: &mut Ctxt, field: &syn::Field) -> Self {
        let mut rename = None;
        let mut default = None;
        let mut skip = None;
        for attr in field.attrs.iter().filter(|a| a.path().is_ident(SESSION)) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(RENAME) {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().is_empty() {
                        cx.error_spanned_by(&lit, "rename must not be empty");
                    }
                    set_once(cx, &meta, &mut rename, lit);
                } else if meta.path.is_ident(DEFAULT) {
                    let value = if meta.input.peek(syn::Token![=]) {
                        FieldDefault::Expr(Box::new(meta.value()?.parse()?))
                    } else {
                        FieldDefault::Trait(meta.path.span())
                    };
                    set_once(cx, &meta, &mut default, value);
                } else if meta.path.is_ident(SKIP) {
                    set_once(cx, &meta, &mut skip, meta.path.span());
                } else {
                    cx.push(unknown(&meta, FIELD_OPTIONS));
                    skip_value(&meta)?;
                }
                Ok(())
            });
            if let Err(err) = result {
                cx.push(err);
            }
        }
        Self {
            rename,
            default: default.unwrap_or(FieldDefault::None),
            skip,
        }
    }
}

/// Stores an option's value, reporting a repeated option.
fn set_once<T>(cx: &mut Ctxt, meta: &ParseNestedMeta<'_>, slot: &mut Option<T>, value: T) {
    if slot.is_some() {
        let name = path_name(&meta.path);
        cx.error_spanned_by(&meta.path, format!("duplicate session option `{name}`"));
    } else {
        *slot = Some(value);
    }
}

/// "unknown option `nmespace`; did you mean `namespace`? options: ...".
fn unknown(meta: &ParseNestedMeta<'_>, known: &[&str]) -> syn::Error {
    let name = path_name(&meta.path);
    let closest = known
        .iter()
        .map(|option| (strsim::jaro_winkler(&name, option), *option))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let mut message = format!("unknown session option `{name}`");
    if let Some((_, option)) = closest {
        message.push_str(&format!("; did you mean `{option}`?"));
    }
    message.push_str(&format!(
        " (options here: {})",
        known
            .iter()
            .map(|o| format!("`{o}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    syn::Error::new_spanned(&meta.path, message)
}

/// Consumes `= value` after an unknown option so parsing continues.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|_| Ok(()))?;
    }
    Ok(())
}

fn path_name(path: &syn::Path) -> String {
    quote::ToTokens::to_token_stream(path)
        .to_string()
        .replace(' ', "")
}
