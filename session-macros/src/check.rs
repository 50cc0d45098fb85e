//! Checks across fields.

use std::collections::HashMap;

use crate::{ast::Field, ctxt::Ctxt};

/// Two fields may not map to one session key (e.g. a `rename` onto another field's name).
pub(crate) fn unique_keys(cx: &mut Ctxt, fields: &[Field]) {
    let mut seen: HashMap<&str, &Field> = HashMap::new();
    for field in fields.iter().filter(|f| !f.skip) {
        if let Some(first) = seen.get(field.key.as_str()) {
            cx.push(syn::Error::new(
                field.key_span,
                format!(
                    "fields `{}` and `{}` both map to session key `{}`",
                    first.ident, field.ident, field.key
                ),
            ));
        } else {
            seen.insert(&field.key, field);
        }
    }
}
