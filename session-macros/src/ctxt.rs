//! Collects every error before failing, as serde's `Ctxt` and darling's accumulator do.

use std::fmt::Display;

use quote::ToTokens;

/// Errors found so far.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Option<syn::Error>,
}

impl Ctxt {
    /// Records an error spanning `tokens`.
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&mut self, tokens: T, message: M) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records a `syn` error as it is.
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.errors {
            Some(errors) => errors.combine(err),
            None => self.errors = Some(err),
        }
    }

    /// `Err` with every error recorded, if any.
    pub(crate) fn check(self) -> syn::Result<()> {
        self.errors.map_or(Ok(()), Err)
    }
}
