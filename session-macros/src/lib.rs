//! The `#[session]` attribute macro: typed session schemas with compile-time-checked
//! accessors. Use it through `session_core::session` (or `session_actix::session`); the
//! generated code's documentation and examples live on `session_core::SessionSchema`.
//!
//! This file only parses and turns errors into `compile_error!`: options are read in
//! `attr`, checked into the model in `ast` and `check`, and written out in `expand`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;

use proc_macro::TokenStream;

/// Turns a struct with named fields into a session schema: one session key per field,
/// typed accessors, key constants, and whole-struct load / save / clear.
///
/// Struct options: `namespace = "..."` (default: the struct name in snake_case),
/// `version = N`, `migrate(from = M, with = path::to::fn)`, `crate = "path"` (default: the application's `session-core`
/// dependency, else `session_actix::session_core`, found through `proc-macro-crate`). Field options:
/// `rename = "..."`, `default`, `default = expr`, `skip`.
#[proc_macro_attribute]
pub fn session(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = match syn::parse::<syn::Item>(input) {
        Ok(item) => item,
        Err(err) => return err.to_compile_error().into(),
    };
    match ast::Container::from_item(args, &item) {
        Ok(container) => expand::expand(&container).into(),
        Err(err) => {
            // Emit the item unchanged (minus our attributes) beside the errors, so the
            // user's other code does not drown in "cannot find type" follow-ups.
            let mut tokens = err.to_compile_error();
            tokens.extend(ast::strip_attrs(item));
            tokens.into()
        }
    }
}
